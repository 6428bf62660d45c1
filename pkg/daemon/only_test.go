package daemon

import (
	"os"
	"os/user"
	"testing"

	"postern/pkg/config"
	"postern/pkg/ipc"
)

// TestOnly: a socket for one service admits that service's user alone; in a one-user
// instance (the daemon does not run as its configured user) it admits that user too.
func TestOnly(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	self := ipc.Cred{UID: os.Getuid()}
	stranger := ipc.Cred{UID: 54321}
	if os.Getuid() == stranger.UID {
		t.Skip("the test's stranger uid is ours")
	}
	cfg := config.Default()
	// Production: authd runs as its configured user (us), httpd as a user that is not
	// us (here: none).
	cfg.Services["authd"].User = me.Username
	cfg.Services["httpd"].User = "postern-no-such-user"
	if allow := Only(cfg, "authd", "httpd"); allow(self) || allow(stranger) {
		t.Error("a root-started daemon admits a peer that is not the service's user")
	}
	// The service runs as us: admitted.
	cfg.Services["httpd"].User = me.Username
	if allow := Only(cfg, "authd", "httpd"); !allow(self) || allow(stranger) {
		t.Error("the service's own user is not admitted, or a stranger is")
	}
	// One-user instance: authd is not running as its configured user.
	cfg.Services["authd"].User = "postern-no-such-user"
	cfg.Services["httpd"].User = "postern-no-such-user-2"
	if allow := Only(cfg, "authd", "httpd"); !allow(self) || allow(stranger) {
		t.Error("a one-user instance does not admit its user, or admits a stranger")
	}
}

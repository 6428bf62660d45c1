package main

import (
	"os/user"
	"strings"
	"testing"

	"postern/pkg/config"
)

// TestEnsureSystemUsersSays checks that init, as root, says which system users it creates
// and which it finds: a user missing on this host is created with useradd (here a
// recording stand-in), and every user of the instance is named in the output.
func TestEnsureSystemUsersSays(t *testing.T) {
	const missing = "postern-nosuch-test"
	if _, err := user.Lookup(missing); err == nil {
		t.Skipf("user %s exists on this host", missing)
	}
	cfg := config.Default()
	cfg.AdminGroup = ""
	cfg.Services["sieved"].User = missing
	ta := newTestApp(t, "")
	var ran []string
	ta.app.tool = func(name string, args ...string) ([]byte, error) {
		ran = append(ran, name+" "+strings.Join(args, " "))
		return nil, nil
	}
	if err := ta.app.ensureSystemUsers(cfg); err != nil {
		t.Fatal(err)
	}
	out := ta.out.String()
	if !strings.Contains(out, "created system user "+missing) || !strings.Contains(out, "ran: useradd") {
		t.Errorf("the creation of %s is not reported:\n%s", missing, out)
	}
	if !strings.Contains(strings.Join(ran, "\n"), "useradd --system") || !strings.HasSuffix(ran[len(ran)-1], missing) {
		t.Errorf("useradd was not run for %s: %q", missing, ran)
	}
	for _, name := range systemUsers(cfg) {
		if !strings.Contains(out, "created system user "+name) && !strings.Contains(out, "system user "+name+" exists") {
			t.Errorf("system user %s is not mentioned:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "system group postern") {
		t.Errorf("group postern is not mentioned:\n%s", out)
	}
}

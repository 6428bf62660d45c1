package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"postern/pkg/config"
)

func TestSocketsFor(t *testing.T) {
	c := parse(t, baseConfig)
	names := func(d string) []string {
		dd, _ := config.LookupDaemon(d)
		var out []string
		for _, s := range socketsFor(c, dd) {
			out = append(out, s.Name)
		}
		return out
	}
	for d, want := range map[string][]string{
		"authd":   {"private/auth", "control/authd"},
		"qmgr":    {"private/qmgr", "control/qmgr", "public/qmgr"},
		"local":   {"private/local", "control/local"},
		"cleanup": {"private/cleanup", "public/cleanup"},
		"smtpd":   {"smtp", "submission"}, // submissions is not configured
	} {
		if got := names(d); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", d, got, want)
		}
	}
	dd, _ := config.LookupDaemon("authd")
	s := socketsFor(c, dd)
	if s[0].Network != "unix" || s[0].Addr != "/srv/inst/spool/private/auth" || s[1].Addr != "/srv/inst/spool/control/authd" {
		t.Errorf("authd sockets: %+v", s)
	}
	dd, _ = config.LookupDaemon("smtpd")
	if s := socketsFor(c, dd); s[0].Network != "tcp" || s[0].Addr != "127.0.0.1:2525" {
		t.Errorf("smtpd sockets: %+v", s)
	}
}

// accepts checks that f is a listening socket, by dialing it and accepting.
func accepts(t *testing.T, f *os.File, network, addr string) {
	t.Helper()
	l, err := net.FileListener(f)
	if err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("%s: read %q, %v", addr, line, err)
	}
}

func TestSocketSet(t *testing.T) {
	dir := t.TempDir()
	set := newSocketSet(ownersNone)
	defer set.closeAll()
	unixPath := filepath.Join(dir, "cleanup")
	// A stale socket from an earlier run is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: unixPath, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpAddr := tl.Addr().String()
	tl.Close()

	specs := []socketSpec{
		{"private/cleanup", "unix", unixPath},
		{"smtp", "tcp", tcpAddr},
	}
	files, err := set.acquire(specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("%d files", len(files))
	}
	fi, err := os.Stat(unixPath)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != modeSocket {
		t.Fatalf("socket file: %v %v", fi.Mode(), err)
	}
	// sendmail's socket in public/ is open to every local user.
	pubPath := unixPath + ".public"
	if _, err := set.acquire([]socketSpec{{"public/cleanup", "unix", pubPath}}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(pubPath); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("public socket file: %v %v", fi.Mode(), err)
	}
	set.release("public/cleanup")
	accepts(t, files[0], "unix", unixPath)
	accepts(t, files[1], "tcp", tcpAddr)

	// Acquiring again hands out the same descriptors: the sockets stay bound.
	again, err := set.acquire(specs)
	if err != nil || again[0] != files[0] || again[1] != files[1] {
		t.Fatalf("acquire again: %v, same=%v", err, err == nil && again[0] == files[0])
	}

	// A new address under the same name rebinds.
	tl, _ = net.Listen("tcp", "127.0.0.1:0")
	newAddr := tl.Addr().String()
	tl.Close()
	moved, err := set.acquire([]socketSpec{{"smtp", "tcp", newAddr}})
	if err != nil {
		t.Fatal(err)
	}
	accepts(t, moved[0], "tcp", newAddr)
	if _, err := net.DialTimeout("tcp", tcpAddr, time.Second); err == nil {
		t.Errorf("the old address %s still accepts", tcpAddr)
	}

	// Release closes the socket and removes its file.
	set.release("private/cleanup")
	if _, err := os.Lstat(unixPath); !os.IsNotExist(err) {
		t.Errorf("socket file after release: %v", err)
	}
	if got := set.names(); !slices.Equal(got, []string{"smtp"}) {
		t.Errorf("bound after release: %v", got)
	}

	// A file that is not a socket is never removed.
	regular := filepath.Join(dir, "qmgr")
	os.WriteFile(regular, []byte("mine"), 0o644)
	if _, err := set.acquire([]socketSpec{{"private/qmgr", "unix", regular}}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("binding over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(regular); string(b) != "mine" {
		t.Error("the regular file was touched")
	}

	// A port in use is an error naming the listener.
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	_, err = set.acquire([]socketSpec{{"submission", "tcp", busy.Addr().String()}})
	if err == nil || !strings.Contains(err.Error(), "submission=") {
		t.Errorf("binding a busy port: %v", err)
	}
}

func TestSocketOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	dir := t.TempDir()
	o := owners{Root: owner{0, 0}, Group: 65534, Admin: 0}
	set := newSocketSet(o)
	defer set.closeAll()
	priv, ctl := filepath.Join(dir, "auth"), filepath.Join(dir, "authd")
	if _, err := set.acquire([]socketSpec{{"private/auth", "unix", priv}, {"control/authd", "unix", ctl}}); err != nil {
		t.Fatal(err)
	}
	if uid, gid := fileOwner(t, priv); uid != 0 || gid != 65534 {
		t.Errorf("private socket owned by %d:%d, want 0:65534", uid, gid)
	}
	if uid, gid := fileOwner(t, ctl); uid != 0 || gid != 0 {
		t.Errorf("control socket owned by %d:%d, want 0:0", uid, gid)
	}
	// A new admin group applies to the bound control sockets.
	o.Admin = 65534
	if err := set.setOwners(o); err != nil {
		t.Fatal(err)
	}
	if _, gid := fileOwner(t, ctl); gid != 65534 {
		t.Errorf("control socket group %d after setOwners, want 65534", gid)
	}
}

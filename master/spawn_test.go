package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestChildEnv(t *testing.T) {
	environ := []string{"PATH=/usr/bin", "HOME=/root", "USER=root", "LISTEN_PID=1", "LISTEN_FDS=9",
		"LISTEN_FDNAMES=x", "NOTIFY_SOCKET=/run/systemd/notify", "TZ=UTC", parentPIDEnv + "=1"}
	// A real descriptor: an *os.File made with os.NewFile(0, ...) closes descriptor 0
	// when the garbage collector finalizes it, whatever 0 has become by then (a socket
	// of a later test, whose reads then hang until their deadline).
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := childEnv(environ, spawnRequest{
		Files: []*os.File{f, f},
		Names: []string{"private/auth", "control/authd"},
		ID:    &identity{User: "postern", Home: "/var/lib/postern"},
	})
	want := []string{"PATH=/usr/bin", "TZ=UTC", "LISTEN_FDS=2", "LISTEN_FDNAMES=private/auth:control/authd",
		"HOME=/var/lib/postern", "USER=postern", "LOGNAME=postern", parentPIDEnv + "=" + strconv.Itoa(os.Getpid())}
	if !slices.Equal(got, want) {
		t.Errorf("env\n%q\nwant\n%q", got, want)
	}
	// Without sockets and without a user change, only master's own variables go (and
	// the shim learns master's pid).
	got = childEnv(environ, spawnRequest{})
	want = []string{"PATH=/usr/bin", "HOME=/root", "USER=root", "TZ=UTC", parentPIDEnv + "=" + strconv.Itoa(os.Getpid())}
	if !slices.Equal(got, want) {
		t.Errorf("env\n%q\nwant\n%q", got, want)
	}
}

// TestSpawnAsOtherUser starts the fake daemon the way master does as root: as another
// user (nobody), with that user's groups, a socket as descriptor 3 and LISTEN_PID equal
// to the daemon's pid through the exec shim.
func TestSpawnAsOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing users needs root")
	}
	bin := binaries(t)
	id, err := lookupIdentity("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	dir, err := os.MkdirTemp("", "postern-spawn-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	os.Chown(dir, id.UID, id.GID)
	set := newSocketSet(owners{Root: owner{0, 0}, Group: id.GID, Admin: 0})
	defer set.closeAll()
	files, err := set.acquire([]socketSpec{{"private/local", "unix", filepath.Join(dir, "local")}})
	if err != nil {
		t.Fatal(err)
	}
	sp := newSpawner(filepath.Join(bin, "master"))
	p, err := sp.spawn(spawnRequest{
		Program: filepath.Join(bin, "fakedaemon"),
		Args:    []string{"-c", "/dev/null", "-name", "local", "-report", dir},
		ID:      &id,
		Files:   files,
		Names:   []string{"private/local"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Signal(syscall.SIGTERM)
		p.Wait()
	}()
	var r report
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "local.json"))
		if err == nil && json.Unmarshal(b, &r) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not report")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.PID != p.Pid || r.ListenPID != strconv.Itoa(p.Pid) || r.PPID != os.Getpid() {
		t.Errorf("pid %d (started %d), LISTEN_PID %q, parent %d", r.PID, p.Pid, r.ListenPID, r.PPID)
	}
	if r.UID != id.UID || r.GID != id.GID || r.User != "nobody" {
		t.Errorf("runs as uid %d gid %d USER %q, want %d %d nobody", r.UID, r.GID, r.User, id.UID, id.GID)
	}
	for _, g := range r.Groups {
		if g == 0 {
			t.Errorf("kept root's group: %v", r.Groups)
		}
	}
	if !slices.Equal(r.Listeners, []string{"private/local"}) {
		t.Errorf("listeners %v", r.Listeners)
	}
	if got, err := greeting("unix", filepath.Join(dir, "local")); got != fmt.Sprintf("local private/local %d", p.Pid) {
		t.Errorf("socket answers %q, %v", got, err)
	}
}

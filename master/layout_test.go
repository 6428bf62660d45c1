package main

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"postern/pkg/config"
)

func fileOwner(t *testing.T, path string) (int, int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

func testConfig(t *testing.T, dir, extra string) *config.Config {
	t.Helper()
	path := filepath.Join(dir, "postern.toml")
	text := "hostname = \"mx.test\"\nspool_dir = \"spool\"\ndata_dir = \"data\"\n" + extra
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLayoutWithoutRoot(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	// A directory made by hand with the wrong mode is repaired.
	os.MkdirAll(filepath.Join(cfg.SpoolDir, "private"), 0o777)
	if err := makeLayout(cfg, ownersNone); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		"spool": 0o755, "spool/incoming": 0o700, "spool/active": 0o700, "spool/deferred": 0o700,
		"spool/hold": 0o700, "spool/corrupt": 0o700, "spool/private": 0o750, "spool/control": 0o750,
		"spool/public": 0o755, "data": 0o755, "data/mail": 0o700, "data/local": 0o700,
	}
	for rel, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if !fi.IsDir() || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode(), mode)
		}
	}
	// An instance without SRS secrets (made before SRS existed) gets them.
	key, err := os.ReadFile(cfg.SRSKeyFile())
	if fi, serr := os.Stat(cfg.SRSKeyFile()); err != nil || serr != nil || fi.Mode().Perm() != 0o640 || len(key) != 45 {
		t.Errorf("SRS secrets %q: %v %v", key, err, serr)
	}
	// Running again changes nothing and fails on nothing.
	if err := makeLayout(cfg, ownersNone); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(cfg.SRSKeyFile()); string(again) != string(key) {
		t.Error("a second start replaced the SRS secrets")
	}
	// A file where a directory belongs is an error, not a surprise.
	os.RemoveAll(cfg.MailDir())
	os.WriteFile(cfg.MailDir(), nil, 0o644)
	if err := makeLayout(cfg, ownersNone); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file at data/mail: %v", err)
	}
}

func TestLayoutOwnersAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	os.MkdirAll(cfg.DataDir, 0o755)
	os.WriteFile(cfg.UsersDB(), nil, 0o644)
	const n = 65534 // nobody
	o := owners{Root: owner{0, 0}, Queue: owner{n, n}, Group: n, Admin: 0, Mail: owner{n, n}, Users: owner{n, n}}
	if err := makeLayout(cfg, o); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string][2]int{
		"spool": {0, 0}, "spool/incoming": {n, n}, "spool/corrupt": {n, n}, "spool/private": {0, n},
		"spool/control": {0, 0}, "data": {0, 0}, "data/mail": {n, n}, "data/users.db": {n, n},
	} {
		if uid, gid := fileOwner(t, filepath.Join(dir, rel)); uid != want[0] || gid != want[1] {
			t.Errorf("%s owned by %d:%d, want %d:%d", rel, uid, gid, want[0], want[1])
		}
	}
	if fi, _ := os.Stat(cfg.UsersDB()); fi.Mode().Perm() != 0o600 {
		t.Errorf("users.db mode %v", fi.Mode())
	}
}

func TestResolveIdentities(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "[services.authd]\nuser = \"root\"\n[services.qmgr]\nuser = \"root\"\n"+
		"[services.cleanup]\nuser = \"root\"\n[services.smtpd]\nuser = \"no-such-user-postern-test\"\nlisten = { smtp = \"127.0.0.1:2525\" }\n[services.local]\nenable = false\n")
	// Without root everything runs as the current user, whatever the file says.
	ids, err := resolveIdentities(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if ids["smtpd"].UID != os.Getuid() || len(ids) != len(config.Daemons)-1 {
		t.Errorf("identities without root: %+v", ids)
	}
	if _, ok := ids["local"]; ok {
		t.Error("a disabled daemon got an identity")
	}
	// As root a missing user is an error that names the key and the cure.
	_, err = resolveIdentities(cfg, true)
	if err == nil || !strings.Contains(err.Error(), "services.smtpd.user") || !strings.Contains(err.Error(), "mailctl init") {
		t.Errorf("missing user: %v", err)
	}
	// Existing users resolve with their groups.
	cfg = testConfig(t, dir, "[services.authd]\nuser = \"root\"\n[services.local]\nuser = \"root\"\n[services.qmgr]\nuser = \"root\"\n[services.cleanup]\nuser = \"root\"\n[services.smtpd]\nuser = \"root\"\nlisten = { smtp = \"127.0.0.1:2525\" }\n")
	ids, err = resolveIdentities(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	if id := ids["smtpd"]; id.UID != 0 || id.GID != 0 || id.User != "root" {
		t.Errorf("root: %+v", id)
	}
}

func TestResolveOwners(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	o, _, err := resolveOwners(cfg, false, nil)
	if err != nil || o != ownersNone {
		t.Errorf("without root: %+v %v", o, err)
	}
	if _, err := user.LookupGroup(sharedGroup); err == nil {
		t.Skipf("group %s exists here", sharedGroup)
	}
	if _, _, err := resolveOwners(cfg, true, nil); err == nil || !strings.Contains(err.Error(), `group "postern"`) || !strings.Contains(err.Error(), "mailctl init") {
		t.Errorf("missing group: %v", err)
	}
}

func TestLockSpool(t *testing.T) {
	dir := t.TempDir()
	f, err := lockSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := writePID(dir); err != nil {
		t.Fatal(err)
	}
	_, err = lockSpool(dir)
	if err == nil || !strings.Contains(err.Error(), "another master (pid "+strconv.Itoa(os.Getpid())+")") {
		t.Errorf("second lock: %v", err)
	}
	f.Close()
	f, err = lockSpool(dir)
	if err != nil {
		t.Errorf("lock after the first was released: %v", err)
	} else {
		f.Close()
	}
}

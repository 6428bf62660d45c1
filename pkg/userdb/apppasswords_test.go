package userdb

import (
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"postern/pkg/audit"

	bolt "go.etcd.io/bbolt"
)

func TestAdminFlag(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "secret", 0))
	must(db.AddUser("bob@example.org", "secret", 0))
	if u := must(db.User("alice@example.org")); u.Admin {
		t.Fatal("a new account is an admin")
	}
	if err := db.SetAdmin("ALICE@example.org", true); err != nil {
		t.Fatal(err)
	}
	if u := must(db.User("alice@example.org")); !u.Admin {
		t.Fatal("SetAdmin(true) did not stick")
	}
	for _, u := range must(db.Users("")) {
		if u.Admin != (u.Address == "alice@example.org") {
			t.Errorf("Users: %s admin = %v", u.Address, u.Admin)
		}
	}
	// The password survives the flag, and the flag a password change.
	if ok, _, _ := db.VerifyPassword("alice@example.org", "secret"); !ok {
		t.Error("the password no longer works after SetAdmin")
	}
	if err := db.SetPassword("alice@example.org", "other"); err != nil {
		t.Fatal(err)
	}
	if u := must(db.User("alice@example.org")); !u.Admin {
		t.Error("a password change dropped the admin flag")
	}
	if err := db.SetAdmin("alice@example.org", false); err != nil {
		t.Fatal(err)
	}
	if u := must(db.User("alice@example.org")); u.Admin {
		t.Error("SetAdmin(false) did not stick")
	}
	if err := db.SetAdmin("nobody@example.org", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetAdmin of a missing account: %v", err)
	}
}

func TestAppPasswords(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "secret", 0))
	must(db.AddUser("bob@example.org", "secret", 0))

	pw, ap, err := db.AddAppPassword("Alice@example.org", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}$`).MatchString(pw) {
		t.Fatalf("app password %q has not the documented shape", pw)
	}
	if ap.Name != "phone" || ap.Created.IsZero() {
		t.Errorf("AddAppPassword = %+v", ap)
	}
	pw2, _, err := db.AddAppPassword("alice@example.org", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if pw2 == pw {
		t.Fatal("two app passwords are the same")
	}
	if _, _, err := db.AddAppPassword("alice@example.org", "phone"); !errors.Is(err, ErrExists) {
		t.Errorf("a second app password named phone: %v", err)
	}
	for _, bad := range []string{"", "  ", "a\nb", strings.Repeat("x", MaxAppPasswordName+1)} {
		if _, _, err := db.AddAppPassword("alice@example.org", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	if _, _, err := db.AddAppPassword("nobody@example.org", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("app password of a missing account: %v", err)
	}

	// The clear text is stored nowhere: only its hash.
	err = db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAppPasswords).Bucket([]byte("alice@example.org")).Get([]byte("phone"))
		letters, _ := normalizeAppPassword(pw)
		if v == nil || strings.Contains(string(v), letters) || strings.Contains(string(v), pw) || !strings.Contains(string(v), "$argon2id$") {
			t.Errorf("stored app password record %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		user, pw string
		ok       bool
		app      string
	}{
		{"alice@example.org", "secret", true, ""},
		{"alice@example.org", pw, true, "phone"},
		{"ALICE@example.org", strings.ToUpper(pw), true, "phone"},
		{"alice@example.org", strings.ReplaceAll(pw, "-", ""), true, "phone"},
		{"alice@example.org", strings.ReplaceAll(pw, "-", " "), true, "phone"},
		{"alice@example.org", pw2, true, "laptop"},
		{"bob@example.org", pw, false, ""}, // another account's
		{"alice@example.org", pw[:len(pw)-1] + "x", pw[len(pw)-1] == 'x', "phone"},
		{"alice@example.org", "wrong", false, ""},
		{"nobody@example.org", pw, false, ""},
	}
	for _, c := range cases {
		v, err := db.Authenticate(c.user, c.pw)
		if err != nil {
			t.Fatal(err)
		}
		if v.OK != c.ok || (c.ok && (v.AppPassword != c.app || v.Address != strings.ToLower(c.user))) {
			t.Errorf("Authenticate(%s, %q) = %+v; want ok %v app %q", c.user, c.pw, v, c.ok, c.app)
		}
	}
	// VerifyPassword checks the account's own password only.
	if ok, _, _ := db.VerifyPassword("alice@example.org", pw); ok {
		t.Error("VerifyPassword accepted an app password")
	}

	list := must(db.AppPasswords("alice@example.org"))
	if len(list) != 2 || list[0].Name != "laptop" || list[1].Name != "phone" || list[1].LastUsed.IsZero() {
		t.Errorf("AppPasswords = %+v", list)
	}

	if err := db.RevokeAppPassword("alice@example.org", "phone"); err != nil {
		t.Fatal(err)
	}
	if v := must(db.Authenticate("alice@example.org", pw)); v.OK {
		t.Error("a revoked app password still logs in")
	}
	if v := must(db.Authenticate("alice@example.org", pw2)); !v.OK {
		t.Error("revoking one app password revoked another")
	}
	if err := db.RevokeAppPassword("alice@example.org", "phone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking twice: %v", err)
	}

	// Deleting the account, and recreating it, leaves none of its app passwords.
	if err := db.DelUser("alice@example.org"); err != nil {
		t.Fatal(err)
	}
	must(db.AddUser("alice@example.org", "secret", 0))
	if l := must(db.AppPasswords("alice@example.org")); len(l) != 0 {
		t.Errorf("a recreated account inherits app passwords %+v", l)
	}
	if v := must(db.Authenticate("alice@example.org", pw2)); v.OK {
		t.Error("an app password of a deleted account logs in to its successor")
	}
}

func TestAppPasswordLimit(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "secret", 0))
	for i := range MaxAppPasswords {
		if _, _, err := db.AddAppPassword("alice@example.org", "device "+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := db.AddAppPassword("alice@example.org", "one more"); !errors.Is(err, ErrInvalid) {
		t.Errorf("app password %d: %v", MaxAppPasswords+1, err)
	}
	// Deleting the domain forgets them.
	if err := db.DelDomain("example.org", true); err != nil {
		t.Fatal(err)
	}
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "secret", 0))
	if l := must(db.AppPasswords("alice@example.org")); len(l) != 0 {
		t.Errorf("app passwords outlived their domain: %d", len(l))
	}
}

func TestAuditLogInUsersDB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	db := must(OpenWith(path, Options{Hash: cheap}))
	must(db.AppendAudit(audit.Entry{Daemon: "authd", UID: 0, User: "root", Op: "domain.add", Target: "example.org"}))
	e := must(db.AppendAudit(audit.Entry{Daemon: "authd", UID: 0, Web: "a@example.org", IP: "192.0.2.1", Op: "user.add", Target: "b@example.org"}))
	if e.Seq != 2 || e.Time.IsZero() {
		t.Errorf("second entry %+v", e)
	}
	db.Close()
	// Kept across a reopen, in order.
	db = must(OpenWith(path, Options{Hash: cheap}))
	defer db.Close()
	es := must(db.Audit(0))
	if len(es) != 2 || es[0].Op != "domain.add" || es[1].IP != "192.0.2.1" || es[1].Web != "a@example.org" {
		t.Errorf("Audit = %+v", es)
	}
}

func TestDisabled(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "secret", 0))
	pw, _, err := db.AddAppPassword("alice@example.org", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetDisabled("Alice@example.org", true); err != nil {
		t.Fatal(err)
	}
	if u := must(db.User("alice@example.org")); !u.Disabled {
		t.Fatal("SetDisabled did not stick")
	}
	if l := must(db.Users("")); len(l) != 1 || !l[0].Disabled {
		t.Errorf("Users = %+v", l)
	}
	for _, p := range []string{"secret", pw} {
		if v := must(db.Authenticate("alice@example.org", p)); v.OK {
			t.Errorf("a disabled account logs in with %q", p)
		}
	}
	// Mail still goes to it.
	if r := must(db.Resolve("alice@example.org")); !r.Found || len(r.Targets) != 1 {
		t.Errorf("Resolve of a disabled account = %+v", r)
	}
	if err := db.SetDisabled("alice@example.org", false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"secret", pw} {
		if v := must(db.Authenticate("alice@example.org", p)); !v.OK {
			t.Errorf("an enabled account does not log in with %q", p)
		}
	}
	if err := db.SetDisabled("nobody@example.org", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetDisabled of a missing account: %v", err)
	}
}

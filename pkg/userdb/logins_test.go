package userdb

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestRememberedLogins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := OpenWith(path, Options{Hash: cheap})
	if err != nil {
		t.Fatal(err)
	}
	must(db.AddDomain("example.org"))
	must(db.AddDomain("other.example"))
	must(db.AddUser("alice@example.org", "pw", 0))
	must(db.AddUser("bob@example.org", "pw", 0))
	must(db.AddUser("carol@other.example", "pw", 0))
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, l := range []Login{
		{"alice@example.org", "192.0.2.1", t0},
		{"alice@example.org", "2001:db8::/64", t0.Add(time.Hour)},
		{"alice@example.org", "192.0.2.1", t0.Add(2 * time.Hour)}, // the same site again
		{"bob@example.org", "198.51.100.1", t0.Add(-40 * 24 * time.Hour)},
		{"carol@other.example", "203.0.113.5", t0.Add(3 * time.Hour)},
	} {
		if err := db.RememberLogin(l.Account, l.Site, l.At); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RememberLogin("alice@example.org", "", t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("an empty site: %v", err)
	}
	// They survive a restart.
	db.Close()
	if db, err = OpenWith(path, Options{Hash: cheap}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Logins(t0.Add(-30 * 24 * time.Hour))
	want := []Login{
		{"carol@other.example", "203.0.113.5", t0.Add(3 * time.Hour)},
		{"alice@example.org", "192.0.2.1", t0.Add(2 * time.Hour)},
		{"alice@example.org", "2001:db8::/64", t0.Add(time.Hour)},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Logins = %v, %v; want %v", got, err, want)
	}
	// Forgetting the old ones deletes them (and bob's empty bucket).
	if n, err := db.ForgetLogins(t0.Add(-30 * 24 * time.Hour)); n != 1 || err != nil {
		t.Errorf("ForgetLogins = %d, %v; want 1", n, err)
	}
	if got, _ := db.Logins(time.Time{}); len(got) != 3 {
		t.Errorf("after ForgetLogins: %v", got)
	}
	// Deleting an account, or a domain with --force, forgets their logins.
	if err := db.DelUser("Alice@example.org"); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Logins(time.Time{}); len(got) != 1 || got[0].Account != "carol@other.example" {
		t.Errorf("after deleting alice: %v", got)
	}
	if err := db.DelDomain("other.example", true); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Logins(time.Time{}); len(got) != 0 {
		t.Errorf("after deleting other.example: %v", got)
	}
}

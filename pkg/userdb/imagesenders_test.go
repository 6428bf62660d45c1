package userdb

import (
	"errors"
	"slices"
	"testing"
)

func TestImageSenders(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "secret", 0))
	must(db.AddUser("bob@example.org", "secret", 0))
	for _, s := range []string{"News@Shop.Example", "friend@other.test", "news@shop.example"} {
		if err := db.AddImageSender("ALICE@example.org", s); err != nil {
			t.Fatal(err)
		}
	}
	if got := must(db.ImageSenders("alice@example.org")); !slices.Equal(got, []string{"friend@other.test", "news@shop.example"}) {
		t.Errorf("alice's senders: %q", got)
	}
	if got := must(db.ImageSenders("bob@example.org")); len(got) != 0 {
		t.Errorf("bob has alice's senders: %q", got)
	}
	for _, bad := range []string{"", "no-at-sign", "a@b@c", "x@-bad-.example"} {
		if err := db.AddImageSender("alice@example.org", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("sender %q: %v, want ErrInvalid", bad, err)
		}
	}
	if err := db.AddImageSender("nobody@example.org", "x@other.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing account: %v", err)
	}
	if err := db.DelImageSender("alice@example.org", "NEWS@shop.example"); err != nil {
		t.Fatal(err)
	}
	if got := must(db.ImageSenders("alice@example.org")); !slices.Equal(got, []string{"friend@other.test"}) {
		t.Errorf("after removing one: %q", got)
	}
	// Deleting the account, then its domain, forgets its senders.
	if err := db.AddImageSender("bob@example.org", "x@other.test"); err != nil {
		t.Fatal(err)
	}
	if err := db.DelUser("alice@example.org"); err != nil {
		t.Fatal(err)
	}
	must(db.AddUser("alice@example.org", "secret", 0))
	if got := must(db.ImageSenders("alice@example.org")); len(got) != 0 {
		t.Errorf("a new account of the same address inherits %q", got)
	}
	if err := db.DelDomain("example.org", true); err != nil {
		t.Fatal(err)
	}
	must(db.AddDomain("example.org"))
	must(db.AddUser("bob@example.org", "secret", 0))
	if got := must(db.ImageSenders("bob@example.org")); len(got) != 0 {
		t.Errorf("after the domain was deleted, bob still has %q", got)
	}
}

package userdb

import (
	"errors"
	"reflect"
	"testing"
)

func TestSendAs(t *testing.T) {
	db := openTest(t)
	must(db.AddDomain("example.org"))
	must(db.AddDomain("b.example"))
	must(db.AddUser("alice@example.org", "pw", 0))
	must(db.AddUser("bob@example.org", "pw", 0))
	must(db.AddAlias("sales@example.org", []string{"alice@example.org", "bob@example.org"}))
	must(db.AddAlias("team@b.example", []string{"sales@example.org"}))       // through another alias
	must(db.AddAlias("al@b.example", []string{"alice+tag@example.org"}))     // a plus-address of alice
	must(db.AddAlias("out@example.org", []string{"someone@elsewhere.test"})) // not alice's
	must(db.AddAlias("@b.example", []string{"alice@example.org"}))           // catch-all: not included
	got, err := db.SendAs("Alice@Example.org")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alice@example.org", "al@b.example", "team@b.example", "sales@example.org"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SendAs(alice) = %v, want %v", got, want)
	}
	got = must(db.SendAs("bob@example.org"))
	if want := []string{"bob@example.org", "team@b.example", "sales@example.org"}; !reflect.DeepEqual(got, want) {
		t.Errorf("SendAs(bob) = %v, want %v", got, want)
	}
	if _, err := db.SendAs("nobody@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SendAs(nobody): err = %v", err)
	}
	if _, err := db.SendAs("sales@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SendAs(alias): err = %v", err)
	}
}

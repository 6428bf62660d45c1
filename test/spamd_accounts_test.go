package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestSpamdForgetsDeletedAccount: when authd deletes an account, spamd drops its own
// block and allow lists and its classifier corpus before mailctl user del returns; the
// other account's stay.
func TestSpamdForgetsDeletedAccount(t *testing.T) {
	in := NewInstance(t, "")
	const carol = "carol@example.test"
	in.addUser(t, carol)
	const n = 5
	spamMbox, _ := trainingSets(t, n)
	for _, u := range []string{carol, "demo@example.test"} {
		in.Mailctl("", "spam", "block", "--user", u, "pest@nowhere.test")
		in.Mailctl("", "spam", "allow", "--user", u, "friend.test")
		if out := in.Mailctl("", "spam", "train", "--spam", "--user", u, spamMbox); out != fmt.Sprintf("%d messages learned as spam, 0 known already\n", n) {
			t.Fatalf("spam train --user %s: %q", u, out)
		}
	}
	corpora := func() []string {
		return regexp.MustCompile(`(?m)^\S+@\S+`).FindAllString(in.Mailctl("", "spam", "status"), -1)
	}
	if got := corpora(); len(got) != 2 {
		t.Fatalf("corpora before the deletion: %q", got)
	}
	if out := in.Mailctl("", "spam", "lists", "--user", carol); strings.Count(out, carol) != 2 {
		t.Fatalf("carol's lists before the deletion:\n%s", out)
	}

	in.Mailctl("", "user", "del", carol)
	if out := in.Mailctl("", "spam", "lists", "--user", carol); strings.TrimSpace(out) != "LIST  USER  KIND  ENTRY  ADDED" {
		t.Errorf("the deleted account's lists:\n%s", out)
	}
	if got := corpora(); len(got) != 1 || got[0] != "demo@example.test" {
		t.Errorf("corpora after the deletion: %q, want demo's alone", got)
	}
	if out := in.Mailctl("", "spam", "lists", "--user", "demo@example.test"); strings.Count(out, "demo@example.test") != 2 {
		t.Errorf("demo's lists after carol's deletion:\n%s", out)
	}
}

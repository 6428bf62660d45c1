package main

import (
	"strings"
	"testing"
	"time"

	"postern/pkg/control"
	"postern/pkg/ipc"
)

// TestSpamLists checks that spam block, allow, unblock and lists send spamd the ops of
// its lists, with --user and --subdomains, and print what spamd answers.
func TestSpamLists(t *testing.T) {
	fi := newFakeInstance(t, "spamd")
	fi.reply(control.SpamListAdd, control.SpamListsResult{Entries: []control.SpamListEntry{{Action: "block", Kind: "domain", Value: "spam.test", Subdomains: true}}})
	code, out, errOut := fi.run("", "spam", "block", "--subdomains", "Spam.Test")
	if c := fi.last(); code != 0 || c.op != control.SpamListAdd || c.body != `{"action":"block","entries":["Spam.Test"],"subdomains":true}` || out != "blocked domain spam.test\n" {
		t.Errorf("spam block: exit %d %q %q, sent %s %s", code, out, errOut, c.op, c.body)
	}
	fi.reply(control.SpamListAdd, control.SpamListsResult{Entries: []control.SpamListEntry{{User: "bob@example.test", Action: "allow", Kind: "address", Value: "a@b.test"}}})
	code, out, _ = fi.run("", "spam", "allow", "--user", "Bob@Example.test", "a@b.test")
	if c := fi.last(); code != 0 || c.body != `{"user":"bob@example.test","action":"allow","entries":["a@b.test"]}` || out != "allowed address a@b.test (bob@example.test)\n" {
		t.Errorf("spam allow --user: exit %d %q, sent %s", code, out, c.body)
	}
	if code, _, errOut := fi.run("", "spam", "allow", "--user", "nobody", "a@b.test"); code != exitUsage || !strings.Contains(errOut, "not a mail address") {
		t.Errorf("spam allow --user nobody: exit %d %s", code, errOut)
	}
	fi.reply(control.SpamListRemove, control.SpamListsResult{Entries: []control.SpamListEntry{{Action: "block", Kind: "ip", Value: "192.0.2.0/24"}}, NotListed: []string{"x.test"}})
	code, out, errOut = fi.run("", "spam", "unblock", "192.0.2.0/24", "x.test")
	if c := fi.last(); code != 1 || c.body != `{"entries":["192.0.2.0/24","x.test"]}` || out != "removed ip 192.0.2.0/24 from the block list\n" || !strings.Contains(errOut, "not on any list: x.test") {
		t.Errorf("spam unblock: exit %d %q %q, sent %s", code, out, errOut, c.body)
	}
	added := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	fi.reply(control.SpamLists, control.SpamListsResult{Entries: []control.SpamListEntry{
		{Action: "block", Kind: "ip", Value: "192.0.2.0/24", Added: added},
		{User: "bob@example.test", Action: "allow", Kind: "domain", Value: "b.test", Subdomains: true, Added: added},
	}})
	code, out, _ = fi.run("", "spam", "lists")
	if c := fi.last(); code != 0 || c.body != `{"all":true}` || !strings.Contains(out, "block  -                 ip      192.0.2.0/24             2026-12-07 10:30") ||
		!strings.Contains(out, "allow  bob@example.test  domain  b.test (and subdomains)") {
		t.Errorf("spam lists: exit %d, sent %s:\n%s", code, c.body, out)
	}
	fi.run("", "spam", "lists", "--user", "bob@example.test")
	if c := fi.last(); c.body != `{"user":"bob@example.test"}` {
		t.Errorf("spam lists --user sent %s", c.body)
	}
	fi.reply(control.SpamListAdd, ipc.Errorf("invalid", "192.0.2.1: a user's list holds addresses and domains, not IP addresses"))
	if code, _, errOut := fi.run("", "spam", "block", "--user", "bob@example.test", "192.0.2.1"); code == 0 || !strings.Contains(errOut, "not IP addresses") {
		t.Errorf("spamd's refusal: exit %d %s", code, errOut)
	}
}

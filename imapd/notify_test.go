package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestNotify covers NOTIFY (RFC 5465): the initial STATUS responses of NOTIFY SET
// STATUS, by event, STATUS responses for another mailbox's changes at the next command
// and during IDLE, the selected mailbox left to the usual responses, BADEVENT, NONE.
func TestNotify(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	if u := c.ok("CAPABILITY"); !hasLine(u, ` NOTIFY\b`) {
		t.Errorf("CAPABILITY: %q", u)
	}
	c.ok("CREATE Box2")
	c.appendMsg("Box2", "", msg("one", "x\r\n"))
	for _, tt := range []struct{ events, want string }{
		// The imaptest group "notify" checks these.
		{"MessageExpunge", `^\* STATUS Box2 \(MESSAGES 1\)$`},
		{"MessageNew", `^\* STATUS Box2 \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+\)$`},
		{"FlagChange", `^\* STATUS Box2 \(UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)$`},
	} {
		if u := c.ok("NOTIFY SET STATUS (MAILBOXES Box2 (" + tt.events + "))"); len(u) != 1 || !regexp.MustCompile(tt.want).MatchString(u[0]) {
			t.Errorf("NOTIFY SET STATUS (MAILBOXES Box2 (%s)): %q, want %s", tt.events, u, tt.want)
		}
	}
	if u := c.ok("NOTIFY SET (MAILBOXES Box2 (MessageNew MessageExpunge FlagChange))"); len(u) != 0 {
		t.Errorf("NOTIFY SET without STATUS: %q", u)
	}
	if st := c.no("NOTIFY SET (PERSONAL (MailboxName))"); !strings.HasPrefix(st, "NO [BADEVENT (MessageNew MessageExpunge FlagChange)]") {
		t.Errorf("unsupported event: %s", st)
	}
	c.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (PERSONAL (MessageNew MessageExpunge FlagChange))")
	c.ok("SELECT INBOX")

	// Another session delivers to Box2: a STATUS at the next command.
	o := e.login("a")
	o.appendMsg("Box2", "", msg("two", "y\r\n"))
	if u := c.ok("NOOP"); !hasLine(u, `^\* STATUS Box2 \(MESSAGES 2 UIDNEXT 3 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)$`) {
		t.Errorf("NOOP after another session's APPEND to Box2: %q", u)
	}
	if u := c.ok("NOOP"); len(u) != 0 {
		t.Errorf("second NOOP: %q", u)
	}
	// During IDLE, at once; the selected mailbox gets EXISTS, no STATUS.
	c.send("i IDLE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	o.ok("SELECT Box2")
	o.ok(`STORE 1 +FLAGS (\Flagged)`)
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l := c.line(); !regexp.MustCompile(`^\* STATUS Box2 \(MESSAGES 2 UIDNEXT 3 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)$`).MatchString(l) {
		t.Errorf("in IDLE after a flag change in Box2: %q", l)
	}
	o.appendMsg("INBOX", "", msg("three", "z\r\n"))
	if l := c.line(); l != "* 1 EXISTS" {
		t.Errorf("in IDLE after an APPEND to INBOX: %q", l)
	}
	c.send("DONE\r\n")
	for l := c.line(); !strings.HasPrefix(l, "i "); l = c.line() {
		if strings.Contains(l, "STATUS INBOX") {
			t.Errorf("STATUS for the selected mailbox: %q", l)
		}
	}
	// NONE: no more.
	c.ok("NOTIFY NONE")
	o.appendMsg("Box2", "", msg("four", "w\r\n"))
	if u := c.ok("NOOP"); hasLine(u, `STATUS`) {
		t.Errorf("after NOTIFY NONE: %q", u)
	}
}

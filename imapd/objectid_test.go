package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestObjectID covers OBJECTID (RFC 8474): MAILBOXID on CREATE, SELECT and STATUS,
// kept by RENAME and new after DELETE and CREATE; EMAILID kept by MOVE; THREADID NIL;
// SEARCH EMAILID.
func TestObjectID(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	if u := c.ok("CAPABILITY"); !hasLine(u, ` OBJECTID\b`) {
		t.Errorf("CAPABILITY: %q", u)
	}
	idRe := regexp.MustCompile(`MAILBOXID \(([A-Za-z0-9_-]+)\)`)
	_, st := c.cmd("CREATE Projects")
	m := idRe.FindStringSubmatch(st)
	if m == nil {
		t.Fatalf("CREATE: %s, want [MAILBOXID (...)]", st)
	}
	created := m[1]
	u := c.ok("STATUS Projects (MAILBOXID MESSAGES)")
	if len(u) != 1 || !strings.Contains(u[0], "MAILBOXID ("+created+")") {
		t.Errorf("STATUS MAILBOXID: %q, want %s", u, created)
	}
	c.ok("RENAME Projects Work")
	if u := c.ok("SELECT Work"); !hasLine(u, `^\* OK \[MAILBOXID \(`+created+`\)\]`) {
		t.Errorf("SELECT after RENAME: %q, want MAILBOXID %s", u, created)
	}
	c.ok("UNSELECT")
	c.ok("DELETE Work")
	_, st = c.cmd("CREATE Work")
	if m := idRe.FindStringSubmatch(st); m == nil || m[1] == created {
		t.Errorf("CREATE after DELETE: %s, want a new MAILBOXID", st)
	}

	c.appendMsg("INBOX", "", msg("objectid", "x\r\n"))
	// A second message, so that SEARCH EMAILID must tell them apart.
	c.appendMsg("INBOX", "", msg("other", "y\r\n"))
	c.ok("SELECT INBOX")
	u = c.ok("FETCH 1 (EMAILID THREADID)")
	em := regexp.MustCompile(`EMAILID \(([A-Za-z0-9_-]{1,255})\)`).FindStringSubmatch(strings.Join(u, "\n"))
	if em == nil || !hasLine(u, `THREADID NIL`) {
		t.Fatalf("FETCH EMAILID THREADID: %q", u)
	}
	if u := c.ok("SEARCH EMAILID " + em[1]); !hasLine(u, `^\* SEARCH 1$`) {
		t.Errorf("SEARCH EMAILID: %q", u)
	}
	if u := c.ok("SEARCH THREADID T1"); !hasLine(u, `^\* SEARCH$`) {
		t.Errorf("SEARCH THREADID: %q", u)
	}
	c.ok("MOVE 1 Work")
	c.ok("SELECT Work")
	if u := c.ok("FETCH 1 (EMAILID)"); !hasLine(u, `EMAILID \(`+em[1]+`\)`) {
		t.Errorf("EMAILID after MOVE: %q, want %s", u, em[1])
	}
}

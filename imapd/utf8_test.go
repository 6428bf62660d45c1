package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestUTF8Accept covers UTF8=ACCEPT (RFC 6855): mailbox names in UTF-8 both ways once
// enabled (§3), modified UTF-7 for the others, and APPEND's UTF8 (~{n}) form (§4).
func TestUTF8Accept(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	if u := c.ok("CAPABILITY"); !hasLine(u, ` UTF8=ACCEPT\b`) {
		t.Errorf("CAPABILITY: %q", u)
	}
	if u := c.ok("ENABLE UTF8=ACCEPT"); !hasLine(u, `^\* ENABLED UTF8=ACCEPT$`) {
		t.Errorf("ENABLE UTF8=ACCEPT: %q", u)
	}
	c.ok(`CREATE "Entwürfe"`)
	if u := c.ok(`LIST "" "Entw*"`); len(u) != 1 || !strings.HasSuffix(u[0], `"Entwürfe"`) {
		t.Errorf("LIST after UTF8=ACCEPT: %q", u)
	}
	m := "Subject: Grüße\r\nFrom: Jürgen <j@example.test>\r\n\r\nHallo\r\n"
	c.ok(fmt.Sprintf("APPEND \"Entwürfe\" UTF8 (~{%d+}\r\n%s)", len(m), m))
	c.ok(`SELECT "Entwürfe"`)
	if u := c.ok("FETCH 1 (ENVELOPE RFC822.SIZE)"); len(u) != 1 || !strings.Contains(u[0], "Grüße") || !strings.Contains(u[0], fmt.Sprintf("RFC822.SIZE %d", len(m))) {
		t.Errorf("FETCH of the UTF8 APPEND: %q", u)
	}
	// A session that did not enable it reads modified UTF-7.
	o := e.login("a")
	if u := o.ok(`LIST "" "Entw*"`); len(u) != 1 || !strings.HasSuffix(u[0], `Entw&APw-rfe`) {
		t.Errorf("LIST without UTF8=ACCEPT: %q", u)
	}
}

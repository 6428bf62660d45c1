package main

import (
	"strings"
	"testing"
)

// TestCreateSpecialUse covers CREATE-SPECIAL-USE (RFC 6154 §3).
func TestCreateSpecialUse(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	if u := c.ok("CAPABILITY"); !hasLine(u, ` CREATE-SPECIAL-USE\b`) {
		t.Errorf("CAPABILITY: %q", u)
	}
	c.ok(`CREATE "Old mail" (USE (\archive))`)
	if u := c.ok(`LIST "" "Old mail"`); len(u) != 1 || !strings.Contains(u[0], `\Archive`) {
		t.Errorf("LIST of a folder created with USE (\\Archive): %q", u)
	}
	c.ok(`CREATE Bin (USE (\Trash \Junk))`)
	if u := c.ok(`LIST (SPECIAL-USE) "" "*"`); !hasLine(u, `\(.*\\Trash \\Junk.*\) "/" Bin$`) || !hasLine(u, `"Old mail"$`) || !hasLine(u, `\\Sent\) "/" Sent$`) {
		t.Errorf("LIST (SPECIAL-USE): %q", u)
	}
	// The attributes move with RENAME.
	c.ok(`RENAME "Old mail" Attic`)
	if u := c.ok(`LIST "" "Attic"`); len(u) != 1 || !strings.Contains(u[0], `\Archive`) {
		t.Errorf("LIST after RENAME: %q", u)
	}
	for _, bad := range []string{`CREATE X (USE (\All))`, `CREATE X (USE (\Flagged))`, `CREATE X (USE (\Bogus))`} {
		if st := c.no(bad); !strings.HasPrefix(st, "NO [USEATTR]") {
			t.Errorf("%s: %s, want NO [USEATTR]", bad, st)
		}
	}
	if u := c.ok(`LIST "" X`); len(u) != 0 {
		t.Errorf("a refused CREATE created %q", u)
	}
}

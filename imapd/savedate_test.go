package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSaveDate covers SAVEDATE (RFC 8514): FETCH SAVEDATE is when the message entered
// the folder (by APPEND with an old date), not its internal date; SEARCH SAVED* and
// SAVEDATESUPPORTED; an index record written without a save date reads as none (which
// FETCH answers NIL). COPY and MOVE set it too (Mailbox.add), which this test cannot
// tell from the source's save date, being made within the same minute.
func TestSaveDate(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	if u := c.ok("CAPABILITY"); !hasLine(u, ` SAVEDATE\b`) {
		t.Errorf("CAPABILITY: %q", u)
	}
	m := msg("saved", "x\r\n")
	c.ok("APPEND INBOX \"01-Feb-2001 10:00:00 +0000\" {" + strconv.Itoa(len(m)) + "+}\r\n" + m)
	c.ok("SELECT INBOX")
	today := time.Now()
	u := c.ok("FETCH 1 (INTERNALDATE SAVEDATE)")
	re := regexp.MustCompile(`SAVEDATE "([^"]+)"`)
	sm := re.FindStringSubmatch(strings.Join(u, ""))
	if sm == nil || !strings.Contains(u[0], `INTERNALDATE "01-Feb-2001`) {
		t.Fatalf("FETCH SAVEDATE: %q", u)
	}
	saved, err := time.Parse("02-Jan-2006 15:04:05 -0700", strings.TrimSpace(sm[1]))
	if err != nil || saved.Sub(today) > time.Minute || today.Sub(saved) > time.Minute {
		t.Errorf("SAVEDATE %q (%v), want about now", sm[1], err)
	}
	on := today.Format("2-Jan-2006")
	for cmd, want := range map[string]string{
		"SEARCH SAVEDON " + on:          "* SEARCH 1",
		"SEARCH SAVEDSINCE " + on:       "* SEARCH 1",
		"SEARCH SAVEDBEFORE " + on:      "* SEARCH",
		"SEARCH SAVEDBEFORE 1-Mar-2001": "* SEARCH",
		"SEARCH BEFORE 1-Mar-2001":      "* SEARCH 1",
		"SEARCH SAVEDATESUPPORTED":      "* SEARCH 1",
		"SEARCH NOT SAVEDATESUPPORTED":  "* SEARCH",
	} {
		if u := c.ok(cmd); len(u) != 1 || u[0] != want {
			t.Errorf("%s: %q, want %q", cmd, u, want)
		}
	}
	// A record without a save date (written before): NIL, and SAVED* use the
	// internal date.
	r := &message{uid: 7, modseq: 3, flags: flagSeen, idate: 981021600, size: 10, base: "b", keywords: []string{"k"}}
	old := r.marshal()
	old = old[:len(old)-1] // the varint of a zero save date is one byte
	got, err := unmarshalMessage(7, old)
	if err != nil || got.saved != 0 || got.base != "b" || len(got.keywords) != 1 {
		t.Errorf("old record: %+v %v", got, err)
	}
	r.saved = 1700000000
	if got, err := unmarshalMessage(7, r.marshal()); err != nil || got.saved != 1700000000 {
		t.Errorf("record with a save date: %+v %v", got, err)
	}
}

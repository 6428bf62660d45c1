package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/imap"
)

// selectState returns the UIDVALIDITY and HIGHESTMODSEQ of a SELECT's responses.
func selectState(t *testing.T, u []string) (validity, modseq uint64) {
	t.Helper()
	for _, l := range u {
		if m := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(l); m != nil {
			validity, _ = strconv.ParseUint(m[1], 10, 64)
		}
		if m := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(l); m != nil {
			modseq, _ = strconv.ParseUint(m[1], 10, 64)
		}
	}
	if validity == 0 || modseq == 0 {
		t.Fatalf("no UIDVALIDITY or HIGHESTMODSEQ in %q", u)
	}
	return validity, modseq
}

func TestQResync(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	if u := c.ok("CAPABILITY"); !hasLine(u, ` QRESYNC\b`) {
		t.Errorf("CAPABILITY: %q", u)
	}
	for i := 1; i <= 6; i++ {
		c.appendMsg("INBOX", "", msg(fmt.Sprintf("m%d", i), "x\r\n"))
	}
	// Without ENABLE QRESYNC, the parameter is BAD (RFC 7162 §3.2.5).
	if st := c.no("SELECT INBOX (QRESYNC (1 1))"); !strings.HasPrefix(st, "BAD") {
		t.Errorf("QRESYNC before ENABLE: %s", st)
	}
	if u := c.ok("ENABLE QRESYNC"); !hasLine(u, `^\* ENABLED QRESYNC$`) {
		t.Errorf("ENABLE QRESYNC: %q", u)
	}
	validity, ms0 := selectState(t, c.ok("SELECT INBOX"))

	// A second session sees the expunge as VANISHED, not EXPUNGE (§3.2.10).
	o := e.login("a")
	o.ok("ENABLE QRESYNC")
	o.ok("SELECT INBOX")

	c.ok(`STORE 2 +FLAGS.SILENT (\Seen)`)
	c.ok(`STORE 3:4,6 +FLAGS.SILENT (\Deleted)`)
	if u := c.ok("EXPUNGE"); !hasLine(u, `^\* VANISHED 3:4,6$`) || hasLine(u, `EXPUNGE$`) {
		t.Errorf("EXPUNGE with QRESYNC: %q, want * VANISHED 3:4,6", u)
	}
	if u := o.ok("NOOP"); !hasLine(u, `^\* VANISHED 3:4,6$`) || !hasLine(u, `^\* 2 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)$`) {
		t.Errorf("NOOP in the other session: %q", u)
	}
	// UID FETCH (CHANGEDSINCE VANISHED), §3.2.6.
	u := c.ok(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", ms0))
	if len(u) != 2 || u[0] != "* VANISHED (EARLIER) 3:4,6" || !regexp.MustCompile(`^\* 2 FETCH \(UID 2 FLAGS \(\\Seen( \\Recent)?\) MODSEQ \(\d+\)\)$`).MatchString(u[1]) {
		t.Errorf("UID FETCH (CHANGEDSINCE VANISHED): %q", u)
	}
	if u := c.ok(fmt.Sprintf("UID FETCH 5:* (FLAGS) (CHANGEDSINCE %d VANISHED)", ms0)); len(u) != 1 || u[0] != "* VANISHED (EARLIER) 6" {
		t.Errorf("UID FETCH 5:* (CHANGEDSINCE VANISHED): %q", u)
	}
	for _, bad := range []string{"FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "UID FETCH 1:* (FLAGS) (VANISHED)"} {
		if st := c.no(bad); !strings.HasPrefix(st, "BAD") {
			t.Errorf("%s: %s, want BAD", bad, st)
		}
	}
	_, ms1 := selectState(t, c.ok("SELECT INBOX"))

	// A client coming back (§3.2.5.2): VANISHED (EARLIER) first, then what changed.
	n := e.login("a")
	n.ok("ENABLE QRESYNC")
	u = n.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", validity, ms0))
	iv := indexOf(u, "* VANISHED (EARLIER) 3:4,6")
	ifl := indexOf(u, `* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (`)
	if iv < 0 || ifl < iv || hasLine(u, `^\* [13] FETCH`) {
		t.Errorf("SELECT (QRESYNC): %q", u)
	}
	// Known UIDs limit the answer.
	u = n.ok(fmt.Sprintf("EXAMINE INBOX (QRESYNC (%d %d 1,3:5 (1:2 1:2)))", validity, ms0))
	if !hasLine(u, `^\* VANISHED \(EARLIER\) 3:4$`) || hasLine(u, `FETCH`) {
		t.Errorf("EXAMINE (QRESYNC) with known UIDs 1,3:5: %q", u)
	}
	// Nothing changed since ms1; a stale UIDVALIDITY gets a plain SELECT.
	for _, q := range []string{fmt.Sprintf("(%d %d)", validity, ms1), fmt.Sprintf("(%d %d)", validity+1, ms0)} {
		if u := n.ok("SELECT INBOX (QRESYNC " + q + ")"); hasLine(u, `VANISHED|FETCH`) {
			t.Errorf("SELECT (QRESYNC %s): %q", q, u)
		}
	}
}

func indexOf(lines []string, prefix string) int {
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

// TestTombstones: the tombstones stay bounded whatever the number of expunges, and
// what vanished is still reported (the merged history errs on the side of reporting).
func TestTombstones(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	c.ok("SELECT INBOX")
	a := e.srv.accounts["a@example.test"]
	mb, err := a.openMailbox("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer a.release(mb)
	// 1,000 expunges of one UID each, every other UID, at mod-sequences 10, 11, ...
	err = a.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("INBOX"))
		for i := 0; i < 1000; i++ {
			if err := addTombstones(b, uint64(10+i), []uint32{uint32(2*i + 1)}, 3000); err != nil {
				return err
			}
		}
		ts, ok := unmarshalTombstones(b.Get(keyTombstones))
		if !ok || len(ts) > maxTombstones {
			t.Errorf("%d tombstone entries (ok %v), want at most %d", len(ts), ok, maxTombstones)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mb.mu.Lock()
	mb.uidNext = 3001
	mb.mu.Unlock()
	// The last 100 expunges are exact: UIDs 1801, 1803, ... 1999.
	got := string(appendRanges(nil, mb.vanished(10+899, nil)))
	var want []string
	for u := 1801; u <= 1999; u += 2 {
		want = append(want, strconv.Itoa(u))
	}
	if got != strings.Join(want, ",") {
		t.Errorf("vanished since the 900th expunge: %s", got)
	}
	// Since the start: at least every expunged UID.
	all := mb.vanished(0, imap.SeqSet{{Start: 1, Stop: 2000}})
	for i := 0; i < 1000; i++ {
		u := uint32(2*i + 1)
		found := false
		for _, r := range all {
			found = found || r.lo <= u && u <= r.hi
		}
		if !found {
			t.Fatalf("UID %d missing from vanished since 0: %v", u, all)
		}
	}
}

// TestTombstonesOfOldFolder: a folder indexed before tombstones were kept has an
// unknown history; its first expunge starts the tombstones with everything below
// UIDNEXT that is gone counted as expunged just before.
func TestTombstonesOfOldFolder(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	for i := 1; i <= 5; i++ {
		c.appendMsg("INBOX", "", msg(fmt.Sprintf("m%d", i), "x\r\n"))
	}
	c.ok("SELECT INBOX")
	c.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	c.ok("EXPUNGE")
	// Forget the tombstones, as an index written before them.
	a := e.srv.accounts["a@example.test"]
	a.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("INBOX")).Delete(keyTombstones) })
	c.ok("ENABLE QRESYNC")
	v, ms := selectState(t, c.ok("SELECT INBOX"))
	// History unknown: UID 1 is reported to anyone.
	if u := c.ok(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", ms)); !hasLine(u, `^\* VANISHED \(EARLIER\) 1$`) {
		t.Errorf("with no tombstones: %q", u)
	}
	c.ok(`UID STORE 3 +FLAGS.SILENT (\Deleted)`)
	c.ok("EXPUNGE")
	// A client synchronized at ms hears of 3, and of 1 again: the start of the
	// tombstones cannot tell when 1 went. One synchronized after hears nothing.
	if u := c.ok(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", ms)); !hasLine(u, `^\* VANISHED \(EARLIER\) 1,3$`) {
		t.Errorf("after the first tombstone: %q", u)
	}
	_, now := selectState(t, c.ok("SELECT INBOX"))
	if u := c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", v, now)); hasLine(u, `VANISHED`) {
		t.Errorf("SELECT (QRESYNC) at the current mod-sequence: %q", u)
	}
}

package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestIMAPQResync covers QRESYNC (RFC 7162 §3.2) on raw connections: ENABLE, VANISHED
// in place of EXPUNGE (also for MOVE), SELECT (QRESYNC ...) after a disconnection, and
// UID FETCH (CHANGEDSINCE ... VANISHED).
func TestIMAPQResync(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	if !c.Caps().Has("QRESYNC") {
		if tg.in != nil {
			t.Fatal("imapd does not advertise QRESYNC")
		}
		t.Skip("the reference server has no QRESYNC")
	}
	var uids []uint32
	for i := 0; i < 5; i++ {
		uids = append(uids, uint32(appendMsg(t, c, "INBOX", testMessage(fmt.Sprintf("QResync %d", i), "x\r\n"), nil)))
	}
	r := tg.rawLogin(t)
	if u := r.OK("ENABLE QRESYNC"); !hasLine(u, `(?i)^\* ENABLED.* QRESYNC`) {
		t.Fatalf("ENABLE QRESYNC: %q", u)
	}
	u := r.OK("SELECT INBOX")
	validity := field(t, u, `UIDVALIDITY (\d+)`)
	modseq := field(t, u, `HIGHESTMODSEQ (\d+)`)

	r.OK(fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, uids[1]))
	if u := r.OK("EXPUNGE"); !hasLine(u, fmt.Sprintf(`^\* VANISHED %d$`, uids[1])) || hasLine(u, `EXPUNGE$`) {
		t.Errorf("EXPUNGE after ENABLE QRESYNC: %q, want * VANISHED %d", u, uids[1])
	}
	if u := r.OK(fmt.Sprintf("UID MOVE %d Trash", uids[3])); !hasLine(u, fmt.Sprintf(`^\* VANISHED %d$`, uids[3])) {
		t.Errorf("UID MOVE after ENABLE QRESYNC: %q, want * VANISHED %d", u, uids[3])
	}
	r.OK(fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Flagged)`, uids[4]))
	r.OK("LOGOUT")

	// The client comes back with what it knew.
	r = tg.rawLogin(t)
	r.OK("ENABLE QRESYNC")
	u = r.OK(fmt.Sprintf("SELECT INBOX (QRESYNC (%s %s))", validity, modseq))
	want := fmt.Sprintf(`^\* VANISHED \(EARLIER\) %d,%d$`, uids[1], uids[3])
	if !hasLine(u, want) || !hasLine(u, fmt.Sprintf(`^\* 3 FETCH \(.*UID %d.*\\Flagged.*MODSEQ`, uids[4])) || hasLine(u, `^\* [12] FETCH`) {
		t.Errorf("SELECT INBOX (QRESYNC (%s %s)): %q", validity, modseq, u)
	}
	u = r.OK(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %s VANISHED)", modseq))
	if !hasLine(u, want) || len(u) != 2 {
		t.Errorf("UID FETCH (CHANGEDSINCE VANISHED): %q", u)
	}
	if _, st := r.Cmd(fmt.Sprintf("FETCH 1:* (FLAGS) (CHANGEDSINCE %s VANISHED)", modseq)); !strings.HasPrefix(st, "BAD") {
		t.Errorf("FETCH (VANISHED) without UID: %s, want BAD", st)
	}
}

func field(t *testing.T, lines []string, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for _, l := range lines {
		if m := rx.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %s in %q", re, lines)
	return ""
}

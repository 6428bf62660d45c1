package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/pkg/maildir"
)

// Keywords a delivery left beside its message (maildir.DeliverNamedKeywords, as local
// does for a Sieve script's flags) reach the index when imapd takes the message, both
// while the folder is open (inotify) and when it is first opened; the keywords file is
// removed, the keyword gets a dovecot-keywords letter in the file name, and a keyword
// that is not an atom is dropped.
func TestDeliveryKeywords(t *testing.T) {
	e := newTestEnv(t)
	dir := e.maildir("a")
	if err := maildir.Create(dir, nil); err != nil {
		t.Fatal(err)
	}
	// Before the folder is opened: load takes it.
	if _, _, err := maildir.DeliverNamedKeywords(dir, "1.Qa.h", "F", []string{"$Work", "bad(kw"}, nil, strings.NewReader(msg("one", "x\r\n"))); err != nil {
		t.Fatal(err)
	}
	c := e.login("a")
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1 (FLAGS)")
	if !hasLine(u, `^\* 1 FETCH \(FLAGS \(\\Flagged \$Work \\Recent\)\)$`) {
		t.Errorf("FETCH: %q, want \\Flagged and $Work", u)
	}
	// While it is open: takeNew.
	c.send("i1 IDLE\r\n")
	c.line()
	if _, _, err := maildir.DeliverNamedKeywords(dir, "2.Qa.h", "", []string{"$Later", "$work"}, nil, strings.NewReader(msg("two", "y\r\n"))); err != nil {
		t.Fatal(err)
	}
	// The new keyword is announced in FLAGS first (RFC 3501 §7.2.6).
	if l := c.line(); l != `* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Later $Work)` {
		t.Errorf("IDLE got %q, want FLAGS with $Later", l)
	}
	c.line() // * OK [PERMANENTFLAGS (...)]
	if l := c.line(); l != "* 2 EXISTS" {
		t.Errorf("IDLE got %q", l)
	}
	c.send("DONE\r\n")
	for l := c.line(); !strings.HasPrefix(l, "i1 "); l = c.line() {
	}
	u = c.ok("FETCH 2 (FLAGS)")
	if !hasLine(u, `^\* 2 FETCH \(FLAGS \(\$Later \$work \\Recent\)\)$`) {
		t.Errorf("FETCH: %q, want $Later and $work", u)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "new", ".*"))
	if len(left) != 0 {
		t.Errorf("keywords files left in new/: %v", left)
	}
	kw, _ := os.ReadFile(filepath.Join(dir, "dovecot-keywords"))
	if !strings.Contains(string(kw), " $Work\n") || !strings.Contains(string(kw), " $Later\n") {
		t.Errorf("dovecot-keywords: %q", kw)
	}
	cur, _ := filepath.Glob(filepath.Join(dir, "cur", "1.Qa.h,*"))
	if len(cur) != 1 || !strings.HasSuffix(cur[0], ":2,Fa") {
		t.Errorf("cur/ file %v, want the letter of $Work", cur)
	}
	// After a restart the index still has them.
	c.c.Close()
	e.stop()
	e.start()
	c = e.login("a")
	c.ok("SELECT INBOX")
	if u := c.ok("FETCH 1:2 (FLAGS)"); !hasLine(u, `\$Work`) || !hasLine(u, `\$Later`) {
		t.Errorf("after a restart: %q", u)
	}
}

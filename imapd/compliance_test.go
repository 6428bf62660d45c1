package main

import (
	"regexp"
	"strings"
	"testing"
)

// The tests in this file each hold a case that Dovecot's imaptest found wrong (see
// test/imaptest): they fail without the fix that they name.

// lineIndex returns the index of the first line matching pattern, -1 if none does.
func lineIndex(lines []string, pattern string) int {
	re := regexp.MustCompile(pattern)
	for i, l := range lines {
		if re.MatchString(l) {
			return i
		}
	}
	return -1
}

// A keyword that a FETCH shows must have been listed in a FLAGS response first (RFC 3501
// §7.2.6): a new keyword set by this session or by another gets a new FLAGS and
// PERMANENTFLAGS before the FETCH that carries it, listing the keywords known before too.
func TestNewKeywordAnnouncedInFlags(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	a.appendMsg("INBOX", "($old)", msg("one", "x\r\n"))
	a.appendMsg("INBOX", "", msg("two", "y\r\n"))
	b := e.login("a")
	u := a.ok("SELECT INBOX")
	if !hasLine(u, `^\* FLAGS \(\\Answered \\Flagged \\Deleted \\Seen \\Draft \$old\)$`) {
		t.Fatalf("SELECT: %q", u)
	}
	b.ok("SELECT INBOX")

	u = a.ok("STORE 2 +FLAGS ($hello)")
	flags := lineIndex(u, `^\* FLAGS \(.*\$hello`)
	fetch := lineIndex(u, `^\* 2 FETCH \(.*FLAGS \(\$hello`)
	if flags < 0 || fetch < 0 || flags > fetch {
		t.Errorf("STORE of a new keyword: %q, want FLAGS with $hello before the FETCH", u)
	}
	if !hasLine(u, `^\* FLAGS \(\\Answered \\Flagged \\Deleted \\Seen \\Draft \$hello \$old\)$`) ||
		!hasLine(u, `^\* OK \[PERMANENTFLAGS \(\\Answered \\Flagged \\Deleted \\Seen \\Draft \$hello \$old \\\*\)\]`) {
		t.Errorf("STORE of a new keyword: %q, want FLAGS and PERMANENTFLAGS with $hello and $old", u)
	}
	// Known now: no second FLAGS.
	u = a.ok("STORE 1 +FLAGS ($hello)")
	if hasLine(u, `^\* FLAGS`) {
		t.Errorf("STORE of a known keyword repeats FLAGS: %q", u)
	}

	// The other session hears of it before the FETCH that shows it.
	u = b.ok("NOOP")
	flags = lineIndex(u, `^\* FLAGS \(.*\$hello`)
	fetch = lineIndex(u, `^\* \d FETCH \(.*\$hello`)
	if flags < 0 || fetch < 0 || flags > fetch {
		t.Errorf("other session: %q, want FLAGS with $hello before the FETCH", u)
	}

	// A FETCH FLAGS after a change the session did not hear of yet, in a read-only
	// session: FLAGS, PERMANENTFLAGS () and then the FETCH.
	c := e.login("a")
	c.ok("EXAMINE INBOX")
	a.ok("STORE 1 +FLAGS ($third)")
	u = c.ok("FETCH 1 (FLAGS)")
	flags = lineIndex(u, `^\* FLAGS \(.*\$third`)
	fetch = lineIndex(u, `^\* 1 FETCH \(FLAGS \(.*\$third`)
	if flags < 0 || fetch < 0 || flags > fetch || !hasLine(u, `^\* OK \[PERMANENTFLAGS \(\)\]`) {
		t.Errorf("FETCH FLAGS in EXAMINE: %q", u)
	}
	if strings.Contains(strings.Join(u, "\n"), `$third \*`) {
		t.Errorf("read-only session offered PERMANENTFLAGS: %q", u)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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

// A LIST pattern that is not valid modified UTF-7 is no name being created: it matches
// nothing, and LIST answers OK (imaptest's atoms group).
func TestListInvalidUTF7Pattern(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	a.ok("CREATE Folder")
	for _, cmd := range []string{
		`LIST "" "!#$&'+,-.0123456789:;<=>?@^_` + "`" + `|[}%*"`,
		`LIST "" "&Jjo"`,
		`LIST "&Jjo/" "*"`,
		`LSUB "" "&Jjo*"`,
	} {
		u, st := a.cmd(cmd)
		if !strings.HasPrefix(st, "OK") || len(u) != 0 {
			t.Errorf("%s: %q %s, want OK and nothing listed", cmd, u, st)
		}
	}
	// A pattern list that holds a valid pattern still lists what that one matches.
	u := a.ok(`LIST "" ("&Jjo" Folder)`)
	if len(u) != 1 || !hasLine(u, `^\* LIST \(.*\) "/" Folder$`) {
		t.Errorf("LIST with one invalid pattern of two: %q", u)
	}
}

// RFC 5258 §3: unknown selection and return options are BAD; CHILDINFO goes only to a
// parent whose subscribed child is not listed itself.
func TestListExtended(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	for _, cmd := range []string{`LIST (IMAPTEST) "" ""`, `LIST "" "" RETURN (IMAPTEST)`, `LIST (SUBSCRIBED BOGUS) "" "*"`} {
		if st := a.no(cmd); !strings.HasPrefix(st, "BAD") {
			t.Errorf("%s: %s, want BAD", cmd, st)
		}
	}
	a.ok(`LIST (REMOTE) "" "%"`)
	a.ok("CREATE p/c")
	a.ok("SUBSCRIBE p/c")
	u := a.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "p"`)
	if !hasLine(u, `^\* LIST \(.*\) "/" p \("CHILDINFO" \("SUBSCRIBED"\)\)$`) {
		t.Errorf(`LIST (SUBSCRIBED RECURSIVEMATCH) "" p: %q, want p with CHILDINFO`, u)
	}
	u = a.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" (p p/c)`)
	if hasLine(u, `CHILDINFO`) || !hasLine(u, `^\* LIST \(.*\\Subscribed\) "/" p/c$`) {
		t.Errorf(`LIST (SUBSCRIBED RECURSIVEMATCH) "" (p p/c): %q, want p/c and no CHILDINFO`, u)
	}
}

// RFC 3501 §6.3.9: with "x/y" subscribed and "x" not, LSUB "%" returns "x" with
// \Noselect (whether "x" exists or not), and LSUB "*" returns "x/y" and not "x".
func TestLsubUnsubscribedParent(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	a.ok("CREATE x/y")
	a.ok("CREATE z/")
	a.ok("SUBSCRIBE x/y")
	a.ok("SUBSCRIBE z/w") // z/w does not exist
	u := a.ok(`LSUB "" "%"`)
	if !hasLine(u, `^\* LSUB \(\\Noselect\) "/" x$`) || !hasLine(u, `^\* LSUB \(\\Noselect\) "/" z$`) || hasLine(u, `x/y|z/w`) {
		t.Errorf(`LSUB "" %%: %q, want x and z with \Noselect`, u)
	}
	u = a.ok(`LSUB "" "*"`)
	if !hasLine(u, `^\* LSUB \(\) "/" x/y$`) || hasLine(u, `"/" x$`) {
		t.Errorf(`LSUB "" *: %q, want x/y and not x`, u)
	}
	u = a.ok(`LSUB "" "x/%"`)
	if len(u) != 1 || !hasLine(u, `^\* LSUB \(\) "/" x/y$`) {
		t.Errorf(`LSUB "" x/%%: %q`, u)
	}
}

// EXAMINE reports the messages that are \Recent, as STATUS and SELECT do, and leaves
// them \Recent for the next session (RFC 3501 §2.3.2, §6.3.2: EXAMINE is SELECT, read
// only); new mail reaching a read-only session is \Recent there too and stays so.
func TestExamineRecent(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	a.appendMsg("INBOX", "", msg("one", "x\r\n"))
	a.appendMsg("INBOX", "", msg("two", "y\r\n"))
	u := a.ok("EXAMINE INBOX")
	if !hasLine(u, `^\* 2 RECENT$`) {
		t.Errorf("EXAMINE: %q, want 2 RECENT", u)
	}
	u = a.ok("FETCH 1 (FLAGS)")
	if !hasLine(u, `^\* 1 FETCH \(FLAGS \(\\Recent\)\)$`) {
		t.Errorf("FETCH in EXAMINE: %q, want \\Recent", u)
	}
	a.ok("CLOSE")
	u = a.ok("STATUS INBOX (RECENT)")
	if !hasLine(u, `^\* STATUS INBOX \(RECENT 2\)$`) {
		t.Errorf("STATUS after EXAMINE: %q", u)
	}
	a.ok("EXAMINE INBOX")
	b := e.login("a")
	b.appendMsg("INBOX", "", msg("three", "z\r\n"))
	u = a.ok("NOOP")
	if !hasLine(u, `^\* 3 EXISTS$`) || !hasLine(u, `^\* 3 RECENT$`) {
		t.Errorf("new mail in EXAMINE: %q, want 3 EXISTS, 3 RECENT", u)
	}
	b.appendMsg("INBOX", "", msg("four", "w\r\n"))
	u = a.ok("NOOP")
	if !hasLine(u, `^\* 4 EXISTS$`) || !hasLine(u, `^\* 4 RECENT$`) {
		t.Errorf("more new mail in EXAMINE: %q, want 4 EXISTS, 4 RECENT", u)
	}
	u = b.ok("SELECT INBOX")
	if !hasLine(u, `^\* 4 RECENT$`) {
		t.Errorf("SELECT after EXAMINE: %q, want 4 RECENT", u)
	}
	u = e.login("a").ok("SELECT INBOX")
	if !hasLine(u, `^\* 0 RECENT$`) {
		t.Errorf("second SELECT: %q, want 0 RECENT", u)
	}
}

// RFC 4731 §3.2, RFC 7162 §3.1.5: the MODSEQ of an ESEARCH that returns MIN or MAX
// alone is that message's mod-sequence; with both, the higher of the two; with ALL,
// the highest of all matches (imaptest's esearch-condstore group).
func TestESearchModseq(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	a.appendMsgs("one", "two", "three")
	a.ok("SELECT INBOX")
	modseq := map[int]string{}
	for _, n := range []int{1, 3, 2} {
		u := a.ok(fmt.Sprintf("STORE %d +FLAGS (\\Seen)", n))
		m := regexp.MustCompile(`MODSEQ \((\d+)\)`).FindStringSubmatch(strings.Join(u, "\n"))
		if m == nil {
			u = a.ok(fmt.Sprintf("FETCH %d (MODSEQ)", n))
			m = regexp.MustCompile(`MODSEQ \((\d+)\)`).FindStringSubmatch(strings.Join(u, "\n"))
		}
		if m == nil {
			t.Fatalf("no MODSEQ for message %d: %q", n, u)
		}
		modseq[n] = m[1]
	}
	for _, tc := range []struct{ ret, want string }{
		{"(MIN)", "MIN 1 MODSEQ " + modseq[1]},
		{"(MAX)", "MAX 3 MODSEQ " + modseq[3]},
		{"(MIN MAX)", "MIN 1 MAX 3 MODSEQ " + modseq[3]},
		{"()", "ALL 1:3 MODSEQ " + modseq[2]},
		{"(MIN COUNT)", "MIN 1 COUNT 3 MODSEQ " + modseq[2]},
	} {
		u := a.ok("SEARCH RETURN " + tc.ret + ` 1:3 MODSEQ "/flags/\\seen" all 1`)
		if !hasLine(u, `^\* ESEARCH \(TAG "t\d+"\) `+regexp.QuoteMeta(tc.want)+`$`) {
			t.Errorf("SEARCH RETURN %s: %q, want %s", tc.ret, u, tc.want)
		}
	}
	// The SEARCH response of RFC 3501 has the highest of all (RFC 7162 §3.1.5).
	u := a.ok(`SEARCH 1:3 MODSEQ 1`)
	if !hasLine(u, `^\* SEARCH 1 2 3 \(MODSEQ `+modseq[2]+`\)$`) {
		t.Errorf("SEARCH MODSEQ: %q", u)
	}
}

// SENTBEFORE, SENTON and SENTSINCE compare the date of the Date header as written,
// disregarding time and zone (RFC 3501 §6.4.4, RFC 9051 §6.4.4), not its UTC date.
func TestSearchSentDate(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	for _, d := range []string{
		"Sat, 24 Mar 2007 23:00:00 +0200", // 21:00 UTC on the 24th
		"Sun, 25 Mar 2007 00:30:00 +0200", // 22:30 UTC on the 24th
		"Sun, 25 Mar 2007 23:30:00 -0500", // 04:30 UTC on the 26th
	} {
		a.appendMsg("INBOX", "", "From: x@y.example\r\nDate: "+d+"\r\nSubject: s\r\n\r\nbody\r\n")
	}
	a.ok("SELECT INBOX")
	for _, tc := range []struct{ key, want string }{
		{"SENTON 24-Mar-2007", "1"},
		{"SENTON 25-Mar-2007", "2 3"},
		{"SENTON 26-Mar-2007", ""},
		{"SENTBEFORE 25-Mar-2007", "1"},
		{"SENTSINCE 25-Mar-2007", "2 3"},
		{"NOT SENTON 25-Mar-2007", "1"},
	} {
		u := a.ok("SEARCH " + tc.key)
		want := strings.TrimSpace("* SEARCH " + tc.want)
		if len(u) != 1 || u[0] != want {
			t.Errorf("SEARCH %s: %q, want %q", tc.key, u, want)
		}
	}
}

// A message APPENDed as a literal8 keeps its binary content: BINARY[] gives back the
// octets that went in, NUL and bare LFs included, and BODY[] is not raw binary (RFC 3516
// §4.4; imaptest's append-binary group).
func TestAppendLiteral8(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	body := "\x00-\xe4\n\r\n\n"
	m := "From: user@domain.org\r\nDate: Sat, 24 Mar 2007 23:00:00 +0200\r\nMime-Version: 1.0\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + body
	a.ok(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(m), m))
	a.ok("SELECT INBOX")
	u := a.ok("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])")
	want := fmt.Sprintf("* 1 FETCH (BINARY.SIZE[1] %d BINARY[1] ~{%d}\r\n%s)", len(body), len(body), body)
	if len(u) != 1 || u[0] != want {
		t.Errorf("BINARY[1]: %q, want %q", u, want)
	}
	u = a.ok("FETCH 1 (BODY.PEEK[1])")
	if len(u) != 1 || strings.ContainsAny(u[0], "\x00\xe4") || strings.Contains(u[0], "~{") {
		t.Errorf("BODY[1] of a binary part: %q, want it encoded", u)
	}
	// A literal8 without binary parts is stored as it came.
	plain := "Subject: p\r\n\r\nplain text\r\n"
	a.ok(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(plain), plain))
	u = a.ok("FETCH 2 (BODY.PEEK[])")
	if len(u) != 1 || !strings.HasSuffix(u[0], "\r\n"+plain+")") {
		t.Errorf("BODY[] of a plain literal8: %q", u)
	}
}

// A flag change that another session makes while an update is being written is
// reported by the next update, not skipped: imaptest's stress run with checkpoints found
// sessions whose flags differed from the others' for good.
func TestUpdateMissesNoConcurrentChange(t *testing.T) {
	e := newTestEnv(t)
	a, b := e.twoSessions()
	var armed atomic.Bool
	testHookUpdate = func() {
		if armed.CompareAndSwap(true, false) {
			// a is between reading the mailbox and finishing its update.
			b.ok(`STORE 1 +FLAGS (\Flagged)`)
		}
	}
	t.Cleanup(func() { testHookUpdate = nil })
	armed.Store(true)
	a.ok("NOOP")
	if armed.Load() {
		t.Fatal("the hook did not run")
	}
	u := a.ok("NOOP")
	if !hasLine(u, `^\* 1 FETCH \(.*FLAGS \(\\Flagged`) {
		t.Errorf("NOOP after a change made during the previous update: %q, want the new flags", u)
	}
}

// Messages that another session expunged while this one still sees them: SEARCH says
// so with EXPUNGEISSUED, COPY copies the others or answers NO [EXPUNGEISSUED], never
// NO [SERVERBUG] (RFC 2180 §4.1.3 and §4.4.1, RFC 5530 §3; imaptest's stress run with
// COPY and SEARCH found both).
func TestExpungedMeanwhile(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	a.appendMsgs("one", "two", "three", "four")
	a.ok("SELECT INBOX")
	b := e.login("a")
	b.ok("SELECT INBOX")
	b.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")

	u, st := a.cmd("SEARCH ALL")
	if !hasLine(u, `^\* SEARCH 1 3 4$`) || !strings.HasPrefix(st, "OK [EXPUNGEISSUED]") {
		t.Errorf("SEARCH with message 2 expunged meanwhile: %q %s", u, st)
	}
	if st := a.no("COPY 2 Trash"); !strings.HasPrefix(st, "NO [EXPUNGEISSUED]") {
		t.Errorf("COPY of an expunged message: %s", st)
	}
	u, st = a.cmd("UID COPY 1:3 Trash")
	if !regexp.MustCompile(`^OK \[COPYUID \d+ 1,3 1:2\]`).MatchString(st) {
		t.Errorf("COPY 1:3 with 2 expunged: %q %s, want the others copied", u, st)
	}
	// A file that vanished from disk (another program) with the index unaware.
	files, _ := filepath.Glob(filepath.Join(e.maildir("a"), "cur", "*"))
	var four string
	for _, f := range files {
		if data, _ := os.ReadFile(f); strings.Contains(string(data), "Subject: four") {
			four = f
		}
	}
	if four == "" {
		t.Fatal("no file of message four")
	}
	os.Remove(four)
	if st := a.no("UID COPY 4 Trash"); !strings.HasPrefix(st, "NO [EXPUNGEISSUED]") {
		t.Errorf("COPY of a message whose file is gone: %s", st)
	}
	if st := a.no("UID MOVE 4 Trash"); !strings.HasPrefix(st, "NO [EXPUNGEISSUED]") {
		t.Errorf("MOVE of a message whose file is gone: %s", st)
	}
	u = a.ok("STATUS Trash (MESSAGES)")
	if !hasLine(u, `MESSAGES 2\)$`) {
		t.Errorf("Trash after the copies: %q", u)
	}
	// A SEARCH that must read the file it no longer finds.
	u, st = a.cmd("SEARCH FROM alice")
	if !hasLine(u, `^\* SEARCH 1 2$`) || !strings.HasPrefix(st, "OK [EXPUNGEISSUED]") {
		t.Errorf("SEARCH FROM with a file gone: %q %s", u, st)
	}
}

// A SEARCH that reads message files inside its read transaction of the index does not
// wait for the mailbox's lock there: a writer that holds the lock and grows the index
// (bolt remaps its file, which waits for every read transaction) deadlocked with it,
// and imapd stopped answering for good (imaptest's stress run with SEARCH).
func TestSearchDuringIndexGrowth(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	a.appendMsg("INBOX", "", msg("one", "a needle\r\n"))
	a.ok("SELECT INBOX")
	b := e.login("a")
	// Text just under maxText: its cache record makes the index grow by a megabyte.
	big := msg("big", strings.Repeat("padding words\r\n", (maxText-4096)/15))
	var armed atomic.Bool
	testHookSearchTx = func(mb *Mailbox) {
		if !armed.CompareAndSwap(true, false) {
			return
		}
		// b's APPEND takes the mailbox's lock and commits while this transaction
		// is open; wait until it holds the lock.
		go b.c.Write([]byte(fmt.Sprintf("b1 APPEND INBOX {%d+}\r\n%s\r\n", len(big), big)))
		deadline := time.Now().Add(10 * time.Second)
		for mb.mu.TryRLock() {
			mb.mu.RUnlock()
			if time.Now().After(deadline) {
				t.Error("the APPEND never took the mailbox's lock")
				return
			}
			runtime.Gosched()
		}
	}
	t.Cleanup(func() { testHookSearchTx = nil })
	armed.Store(true)
	u := a.ok(`SEARCH FROM alice SUBJECT one`)
	if !hasLine(u, `^\* SEARCH 1$`) {
		t.Errorf("SEARCH: %q", u)
	}
	if l := b.line(); !strings.HasPrefix(l, "b1 OK") {
		t.Errorf("APPEND during the SEARCH: %q", l)
	}
}

// EXPUNGE of messages that were \Recent in the session is followed by the new RECENT
// count (RFC 3501 §7.3.2: RECENT comes when the mailbox's size changes); imaptest's
// stress run with checkpoints sums the last RECENT of every session and found it above
// the number of messages.
func TestRecentAfterExpunge(t *testing.T) {
	e := newTestEnv(t)
	a := e.login("a")
	a.appendMsgs("one", "two", "three")
	u := a.ok("SELECT INBOX")
	if !hasLine(u, `^\* 3 RECENT$`) {
		t.Fatalf("SELECT: %q", u)
	}
	a.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	u = a.ok("EXPUNGE")
	if !hasLine(u, `^\* 1 EXPUNGE$`) || !hasLine(u, `^\* 2 RECENT$`) {
		t.Errorf("EXPUNGE of a recent message: %q, want 2 RECENT", u)
	}
	b := e.login("a")
	b.ok("SELECT INBOX")
	b.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")
	u = a.ok("NOOP")
	if !hasLine(u, `^\* 1 EXPUNGE$`) || !hasLine(u, `^\* 1 RECENT$`) {
		t.Errorf("EXPUNGE by another session: %q, want 1 RECENT", u)
	}
	// No change of the count, no RECENT: b's view had none recent.
	a.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	a.ok("EXPUNGE")
	u = b.ok("NOOP")
	if !hasLine(u, `^\* 1 EXPUNGE$`) || hasLine(u, `RECENT`) {
		t.Errorf("EXPUNGE of a message not recent here: %q", u)
	}
}

// Every session lists the same keywords, those of the folder, whether or not a message
// it saw carries them: a keyword set and cleared again by another session still reaches
// this session's FLAGS (imaptest's checkpoints compare the lists: "Missing keyword").
func TestKeywordListSharedBySessions(t *testing.T) {
	e := newTestEnv(t)
	a, b := e.twoSessions()
	b.ok(`STORE 1 +FLAGS.SILENT ($passing)`)
	b.ok(`STORE 1 -FLAGS.SILENT ($passing)`)
	u := a.ok("NOOP")
	if !hasLine(u, `^\* FLAGS \(.*\$passing\)$`) {
		t.Errorf("NOOP after another session used a keyword: %q, want FLAGS with it", u)
	}
	u = e.login("a").ok("SELECT INBOX")
	if !hasLine(u, `^\* FLAGS \(.*\$passing\)$`) {
		t.Errorf("SELECT: %q, want FLAGS with the folder's keyword", u)
	}
}

package test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// treeState records every path under root (except those skip rejects) with, for files,
// size and modification time.
func treeState(t *testing.T, root string, skip func(path string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if skip(p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if d.IsDir() {
			out[p] = "dir " + info.Mode().String()
		} else {
			out[p] = fmt.Sprintf("%v %d %d", info.Mode(), info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	return out
}

func diffStates(a, b map[string]string) []string {
	var d []string
	for p, v := range a {
		if w, ok := b[p]; !ok {
			d = append(d, "removed "+p)
		} else if v != w {
			d = append(d, "changed "+p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			d = append(d, "added "+p)
		}
	}
	slices.Sort(d)
	return d
}

// lit sends a string as a non-synchronizing literal (RFC 7888), which may hold any byte but
// NUL: the way to hand the server control characters and 8-bit names.
func lit(s string) string {
	return fmt.Sprintf("{%d+}\r\n%s", len(s), s)
}

// TestIMAPIsolation checks that one user cannot reach another's mail, or anything outside
// their own Maildir, through crafted mailbox names.
func TestIMAPIsolation(t *testing.T) {
	needPostern(t)
	in := NewInstance(t, "")
	bobPass := in.addUser(t, "bob@example.test")
	in.sendMail(t, "x@other.test", "bob@example.test", testMessage("Bob secret 4711", "for bob only\r\n"))
	in.sendMail(t, "x@other.test", "demo@example.test", testMessage("For demo", "hello demo\r\n"))
	in.WaitMessages("bob@example.test", 1, 10*time.Second)
	in.WaitMessages("demo@example.test", 1, 10*time.Second)
	tg := imapTargetOf(t, in)
	bobTarget := *tg
	bobTarget.user, bobTarget.pass = "bob@example.test", bobPass
	bob := bobTarget.login(t)
	selectBox(t, bob, "INBOX", nil)
	bob.Logout().Wait()
	// demo logs in once before the snapshot: authd stores in users.db where an account
	// first logged in from (see authd(8)), which is not the hostile names' doing.
	tg.login(t).Logout().Wait()

	// Let every daemon settle (delivery done, queue empty) before the snapshot.
	time.Sleep(time.Second)
	demoDir := in.Maildir("demo@example.test")
	skip := func(p string) bool {
		return p == demoDir || p == in.LogPath || strings.HasPrefix(p, filepath.Join(in.Dir, "spool")) ||
			strings.HasPrefix(p, filepath.Join(in.Dir, "run"))
	}
	before := treeState(t, in.Dir, skip)
	etcBefore, _ := os.ReadDir("/etc")
	rootBefore, _ := os.ReadDir("/")

	r := tg.rawLogin(t)
	d := "/"
	if u := r.OK(`LIST "" ""`); len(u) == 1 {
		if m := regexp.MustCompile(`^\* LIST \([^)]*\) "(.)"`).FindStringSubmatch(u[0]); m != nil {
			d = m[1]
		}
	}
	long := strings.Repeat("A", 2000)
	hostile := []string{
		"../bob", "..", ".", "../..", "../../example.test/bob", "/etc", "/etc/passwd", "/",
		"~bob", "~bob/INBOX", "~/../bob", "%", "*", "INBOX/../../bob", "INBOX" + d + ".." + d + ".." + d + "bob",
		"./../bob", ".bob", "..bob", "#user/bob", "#shared/bob", "#public", "Other Users/bob",
		"bob@example.test", "../bob@example.test", "new", "cur", "tmp", "../demo/cur", "INBOX/..",
		"a\x01b", "tab\tname", "line\nbreak", "cr\rname", "del\x7f", "\x1b[31mred",
		long, strings.Repeat("B", 300), strings.Repeat("x"+d, 200) + "deep",
	}
	// listAll returns the names LIST "" "*" gives (quoted, atoms or literals).
	listAll := func() []string {
		t.Helper()
		var names []string
		for _, l := range r.OK(`LIST "" "*"`) {
			m := regexp.MustCompile(`^\* LIST \([^)]*\) (?:NIL|"(?:[^"\\]|\\.)") (.*)$`).FindStringSubmatch(l)
			if m == nil {
				continue
			}
			name := m[1]
			if _, after, ok := strings.Cut(name, "}\r\n"); ok && strings.HasPrefix(name, "{") {
				name = after
			} else if strings.HasPrefix(name, `"`) {
				name = strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(name[1 : len(name)-1])
			}
			names = append(names, name)
		}
		return names
	}
	baseline := listAll()
	mustFail := func(cmd string) {
		t.Helper()
		_, st := r.Cmd(cmd)
		if !strings.HasPrefix(st, "NO") && !strings.HasPrefix(st, "BAD") {
			t.Errorf("%.120q: %q, want NO or BAD", cmd, st)
		}
	}
	r.OK("SELECT INBOX")
	for _, name := range hostile {
		m := lit(name)
		mustFail("SELECT " + m)
		mustFail("EXAMINE " + m)
		mustFail("STATUS " + m + " (MESSAGES)")
		mustFail("DELETE " + m)
		mustFail("RENAME " + m + " Stolen")
		msg := testMessage("Planted", "planted\r\n")
		mustFail("APPEND " + m + " " + lit(msg))
		r.OK("SELECT INBOX")
		mustFail("COPY 1 " + m)
		mustFail("MOVE 1 " + m)
		// CREATE and RENAME onto the name: refused for names that reach outside the
		// account or that no file system could hold; for the others ("%", "new", ".bob",
		// ...) the server may accept them as ordinary names inside the Maildir, which the
		// tree check below verifies.
		ordinary := len(name) < 1000 && !strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f })
		for _, seg := range strings.Split(name, d) {
			if seg == "." || seg == ".." || len(seg) > 255 {
				ordinary = false
			}
		}
		for _, cmd := range []string{"CREATE " + m, "RENAME Sent " + m} {
			_, st := r.Cmd(cmd)
			if strings.HasPrefix(st, "OK") {
				if !ordinary {
					t.Errorf("%.120q: %q, want NO or BAD", cmd, st)
				}
				if strings.HasPrefix(cmd, "RENAME") {
					r.OK("RENAME " + m + " Sent")
				} else {
					r.Cmd("DELETE " + m)
				}
			}
		}
	}
	// Remove what CREATE accepted (with the superiors it made), deepest first, so the
	// LIST checks below see demo's own mailboxes only.
	made := slices.DeleteFunc(listAll(), func(n string) bool { return slices.Contains(baseline, n) })
	slices.SortFunc(made, func(a, b string) int { return len(b) - len(a) })
	for _, n := range made {
		r.OK("DELETE " + lit(n))
	}
	// A NUL cannot be in a literal (RFC 9051 §4.3): refused, and the session goes on.
	mustFail("SELECT {7+}\r\nIN\x00BOX1")
	r.Alive()

	// LIST with hostile references shows nothing of bob's and nothing outside.
	for _, ref := range []string{"", "../", "/", "~bob/", "#user/", "..", "/etc/"} {
		u := r.OK("LIST " + lit(ref) + ` "*"`)
		for _, l := range u {
			if strings.Contains(strings.ToLower(l), "bob") || strings.Contains(l, "..") || strings.Contains(l, "etc") || strings.Contains(l, "passwd") {
				t.Errorf("LIST %q \"*\": %q", ref, l)
			}
		}
	}
	r.OK("SELECT INBOX")
	u := r.OK(`SEARCH SUBJECT "Bob secret"`)
	if !slices.Equal(u, []string{"* SEARCH"}) {
		t.Errorf("demo's SEARCH finds bob's message: %q", u)
	}
	// Logging in with bob's name and demo's password, or as bob with an authorization
	// identity of demo, fails.
	r2 := tg.rawDial(t, false)
	r2.Expect("NO", "LOGIN bob@example.test "+imapQuote(tg.pass))
	r.OK("LOGOUT")

	time.Sleep(500 * time.Millisecond)
	after := treeState(t, in.Dir, skip)
	if d := diffStates(before, after); len(d) > 0 {
		t.Errorf("the hostile names changed files outside demo's Maildir:\n%s", strings.Join(d, "\n"))
	}
	etcAfter, _ := os.ReadDir("/etc")
	rootAfter, _ := os.ReadDir("/")
	if len(etcAfter) != len(etcBefore) || len(rootAfter) != len(rootBefore) {
		t.Errorf("/etc or / changed: %d→%d and %d→%d entries", len(etcBefore), len(etcAfter), len(rootBefore), len(rootAfter))
	}
	// demo's Maildir holds only what demo made: no folder outside its own root.
	filepath.WalkDir(demoDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("a symlink in demo's Maildir: %s", p)
		}
		return nil
	})

	// Bob's mail is intact.
	bob = bobTarget.login(t)
	sel := selectBox(t, bob, "INBOX", nil)
	if sel.NumMessages != 1 {
		t.Errorf("bob's INBOX has %d messages, want 1", sel.NumMessages)
	}
	m := fetchOne(t, bob, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true})
	if m.Envelope == nil || m.Envelope.Subject != "Bob secret 4711" {
		t.Errorf("bob's message: %+v", m.Envelope)
	}
	all := listNames(t, bob, "", "*", nil)
	for name := range all {
		if name == "Stolen" || name == "Planted" {
			t.Errorf("bob has a mailbox %q", name)
		}
	}
}

// TestIMAPMalformedInput sends broken commands: each gets a tagged or untagged BAD (or NO),
// never a crash or a hang, and imapd keeps serving.
func TestIMAPMalformedInput(t *testing.T) {
	tg := newIMAPTarget(t)
	pidBefore := 0
	if tg.in != nil {
		pidBefore = tg.in.DaemonPIDs()["imapd"]
	}
	c := tg.login(t)
	appendMsg(t, c, "INBOX", testMessage("Malformed", "x\r\n"), nil)
	c.Logout().Wait()

	type tcase struct {
		state int // 0 not authenticated, 1 authenticated, 2 INBOX selected
		send  string
		okToo bool // valid syntax the server may also carry out
	}
	cases := []tcase{
		{0, "\r\n", false},
		{0, "a1\r\n", false},
		{0, "a1 FOO\r\n", false},
		{0, "a1 NOOP extra\r\n", false},
		{0, "* NOOP\r\n", false},
		{0, "+ NOOP\r\n", false},
		{0, "a{1 NOOP\r\n", false},
		{0, "a1 LOGIN\r\n", false},
		{0, "a1 LOGIN \"unterminated\r\n", false},
		{0, "a1 LOGIN a b c\r\n", false},
		{0, "a1 SELECT INBOX\r\n", false},
		{0, "a1 FETCH 1 FLAGS\r\n", false},
		{0, "a1 \xff\xfe\x00garbage\r\n", false},
		{0, "a1 CAPABILITY\x00\r\n", false},
		{0, "a1  NOOP\r\n", false},
		{0, "a1 noop\r\n", false}, // commands are case-insensitive: OK
		{1, "a1 SELECT\r\n", false},
		{1, "a1 SELECT \"INBOX\r\n", false},
		{1, "a1 SELECT (INBOX)\r\n", false},
		{1, "a1 FETCH 1 FLAGS\r\n", false},
		{1, "a1 EXPUNGE\r\n", false},
		{1, "a1 CLOSE\r\n", false},
		{1, "a1 STATUS INBOX\r\n", false},
		{1, "a1 STATUS INBOX (NOSUCHITEM)\r\n", false},
		{1, "a1 LIST\r\n", false},
		{1, "a1 CREATE\r\n", false},
		{1, "a1 APPEND INBOX\r\n", false},
		{1, "a1 APPEND INBOX {-1}\r\n", false},
		{1, "a1 APPEND INBOX {abc}\r\n", false},
		{1, "a1 APPEND INBOX {99999999999999999999}\r\n", false},
		{1, "a1 APPEND INBOX (\\Seen {5+}\r\nhello\r\n", false},
		{1, "a1 ENABLE\r\n", false},
		{2, "a1 FETCH 1 (FLAGS\r\n", false},
		{2, "a1 FETCH 1 FLAGS)\r\n", false},
		{2, "a1 FETCH 0 FLAGS\r\n", false},
		{2, "a1 FETCH 1:0 FLAGS\r\n", false},
		{2, "a1 FETCH 4294967296 FLAGS\r\n", false},
		{2, "a1 FETCH 1,,2 FLAGS\r\n", false},
		{2, "a1 FETCH -1 FLAGS\r\n", false},
		{2, "a1 FETCH 1 BODY[\r\n", false},
		{2, "a1 FETCH 1 BODY[1.\r\n", false},
		{2, "a1 FETCH 1 BODY[HEADER.FIELDS]\r\n", false},
		{2, "a1 FETCH 1 BODY[HEADER.FIELDS ()]\r\n", false},
		{2, "a1 FETCH 1 BODY[]<1.0>\r\n", false},
		{2, "a1 FETCH 1 BODY[]<-1.5>\r\n", false},
		{2, "a1 FETCH 1 BINARY[1.2.3.4.5.6.7.8.9.10.11.12]\r\n", true}, // a missing part
		{2, "a1 FETCH 1 " + strings.Repeat("(", 1000) + "FLAGS" + strings.Repeat(")", 1000) + "\r\n", false},
		{2, "a1 SEARCH " + strings.Repeat("NOT ", 100000) + "ALL\r\n", true},
		{2, "a1 SEARCH " + strings.Repeat("(", 5000) + "ALL" + strings.Repeat(")", 5000) + "\r\n", true},
		{2, "a1 SEARCH " + strings.Repeat("OR ", 5000) + "ALL\r\n", false},
		{2, "a1 SEARCH LARGER 99999999999999999999\r\n", false},
		{2, "a1 SEARCH UID 1:*:3\r\n", false},
		{2, "a1 STORE 1 +FLAGS\r\n", false},
		{2, "a1 STORE 1 FLAGS (\\Seen\r\n", false},
		{2, "a1 STORE 1 (UNCHANGEDSINCE x) FLAGS (\\Seen)\r\n", false},
		{2, "a1 COPY 1\r\n", false},
		{2, "a1 UID\r\n", false},
		{2, "a1 UID FOO 1\r\n", false},
		{2, "a1 UID FETCH\r\n", false},
		{2, "a1 IDLE extra\r\n", false},
		{2, "a1 SELECT INBOX (NOSUCHPARAM)\r\n", false},
	}
	var r *rawIMAP
	state := -1
	connect := func(want int) {
		t.Helper()
		if r != nil && state == want {
			return
		}
		if r != nil {
			r.c.Close()
		}
		r = tg.rawDial(t, false)
		state = 0
		if want >= 1 {
			r.OK("LOGIN " + imapQuote(tg.user) + " " + imapQuote(tg.pass))
			state = 1
		}
		if want == 2 {
			r.OK("SELECT INBOX")
			state = 2
		}
	}
	for _, tc := range cases {
		connect(tc.state)
		r.Send(tc.send)
		got := ""
		for {
			l, err := r.Response()
			if err != nil {
				got += "<closed: " + err.Error() + ">"
				break
			}
			got = l
			if strings.HasPrefix(l, "a1 ") || strings.HasPrefix(l, "* BAD") || strings.HasPrefix(l, "* BYE") || strings.HasPrefix(l, "+") {
				break
			}
		}
		closed := strings.Contains(got, "<closed")
		switch {
		case tc.okToo && strings.HasPrefix(got, "a1 OK"):
		case tc.send == "a1 noop\r\n":
			if !strings.HasPrefix(got, "a1 OK") {
				t.Errorf("%q: %q, want OK (command names are case-insensitive)", tc.send, got)
			}
		case strings.HasPrefix(got, "+"):
			// A continuation for something that must not get one.
			t.Errorf("%.80q: got a continuation request %q", tc.send, got)
		case strings.HasPrefix(got, "a1 BAD") || strings.HasPrefix(got, "a1 NO") || strings.HasPrefix(got, "* BAD"):
		case strings.HasPrefix(got, "* BYE"):
			// Dropping a client that sends absurd input is allowed.
			state = -1
		case closed && strings.Contains(got, "timeout"):
			t.Errorf("%.80q: no answer within 30s (hang)", tc.send)
			state = -1
		default:
			t.Errorf("%.80q: %.200q, want BAD or NO", tc.send, got)
			state = -1
		}
		if state >= 0 {
			r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			tag := r.Tag()
			r.Send(tag + " NOOP\r\n")
			for {
				l, err := r.Response()
				if err != nil {
					state = -1
					break
				}
				if strings.HasPrefix(l, tag+" ") {
					if !strings.HasPrefix(l, tag+" OK") {
						t.Errorf("NOOP after %.80q: %q", tc.send, l)
					}
					break
				}
			}
		}
	}

	// A line far beyond any limit: BAD or BYE, not an unbounded buffer.
	connect(1)
	r.Send("a1 NOOP " + strings.Repeat("x", 10<<20) + "\r\n")
	l, err := r.Response()
	if err == nil && !strings.HasPrefix(l, "a1 BAD") && !strings.HasPrefix(l, "* BAD") && !strings.HasPrefix(l, "* BYE") {
		t.Errorf("a 10 MB command line: %.100q, want BAD or BYE", l)
	}
	// A synchronizing literal above the size limit is refused before the client sends it
	// (RFC 9051 §7.1 TOOBIG, RFC 7889).
	connect(1)
	r.Send("a1 APPEND INBOX {4000000000}\r\n")
	l, err = r.Response()
	if err != nil || !(strings.HasPrefix(l, "a1 NO") || strings.HasPrefix(l, "a1 BAD") || strings.HasPrefix(l, "* BYE")) {
		t.Errorf("APPEND of a 4 GB synchronizing literal: %q %v, want NO or BAD without a continuation", l, err)
	}
	// A 4 GB non-synchronizing literal: the server may not wait for 4 GB; BAD/NO/BYE.
	connect(1)
	r.Send("a1 APPEND INBOX {4000000000+}\r\nFrom: x\r\n")
	l, err = r.Response()
	if err != nil || !(strings.HasPrefix(l, "a1 NO") || strings.HasPrefix(l, "a1 BAD") || strings.HasPrefix(l, "* BYE")) {
		t.Errorf("APPEND of a 4 GB LITERAL+: %q %v, want NO, BAD or BYE at once", l, err)
	}
	// Many connections that say nothing do not stop others.
	var silent []*rawIMAP
	for range 50 {
		silent = append(silent, tg.rawDial(t, true))
	}
	fresh := tg.login(t)
	if _, err := fresh.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT with 50 silent connections open: %v", err)
	}
	for _, s := range silent {
		s.c.Close()
	}
	if tg.in != nil {
		if pid := tg.in.DaemonPIDs()["imapd"]; pid != pidBefore || pid == 0 {
			t.Errorf("imapd's pid changed from %d to %d: it crashed\n%s", pidBefore, pid, tail(tg.in.Log(), 40))
		}
	}
}

// TestIMAPCleartextLogin checks the documented policy on the cleartext port (imapd(8)):
// passwords are accepted only over TLS or from loopback. An instance on 127.0.0.2 is
// reached from a loopback address (127.0.0.0/8 is all loopback), so there LOGIN works
// without TLS and LOGINDISABLED is not advertised; on the TLS ports it always works. The
// refusal itself (a client outside 127.0.0.0/8 and ::1) cannot be reached from a test,
// which may only use loopback.
func TestIMAPCleartextLogin(t *testing.T) {
	needPostern(t)
	in := NewInstance(t, "127.0.0.2")
	tg := imapTargetOf(t, in)
	r := tg.rawDial(t, true)
	u := r.OK("CAPABILITY")
	if !hasLine(u, `\bSTARTTLS\b`) {
		t.Errorf("cleartext CAPABILITY lacks STARTTLS: %q", u)
	}
	if hasLine(u, `\bLOGINDISABLED\b`) || !hasLine(u, `\bAUTH=PLAIN\b`) {
		t.Errorf("cleartext CAPABILITY for a loopback client %q, want AUTH=PLAIN and no LOGINDISABLED", u)
	}
	r.OK("LOGIN " + imapQuote(tg.user) + " " + imapQuote(tg.pass))
	r.OK("SELECT INBOX")
	// The path of every client outside loopback: STARTTLS, then LOGIN.
	c, err := imapclient.DialStartTLS(tg.plainAddr, tg.options(t, nil))
	if err != nil {
		t.Fatalf("STARTTLS on %s: %v", tg.plainAddr, err)
	}
	defer c.Close()
	if err := c.Login(tg.user, tg.pass).Wait(); err != nil {
		t.Errorf("LOGIN after STARTTLS: %v", err)
	}
	tls := tg.login(t)
	if _, err := tls.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT over implicit TLS on %s: %v", tg.tlsAddr, err)
	}
}

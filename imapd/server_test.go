package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/ipc"
	"postern/pkg/maildir"
)

// testEnv is an imapd with a fake authd that knows two accounts, a@example.test and
// b@example.test, with password "pw" (and web session token "tok" for a@); throttled@example.test is refused as throttled for
// 42 seconds when the client is 127.0.0.1.
type testEnv struct {
	t        testing.TB
	cfg      *config.Config
	srv      *Server
	addr     string
	pop3Addr string // the "pop3" listener
	cancel   context.CancelFunc
	done     chan error
	authStop context.CancelFunc
	// passwords are the fake authd's passwords of a@ and b@ ("pw" unless changed).
	passwords sync.Map
	// events are sent to imapd's account change subscription; acked hears each
	// acknowledgement.
	events chan auth.AccountEvent
	acked  chan struct{}
}

func (e *testEnv) maildir(user string) string {
	return filepath.Join(e.cfg.MailDir(), "example.test", user)
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.SpoolDir = filepath.Join(dir, "spool")
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.TLS = config.TLS{}
	os.MkdirAll(filepath.Join(cfg.SpoolDir, "private"), 0o755)
	e := &testEnv{t: t, cfg: cfg, events: make(chan auth.AccountEvent), acked: make(chan struct{})}
	// The fake authd.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.PrivateSocket("auth"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	as := &ipc.Server{Name: "auth", Allow: func(ipc.Cred) bool { return true }}
	as.Handle(auth.OpVerify, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var r auth.VerifyRequest
		json.Unmarshal(body, &r)
		pw := "pw"
		if v, ok := e.passwords.Load(r.User); ok {
			pw = v.(string)
		}
		if (r.User == "a@example.test" || r.User == "b@example.test") && r.Password == pw {
			return auth.VerifyResult{OK: true, Address: r.User}, nil
		}
		if r.User == "throttled@example.test" && r.RemoteAddr == "127.0.0.1" {
			return auth.VerifyResult{Throttled: true, RetryAfter: 42}, nil
		}
		return auth.VerifyResult{}, nil
	})
	// The one live web session token: "tok" of a@example.test.
	as.Handle(auth.OpWebCheck, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var r auth.WebCheckRequest
		json.Unmarshal(body, &r)
		if r.User == "a@example.test" && r.Token == "tok" {
			return auth.WebCheckResult{OK: true, Address: r.User}, nil
		}
		return auth.WebCheckResult{}, nil
	})
	as.Handle(auth.OpMailbox, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var r auth.MailboxRequest
		json.Unmarshal(body, &r)
		local, _, _ := strings.Cut(r.Address, "@")
		return auth.MailboxResult{Exists: true, Address: r.Address, Maildir: e.maildir(local)}, nil
	})
	// Account changes, as authd sends them (authd/watch.go).
	as.HandleStream(auth.OpWatch, func(ctx context.Context, _ ipc.Cred, c *ipc.Conn, _ json.RawMessage, _ []*os.File) error {
		if err := c.Reply(nil, nil); err != nil {
			return err
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case ev := <-e.events:
				if err := c.Send(ev); err != nil {
					return err
				}
				var ack auth.WatchAck
				if _, err := c.Receive(&ack); err != nil {
					return err
				}
				e.acked <- struct{}{}
			}
		}
	})
	actx, acancel := context.WithCancel(context.Background())
	go as.Serve(actx, l)
	e.authStop = acancel
	e.start()
	t.Cleanup(func() {
		e.stop()
		acancel()
	})
	return e
}

func (e *testEnv) start() {
	e.t.Helper()
	srv, err := New(e.cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		e.t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.srv, e.addr, e.pop3Addr, e.cancel, e.done = srv, l.Addr().String(), pl.Addr().String(), cancel, make(chan error, 1)
	go func() { e.done <- srv.Run(ctx, map[string]net.Listener{"imap": l, "pop3": pl}) }()
}

func (e *testEnv) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	<-e.done
	e.cancel = nil
}

// client is a raw IMAP connection.
type client struct {
	t   testing.TB
	c   net.Conn
	r   *bufio.Reader
	n   int
	log []string
}

func (e *testEnv) dial() *client {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	cl := &client{t: e.t, c: c, r: bufio.NewReader(c)}
	if l := cl.line(); !strings.HasPrefix(l, "* OK") {
		e.t.Fatalf("greeting %q", l)
	}
	return cl
}

func (e *testEnv) login(user string) *client {
	c := e.dial()
	c.ok("LOGIN " + user + "@example.test pw")
	return c
}

// line reads one response line, with any literal in it.
func (c *client) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading: %v (after %q)", err, c.log)
		}
		b.WriteString(l)
		if m := literalRe.FindStringSubmatch(l); m != nil {
			var n int
			fmt.Sscan(m[1], &n)
			buf := make([]byte, n)
			if _, err := io.ReadFull(c.r, buf); err != nil {
				c.t.Fatal(err)
			}
			b.Write(buf)
			continue
		}
		s := strings.TrimRight(b.String(), "\r\n")
		c.log = append(c.log, s)
		return s
	}
}

var literalRe = regexp.MustCompile(`\{(\d+)\+?\}\r\n$`)

// cmd sends a command and returns the untagged responses and the tagged status.
func (c *client) cmd(text string) (untagged []string, status string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.send(tag + " " + text + "\r\n")
	for {
		l := c.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, l[len(tag)+1:]
		}
		untagged = append(untagged, l)
	}
}

func (c *client) send(s string) {
	c.log = append(c.log, "C: "+s)
	if _, err := c.c.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) ok(text string) []string {
	c.t.Helper()
	u, st := c.cmd(text)
	if !strings.HasPrefix(st, "OK") {
		c.t.Fatalf("%s: %s (%q)", text, st, u)
	}
	return u
}

func (c *client) no(text string) string {
	c.t.Helper()
	_, st := c.cmd(text)
	if !strings.HasPrefix(st, "NO") && !strings.HasPrefix(st, "BAD") {
		c.t.Errorf("%s: %s, want NO or BAD", text, st)
	}
	return st
}

func hasLine(lines []string, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, l := range lines {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

func (c *client) appendMsg(box, flags, msg string) {
	c.t.Helper()
	if flags != "" {
		flags += " "
	}
	c.ok(fmt.Sprintf("APPEND %s %s{%d+}\r\n%s", box, flags, len(msg), msg))
}

// appendMsgs appends one message per subject to INBOX, each with the body "x".
func (c *client) appendMsgs(subjects ...string) {
	for _, s := range subjects {
		c.appendMsg("INBOX", "", msg(s, "x\r\n"))
	}
}

// twoSessions logs user a in twice after appending one message "one" to INBOX,
// and has both sessions select INBOX: the start of the tests of what one session's
// change shows in the other.
func (e *testEnv) twoSessions() (a, b *client) {
	a = e.login("a")
	a.appendMsg("INBOX", "", msg("one", "x\r\n"))
	a.ok("SELECT INBOX")
	b = e.login("a")
	b.ok("SELECT INBOX")
	return a, b
}

func msg(subject, body string) string {
	return "From: Alice <alice@other.test>\r\nTo: a@example.test\r\nSubject: " + subject +
		"\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <" + subject + "@other.test>\r\n\r\n" + body
}

func TestSession(t *testing.T) {
	e := newTestEnv(t)
	c := e.dial()
	u, _ := c.cmd("CAPABILITY")
	if !hasLine(u, `IMAP4rev2`) || !hasLine(u, `AUTH=PLAIN`) || hasLine(u, `LOGINDISABLED`) {
		t.Errorf("capabilities from loopback without TLS: %q", u)
	}
	c.no("LOGIN a@example.test wrong")
	c.ok("LOGIN a@example.test pw")
	c.appendMsg("INBOX", `(\Seen)`, msg("one", "the first body\r\n"))
	c.appendMsg("INBOX", "", msg("two", "second, with a needle\r\n"))
	c.appendMsg("INBOX", "(\\Flagged $Work)", msg("three", "third\r\n"))
	// Messages APPENDed while no session had INBOX selected are \Recent to the first
	// that selects it (RFC 3501 §2.3.2).
	u = c.ok("SELECT INBOX")
	if !hasLine(u, `^\* 3 RECENT$`) {
		t.Errorf("SELECT: %q", u)
	}
	if !hasLine(u, `^\* 3 EXISTS$`) || !hasLine(u, `UIDNEXT 4`) || !hasLine(u, `UNSEEN 2`) {
		t.Errorf("SELECT: %q", u)
	}
	u = c.ok("FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)")
	if !hasLine(u, `^\* 1 FETCH \(UID 1 FLAGS \(\\Seen \\Recent\) RFC822.SIZE \d+ ENVELOPE \("Mon, 02 Jan 2006 15:04:05 \+0000" "one" \(\("Alice" NIL "alice" "other.test"\)\)`) ||
		!hasLine(u, `^\* 3 FETCH \(UID 3 FLAGS \(\\Flagged \$Work \\Recent\)`) {
		t.Errorf("FETCH: %q", u)
	}
	u = c.ok("UID FETCH 2 (BODY[TEXT])")
	if !hasLine(u, `^\* 2 FETCH \(UID 2 FLAGS \(\\Seen \\Recent\) BODY\[TEXT\] \{23\}\r\nsecond, with a needle\r\n\)$`) {
		t.Errorf("BODY[TEXT]: %q", u)
	}
	u = c.ok("SEARCH TEXT needle")
	if !hasLine(u, `^\* SEARCH 2$`) {
		t.Errorf("SEARCH TEXT: %q", u)
	}
	u = c.ok("UID SEARCH RETURN (MIN MAX COUNT) OR FLAGGED SUBJECT one")
	if !hasLine(u, `^\* ESEARCH \(TAG "t\d+"\) UID MIN 1 MAX 3 COUNT 2$`) {
		t.Errorf("ESEARCH: %q", u)
	}
	u = c.ok("STORE 1:2 +FLAGS (\\Deleted)")
	if !hasLine(u, `^\* 1 FETCH \(UID 1 FLAGS \(\\Seen \\Deleted \\Recent\)\)$`) {
		t.Errorf("STORE: %q", u)
	}
	u = c.ok("UID EXPUNGE 2")
	// The expunged message was \Recent: the new count follows (RFC 3501 §7.3.2).
	if !hasLine(u, `^\* 2 EXPUNGE$`) || !hasLine(u, `^\* 2 RECENT$`) || len(u) != 2 {
		t.Errorf("UID EXPUNGE: %q", u)
	}
	u = c.ok("MOVE 1 Trash")
	if !hasLine(u, `^\* OK \[COPYUID \d+ 1 1\]`) || !hasLine(u, `^\* 1 EXPUNGE$`) {
		t.Errorf("MOVE: %q", u)
	}
	c.ok("LOGOUT")

	// A restart keeps UIDVALIDITY, UIDs and flags.
	e.stop()
	e.start()
	c = e.login("a")
	u = c.ok("SELECT INBOX")
	if !hasLine(u, `^\* 1 EXISTS$`) || !hasLine(u, `UIDNEXT 4`) {
		t.Errorf("SELECT after restart: %q", u)
	}
	u = c.ok("FETCH 1 (UID FLAGS)")
	if !hasLine(u, `^\* 1 FETCH \(UID 3 FLAGS \(\\Flagged \$Work\)\)$`) {
		t.Errorf("after restart: %q", u)
	}
	// The flags are in the file name, for Dovecot; the keyword through dovecot-keywords.
	names, _ := filepath.Glob(filepath.Join(e.maildir("a"), "cur", "*"))
	if len(names) != 1 || !strings.HasSuffix(names[0], ":2,Fa") {
		t.Errorf("cur/: %q", names)
	}
	kw, _ := os.ReadFile(filepath.Join(e.maildir("a"), "dovecot-keywords"))
	if string(kw) != "0 $Work\n" {
		t.Errorf("dovecot-keywords: %q", kw)
	}
	ul, _ := os.ReadFile(filepath.Join(e.maildir("a"), "dovecot-uidlist"))
	if !regexp.MustCompile(`^3 V\d+ N4\n3 :\S+,S=\d+\n$`).Match(ul) {
		t.Errorf("dovecot-uidlist: %q", ul)
	}
}

// New mail in new/ reaches an IDLE session within a second; changes made by one session
// reach the others.
func TestIdleAndOtherSessions(t *testing.T) {
	e := newTestEnv(t)
	a, b := e.twoSessions()
	b.send("i1 IDLE\r\n")
	if l := b.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	// With inotify there is no polling of new/ at all, so the EXISTS below can only
	// come from the kernel's event for local's rename, not from a timer.
	if e.srv.watcher == nil {
		t.Fatal("no inotify watcher: new mail would only be found by polling")
	}
	if _, _, err := maildir.Deliver(e.maildir("a"), strings.NewReader(msg("two", "y\r\n"))); err != nil {
		t.Fatal(err)
	}
	if l := b.line(); l != "* 2 EXISTS" {
		t.Errorf("IDLE got %q, want * 2 EXISTS", l)
	}
	b.line() // * 1 RECENT
	// A flag change and an expunge by the other session.
	if u := a.ok("STORE 1 +FLAGS (\\Deleted)"); !hasLine(u, `^\* 2 EXISTS$`) {
		t.Errorf("the other session did not hear of the new message: %q", u)
	}
	if l := b.line(); l != `* 1 FETCH (UID 1 FLAGS (\Deleted))` {
		t.Errorf("IDLE got %q, want the flag change", l)
	}
	a.ok("EXPUNGE")
	if l := b.line(); l != "* 1 EXPUNGE" {
		t.Errorf("IDLE got %q, want * 1 EXPUNGE", l)
	}
	b.send("DONE\r\n")
	if l := b.line(); !strings.HasPrefix(l, "i1 OK") {
		t.Errorf("DONE: %q", l)
	}
}

// No mailbox name leaves the account's Maildir, and one user cannot reach another's.
func TestMailboxNameSafety(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	e.login("b").ok("CREATE Secret")
	for _, name := range []string{`".."`, `"../b"`, `"a/../../b"`, `".hidden"`, `"a/.b"`, `"/abs"`, `"a//b"`,
		`"x\001y"`, `"` + strings.Repeat("x", 300) + `"`, `"../../example.test/b/.Secret"`, `"*"`, `"%"`} {
		c.no("CREATE " + name)
		c.no("SELECT " + name)
		c.no("RENAME Sent " + name)
	}
	// Literal names can carry what quoted strings cannot.
	c.no("CREATE {4+}\r\na\nb\x00")
	ents, _ := os.ReadDir(filepath.Join(e.cfg.MailDir(), "example.test"))
	for _, en := range ents {
		if en.Name() != "a" && en.Name() != "b" {
			t.Errorf("something was created beside the Maildirs: %s", en.Name())
		}
	}
	mine, _ := os.ReadDir(e.maildir("a"))
	for _, en := range mine {
		if strings.HasPrefix(en.Name(), ".") && !strings.HasPrefix(en.Name(), ".postern") {
			switch en.Name() {
			case ".Sent", ".Drafts", ".Junk", ".Trash", ".Archive":
			default:
				t.Errorf("unexpected folder %s", en.Name())
			}
		}
	}
	u := c.ok(`LIST "" "*"`)
	if hasLine(u, "Secret") {
		t.Errorf("a sees b's folder: %q", u)
	}
	c.no("SELECT Secret")
}

// A Maildir that Dovecot kept: its dovecot-uidlist gives the UIDs.
func TestDovecotImport(t *testing.T) {
	e := newTestEnv(t)
	root := e.maildir("a")
	if err := maildir.Create(root, maildir.DefaultFolders); err != nil {
		t.Fatal(err)
	}
	files := []string{"1700000000.M1P1.host,S=10", "1700000001.M1P1.host,S=10", "1700000002.M1P1.host,S=10"}
	for i, f := range files {
		name := f + ":2,"
		if i == 1 {
			name += "S"
		}
		os.WriteFile(filepath.Join(root, "cur", name), []byte(msg(fmt.Sprint(i), "z\r\n")), 0o600)
	}
	uidlist := "3 V1234 N50 Gabc\n7 :" + files[0] + "\n9 W200 :" + files[1] + "\n"
	os.WriteFile(filepath.Join(root, "dovecot-uidlist"), []byte(uidlist), 0o600)
	c := e.login("a")
	u := c.ok("SELECT INBOX")
	if !hasLine(u, `UIDVALIDITY 1234\]`) || !hasLine(u, `UIDNEXT 51\]`) {
		t.Errorf("SELECT: %q", u)
	}
	u = c.ok("FETCH 1:* (UID FLAGS)")
	for _, want := range []string{`^\* 1 FETCH \(UID 7 FLAGS \(\)\)`, `^\* 2 FETCH \(UID 9 FLAGS \(\\Seen\)\)`, `^\* 3 FETCH \(UID 50 FLAGS \(\)\)`} {
		if !hasLine(u, want) {
			t.Errorf("FETCH lacks %s: %q", want, u)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{"*", "a/b", true}, {"%", "a/b", false}, {"%", "a", true}, {"a/%", "a/b", true},
		{"a/%", "a/b/c", false}, {"a*", "a/b/c", true}, {"inbox", "INBOX", true},
		{"Inbox/%", "INBOX/x", true}, {"a%c", "abc", true}, {"a%c", "a/c", false}, {"", "a", false},
	} {
		if got := match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("match(%q, %q) = %v", tt.pattern, tt.name, got)
		}
	}
}

func TestFileNames(t *testing.T) {
	mb := &Mailbox{kwLetters: []string{"$Junk", "Work"}}
	m := &message{base: "1.M2.host,S=5", flags: flagSeen | flagDraft | flagAnswered, keywords: []string{"Work", "Zzz"}}
	name := mb.fileName(m)
	if name != "1.M2.host,S=5:2,DRSb" {
		t.Errorf("fileName %q", name)
	}
	base, flags, kws := mb.parseFileName(name)
	if base != m.base || flags != m.flags || len(kws) != 1 || kws[0] != "Work" {
		t.Errorf("parseFileName: %q %v %q", base, flags, kws)
	}
	r, err := unmarshalMessage(7, m.marshal())
	if err != nil || r.base != m.base || r.flags != m.flags || len(r.keywords) != 2 || r.uid != 7 {
		t.Errorf("record round trip: %+v %v", r, err)
	}
	// Every flag pkg/maildir's table has: its letter in the name, its IMAP name (but P's)
	// in FETCH FLAGS.
	all := &message{base: "1.M3.host", flags: flagSeen | flagAnswered | flagFlagged | flagDeleted | flagDraft | flagPassed}
	if name := mb.fileName(all); name != "1.M3.host:2,DFPRST" {
		t.Errorf("fileName %q", name)
	}
	if _, flags, _ := mb.parseFileName("1.M3.host:2,DFPRST"); flags != all.flags {
		t.Errorf("parseFileName: flags %b, want %b", flags, all.flags)
	}
	if got := string(all.appendFlags(nil, false)); got != `(\Draft \Flagged \Answered \Seen \Deleted)` {
		t.Errorf("appendFlags %s", got)
	}
}

// Stopping the daemon ends every session with BYE (RFC 3501 §7.1.5), idle or not.
func TestShutdownBye(t *testing.T) {
	e := newTestEnv(t)
	waiting := e.login("a")
	idling := e.login("a")
	idling.ok("SELECT INBOX")
	idling.send("i IDLE\r\n")
	idling.line()
	e.stop()
	for _, c := range []*client{waiting, idling} {
		if l := c.line(); l != "* BYE Server shutting down" {
			t.Errorf("at shutdown: %q", l)
		}
	}
}

// A copy answers FETCH and SEARCH as its original does: it takes over the original's
// cache records (ENVELOPE, BODYSTRUCTURE, search text) instead of parsing its file.
func TestCopyKeepsCache(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	c.appendMsg("INBOX", "", "From: Bob <bob@other.test>\r\nSubject: copied\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n"+
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"+
		"--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGlkZGVuIG5lZWRsZTwvYj4=\r\n--b--\r\n")
	c.ok("SELECT INBOX")
	const items = "(ENVELOPE BODYSTRUCTURE RFC822.SIZE)"
	orig := c.ok("FETCH 1 " + items)
	c.ok("COPY 1 Trash")
	c.ok("SELECT Trash")
	copied := c.ok("FETCH 1 " + items)
	if len(orig) != 1 || !strings.Contains(orig[0], "BODYSTRUCTURE") || !reflect.DeepEqual(orig, copied) {
		t.Errorf("FETCH of the copy %q, of the original %q", copied, orig)
	}
	if u := c.ok("SEARCH BODY needle SENTON 2-Jan-2006 FROM bob"); !hasLine(u, `^\* SEARCH 1$`) {
		t.Errorf("SEARCH in the copy: %q", u)
	}
	if u := c.ok("SEARCH BODY absent"); !hasLine(u, `^\* SEARCH$`) {
		t.Errorf("SEARCH BODY absent: %q", u)
	}
}

package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"postern/pkg/config"
)

// popClient is a raw POP3 connection.
type popClient struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func (e *testEnv) popDial() *popClient {
	e.t.Helper()
	c, err := net.Dial("tcp", e.pop3Addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	p := &popClient{t: e.t, c: c, r: bufio.NewReader(c)}
	if l := p.line(); !strings.HasPrefix(l, "+OK") {
		e.t.Fatalf("POP3 greeting %q", l)
	}
	return p
}

// popLogin logs user in over POP3 with USER and PASS.
func (e *testEnv) popLogin(user string) *popClient {
	e.t.Helper()
	p := e.popDial()
	p.ok("USER " + user + "@example.test")
	p.ok("PASS pw")
	return p
}

func (p *popClient) line() string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("reading a POP3 response: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		p.t.Fatalf("POP3 line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (p *popClient) send(s string) {
	p.t.Helper()
	if _, err := p.c.Write([]byte(s + "\r\n")); err != nil {
		p.t.Fatal(err)
	}
}

// cmd sends a command and returns the status line.
func (p *popClient) cmd(s string) string {
	p.t.Helper()
	p.send(s)
	return p.line()
}

func (p *popClient) ok(s string) string {
	p.t.Helper()
	l := p.cmd(s)
	if !strings.HasPrefix(l, "+OK") {
		p.t.Fatalf("%s: %q, want +OK", s, l)
	}
	return l
}

func (p *popClient) err(s string) string {
	p.t.Helper()
	l := p.cmd(s)
	if !strings.HasPrefix(l, "-ERR") {
		p.t.Fatalf("%s: %q, want -ERR", s, l)
	}
	return l
}

// multi sends a command with a multi-line answer and returns its lines as sent
// (byte-stuffed), without the final ".".
func (p *popClient) multi(s string) []string {
	p.t.Helper()
	p.ok(s)
	var lines []string
	for {
		l := p.line()
		if l == "." {
			return lines
		}
		lines = append(lines, l)
	}
}

// selectInfo returns INBOX's UIDVALIDITY and the UIDs and RFC822.SIZEs of its messages,
// as IMAP gives them.
func selectInfo(t *testing.T, c *client) (validity uint32, uids []uint32, sizes []int64) {
	t.Helper()
	u := c.ok("SELECT INBOX")
	for _, l := range u {
		if m := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 32)
			validity = uint32(v)
		}
	}
	for _, l := range c.ok("FETCH 1:* (UID RFC822.SIZE)") {
		var seq, uid uint32
		var size int64
		if _, err := fmt.Sscanf(l, "* %d FETCH (UID %d RFC822.SIZE %d)", &seq, &uid, &size); err == nil {
			uids, sizes = append(uids, uid), append(sizes, size)
		}
	}
	return validity, uids, sizes
}

// TestPOP3Session runs a whole POP3 session beside an IMAP session on the same INBOX:
// sizes and UIDLs agree with IMAP's RFC822.SIZE, UIDs and UIDVALIDITY, RETR sends the
// message byte-stuffed with CRLF line endings, TOP cuts the body, DELE hides a message
// only in the POP3 session until QUIT, and QUIT expunges it where IMAP sees it.
func TestPOP3Session(t *testing.T) {
	e := newTestEnv(t)
	// A message local delivered with bare LF line endings, the first of the INBOX.
	bare := "From: b@other.test\nSubject: three\n\nbare\n.LF\n"
	os.MkdirAll(filepath.Join(e.maildir("a"), "new"), 0o700)
	if err := os.WriteFile(filepath.Join(e.maildir("a"), "new", "1700000000.M1P1.host"), []byte(bare), 0o600); err != nil {
		t.Fatal(err)
	}
	imap := e.login("a")
	imap.appendMsg("INBOX", "", msg("one", "first\r\n.dotted line\r\n..two dots\r\n"))
	imap.appendMsg("INBOX", "", msg("two", "l1\r\nl2\r\nl3\r\n"))
	validity, uids, sizes := selectInfo(t, imap)
	if len(uids) != 3 {
		t.Fatalf("IMAP sees %d messages, want 3", len(uids))
	}

	p := e.popDial()
	caps := p.multi("CAPA")
	for _, want := range []string{"TOP", "UIDL", "USER", "SASL PLAIN", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"} {
		if !strings.Contains(strings.Join(caps, "\n")+"\n", want+"\n") {
			t.Errorf("CAPA lacks %s: %q", want, caps)
		}
	}
	p.err("STAT") // not before login
	p.ok("USER a@example.test")
	if l := p.err("PASS wrong"); l != "-ERR [AUTH] Authentication failed" {
		t.Errorf("wrong password: %q", l)
	}
	p.err("PASS pw") // USER is forgotten after a failed PASS
	p.ok("USER a@example.test")
	if l := p.ok("PASS pw"); !strings.Contains(l, "3 messages") {
		t.Errorf("PASS: %q", l)
	}
	var total int64
	for _, s := range sizes {
		total += s
	}
	if l := p.ok("STAT"); l != fmt.Sprintf("+OK 3 %d", total) {
		t.Errorf("STAT: %q, want 3 %d", l, total)
	}
	list := p.multi("LIST")
	uidl := p.multi("UIDL")
	for i := range uids {
		if want := fmt.Sprintf("%d %d", i+1, sizes[i]); list[i] != want {
			t.Errorf("LIST line %d: %q, want %q", i+1, list[i], want)
		}
		if want := fmt.Sprintf("%d %08X%08X", i+1, uids[i], validity); uidl[i] != want {
			t.Errorf("UIDL line %d: %q, want %q", i+1, uidl[i], want)
		}
	}
	if l := p.ok("UIDL 2"); l != fmt.Sprintf("+OK 2 %08X%08X", uids[1], validity) {
		t.Errorf("UIDL 2: %q", l)
	}

	// RETR: byte-stuffed, CRLF, and as long as LIST said once the dots are taken off.
	body := p.multi("RETR 2")
	text := strings.Join(body, "\r\n") + "\r\n"
	if !strings.Contains(text, "\r\n..dotted line\r\n...two dots\r\n") {
		t.Errorf("RETR 1 is not byte-stuffed: %q", text)
	}
	unstuffed := regexp.MustCompile(`(?m)^\.`).ReplaceAllString(text, "")
	if int64(len(unstuffed)) != sizes[1] || unstuffed != msg("one", "first\r\n.dotted line\r\n..two dots\r\n") {
		t.Errorf("RETR 2 gave %d octets %q, want the message of %d", len(unstuffed), unstuffed, sizes[1])
	}
	bareOut := strings.Join(p.multi("RETR 1"), "\r\n") + "\r\n"
	if bareOut != "From: b@other.test\r\nSubject: three\r\n\r\nbare\r\n..LF\r\n" || int64(len(bareOut)-1) != sizes[0] {
		t.Errorf("RETR 1 of a bare-LF file: %q (size %d)", bareOut, sizes[0])
	}
	top := p.multi("TOP 3 1")
	if n := len(top); n < 2 || top[n-1] != "l1" || top[n-2] != "" {
		t.Errorf("TOP 3 1: %q", top)
	}
	if top := p.multi("TOP 3 0"); top[len(top)-1] != "" || strings.Contains(strings.Join(top, "\n"), "l1") {
		t.Errorf("TOP 3 0: %q", top)
	}

	// DELE marks; RSET unmarks; nothing reaches IMAP before QUIT.
	p.ok("DELE 2")
	p.err("DELE 2")
	p.err("RETR 2")
	p.err("LIST 2")
	if l := p.ok("STAT"); l != fmt.Sprintf("+OK 2 %d", total-sizes[1]) {
		t.Errorf("STAT after DELE: %q", l)
	}
	p.ok("RSET")
	p.ok("LIST 2")
	p.ok("DELE 2")
	p.ok("DELE 3")
	p.err("RETR 4")
	if u := imap.ok("NOOP"); hasLine(u, "EXPUNGE") {
		t.Errorf("IMAP saw an EXPUNGE before QUIT: %q", u)
	}
	if l := p.ok("QUIT"); !strings.Contains(l, "2 messages deleted") {
		t.Errorf("QUIT: %q", l)
	}
	u := imap.ok("NOOP")
	if !hasLine(u, `^\* 2 EXPUNGE$`) || len(u) < 2 {
		t.Errorf("IMAP after QUIT: %q, want two EXPUNGE", u)
	}
	// The message retrieved and kept is \Seen now.
	u = imap.ok("FETCH 1 (UID FLAGS)")
	if !hasLine(u, fmt.Sprintf(`^\* 1 FETCH \(UID %d FLAGS \(\\Seen`, uids[0])) {
		t.Errorf("the message retrieved: %q, want UID %d \\Seen", u, uids[0])
	}
	files, _ := os.ReadDir(filepath.Join(e.maildir("a"), "cur"))
	if len(files) != 1 {
		t.Errorf("%d files left in cur/, want 1", len(files))
	}
	// UIDL is stable across sessions.
	p = e.popLogin("a")
	if l := p.ok("UIDL 1"); l != fmt.Sprintf("+OK 1 %08X%08X", uids[0], validity) {
		t.Errorf("UIDL in the next session: %q", l)
	}
}

// TestPOP3ExpungedMeanwhile: a message an IMAP session expunges during a POP3 session is
// -ERR to RETR and TOP, and QUIT still succeeds.
func TestPOP3ExpungedMeanwhile(t *testing.T) {
	e := newTestEnv(t)
	imap := e.login("a")
	imap.appendMsgs("one", "two")
	p := e.popLogin("a")
	imap.ok("SELECT INBOX")
	imap.ok("STORE 1 +FLAGS (\\Deleted)")
	imap.ok("EXPUNGE")
	if l := p.err("RETR 1"); !strings.Contains(l, "expunged") {
		t.Errorf("RETR of an expunged message: %q", l)
	}
	p.err("TOP 1 0")
	p.multi("RETR 2")
	p.ok("DELE 1")
	p.ok("DELE 2")
	p.ok("QUIT")
	if u := imap.ok("NOOP"); !hasLine(u, `^\* 1 EXPUNGE$`) {
		t.Errorf("IMAP after QUIT: %q", u)
	}
	if u := imap.ok("STATUS INBOX (MESSAGES)"); !hasLine(u, `MESSAGES 0`) {
		t.Errorf("STATUS: %q", u)
	}
}

// TestPOP3Locking: one POP3 session per maildrop ([IN-USE], RFC 2449 §8.1.2), while
// IMAP sessions go on; a session that ends without QUIT deletes nothing (RFC 1939 §6).
func TestPOP3Locking(t *testing.T) {
	e := newTestEnv(t)
	imap := e.login("a")
	imap.appendMsgs("one")
	p := e.popLogin("a")
	q := e.popDial()
	q.ok("USER a@example.test")
	if l := q.err("PASS pw"); !strings.HasPrefix(l, "-ERR [IN-USE]") {
		t.Errorf("a second POP3 session: %q", l)
	}
	e.popLogin("b").ok("QUIT") // another account is not locked
	imap.ok("SELECT INBOX")
	p.ok("DELE 1")
	p.c.Close() // no QUIT
	q.ok("USER a@example.test")
	// The server may take a moment to see the connection closed.
	for i := 0; ; i++ {
		l := q.cmd("PASS pw")
		if strings.HasPrefix(l, "+OK") {
			break
		}
		if !strings.HasPrefix(l, "-ERR [IN-USE]") || i == 100 {
			t.Fatalf("PASS after the first session ended: %q", l)
		}
		time.Sleep(20 * time.Millisecond)
		q.ok("USER a@example.test")
	}
	if l := q.ok("STAT"); !strings.HasPrefix(l, "+OK 1 ") {
		t.Errorf("after a session ended without QUIT: %q, want the message kept", l)
	}
	if u := imap.ok("NOOP"); hasLine(u, "EXPUNGE") {
		t.Errorf("IMAP saw an EXPUNGE: %q", u)
	}
}

// TestPOP3BadInput: lines too long, unknown commands, commands out of state and bad
// arguments get -ERR and the session goes on; too many end it.
func TestPOP3BadInput(t *testing.T) {
	e := newTestEnv(t)
	p := e.popDial()
	p.err(strings.Repeat("x", 5000))
	p.err("FROB")
	p.err("RETR 1")
	p.err("PASS pw")
	p.err("AUTH CRAM-MD5")
	p.err("USER")
	p.err("NOOP x")
	p.send(strings.Repeat("BAD\r\n", 24) + "BAD")
	for i := 0; ; i++ {
		p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := p.r.ReadString('\n')
		if err != nil {
			break // closed
		}
		if i > 30 {
			t.Fatalf("still answering after %d invalid commands: %q", i, l)
		}
	}
	p = e.popLogin("a")
	p.err("USER a@example.test") // not after login
	p.err("STLS")
	p.err("LIST 1 2")
	p.err("TOP 1")
	p.err("LIST 0")
	p.ok("NOOP")
	p.ok("QUIT")
}

// TestPOP3Auth: AUTH PLAIN with an initial response, with a continuation, cancelled, and
// throttled by authd ([SYS/TEMP], not [AUTH]).
func TestPOP3Auth(t *testing.T) {
	e := newTestEnv(t)
	p := e.popDial()
	if l := p.multi("AUTH"); len(l) != 1 || l[0] != "PLAIN" {
		t.Errorf("AUTH: %q", l)
	}
	plain := func(u, pw string) string { return base64.StdEncoding.EncodeToString([]byte("\x00" + u + "\x00" + pw)) }
	if l := p.err("AUTH PLAIN " + plain("a@example.test", "wrong")); l != "-ERR [AUTH] Authentication failed" {
		t.Errorf("wrong password: %q", l)
	}
	if l := p.err("AUTH PLAIN " + plain("throttled@example.test", "pw")); !strings.HasPrefix(l, "-ERR [SYS/TEMP] Too many failed logins; try again in 42 seconds") {
		t.Errorf("throttled: %q", l)
	}
	p = e.popDial()
	if l := p.cmd("AUTH PLAIN"); l != "+ " {
		t.Fatalf("AUTH PLAIN without initial response: %q", l)
	}
	if l := p.err("*"); !strings.Contains(l, "cancelled") {
		t.Errorf("cancel: %q", l)
	}
	if l := p.cmd("AUTH PLAIN"); l != "+ " {
		t.Fatalf("AUTH PLAIN: %q", l)
	}
	p.ok(plain("a@example.test", "pw"))
	p.ok("STAT")
	p.ok("QUIT")
	p = e.popDial()
	p.ok("AUTH PLAIN " + plain("b@example.test", "pw"))
	p.ok("STAT")
}

// TestPOP3Cleartext: off loopback and without TLS, neither USER/PASS nor AUTH is
// accepted and CAPA offers neither (as imapd's LOGINDISABLED).
func TestPOP3Cleartext(t *testing.T) {
	e := newTestEnv(t)
	server, client := net.Pipe()
	sess := newPOP3Session(e.srv, server, netip.MustParseAddr("192.0.2.7"), listenPOP3, false)
	go sess.serve()
	defer client.Close()
	p := &popClient{t: t, c: client, r: bufio.NewReader(client)}
	p.line()
	caps := strings.Join(p.multi("CAPA"), "\n")
	if strings.Contains(caps, "USER") || strings.Contains(caps, "SASL") {
		t.Errorf("CAPA offers passwords in cleartext: %q", caps)
	}
	if l := p.err("USER a@example.test"); !strings.Contains(l, "[AUTH]") || !strings.Contains(l, "STLS") {
		t.Errorf("USER in cleartext: %q", l)
	}
	p.err("PASS pw")
	if l := p.err("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00a@example.test\x00pw"))); !strings.Contains(l, "TLS") {
		t.Errorf("AUTH in cleartext: %q", l)
	}
	p.ok("QUIT")
}

// TestPOP3LoginTimeout: a connection that does not log in is closed at the login
// timeout, with -ERR.
func TestPOP3LoginTimeout(t *testing.T) {
	e := newTestEnv(t)
	e.stop()
	e.cfg.IMAPD.LoginTimeout = config.Duration(300 * time.Millisecond)
	e.start()
	p := e.popDial()
	if l := p.line(); !strings.HasPrefix(l, "-ERR") || !strings.Contains(l, "Autologout") {
		t.Errorf("at the timeout: %q", l)
	}
	if _, err := p.r.ReadString('\n'); err == nil {
		t.Error("the connection stays open after the timeout")
	}
}

// FuzzPOP3Session sends arbitrary bytes to a logged-in POP3 session: no command may
// panic (the session answers "Internal error" when one does) and the daemon keeps
// serving.
func FuzzPOP3Session(f *testing.F) {
	for _, s := range []string{
		"STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 1 0\r\n",
		"DELE 1\r\nRSET\r\nDELE 2\r\nLIST 2\r\nQUIT\r\n",
		"TOP 2 99999\r\nRETR 99999999\r\nLIST 0\r\nUIDL 3\r\n",
		"AUTH PLAIN\r\n*\r\nSTLS\r\nCAPA\r\nUSER x\r\n",
		"\x00\xff\r\n" + strings.Repeat("y", 3000) + "\r\nNOOP\r\n",
	} {
		f.Add([]byte(s))
	}
	e := newTestEnv(f)
	setup := e.login("a")
	f.Fuzz(func(t *testing.T, in []byte) {
		setup.t = t
		if u := setup.ok("STATUS INBOX (MESSAGES)"); hasLine(u, `MESSAGES [01]\)`) {
			setup.appendMsgs("one", "two")
		}
		c, err := net.Dial("tcp", e.pop3Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		c.Write([]byte("USER a@example.test\r\nPASS pw\r\n"))
		c.Write(in)
		c.Write([]byte("\r\nQUIT\r\n"))
		for {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			l, err := r.ReadString('\n')
			if strings.Contains(l, "Internal error") {
				t.Fatalf("a POP3 command panicked on %q: %q", in, l)
			}
			if err != nil {
				break
			}
		}
		c.Close()
		// The daemon still serves.
		d, err := net.Dial("tcp", e.pop3Addr)
		if err != nil {
			t.Fatalf("imapd stopped accepting POP3 after %q: %v", in, err)
		}
		defer d.Close()
		d.SetDeadline(time.Now().Add(10 * time.Second))
		dr := bufio.NewReader(d)
		if l, err := dr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("no greeting after %q: %q %v", in, l, err)
		}
	})
}

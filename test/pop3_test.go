package test

// End-to-end tests of POP3 (RFC 1939), which imapd serves on the pop3 (STLS) and pop3s
// (implicit TLS) listeners: Python's poplib, fetchmail, and a POP3 session beside an
// IMAP session on the same INBOX.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// POP3Addr is the address of the instance's POP3 listener (cleartext, then STLS).
func (in *Instance) POP3Addr() string {
	return net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+110))
}

// POP3SAddr is the address of the instance's POP3 listener with implicit TLS.
func (in *Instance) POP3SAddr() string {
	return net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+995))
}

// popConn is a raw POP3 connection.
type popConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dialPOP3 connects to the pop3 listener, reads the greeting, and starts TLS with STLS.
func dialPOP3(t *testing.T, in *Instance) *popConn {
	t.Helper()
	var c net.Conn
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		// master starts imapd after smtpd: the listener is bound, imapd may not be up.
		if c, err = net.DialTimeout("tcp", in.POP3Addr(), time.Second); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dialing POP3 at %s: %v", in.POP3Addr(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { c.Close() })
	p := &popConn{t: t, c: c, r: bufio.NewReader(c)}
	if l := p.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("POP3 greeting: %q", l)
	}
	p.ok("STLS")
	tc := tls.Client(c, in.tlsConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS after STLS: %v", err)
	}
	p.c, p.r = tc, bufio.NewReader(tc)
	return p
}

func (p *popConn) line() string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("reading a POP3 response: %v", err)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (p *popConn) cmd(s string) string {
	p.t.Helper()
	if _, err := p.c.Write([]byte(s + "\r\n")); err != nil {
		p.t.Fatal(err)
	}
	return p.line()
}

func (p *popConn) ok(s string) string {
	p.t.Helper()
	l := p.cmd(s)
	if !strings.HasPrefix(l, "+OK") {
		p.t.Fatalf("POP3 %s: %q", s, l)
	}
	return l
}

// multi runs a command with a multi-line answer and returns its lines.
func (p *popConn) multi(s string) []string {
	p.t.Helper()
	p.ok(s)
	var out []string
	for l := p.line(); l != "."; l = p.line() {
		out = append(out, l)
	}
	return out
}

// deliver sends messages with the given subjects to demo@example.test one after the
// other, each delivered before the next is sent, so that their UIDs are in that order.
// It returns their Message-IDs.
func deliver(t *testing.T, in *Instance, subjects ...string) []string {
	t.Helper()
	var ids []string
	have := len(in.Messages("demo@example.test"))
	for i, s := range subjects {
		body := "first line\r\n.starts with a dot\r\n..two dots\r\nlast line\r\n"
		in.sendMail(t, "alice@other.test", "demo@example.test", testMessage(s, body))
		in.WaitMessages("demo@example.test", have+i+1, 30*time.Second)
		ids = append(ids, "<"+strings.ReplaceAll(strings.ToLower(s), " ", "-")+"@other.test>")
	}
	return ids
}

// imapUIDL returns what the UIDLs of INBOX's messages must be: the IMAP UID and
// UIDVALIDITY, "%08X%08X", in message order.
func imapUIDL(t *testing.T, c *imapclient.Client) []string {
	t.Helper()
	sel := selectBox(t, c, "INBOX", nil)
	if sel.NumMessages == 0 {
		return nil
	}
	var all imap.SeqSet
	all.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatalf("FETCH UID: %v", err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%08X%08X", uint32(m.UID), sel.UIDValidity))
	}
	return out
}

// TestPOP3PythonPoplib runs test/testdata/poplib_session.py: a session over STLS that
// retrieves every message and deletes the first, then one over implicit TLS that finds it
// gone and the other UIDLs unchanged. The UIDLs must be IMAP's UIDs and UIDVALIDITY.
func TestPOP3PythonPoplib(t *testing.T) {
	py := need(t, "python3", "python3")
	in := NewInstance(t, "")
	ids := deliver(t, in, "Pop one", "Pop two", "Pop three")
	host, stls, _ := net.SplitHostPort(in.POP3Addr())
	_, tlsPort, _ := net.SplitHostPort(in.POP3SAddr())
	dialPOP3(t, in).ok("QUIT") // imapd is up
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"testdata/poplib_session.py", host, stls, tlsPort, "demo@example.test", in.Password}, ids...)
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Env = append(os.Environ(), "POSTERN_CA="+in.Cfg.TLS.Cert)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "poplib session ok") {
		t.Fatalf("poplib_session.py: %v\n%s\n%s", err, out, tail(in.Log(), 30))
	}
	m := regexp.MustCompile(`(?m)^uidl (.*)$`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no UIDLs in the output:\n%s", out)
	}
	tg := imapTargetOf(t, in)
	want := imapUIDL(t, tg.login(t))
	if got := strings.Fields(m[1]); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("UIDLs %v, IMAP says %v", got, want)
	}
	if n := len(in.Messages("demo@example.test")); n != 2 {
		t.Errorf("%d messages in the Maildir after the DELE, want 2", n)
	}
}

// TestPOP3Fetchmail fetches with fetchmail over STLS into an MDA: once keeping the mail
// (UIDL remembered), once more finding nothing new (the UIDLs did not change), then
// fetching all and deleting, which empties the INBOX.
func TestPOP3Fetchmail(t *testing.T) {
	fm := need(t, "fetchmail", "fetchmail")
	in := NewInstance(t, "")
	ids := deliver(t, in, "Fetch one", "Fetch two")
	dialPOP3(t, in).ok("QUIT") // imapd is up
	home := t.TempDir()
	outDir := filepath.Join(home, "out")
	os.Mkdir(outDir, 0o700)
	host, port, _ := net.SplitHostPort(in.POP3Addr())
	run := func(keep string) (files []string) {
		t.Helper()
		rc := filepath.Join(home, "fetchmailrc")
		// sslproto without ssl: STLS, required (fetchmail(1)); the certificate is
		// checked against the instance's own, under its host name.
		conf := fmt.Sprintf(`set no bouncemail
poll %s with proto POP3 service %s uidl
  user "demo@example.test" there with password "%s"
  sslproto "tls1.2+" sslcertck sslcertfile "%s" sslcommonname "%s"
  %s
  mda "cat > %s/msg.$$"
`, host, port, in.Password, in.Cfg.TLS.Cert, in.Cfg.Hostname, keep, outDir)
		if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, fm, "--nodetach", "--nosyslog", "-v", "-f", rc, "-i", filepath.Join(home, "fetchids"))
		cmd.Env = append(os.Environ(), "HOME="+home, "FETCHMAILHOME="+home)
		out, err := cmd.CombinedOutput()
		// Exit 0: mail fetched; 1: no mail (fetchmail(1), EXIT CODES).
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
			t.Fatalf("fetchmail: %v\n%s\n%s", err, out, tail(in.Log(), 30))
		}
		if !strings.Contains(string(out), "STLS") {
			t.Errorf("fetchmail did not use STLS:\n%s", out)
		}
		t.Logf("fetchmail (%s):\n%s", keep, tail(string(out), 15))
		files, _ = filepath.Glob(filepath.Join(outDir, "msg.*"))
		for _, f := range files {
			os.Rename(f, filepath.Join(home, "got-"+keep+"-"+filepath.Base(f)))
		}
		return files
	}
	check := func(files []string) {
		t.Helper()
		seen := map[string]bool{}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			for _, id := range ids {
				if strings.Contains(s, "Message-ID: "+id) {
					seen[id] = true
				}
			}
			// The byte-stuffing is gone again.
			if !strings.Contains(s, "\n.starts with a dot\r\n..two dots\r\n") && !strings.Contains(s, "\n.starts with a dot\n..two dots\n") {
				t.Errorf("%s: the dot lines are not as sent:\n%s", f, s)
			}
		}
		if len(seen) != len(ids) {
			t.Errorf("fetched %v, want %v", seen, ids)
		}
	}
	files := run("keep")
	if len(files) != 2 {
		t.Fatalf("first fetch: %d messages, want 2", len(files))
	}
	if n := len(in.Messages("demo@example.test")); n != 2 {
		t.Errorf("%d messages left on the server after keep, want 2", n)
	}
	if files := run("keep"); len(files) != 0 {
		t.Errorf("second fetch with the same UIDLs: %d messages, want none", len(files))
	}
	files = run("fetchall nokeep")
	if len(files) != 2 {
		t.Fatalf("fetchall: %d messages, want 2", len(files))
	}
	for i := range files {
		files[i] = filepath.Join(home, "got-fetchall nokeep-"+filepath.Base(files[i]))
	}
	check(files)
	if n := len(in.Messages("demo@example.test")); n != 0 {
		t.Errorf("%d messages left on the server after nokeep, want none", n)
	}
}

// TestPOP3WithIMAP: an IMAP session has INBOX selected while a POP3 session (STLS) lists,
// deletes and quits. The UIDLs are IMAP's UIDs and UIDVALIDITY; nothing is expunged
// before QUIT; the IMAP session, in IDLE, gets the EXPUNGE at QUIT; a message the IMAP
// session expunged meanwhile is -ERR to the POP3 session.
func TestPOP3WithIMAP(t *testing.T) {
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	deliver(t, in, "Mixed one", "Mixed two", "Mixed three")
	expunged := make(chan uint32, 10)
	c := tg.loginAs(t, tg.user, tg.pass, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { expunged <- seq },
	}})
	want := imapUIDL(t, c)
	if len(want) != 3 {
		t.Fatalf("IMAP sees %d messages, want 3", len(want))
	}

	p := dialPOP3(t, in)
	p.ok("USER demo@example.test")
	p.ok("PASS " + in.Password)
	uidl := p.multi("UIDL")
	for i, l := range uidl {
		if i >= len(want) || l != fmt.Sprintf("%d %s", i+1, want[i]) {
			t.Errorf("UIDL line %d: %q, want %d %s", i+1, l, i+1, want[i])
		}
	}
	if len(uidl) != 3 {
		t.Fatalf("UIDL lists %d messages, want 3: %q", len(uidl), uidl)
	}
	p.ok("DELE 2")

	// The IMAP session expunges message 3: POP3 cannot retrieve it any more.
	if err := c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if l := p.cmd("RETR 3"); !strings.HasPrefix(l, "-ERR") {
		t.Errorf("RETR of a message IMAP expunged: %q", l)
	}
	drain := func() {
		for {
			select {
			case <-expunged:
			default:
				return
			}
		}
	}
	drain() // the session's own EXPUNGE
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case seq := <-expunged:
		t.Fatalf("IMAP saw EXPUNGE %d before the POP3 QUIT", seq)
	default:
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	if l := p.ok("QUIT"); !strings.Contains(l, "1 messages deleted") {
		t.Errorf("QUIT: %q", l)
	}
	select {
	case seq := <-expunged:
		if seq != 2 {
			t.Errorf("IMAP saw EXPUNGE %d, want 2", seq)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("IMAP in IDLE saw no EXPUNGE after the POP3 QUIT")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := imapUIDL(t, c); len(got) != 1 || got[0] != want[0] {
		t.Errorf("left in INBOX: %v, want %v", got, want[:1])
	}
	// The next POP3 session sees the message that is left, under the same UIDL.
	p = dialPOP3(t, in)
	p.ok("USER demo@example.test")
	p.ok("PASS " + in.Password)
	if l := p.ok("UIDL 1"); l != "+OK 1 "+want[0] {
		t.Errorf("UIDL 1 in a new session: %q, want %s", l, want[0])
	}
	p.ok("QUIT")
}

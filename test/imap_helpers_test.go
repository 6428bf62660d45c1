package test

// Helpers of the IMAP end-to-end tests (imap_*_test.go): they talk to imapd the way mail
// clients do — through the go-imap v2 client, a raw TCP/TLS connection for what that
// client cannot express, Python's imaplib and isync — and judge the answers by RFC 3501
// (IMAP4rev1), RFC 9051 (IMAP4rev2) and the extensions' RFCs, not by imapd's internals.
//
// The tests that need only one account can also run against another IMAP server, to check
// the tests themselves: POSTERN_IMAP_REFERENCE="plainhost:port,tlshost:port,user,password"
// (bench/imap/dovecot.sh starts a Dovecot that fits: 127.0.0.1:19143,127.0.0.1:19993,
// bench@example.test,bench). The account is emptied first.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// imapTarget is the IMAP server a test talks to, and the account it uses.
type imapTarget struct {
	t         *testing.T
	in        *Instance // nil when the target is a reference server
	plainAddr string    // port 143: cleartext, then STARTTLS
	tlsAddr   string    // port 993: implicit TLS
	tlsConfig *tls.Config
	user      string
	pass      string
}

// IMAPAddr is the address of the instance's IMAP listener (cleartext, STARTTLS).
func (in *Instance) IMAPAddr() string {
	return net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+143))
}

// IMAPSAddr is the address of the instance's IMAPS listener (implicit TLS).
func (in *Instance) IMAPSAddr() string {
	return net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+993))
}

// newIMAPTarget starts an instance (or picks the reference server, see above) and waits
// until imapd greets on both ports.
func newIMAPTarget(t *testing.T) *imapTarget {
	t.Helper()
	if ref := os.Getenv("POSTERN_IMAP_REFERENCE"); ref != "" {
		f := strings.Split(ref, ",")
		if len(f) != 4 {
			t.Fatalf("POSTERN_IMAP_REFERENCE=%q: want plainaddr,tlsaddr,user,password", ref)
		}
		tg := &imapTarget{t: t, plainAddr: f[0], tlsAddr: f[1], user: f[2], pass: f[3],
			tlsConfig: &tls.Config{InsecureSkipVerify: true}}
		tg.reset()
		return tg
	}
	return imapTargetOf(t, NewInstance(t, ""))
}

// needPostern skips a test that needs a Postern instance (SMTP delivery, a second account,
// the Maildir on disk) when the tests run against a reference server.
func needPostern(t *testing.T) {
	t.Helper()
	if os.Getenv("POSTERN_IMAP_REFERENCE") != "" {
		t.Skip("needs a Postern instance, not the reference server")
	}
}

// imapTargetOf waits until the instance's imapd greets and returns a target for
// demo@example.test.
func imapTargetOf(t *testing.T, in *Instance) *imapTarget {
	t.Helper()
	tg := &imapTarget{t: t, in: in, plainAddr: in.IMAPAddr(), tlsAddr: in.IMAPSAddr(),
		tlsConfig: in.tlsConfig(), user: "demo@example.test", pass: in.Password}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := imapGreets(tg.tlsAddr, tg.tlsConfig)
		if err == nil {
			err = imapGreets(tg.plainAddr, nil)
		}
		if err == nil {
			return tg
		}
		if time.Now().After(deadline) {
			t.Fatalf("imapd does not greet on %s and %s within 20s: %v\n%s", tg.plainAddr, tg.tlsAddr, err, tail(in.Log(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func imapGreets(addr string, tlsConfig *tls.Config) error {
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: time.Second}
	if tlsConfig != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, tlsConfig)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the greeting: %w", err)
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("greeting %q", line)
	}
	return nil
}

// reset empties the reference server's account: every message of every mailbox, and
// every mailbox but INBOX and the special-use ones.
func (tg *imapTarget) reset() {
	t := tg.t
	c := tg.login(t)
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	for i := len(list) - 1; i >= 0; i-- {
		l := list[i]
		switch l.Mailbox {
		case "INBOX", "Sent", "Drafts", "Junk", "Trash", "Archive":
			if _, err := c.Select(l.Mailbox, nil).Wait(); err != nil {
				continue
			}
			c.Store(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
			c.Expunge().Close()
			c.Unselect().Wait()
		default:
			c.Delete(l.Mailbox).Wait()
		}
	}
	c.Logout().Wait()
}

// transcript keeps the last 64 KiB of an IMAP conversation, to show when a test fails.
type transcript struct {
	mu  sync.Mutex
	buf []byte
}

func (w *transcript) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > 64<<10 {
		w.buf = append([]byte(nil), w.buf[len(w.buf)-48<<10:]...)
	}
	return len(p), nil
}

func (w *transcript) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// dial connects the go-imap client over implicit TLS, not logged in. The transcript of the
// session is logged if the test fails; the connection is closed when the test ends.
func (tg *imapTarget) dial(t *testing.T, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	o := tg.options(t, opts)
	c, err := imapclient.DialTLS(tg.tlsAddr, o)
	if err != nil {
		t.Fatalf("dialing %s: %v", tg.tlsAddr, err)
	}
	if err := c.WaitGreeting(); err != nil {
		t.Fatalf("greeting of %s: %v", tg.tlsAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (tg *imapTarget) options(t *testing.T, opts *imapclient.Options) *imapclient.Options {
	var o imapclient.Options
	if opts != nil {
		o = *opts
	}
	o.TLSConfig = tg.tlsConfig
	tr := &transcript{}
	if o.DebugWriter != nil {
		o.DebugWriter = io.MultiWriter(o.DebugWriter, tr)
	} else {
		o.DebugWriter = tr
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("IMAP transcript (tail):\n%s", tail(tr.String(), 60))
		}
	})
	return &o
}

// login dials and logs in as the target's account.
func (tg *imapTarget) login(t *testing.T) *imapclient.Client {
	t.Helper()
	return tg.loginAs(t, tg.user, tg.pass, nil)
}

// loginAs dials and logs in with LOGIN.
func (tg *imapTarget) loginAs(t *testing.T, user, pass string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c := tg.dial(t, opts)
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("LOGIN %s: %v", user, err)
	}
	return c
}

// addUser creates an account on the instance and returns its password.
func (in *Instance) addUser(t *testing.T, addr string) string {
	t.Helper()
	pass := "pw-" + strings.ReplaceAll(addr, "@", "-at-") + "-Xq7"
	in.Mailctl(pass+"\n", "user", "add", addr, "--password-stdin")
	return pass
}

// sendMail submits a message to the instance's MX listener with net/smtp (no TLS: the
// listener is on loopback) and returns once it is queued.
func (in *Instance) sendMail(t *testing.T, from, to, msg string) {
	t.Helper()
	c, err := smtp.Dial(in.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.other.test"); err != nil {
		t.Fatal(err)
	}
	if err := sendMessage(c, from, []string{to}, msg); err != nil {
		t.Fatal(err)
	}
	c.Quit()
}

// testMessage builds a small RFC 5322 message with CRLF line endings.
func testMessage(subject, body string, extra ...string) string {
	var b strings.Builder
	b.WriteString("From: Alice Example <alice@other.test>\r\n")
	b.WriteString("To: Demo User <demo@example.test>\r\n")
	b.WriteString("Subject: " + subject + "\r\n")
	b.WriteString("Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n")
	b.WriteString("Message-ID: <" + strings.ReplaceAll(strings.ToLower(subject), " ", "-") + "@other.test>\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

// appendMsg APPENDs a message and returns its UID (from APPENDUID, RFC 4315 §3).
func appendMsg(t *testing.T, c *imapclient.Client, mailbox, msg string, opts *imap.AppendOptions) imap.UID {
	t.Helper()
	uid, err := tryAppend(c, mailbox, msg, opts)
	if err != nil {
		t.Fatalf("APPEND %s: %v", mailbox, err)
	}
	return uid
}

// tryAppend is appendMsg for an APPEND that may fail: it returns the error, and may be
// called from any goroutine.
func tryAppend(c *imapclient.Client, mailbox, msg string, opts *imap.AppendOptions) (imap.UID, error) {
	cmd := c.Append(mailbox, int64(len(msg)), opts)
	_, werr := io.WriteString(cmd, msg)
	cerr := cmd.Close()
	// The server's answer (NO [TRYCREATE], NO [OVERQUOTA] ...) says more than a failed
	// write.
	data, err := cmd.Wait()
	switch {
	case err != nil:
		return 0, err
	case werr != nil:
		return 0, fmt.Errorf("writing the literal: %w", werr)
	case cerr != nil:
		return 0, cerr
	}
	return data.UID, nil
}

// rawIMAP is a bare IMAP connection for what a client library cannot express: exact
// command bytes, malformed input, literals of our choosing.
type rawIMAP struct {
	t        *testing.T
	c        net.Conn
	r        *bufio.Reader
	n        int
	Greeting string
	tr       transcript
}

// rawDial opens a raw connection to the implicit-TLS port (or the cleartext port when
// plain is true) and reads the greeting.
func (tg *imapTarget) rawDial(t *testing.T, plain bool) *rawIMAP {
	t.Helper()
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: 10 * time.Second}
	if plain {
		c, err = d.Dial("tcp", tg.plainAddr)
	} else {
		c, err = tls.DialWithDialer(d, "tcp", tg.tlsAddr, tg.tlsConfig)
	}
	if err != nil {
		t.Fatal(err)
	}
	r := &rawIMAP{t: t, c: c, r: bufio.NewReader(c)}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			t.Logf("raw IMAP transcript (tail):\n%s", tail(r.tr.String(), 60))
		}
	})
	g, err := r.Response()
	if err != nil {
		t.Fatalf("reading the greeting: %v", err)
	}
	r.Greeting = g
	return r
}

// rawLogin opens a raw TLS connection and logs in as the target's account.
func (tg *imapTarget) rawLogin(t *testing.T) *rawIMAP {
	t.Helper()
	r := tg.rawDial(t, false)
	r.OK("LOGIN " + imapQuote(tg.user) + " " + imapQuote(tg.pass))
	return r
}

// imapQuote makes an IMAP quoted string.
func imapQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Send writes bytes as they are.
func (r *rawIMAP) Send(s string) {
	r.t.Helper()
	r.tr.Write([]byte("C: " + s))
	r.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatalf("writing %.80q: %v", s, err)
	}
}

var literalAtEnd = regexp.MustCompile(`~?\{(\d+)\+?\}$`)

// Response reads one response line, with the literals it holds inlined (as {N}\r\n<bytes>),
// without the final CRLF.
func (r *rawIMAP) Response() (string, error) {
	r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	for {
		line, err := r.r.ReadString('\n')
		if err != nil {
			b.WriteString(line)
			r.tr.Write([]byte("S: " + b.String() + " <" + err.Error() + ">\n"))
			return b.String(), err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		b.WriteString(line)
		m := literalAtEnd.FindStringSubmatch(line)
		if m == nil {
			break
		}
		n, _ := strconv.Atoi(m[1])
		lit := make([]byte, n)
		if _, err := io.ReadFull(r.r, lit); err != nil {
			return b.String(), fmt.Errorf("reading a literal of %d bytes: %w", n, err)
		}
		b.WriteString("\r\n")
		b.Write(lit)
	}
	s := b.String()
	r.tr.Write([]byte("S: " + s + "\n"))
	return s, nil
}

// Tag returns the next command tag.
func (r *rawIMAP) Tag() string {
	r.n++
	return "a" + strconv.Itoa(r.n)
}

// Cmd sends a tagged command and reads to its completion: the untagged and continuation
// responses, and the tagged status without the tag ("OK ...", "NO ...", "BAD ...").
func (r *rawIMAP) Cmd(cmd string) (untagged []string, status string) {
	r.t.Helper()
	tag := r.Tag()
	r.Send(tag + " " + cmd + "\r\n")
	return r.ReadTo(tag)
}

// ReadTo reads responses until the one tagged tag.
func (r *rawIMAP) ReadTo(tag string) (untagged []string, status string) {
	r.t.Helper()
	for {
		line, err := r.Response()
		if err != nil {
			r.t.Fatalf("waiting for %s's completion: %v (so far: %q)", tag, err, untagged)
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, line)
	}
}

// Expect runs cmd and fails the test unless its status is want (OK, NO or BAD).
func (r *rawIMAP) Expect(want, cmd string) []string {
	r.t.Helper()
	u, st := r.Cmd(cmd)
	if !strings.HasPrefix(st, want+" ") && st != want {
		r.t.Errorf("%.200q: got %q, want %s", cmd, st, want)
	}
	return u
}

// OK runs cmd and fails the test at once unless it succeeds.
func (r *rawIMAP) OK(cmd string) []string {
	r.t.Helper()
	u, st := r.Cmd(cmd)
	if !strings.HasPrefix(st, "OK") {
		r.t.Fatalf("%.200q: got %q, want OK", cmd, st)
	}
	return u
}

// Alive checks that the connection still answers a NOOP.
func (r *rawIMAP) Alive() {
	r.t.Helper()
	r.OK("NOOP")
}

// hasLine reports whether one of the lines matches the regular expression.
func hasLine(lines []string, re string) bool {
	x := regexp.MustCompile(re)
	for _, l := range lines {
		if x.MatchString(l) {
			return true
		}
	}
	return false
}

// imapCode returns the response code of an error of the go-imap client ("" if none).
func imapCode(err error) imap.ResponseCode {
	if e, ok := err.(*imap.Error); ok {
		return e.Code
	}
	return ""
}

// imapType returns the status (NO, BAD) of an error of the go-imap client ("" if the error
// is not a status response).
func imapType(err error) imap.StatusResponseType {
	if e, ok := err.(*imap.Error); ok {
		return e.Type
	}
	return ""
}

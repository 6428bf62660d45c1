package test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"
)

// The submission tests: ports 587 (STARTTLS, RFC 6409) and 465 (implicit TLS, RFC 8314)
// of a development instance, with AUTH, the sender checks, the hourly limits, the
// headers cleanup adds, DKIM signatures, and Debian's swaks and msmtp as clients.

// tlsConfig trusts the instance's self-signed certificate, made by init for its
// hostname and localhost. (config.Load makes the certificate's path absolute.)
func (in *Instance) tlsConfig() *tls.Config {
	in.t.Helper()
	pem, err := os.ReadFile(in.Cfg.TLS.Cert)
	if err != nil {
		in.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		in.t.Fatalf("no certificate in %s", in.Cfg.TLS.Cert)
	}
	return &tls.Config{RootCAs: pool, ServerName: in.Cfg.Hostname}
}

// SubmissionAddr and SubmissionsAddr are the addresses of ports 587 and 465.
func (in *Instance) SubmissionAddr() string {
	return net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+587))
}

func (in *Instance) SubmissionsAddr() string {
	return net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+465))
}

// rawClient speaks SMTP line by line.
type rawClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (c *rawClient) read() string {
	c.t.Helper()
	return readReply(c.t, c.r)
}

func (c *rawClient) cmd(line string) string {
	c.t.Helper()
	if _, err := c.c.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

func (c *rawClient) expect(line, prefix string) string {
	c.t.Helper()
	got := c.cmd(line)
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("%s: got %q, want %q...", line, strings.TrimSpace(got), prefix)
	}
	return got
}

// dialRaw connects to addr (with TLS from the start when implicit), reads the greeting
// and says EHLO; it returns the client and the EHLO reply.
func (in *Instance) dialRaw(t *testing.T, addr string, implicit bool) (*rawClient, string) {
	t.Helper()
	var c net.Conn
	var err error
	if implicit {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, in.tlsConfig())
	} else {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	rc := &rawClient{t: t, c: c, r: bufio.NewReader(c)}
	if g := rc.read(); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("greeting %q", g)
	}
	return rc, rc.expect("EHLO client.test", "250")
}

// startTLS upgrades a plain session and says EHLO again; it returns the new EHLO reply.
func (rc *rawClient) startTLS(in *Instance) string {
	rc.t.Helper()
	rc.expect("STARTTLS", "220")
	tc := tls.Client(rc.c, in.tlsConfig())
	if err := tc.Handshake(); err != nil {
		rc.t.Fatalf("TLS handshake: %v", err)
	}
	rc.c, rc.r = tc, bufio.NewReader(tc)
	return rc.expect("EHLO client.test", "250")
}

func plainAuth(user, pass string) string {
	return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass))
}

// submit sends one message through 587 with net/smtp: STARTTLS, AUTH PLAIN, MAIL,
// RCPT, DATA.
func (in *Instance) submit(user, pass, from string, to []string, msg string) error {
	return submitTo(in.SubmissionAddr(), in.tlsConfig(), in.IP, user, pass, from, to, msg)
}

// submitTo is submit to addr, with tc for STARTTLS and host as the name AUTH PLAIN
// checks the TLS connection against.
func submitTo(addr string, tc *tls.Config, host, user, pass, from string, to []string, msg string) error {
	c, err := submissionSession(addr, tc, host, user, pass)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := sendMessage(c, from, to, msg); err != nil {
		return err
	}
	return c.Quit()
}

// submissionSession opens a session on the submission port addr: EHLO, STARTTLS with
// tc, AUTH PLAIN as user (host as for submitTo).
func submissionSession(addr string, tc *tls.Config, host, user, pass string) (*smtp.Client, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil, err
	}
	if err := c.Hello("client.test"); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.StartTLS(tc); err != nil {
		c.Close()
		return nil, fmt.Errorf("STARTTLS: %w", err)
	}
	if err := c.Auth(smtp.PlainAuth("", user, pass, host)); err != nil {
		c.Close()
		return nil, fmt.Errorf("AUTH: %w", err)
	}
	return c, nil
}

// sendMessage sends msg in an open session: MAIL, RCPT for each of to, DATA.
func sendMessage(c *smtp.Client, from string, to []string, msg string) error {
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return fmt.Errorf("RCPT %s: %w", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return nil
}

func TestSubmissionPolicy(t *testing.T) {
	in := NewInstance(t, "")
	in.addUser(t, "other@example.test")

	// 587 before STARTTLS: no AUTH offered, none accepted, nothing else either.
	c, ehlo := in.dialRaw(t, in.SubmissionAddr(), false)
	if strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("EHLO on 587 before TLS:\n%s", ehlo)
	}
	c.expect(plainAuth("demo@example.test", in.Password), "530 5.7.0 Must issue a STARTTLS command first")
	c.expect("MAIL FROM:<demo@example.test>", "530 5.7.0")
	// After STARTTLS AUTH is offered; without it 587 and 465 take no mail at all.
	if ehlo := c.startTLS(in); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Errorf("EHLO on 587 inside TLS:\n%s", ehlo)
	}
	c.expect("MAIL FROM:<demo@example.test>", "530 5.7.0 Authentication required")
	c.expect("RCPT TO:<someone@elsewhere.test>", "503")
	c.expect("DATA", "503")
	s, ehlo := in.dialRaw(t, in.SubmissionsAddr(), true)
	if !strings.Contains(ehlo, "AUTH PLAIN LOGIN") || strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("EHLO on 465:\n%s", ehlo)
	}
	s.expect("MAIL FROM:<demo@example.test>", "530 5.7.0 Authentication required")
	s.expect("RCPT TO:<demo@example.test>", "503")
	// Port 25 offers no AUTH and relays nothing.
	m, ehlo := in.dialRaw(t, in.SMTPAddr(), false)
	if strings.Contains(ehlo, "AUTH") {
		t.Errorf("AUTH offered on port 25:\n%s", ehlo)
	}
	m.expect(plainAuth("demo@example.test", in.Password), "502")
	m.expect("MAIL FROM:<demo@example.test>", "250")
	m.expect("RCPT TO:<someone@elsewhere.test>", "554 5.7.1")

	// A wrong password; then the right one, over 465.
	s.expect(plainAuth("demo@example.test", "wrong"), "535 5.7.8")
	s.expect(plainAuth("demo@example.test", in.Password), "235 2.7.0")
	// Someone else's address as the envelope sender, then in From:.
	s.expect("MAIL FROM:<other@example.test>", "553 5.7.1")
	s.expect("MAIL FROM:<demo+lists@example.test>", "250")
	s.expect("RCPT TO:<someone@elsewhere.test>", "250") // relayed for an authenticated user
	s.expect("RSET", "250")
	s.expect("MAIL FROM:<demo@example.test>", "250")
	s.expect("RCPT TO:<other@example.test>", "250")
	s.expect("DATA", "354")
	s.expect("From: Other <other@example.test>\r\nSubject: forged\r\n\r\nnot mine\r\n.", "550 5.7.1")
	// postmaster@ is an alias of demo: demo may write as it. No Message-ID, no Date:
	// cleanup adds them (RFC 6409 §8.2, §8.3).
	s.expect("MAIL FROM:<postmaster@example.test>", "250")
	s.expect("RCPT TO:<other@example.test>", "250")
	s.expect("DATA", "354")
	s.expect("From: Postmaster <postmaster@example.test>\r\nTo: other@example.test\r\nSubject: from an alias\r\n\r\nhello\r\n.", "250 2.0.0")
	s.expect("QUIT", "221")

	msgs := in.WaitMessages("other@example.test", 1, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	if msgs = in.Messages("other@example.test"); len(msgs) != 1 {
		t.Fatalf("other@ has %d messages, want 1 (the forged one must not arrive)", len(msgs))
	}
	got := string(msgs[0])
	for _, re := range []string{`(?m)^Message-ID: <[0-9A-Z]{16}@mail\.example\.test>\r$`, `(?m)^Date: \w{3}, \d+ \w{3} \d{4} `, `with ESMTPSA id`, `Subject: from an alias`} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("delivered message does not match %s:\n%s", re, got)
		}
	}
}

func TestSubmissionThrottle(t *testing.T) {
	in := NewInstance(t, "")
	c, _ := in.dialRaw(t, in.SubmissionsAddr(), true)
	// authd counts failures per account and client address (among other keys); at the
	// fifth it refuses for a while, even the right password (see throttle_test.go).
	for i := 0; i < 5; i++ {
		c.expect(plainAuth("demo@example.test", "guess"+strconv.Itoa(i)), "535 5.7.8")
	}
	c.expect(plainAuth("demo@example.test", in.Password), "454 4.7.0")
	c2, _ := in.dialRaw(t, in.SubmissionsAddr(), true)
	c2.expect(plainAuth("demo@example.test", in.Password), "454 4.7.0")
	if strings.Contains(in.Log(), "guess") || strings.Contains(in.Log(), in.Password) {
		t.Error("a password reached the log")
	}
}

func TestSubmissionRateLimit(t *testing.T) {
	in := newInstanceAt(t, "127.0.0.1", nextPortBase(), func(in *Instance) {
		in.SetConfig("submission", "max_messages_per_hour", "2")
		in.SetConfig("submission", "max_recipients_per_hour", "3")
	})
	c, _ := in.dialRaw(t, in.SubmissionAddr(), false)
	c.startTLS(in)
	c.expect(plainAuth("demo@example.test", in.Password), "235")
	c.expect("MAIL FROM:<demo@example.test>", "250")
	c.expect("RCPT TO:<demo@example.test>", "250")
	c.expect("RCPT TO:<postmaster@example.test>", "250")
	c.expect("DATA", "354")
	c.expect("From: demo@example.test\r\nSubject: one\r\n\r\n1\r\n.", "250")
	c.expect("MAIL FROM:<demo@example.test>", "250")
	c.expect("RCPT TO:<demo@example.test>", "250")
	c.expect("RCPT TO:<abuse@example.test>", "451 4.7.1") // the fourth recipient this hour
	c.expect("DATA", "354")
	c.expect("From: demo@example.test\r\nSubject: two\r\n\r\n2\r\n.", "250")
	c.expect("MAIL FROM:<demo@example.test>", "451 4.7.1") // the third message this hour
	// Per account, not per connection.
	c2, _ := in.dialRaw(t, in.SubmissionsAddr(), true)
	c2.expect(plainAuth("demo@example.test", in.Password), "235")
	c2.expect("MAIL FROM:<demo@example.test>", "451 4.7.1")
}

func TestSubmissionSwaksAndMsmtp(t *testing.T) {
	swaks := need(t, "swaks", "swaks")
	msmtp := need(t, "msmtp", "msmtp")
	in := NewInstance(t, "")
	dir := t.TempDir()

	// swaks: STARTTLS on 587 (--tls) and implicit TLS on 465 (--tlsc), AUTH PLAIN and
	// LOGIN.
	for i, args := range [][]string{
		{"--server", in.SubmissionAddr(), "--tls", "--auth", "PLAIN"},
		{"--server", in.SubmissionsAddr(), "--tlsc", "--auth", "LOGIN"},
	} {
		body := fmt.Sprintf("From: demo@example.test\r\nTo: demo@example.test\r\nSubject: swaks %d\r\nMessage-ID: <swaks-%d@example.test>\r\n\r\nvia swaks", i, i)
		f := filepath.Join(dir, fmt.Sprintf("swaks%d", i))
		os.WriteFile(f, []byte(body), 0o644)
		cmd := exec.Command(swaks, append(args, "--auth-user", "demo@example.test", "--auth-password", in.Password,
			"--from", "demo@example.test", "--to", "demo@example.test", "--data", "@"+f, "--timeout", "20")...)
		out, err := cmd.CombinedOutput()
		if err != nil || !regexp.MustCompile(`250 2\.0\.0 Ok: queued as [0-9A-Z]{16}`).Match(out) {
			t.Fatalf("swaks %v: %v\n%s", args, err, out)
		}
		if !bytes.Contains(out, []byte("235 2.7.0")) {
			t.Errorf("swaks did not authenticate:\n%s", out)
		}
	}
	// A wrong password fails swaks.
	out, err := exec.Command(swaks, "--server", in.SubmissionAddr(), "--tls", "--auth", "PLAIN", "--auth-user", "demo@example.test",
		"--auth-password", "wrong", "--from", "demo@example.test", "--to", "demo@example.test", "--timeout", "20").CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("535 5.7.8")) {
		t.Errorf("swaks with a wrong password: %v\n%s", err, out)
	}

	// msmtp, the way a user configures it: STARTTLS on 587, and TLS on 465, the
	// certificate checked against the instance's.
	for i, port := range []struct {
		addr     string
		starttls string
	}{{in.SubmissionAddr(), "on"}, {in.SubmissionsAddr(), "off"}} {
		host, p, _ := net.SplitHostPort(port.addr)
		conf := filepath.Join(dir, fmt.Sprintf("msmtprc%d", i))
		os.WriteFile(conf, []byte(fmt.Sprintf(`defaults
tls on
tls_starttls %s
tls_trust_file %s
tls_host_override %s
account demo
host %s
port %s
auth on
user demo@example.test
password %s
from demo@example.test
account default : demo
`, port.starttls, in.Cfg.TLS.Cert, in.Cfg.Hostname, host, p, in.Password)), 0o600)
		cmd := exec.Command(msmtp, "-C", conf, "-t")
		cmd.Stdin = strings.NewReader(fmt.Sprintf("From: demo@example.test\nTo: demo@example.test\nSubject: msmtp %d\n\nvia msmtp\n", i))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("msmtp on %s: %v\n%s", port.addr, err, out)
		}
	}
	msgs := in.WaitMessages("demo@example.test", 4, 15*time.Second)
	var subjects []string
	for _, m := range msgs {
		if s := regexp.MustCompile(`(?m)^Subject: (.*)\r$`).FindSubmatch(m); s != nil {
			subjects = append(subjects, string(s[1]))
		}
		// msmtp sends no Message-ID or Date of its own: cleanup added them.
		if bytes.Contains(m, []byte("Subject: msmtp")) && (!bytes.Contains(m, []byte("\r\nMessage-ID: <")) || !bytes.Contains(m, []byte("\r\nDate: "))) {
			t.Errorf("msmtp's message lacks Message-ID or Date:\n%s", m)
		}
	}
	if len(subjects) != 4 {
		t.Errorf("subjects %q", subjects)
	}
}

// zoneTXT parses the output of `mailctl dns records` and returns its TXT records by
// name (without the final dot), each joined from its strings.
func zoneTXT(t *testing.T, zone string) (map[string]string, []dns.RR) {
	t.Helper()
	txt := map[string]string{}
	var rrs []dns.RR
	zp := dns.NewZoneParser(strings.NewReader(zone), "", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
		if r, ok := rr.(*dns.TXT); ok {
			txt[strings.TrimSuffix(r.Hdr.Name, ".")] = strings.Join(r.Txt, "")
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("mailctl dns records is not a zone file: %v\n%s", err, zone)
	}
	return txt, rrs
}

// pythonDKIM verifies every DKIM signature of msg with Debian's python3-dkim (the
// module of dkimverify), its key lookups answered by the dnsfunc given: from records
// (a JSON object name → TXT) or, with server set, from that DNS server.
func pythonDKIM(t *testing.T, msg []byte, records map[string]string, server string) string {
	t.Helper()
	tool := need(t, "dkimverify", "python3-dkim")
	// The interpreter dkimverify runs with is the one that has the dkim module.
	head, _ := os.ReadFile(tool)
	interp := "/usr/bin/python3"
	if m := regexp.MustCompile(`^#!\s*(\S+)`).FindSubmatch(head); m != nil {
		interp = string(m[1])
	}
	dir := t.TempDir()
	recs, _ := json.Marshal(records)
	os.WriteFile(filepath.Join(dir, "records.json"), recs, 0o644)
	os.WriteFile(filepath.Join(dir, "msg.eml"), msg, 0o644)
	script := `
import json, sys, dkim
msg = open(sys.argv[1], 'rb').read()
records = json.load(open(sys.argv[2]))
server = sys.argv[3]
def dnsfunc(name, timeout=5):
    name = name.decode().rstrip('.')
    if server:
        import dns.resolver
        r = dns.resolver.Resolver(configure=False)
        host, port = server.rsplit(':', 1)
        r.nameservers, r.port = [host], int(port)
        try:
            ans = r.resolve(name, 'TXT')
        except Exception:
            return b''
        return b''.join(b''.join(rr.strings) for rr in ans)
    return records.get(name, '').encode()
d = dkim.DKIM(msg)
n = len([h for h in d.headers if h[0].lower() == b'dkim-signature'])
ok = 0
for i in range(n):
    if d.verify(idx=i, dnsfunc=dnsfunc):
        ok += 1
    else:
        print('signature', i, 'failed', file=sys.stderr)
print('%d/%d signatures verified' % (ok, n))
sys.exit(0 if n > 0 and ok == n else 1)
`
	os.WriteFile(filepath.Join(dir, "verify.py"), []byte(script), 0o644)
	out, err := exec.Command(interp, filepath.Join(dir, "verify.py"), filepath.Join(dir, "msg.eml"), filepath.Join(dir, "records.json"), server).CombinedOutput()
	if err != nil {
		t.Fatalf("python3-dkim: %v\n%s\n%s", err, out, msg)
	}
	return strings.TrimSpace(string(out))
}

func TestSubmissionDKIM(t *testing.T) {
	in := NewInstance(t, "")
	in.Mailctl("", "dkim", "generate", "example.test", "--selector", "ed1")
	in.Mailctl("", "dkim", "generate", "example.test", "--selector", "rsa1", "--algorithm", "rsa")
	records, _ := zoneTXT(t, in.Mailctl("", "dns", "records", "example.test"))
	if !strings.HasPrefix(records["rsa1._domainkey.example.test"], "v=DKIM1; k=rsa; p=") || !strings.HasPrefix(records["ed1._domainkey.example.test"], "v=DKIM1; k=ed25519; p=") {
		t.Fatalf("DKIM records: %v", records)
	}
	// A large message too: it is signed as it streams into the queue file.
	big := strings.Repeat("All work and no play makes Jack a dull boy.\r\n", 60000)
	for i, text := range []string{"Hello, signed.\r\n", big} {
		msg := fmt.Sprintf("From: Demo <demo@example.test>\r\nTo: demo@example.test\r\nSubject: dkim %d\r\n\r\n%s", i, text)
		if err := in.submit("demo@example.test", in.Password, "demo@example.test", []string{"demo@example.test"}, msg); err != nil {
			t.Fatal(err)
		}
	}
	msgs := in.WaitMessages("demo@example.test", 2, 20*time.Second)
	lookup := func(name string) ([]string, error) {
		if v, ok := records[strings.TrimSuffix(name, ".")]; ok {
			return []string{v}, nil
		}
		return nil, fmt.Errorf("no TXT record %s", name)
	}
	for _, m := range msgs {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(vs) != 2 {
			t.Fatalf("go-msgauth: %v, %d signatures\n%.800s", err, len(vs), m)
		}
		for _, v := range vs {
			if v.Err != nil || v.Domain != "example.test" {
				t.Errorf("go-msgauth: %+v", v)
			}
		}
		if got := pythonDKIM(t, m, records, ""); got != "2/2 signatures verified" {
			t.Errorf("python3-dkim: %s", got)
		}
	}
	// A changed body fails both verifiers.
	var small []byte
	for _, m := range msgs {
		if bytes.Contains(m, []byte("Hello, signed.")) {
			small = m
		}
	}
	bad := bytes.Replace(small, []byte("Hello, signed."), []byte("Hello, forged."), 1)
	vs, _ := dkim.VerifyWithOptions(bytes.NewReader(bad), &dkim.VerifyOptions{LookupTXT: lookup})
	for _, v := range vs {
		if v.Err == nil {
			t.Error("go-msgauth verified a changed message")
		}
	}
	if len(vs) != 2 {
		t.Errorf("%d signatures on the changed message", len(vs))
	}
}

// TestDKIMAcrossInstances: alice@a.test submits on A, A signs and relays through the MX
// of b.test; on B's Maildir the signature verifies against the key published in the
// fake DNS, with go-msgauth and with python3-dkim, both asking that DNS server.
func TestDKIMAcrossInstances(t *testing.T) {
	p := newPair(t)
	p.A.Mailctl("", "dkim", "generate", "a.test", "--selector", "sel1")
	_, rrs := zoneTXT(t, p.A.Mailctl("", "dns", "records", "a.test"))
	for _, rr := range rrs {
		if strings.Contains(rr.Header().Name, "._domainkey.") {
			if err := p.DNS.Add(rr.String()); err != nil {
				t.Fatal(err)
			}
		}
	}
	body := simpleMessage("alice@a.test", "bob@b.test", "dkim@a.test", "Signed on A, verified on B.")
	if err := p.Submit(t, p.A, "alice@a.test", "alice@a.test", []string{"bob@b.test"}, body); err != nil {
		t.Fatal(err)
	}
	var msg []byte
	p.B.WaitFor("the message on B", 30*time.Second, func() bool {
		msg = findMessage(p.B.Messages("bob@b.test"), "dkim@a.test")
		return msg != nil
	})
	lookup := func(name string) ([]string, error) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		r, err := dns.Exchange(m, p.DNS.Addr)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, a := range r.Answer {
			if txt, ok := a.(*dns.TXT); ok {
				out = append(out, strings.Join(txt.Txt, ""))
			}
		}
		return out, nil
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "a.test" {
		t.Fatalf("go-msgauth on B: %v %+v\n%s", err, vs, msg)
	}
	if got := pythonDKIM(t, msg, nil, p.DNS.Addr); got != "1/1 signatures verified" {
		t.Errorf("python3-dkim on B: %s", got)
	}
}

package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"postern/pkg/config"
	"postern/pkg/resolver"
	"postern/pkg/resolver/resolvertest"
)

// Pair is two Postern instances that mail each other the way two domains on the
// internet do: A serves a.test on 127.0.0.2, B serves b.test on 127.0.0.3, both on the
// real ports (25, 587, 465 ...), and a fake authoritative DNS server on loopback, which
// both instances' remote daemons use as their resolver, publishes their MX, A, SPF and
// DMARC records. Tests add more records (DKIM keys ...) with DNS.Add.
type Pair struct {
	DNS  *resolvertest.Server
	A, B *Instance
	// Passwords of the accounts made by newPair and AddUser, by address.
	Passwords map[string]string
}

// pairLock serializes two-instance tests across test processes: they all need ports 25,
// 587 ... of 127.0.0.2 and 127.0.0.3.
const pairLock = "/tmp/postern-twoinstance.lock"

// newPair starts the DNS server and the two instances, with the domain a.test and the
// account alice@a.test on A, and b.test with bob@b.test on B. It needs root, for the
// real ports: without it the test is skipped, or fails when CI=true.
func newPair(t *testing.T) *Pair {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the two-instance tests need root (ports 25, 587 ... on 127.0.0.2 and 127.0.0.3)")
		}
		t.Skip("the two-instance tests need root (ports 25, 587 ... on 127.0.0.2 and 127.0.0.3); skipping")
	}
	lock, err := os.OpenFile(pairLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // after the instances stopped (cleanups run last-in first-out)

	dns, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	p := &Pair{DNS: dns, Passwords: map[string]string{}}
	for _, d := range []struct{ domain, ip string }{{"a.test", "127.0.0.2"}, {"b.test", "127.0.0.3"}} {
		if err := dns.Add(
			d.domain+". 300 IN MX 10 mx."+d.domain+".",
			"mx."+d.domain+". 300 IN A "+d.ip,
			d.domain+". 300 IN TXT \"v=spf1 ip4:"+d.ip+" -all\"",
			"_dmarc."+d.domain+". 300 IN TXT \"v=DMARC1; p=reject; adkim=s; aspf=s\"",
		); err != nil {
			t.Fatal(err)
		}
	}
	p.A = p.newMember(t, "127.0.0.2", "a.test")
	p.B = p.newMember(t, "127.0.0.3", "b.test")
	p.AddUser(p.A, "alice@a.test")
	p.AddUser(p.B, "bob@b.test")
	return p
}

// newMember makes the instance of domain on ip: real ports, hostname mx.<domain>, the
// fake DNS as resolver, connections out from ip.
func (p *Pair) newMember(t *testing.T, ip, domain string) *Instance {
	t.Helper()
	in := newInstanceAt(t, ip, 0, func(in *Instance) {
		b, err := os.ReadFile(in.Config)
		if err != nil {
			t.Fatal(err)
		}
		b = regexp.MustCompile(`(?m)^hostname = .*$`).ReplaceAll(b, []byte(`hostname = "mx.`+domain+`"`))
		if err := os.WriteFile(in.Config, b, 0o644); err != nil {
			t.Fatal(err)
		}
		in.SetConfig("remote", "resolvers", `["`+p.DNS.Addr+`"]`)
		in.SetConfig("remote", "bind_address", `"`+ip+`"`)
	})
	in.Mailctl("", "domain", "add", domain)
	return in
}

// Publish serves the records that `mailctl dns records DOMAIN` prints on in (the DKIM
// keys made with `mailctl dkim generate`, SRV records ...) beside those newPair serves,
// which stay: a record whose name and type are served already is left out. So are the
// MTA-STS records, for no instance serves a policy over HTTPS. It returns how many
// records it added.
func (p *Pair) Publish(in *Instance, domain string) int {
	in.t.Helper()
	out := in.Mailctl("", "dns", "records", domain)
	n := 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		rr, err := dns.NewRR(line)
		if err != nil || rr == nil {
			in.t.Fatalf("mailctl dns records printed %q: %v", line, err)
		}
		h := rr.Header()
		if p.DNS.Has(h.Name, h.Rrtype) || strings.HasPrefix(h.Name, "_mta-sts.") || strings.HasPrefix(h.Name, "mta-sts.") {
			continue
		}
		if err := p.DNS.Add(rr.String()); err != nil {
			in.t.Fatal(err)
		}
		n++
	}
	return n
}

// AddUser creates an account on in with a fresh password, kept in p.Passwords.
func (p *Pair) AddUser(in *Instance, addr string) string {
	pass := fmt.Sprintf("pw-%s-%d", strings.ReplaceAll(addr, "@", "-"), time.Now().UnixNano()%100000)
	in.Mailctl(pass+"\n", "user", "add", addr, "--password-stdin")
	p.Passwords[addr] = pass
	return pass
}

var (
	testDNSOnce sync.Once
	testDNS     *resolvertest.Server
	testDNSErr  error
)

// testResolver returns the address of a DNS server on loopback that knows no name (it
// answers NXDOMAIN), shared by the instances NewInstance makes, so that their remote
// daemons never send a query off the machine.
func testResolver(t *testing.T) string {
	t.Helper()
	testDNSOnce.Do(func() { testDNS, testDNSErr = resolvertest.Start("127.0.0.1") })
	if testDNSErr != nil {
		t.Fatal(testDNSErr)
	}
	return testDNS.Addr
}

// newInstanceAt is NewInstance with a chosen port base (0: the real ports, as root) and
// a function that edits the configuration before master starts.
func newInstanceAt(t *testing.T, ip string, base int, setup func(*Instance)) *Instance {
	t.Helper()
	dir, err := os.MkdirTemp("", "postern-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() {
		if !t.Failed() || os.Getenv("POSTERN_KEEP") == "" {
			os.RemoveAll(dir)
		} else {
			t.Logf("instance kept in %s", dir)
		}
	})
	in := &Instance{t: t, Dir: dir, Config: filepath.Join(dir, "postern.toml"), IP: ip, PortBase: base}
	deadline := time.Now().Add(30 * time.Second)
	for !portsFree(ip, base) {
		if time.Now().After(deadline) {
			t.Fatalf("the ports of %s (base %d) are still in use after 30s", ip, base)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := in.Mailctl("", "init", "--dev", "--listen", ip, "--port-base", strconv.Itoa(base))
	m := regexp.MustCompile(`(?i)password:?\s+(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no password in the output of init:\n%s", out)
	}
	in.Password = m[1]
	if setup != nil {
		setup(in)
	}
	in.Cfg, err = config.Load(in.Config)
	if err != nil {
		t.Fatal(err)
	}
	in.LogPath = filepath.Join(dir, "master.log")
	in.Start()
	t.Cleanup(in.Stop)
	return in
}

// Submit sends a message through in's submission port (587) as user: STARTTLS, then
// AUTH PLAIN, the way a mail client does. body is the message without its envelope.
func (p *Pair) Submit(t *testing.T, in *Instance, user, from string, to []string, body string) error {
	t.Helper()
	// The development instance's certificate is self-signed.
	return submitTo(in.SubmissionAddr(), &tls.Config{InsecureSkipVerify: true}, in.IP, user, p.Passwords[user], from, to, body)
}

// SubmitMany sends the messages over one submission session (STARTTLS, AUTH PLAIN as
// user), each from user to to.
func (p *Pair) SubmitMany(in *Instance, user, to string, msgs []string) error {
	c, err := submissionSession(in.SubmissionAddr(), &tls.Config{InsecureSkipVerify: true}, in.IP, user, p.Passwords[user])
	if err != nil {
		return err
	}
	defer c.Close()
	for _, m := range msgs {
		if err := sendMessage(c, user, []string{to}, m); err != nil {
			return err
		}
	}
	return c.Quit()
}

// simpleMessage is a small message from from to to with a Message-ID of id.
func simpleMessage(from, to, id, text string) string {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + id + "\r\nMessage-ID: <" + id + ">\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\n" + text + "\r\n"
}

// findMessage returns the message in msgs whose Message-ID is id.
func findMessage(msgs [][]byte, id string) []byte {
	for _, m := range msgs {
		if bytes.Contains(m, []byte("<"+id+">")) {
			return m
		}
	}
	return nil
}

func TestTwoInstances(t *testing.T) {
	p := newPair(t)
	A, B := p.A, p.B

	t.Run("MXDelivery", func(t *testing.T) {
		body := simpleMessage("alice@a.test", "bob@b.test", "mx@a.test", "Hello Bob, through the MX of b.test.\r\n.leading dot")
		if err := p.Submit(t, A, "alice@a.test", "alice@a.test", []string{"bob@b.test"}, body); err != nil {
			t.Fatal(err)
		}
		m := findMessage(B.WaitMessages("bob@b.test", 1, 20*time.Second), "mx@a.test")
		if m == nil {
			t.Fatal("bob's message is not the one sent")
		}
		for _, want := range []string{"Return-Path: <alice@a.test>", "Delivered-To: bob@b.test", "\r\n.leading dot\r\n", "from mx.a.test"} {
			if !bytes.Contains(m, []byte(want)) {
				t.Errorf("bob's copy lacks %q:\n%s", want, m)
			}
		}
		// B saw the connection come from A's address, over TLS.
		if !bytes.Contains(m, []byte("127.0.0.2")) {
			t.Errorf("the Received header of B does not name 127.0.0.2:\n%s", m)
		}
		logA := A.Log()
		if !regexp.MustCompile(`msg=delivery .*to=<bob@b.test> relay=mx.b.test\[127.0.0.3\]:25 .*status=sent`).MatchString(logA) {
			t.Errorf("A's log has no delivery line for bob:\n%s", tail(logA, 40))
		}
		// Opportunistic TLS, certificate not verified (B's is self-signed), and said so.
		if !regexp.MustCompile(`msg=connected daemon=remote .*relay=mx.b.test\[127.0.0.3\]:25 tls="TLS 1.3 .*verified=false`).MatchString(logA) {
			t.Errorf("A's remote did not log the TLS state of its connection:\n%s", tail(logA, 40))
		}
	})

	t.Run("RemoteRefusalBounces", func(t *testing.T) {
		before := len(A.Messages("alice@a.test"))
		body := simpleMessage("alice@a.test", "nobody@b.test", "bounce@a.test", "This one has nowhere to go.")
		if err := p.Submit(t, A, "alice@a.test", "alice@a.test", []string{"nobody@b.test"}, body); err != nil {
			t.Fatal(err)
		}
		msgs := A.WaitMessages("alice@a.test", before+1, 20*time.Second)
		time.Sleep(time.Second) // a second notification would be here by now
		if n := len(A.Messages("alice@a.test")); n != before+1 {
			t.Fatalf("alice got %d notifications, want 1", n-before)
		}
		var dsn []byte
		for _, m := range msgs {
			if bytes.Contains(m, []byte("multipart/report")) {
				dsn = m
			}
		}
		if dsn == nil {
			t.Fatalf("alice got no delivery status notification:\n%s", msgs[len(msgs)-1])
		}
		for _, re := range []string{
			// RFC 6533's global-delivery-status when the message was an SMTPUTF8 one (Go's
			// client asks for SMTPUTF8 whenever the server offers it).
			`(?i)Content-Type: multipart/report;\s*report-type=(global-)?delivery-status`,
			`Final-Recipient: rfc822; ?nobody@b.test`,
			`Action: failed`,
			`Status: 5\.1\.1`,
			`Remote-MTA: dns; ?mx.b.test\r\n`,
			`Diagnostic-Code: smtp; ?550 5\.1\.1 <nobody@b.test>: Recipient address rejected`,
			`Return-Path: <>`,
			`Subject: bounce@a.test|Message-ID: <bounce@a.test>`,
		} {
			if !regexp.MustCompile(re).Match(dsn) {
				t.Errorf("the notification does not match %s:\n%s", re, dsn)
			}
		}
	})

	t.Run("DeferredWhileBIsDown", func(t *testing.T) {
		B.Stop()
		body := simpleMessage("alice@a.test", "bob@b.test", "later@a.test", "Sent while b.test was down.")
		if err := p.Submit(t, A, "alice@a.test", "alice@a.test", []string{"bob@b.test"}, body); err != nil {
			t.Fatal(err)
		}
		var id string
		A.WaitFor("the message in deferred/", 20*time.Second, func() bool {
			entries, _ := os.ReadDir(filepath.Join(A.Cfg.SpoolDir, "deferred"))
			if len(entries) == 1 {
				id = entries[0].Name()
			}
			return id != ""
		})
		out := A.Mailctl("", "queue", "list")
		if !strings.Contains(out, id) || !strings.Contains(out, "bob@b.test") || !strings.Contains(out, "connection refused") {
			t.Errorf("queue list does not say why %s waits:\n%s", id, out)
		}
		before := len(B.Messages("bob@b.test"))
		B.Start()
		A.Mailctl("", "queue", "flush")
		m := findMessage(B.WaitMessages("bob@b.test", before+1, 20*time.Second), "later@a.test")
		if m == nil {
			t.Fatal("the deferred message did not reach bob")
		}
		A.WaitFor("the queue to empty", 10*time.Second, func() bool {
			entries, _ := os.ReadDir(filepath.Join(A.Cfg.SpoolDir, "deferred"))
			return len(entries) == 0
		})
	})

	t.Run("PublishedRecords", func(t *testing.T) {
		A.Mailctl("", "dkim", "generate", "a.test")
		if n := p.Publish(A, "a.test"); n == 0 {
			t.Fatal("Publish added no record")
		}
		// The DKIM key is served; newPair's SPF record stays the only one.
		var selector string
		for _, l := range strings.Split(A.Mailctl("", "dkim", "list", "a.test"), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "a.test" {
				selector = f[1]
			}
		}
		if selector == "" {
			t.Fatal("dkim list shows no key for a.test")
		}
		res, err := resolver.New([]string{p.DNS.Addr})
		if err != nil {
			t.Fatal(err)
		}
		txt, err := res.LookupTXT(context.Background(), "a.test")
		if err != nil || len(txt) != 1 || !strings.Contains(txt[0], "ip4:127.0.0.2") {
			t.Errorf("SPF of a.test: %q %v", txt, err)
		}
		if txt, err := res.LookupTXT(context.Background(), selector+"._domainkey.a.test"); err != nil || len(txt) != 1 || !strings.HasPrefix(txt[0], "v=DKIM1;") {
			t.Errorf("DKIM key of a.test: %q %v", txt, err)
		}
	})

	// A's mail, DKIM-signed with the key PublishedRecords made and sent from the address
	// its SPF record names, passes SPF, DKIM and DMARC (p=reject, strict alignment) at
	// B's spamd, and B's Authentication-Results says so.
	t.Run("AuthenticatedAtB", func(t *testing.T) {
		body := simpleMessage("alice@a.test", "bob@b.test", "auth@a.test", "Signed by a.test.")
		if err := p.Submit(t, A, "alice@a.test", "alice@a.test", []string{"bob@b.test"}, body); err != nil {
			t.Fatal(err)
		}
		var m []byte
		B.WaitFor("the signed message at bob's", 20*time.Second, func() bool {
			m = findMessage(B.Messages("bob@b.test"), "auth@a.test")
			return m != nil
		})
		for _, re := range []string{
			`Authentication-Results: mx\.b\.test;\r\n`,
			`\tspf=pass smtp\.mailfrom=alice@a\.test;`,
			`\tdkim=pass header\.d=a\.test;`,
			`\tdmarc=pass header\.from=a\.test\r\n`,
			`X-Spam-Status: No, score=-2\.5\r\n\ttests=SPF_PASS=-0\.5,DKIM_PASS=-1,DMARC_PASS=-1\r\n`,
		} {
			if !regexp.MustCompile(re).Match(m) {
				t.Errorf("bob's copy does not match %s:\n%s", re, m)
			}
		}
	})

	t.Run("DANE", func(t *testing.T) {
		// b.test signs its zone (the fake DNS sets the AD bit, as a validating
		// resolver would) and publishes a DANE-EE record of B's certificate.
		pemBytes, err := os.ReadFile(B.Cfg.TLS.Cert)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(pemBytes)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		hash, _ := dns.CertificateToDANE(1, 1, cert)
		owner := "_25._tcp.mx.b.test."
		p.DNS.SetAuthenticated(true)
		defer func() {
			p.DNS.SetAuthenticated(false)
			p.DNS.Remove(owner, dns.TypeTLSA)
		}()
		p.DNS.Add(owner + " 300 IN TLSA 3 1 1 " + hash)
		before := len(B.Messages("bob@b.test"))
		body := simpleMessage("alice@a.test", "bob@b.test", "dane@a.test", "Checked by DANE.")
		if err := p.Submit(t, A, "alice@a.test", "alice@a.test", []string{"bob@b.test"}, body); err != nil {
			t.Fatal(err)
		}
		if findMessage(B.WaitMessages("bob@b.test", before+1, 20*time.Second), "dane@a.test") == nil {
			t.Fatal("the message did not reach bob")
		}
		if !regexp.MustCompile(`msg=connected daemon=remote .*relay=mx.b.test\[127.0.0.3\]:25 tls="TLS 1.3 [^"]*" verified=true dane=true`).MatchString(A.Log()) {
			t.Errorf("A's remote did not log a DANE-verified connection:\n%s", tail(A.Log(), 30))
		}

		// A TLSA record that does not match B's certificate: the message waits.
		p.DNS.Remove(owner, dns.TypeTLSA)
		p.DNS.Add(owner + " 300 IN TLSA 3 1 1 " + strings.Repeat("ab", 32))
		body = simpleMessage("alice@a.test", "bob@b.test", "danefail@a.test", "Not for an impostor.")
		if err := p.Submit(t, A, "alice@a.test", "alice@a.test", []string{"bob@b.test"}, body); err != nil {
			t.Fatal(err)
		}
		A.WaitFor("the message in deferred/", 20*time.Second, func() bool {
			entries, _ := os.ReadDir(filepath.Join(A.Cfg.SpoolDir, "deferred"))
			return len(entries) == 1
		})
		if out := A.Mailctl("", "queue", "list"); !strings.Contains(out, "TLSA") {
			t.Errorf("queue list does not say DANE failed:\n%s", out)
		}
		if n := len(B.Messages("bob@b.test")); n != before+1 {
			t.Fatalf("bob got the message despite the DANE failure")
		}
		// The right record again: flushed, it goes.
		p.DNS.Remove(owner, dns.TypeTLSA)
		p.DNS.Add(owner + " 300 IN TLSA 3 1 1 " + hash)
		A.Mailctl("", "queue", "flush")
		if findMessage(B.WaitMessages("bob@b.test", before+2, 20*time.Second), "danefail@a.test") == nil {
			t.Fatal("the deferred message did not reach bob after the fix")
		}
	})

	t.Run("KillRemoteMidFlight", func(t *testing.T) {
		// kill -9 of remote while it sends: every acknowledged message reaches bob
		// (some maybe twice, as ARCHITECTURE.md allows), none is lost.
		const n = 100
		msgs := make([]string, n)
		for i := range n {
			msgs[i] = simpleMessage("alice@a.test", "bob@b.test", fmt.Sprintf("crash%d@a.test", i), "crash test")
		}
		errs := make(chan error, 1)
		go func() { errs <- p.SubmitMany(A, "alice@a.test", "bob@b.test", msgs) }()
		A.WaitFor("remote to deliver some", 20*time.Second, func() bool {
			return strings.Count(A.Log(), "relay=mx.b.test[127.0.0.3]:25 delay") > 5
		})
		pid := A.DaemonPIDs()["remote"]
		if pid == 0 {
			t.Fatal("no remote daemon")
		}
		syscall.Kill(pid, syscall.SIGKILL)
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		A.WaitFor("master to restart remote", 20*time.Second, func() bool {
			p := A.DaemonPIDs()["remote"]
			return p != 0 && p != pid
		})
		missing := func() []string {
			var out []string
			msgs := B.Messages("bob@b.test")
			for i := range n {
				if findMessage(msgs, fmt.Sprintf("crash%d@a.test", i)) == nil {
					out = append(out, fmt.Sprint(i))
				}
			}
			return out
		}
		deadline := time.Now().Add(60 * time.Second)
		for len(missing()) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("messages %v never reached bob\n%s", missing(), tail(A.Log(), 40))
			}
			A.Mailctl("", "queue", "flush") // the ones deferred while remote was down
			time.Sleep(time.Second)
		}
		t.Logf("%d deliveries deferred because remote was killed or restarting; bob has %d copies of %d messages",
			strings.Count(A.Log(), "remote delivery agent unavailable"), len(B.Messages("bob@b.test")), n)
	})

	t.Run("AliasForwardsToOtherDomain", func(t *testing.T) {
		A.Mailctl("", "alias", "add", "fwd@a.test", "bob@b.test")
		before := len(B.Messages("bob@b.test"))
		// From the internet to A's MX: no AUTH needed for A's own domain.
		c, err := smtp.Dial(A.SMTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		body := simpleMessage("carol@c.test", "fwd@a.test", "alias@c.test", "For fwd@a.test, which forwards to b.test.")
		if err := c.Mail("carol@c.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("fwd@a.test"); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		c.Quit()
		m := findMessage(B.WaitMessages("bob@b.test", before+1, 20*time.Second), "alias@c.test")
		if m == nil {
			t.Fatal("the forwarded message did not reach bob")
		}
		// A forwards from the SRS form of carol's address (pkg/srs), one of a.test.
		if !bytes.Contains(m, []byte("Delivered-To: bob@b.test")) || !regexp.MustCompile(`Return-Path: <SRS0=[^=]{8}=[A-Z2-7]{2}=c\.test=carol@a\.test>\r\n`).Match(m) {
			t.Errorf("forwarded copy:\n%s", m)
		}
	})
}

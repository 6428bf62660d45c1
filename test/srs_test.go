package test

import (
	"bytes"
	"errors"
	"net/smtp"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"

	"postern/pkg/srs"
)

// TestSieveRedirectSRS forwards mail between the two instances the way forwarding goes
// on the internet: bob@b.test writes to alice@a.test, whose Sieve script redirects to
// carol@b.test. A sends the redirect from an SRS address of a.test, so that it passes
// SPF at B (the original sender's SPF names B, not A) and DMARC through bob's DKIM
// signature; a bounce to that SRS address comes back to A, which relays it to bob, and
// only for a valid address. An alias of A that forwards to B uses SRS the same way.
func TestSieveRedirectSRS(t *testing.T) {
	p := newPair(t)
	A, B := p.A, p.B
	for _, x := range []struct {
		in     *Instance
		domain string
	}{{A, "a.test"}, {B, "b.test"}} {
		x.in.Mailctl("", "dkim", "generate", x.domain)
		p.Publish(x.in, x.domain)
	}
	// B's notifications come From: MAILER-DAEMON@mx.b.test, a name no SPF record or
	// DKIM key of its own vouches for; the policy of that name lets them through while
	// A relays them on to bob.
	if err := p.DNS.Add(`_dmarc.mx.b.test. 300 IN TXT "v=DMARC1; p=none"`); err != nil {
		t.Fatal(err)
	}
	p.AddUser(B, "carol@b.test")
	p.AddUser(B, "dave@b.test")
	A.Mailctl(`require "copy";
if header :contains "subject" "fwd-copy" { redirect :copy "carol@b.test"; stop; }
if header :contains "subject" "fwd-bounce" { redirect "dave@b.test"; stop; }
if header :contains "subject" "fwd-plain" { redirect "carol@b.test"; }
`, "sieve", "put", "alice@a.test", "forward")
	A.Mailctl("", "sieve", "activate", "alice@a.test", "forward")
	B.Mailctl(`require "reject"; reject "dave takes no mail";`+"\n", "sieve", "put", "dave@b.test", "no")
	B.Mailctl("", "sieve", "activate", "dave@b.test", "no")

	// srsFrom is the Return-Path of a message bob sent that A forwarded.
	srsFrom := regexp.MustCompile(`Return-Path: <(SRS0=[A-Za-z0-9+/]{8}=[A-Z2-7]{2}=b\.test=bob@a\.test)>\r\n`)
	var srsAddr string

	t.Run("Redirect", func(t *testing.T) {
		body := simpleMessage("bob@b.test", "alice@a.test", "fwd-plain@b.test", "Forward me.")
		if err := p.Submit(t, B, "bob@b.test", "bob@b.test", []string{"alice@a.test"}, body); err != nil {
			t.Fatal(err)
		}
		m := findMessage(B.WaitMessages("carol@b.test", 1, 30*time.Second), "fwd-plain@b.test")
		if m == nil {
			t.Fatal("carol did not get the redirected message")
		}
		sm := srsFrom.FindSubmatch(m)
		if sm == nil {
			t.Fatalf("carol's copy has no SRS Return-Path of a.test:\n%s", m)
		}
		srsAddr = string(sm[1])
		for _, re := range []string{
			`Delivered-To: carol@b\.test\r\n`,
			`Delivered-To: alice@a\.test\r\n`, // the redirect's loop mark
			`Authentication-Results: mx\.b\.test;\r\n\tspf=pass smtp\.mailfrom=` + regexp.QuoteMeta(srsAddr) + `;`,
			`\tdkim=pass header\.d=b\.test;`,
			`\tdmarc=pass header\.from=b\.test\r\n`,
			`\r\n\r\nForward me\.\r\n$`,
		} {
			if !regexp.MustCompile(re).Match(m) {
				t.Errorf("carol's copy does not match %s:\n%s", re, m)
			}
		}
		// A did not sign bob's message with a.test's key: it is not A's.
		if bytes.Contains(m, []byte("d=a.test")) {
			t.Errorf("A signed the forwarded message:\n%s", m)
		}
		// Without :copy, the redirect cancels the implicit keep (RFC 5228 §4.2).
		if n := len(A.Messages("alice@a.test")); n != 0 {
			t.Errorf("alice's INBOX holds %d messages, want none", n)
		}
		if !regexp.MustCompile(`msg="forwarding with an SRS sender" daemon=qmgr .*from=<bob@b\.test> srs="?<` + regexp.QuoteMeta(srsAddr) + `>`).MatchString(A.Log()) {
			t.Errorf("A's qmgr did not log the SRS sender:\n%s", tail(A.Log(), 30))
		}
	})

	t.Run("Copy", func(t *testing.T) {
		before := len(B.Messages("carol@b.test"))
		body := simpleMessage("bob@b.test", "alice@a.test", "fwd-copy@b.test", "Keep a copy.")
		if err := p.Submit(t, B, "bob@b.test", "bob@b.test", []string{"alice@a.test"}, body); err != nil {
			t.Fatal(err)
		}
		m := findMessage(B.WaitMessages("carol@b.test", before+1, 30*time.Second), "fwd-copy@b.test")
		if m == nil || !srsFrom.Match(m) {
			t.Fatalf("carol's copy:\n%s", m)
		}
		kept := findMessage(A.WaitMessages("alice@a.test", 1, 10*time.Second), "fwd-copy@b.test")
		if kept == nil || !bytes.Contains(kept, []byte("Return-Path: <bob@b.test>")) {
			t.Errorf("alice's kept copy:\n%s", kept)
		}
	})

	t.Run("BounceToSRSAddress", func(t *testing.T) {
		// dave's script rejects the redirected message: B's notification goes to the
		// SRS sender at A, which checks it and relays it to bob.
		before := len(B.Messages("bob@b.test"))
		body := simpleMessage("bob@b.test", "alice@a.test", "fwd-bounce@b.test", "Dave will refuse this.")
		if err := p.Submit(t, B, "bob@b.test", "bob@b.test", []string{"alice@a.test"}, body); err != nil {
			t.Fatal(err)
		}
		var dsn []byte
		B.WaitFor("the notification at bob's", 40*time.Second, func() bool {
			for _, m := range B.Messages("bob@b.test") {
				if bytes.Contains(m, []byte("multipart/report")) && bytes.Contains(m, []byte("fwd-bounce@b.test")) {
					dsn = m
				}
			}
			return dsn != nil
		})
		for _, re := range []string{
			`Return-Path: <>\r\n`,
			`Final-Recipient: rfc822; ?dave@b\.test`,
			`Action: failed`,
			`dave takes no mail`,
			// B's qmgr sent it to the SRS address; A accepted it for that address
			// and sent it on to bob.
			`Received: from mx\.b\.test `,
			`Received: from mx\.a\.test `,
		} {
			if !regexp.MustCompile(re).Match(dsn) {
				t.Errorf("bob's notification does not match %s:\n%s", re, dsn)
			}
		}
		if !regexp.MustCompile(`msg=delivery daemon=qmgr .*to=<bob@b\.test> orig_to="?<SRS0=[^>]*@a\.test>"? relay=mx\.b\.test\[127\.0\.0\.3\]:25 .*status=sent`).MatchString(A.Log()) {
			t.Errorf("A's log has no relay of the bounce to bob:\n%s", tail(A.Log(), 40))
		}
		if len(B.Messages("bob@b.test")) != before+1 {
			t.Errorf("bob got %d messages, want the one notification", len(B.Messages("bob@b.test"))-before)
		}
	})

	t.Run("ForgedAndExpired", func(t *testing.T) {
		if srsAddr == "" {
			t.Skip("no SRS address from Redirect")
		}
		key, err := srs.Load(A.Cfg.SRSDomain(), A.Cfg.SRSKeyFile(), A.Cfg.SRS.MaxAge.D())
		if err != nil {
			t.Fatal(err)
		}
		key.Now = func() time.Time { return time.Now().Add(-30 * 24 * time.Hour) }
		expired, err := key.Forward("bob@b.test")
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.SplitN(srsAddr, "=", 3)
		forged := parts[0] + "=AAAAAAAA=" + parts[2]
		other := strings.Replace(srsAddr, "=bob@", "=mallory@", 1)
		c, err := smtp.Dial(A.SMTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("mx.b.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail(""); err != nil {
			t.Fatal(err)
		}
		for _, addr := range []string{forged, other, expired, "SRS0=x@a.test"} {
			err := c.Rcpt(addr)
			var te *textproto.Error
			if !errors.As(err, &te) || te.Code != 550 || !strings.HasPrefix(te.Msg, "5.1.1") {
				t.Errorf("RCPT TO:<%s>: %v, want 550 5.1.1", addr, err)
			}
		}
		// The address A made is good, in any case.
		if err := c.Rcpt(strings.ToLower(srsAddr)); err != nil {
			t.Errorf("RCPT TO:<%s>: %v", strings.ToLower(srsAddr), err)
		}
		c.Reset()
	})

	t.Run("AliasForward", func(t *testing.T) {
		A.Mailctl("", "alias", "add", "fwd@a.test", "carol@b.test")
		before := len(B.Messages("carol@b.test"))
		body := simpleMessage("bob@b.test", "fwd@a.test", "alias-fwd@b.test", "Through an alias.")
		if err := p.Submit(t, B, "bob@b.test", "bob@b.test", []string{"fwd@a.test"}, body); err != nil {
			t.Fatal(err)
		}
		m := findMessage(B.WaitMessages("carol@b.test", before+1, 30*time.Second), "alias-fwd@b.test")
		if m == nil {
			t.Fatal("carol did not get the aliased message")
		}
		sm := srsFrom.FindSubmatch(m)
		if sm == nil {
			t.Fatalf("carol's copy has no SRS Return-Path:\n%s", m)
		}
		if !regexp.MustCompile(`spf=pass smtp\.mailfrom=` + regexp.QuoteMeta(string(sm[1])) + `;`).Match(m) {
			t.Errorf("SPF did not pass for the SRS sender:\n%s", m)
		}
	})
}

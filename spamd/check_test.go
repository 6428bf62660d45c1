package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"postern/pkg/config"
	"postern/pkg/resolver"
	"postern/pkg/resolver/resolvertest"
	"postern/pkg/spamcheck"
)

type localSet map[string]bool

func (l localSet) IsLocal(_ context.Context, d string) (bool, error) { return l[d], nil }

type authdDown struct{}

func (authdDown) IsLocal(context.Context, string) (bool, error) {
	return false, errors.New("authd down")
}

// newChecker returns a Checker with the default policy asking a fake DNS server that
// publishes the records of the test domains.
func newChecker(t testing.TB) (*Checker, *resolvertest.Server, *[]dmarcRecord) {
	t.Helper()
	dns, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	if err := dns.Add(
		`pass.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`_dmarc.pass.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`soft.test. 300 IN TXT "v=spf1 ~all"`,
		`reject.test. 300 IN TXT "v=spf1 ip4:198.51.100.9 ~all"`,
		`_dmarc.reject.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`quarantine.test. 300 IN TXT "v=spf1 ip4:198.51.100.9 ~all"`,
		`_dmarc.quarantine.test. 300 IN TXT "v=DMARC1; p=quarantine"`,
		`fail.test. 300 IN TXT "v=spf1 ip4:198.51.100.9 -all"`,
		`helo-fail.test. 300 IN TXT "v=spf1 -all"`,
		`loop.test. 300 IN TXT "v=spf1 include:loop.test -all"`,
		`void.test. 300 IN TXT "v=spf1 a:x1.void.test a:x2.void.test a:x3.void.test -all"`,
	); err != nil {
		t.Fatal(err)
	}
	res, err := resolver.New([]string{dns.Addr})
	if err != nil {
		t.Fatal(err)
	}
	var recs []dmarcRecord
	c := &Checker{
		Policy: config.Default().Spamd, AuthservID: "mx.example.test", DNS: netDNS{R: res},
		Local:  localSet{"example.test": true},
		Record: func(r dmarcRecord) { recs = append(recs, r) },
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	return c, dns, &recs
}

func check(c *Checker, ip, from, msg string) *spamcheck.Verdict {
	return checkHelo(c, ip, "client.test", from, msg)
}

func checkHelo(c *Checker, ip, helo, from, msg string) *spamcheck.Verdict {
	req := &spamcheck.Request{QueueID: "Q1", From: from, Recipients: []string{"a@example.test"}, ClientAddr: ip, Helo: helo, Size: int64(len(msg))}
	return c.Check(context.Background(), req, strings.NewReader(msg))
}

func TestVerdicts(t *testing.T) {
	c, _, recs := newChecker(t)
	for _, tc := range []struct {
		name, ip, from, msg string
		action, code        string
		ar                  []string // in Authentication-Results
	}{
		{"spf pass, dmarc pass", "192.0.2.1", "x@pass.test", "From: x@pass.test\r\n\r\nhi\r\n", spamcheck.Accept, "",
			[]string{"spf=pass smtp.mailfrom=x@pass.test", "dmarc=pass header.from=pass.test"}},
		{"spf fail -all", "203.0.113.5", "x@fail.test", "From: x@fail.test\r\n\r\nhi\r\n", spamcheck.Reject, "5.7.23",
			[]string{"spf=fail"}},
		{"softfail", "203.0.113.5", "x@soft.test", "From: x@soft.test\r\n\r\nhi\r\n", spamcheck.Accept, "", []string{"spf=softfail"}},
		{"forged From: of p=reject", "203.0.113.5", "x@soft.test", "From: boss@reject.test\r\n\r\nhi\r\n", spamcheck.Reject, "5.7.1",
			[]string{"dmarc=fail header.from=reject.test"}},
		{"forged From: of p=quarantine", "203.0.113.5", "x@soft.test", "From: boss@quarantine.test\r\n\r\nhi\r\n", spamcheck.Junk, "",
			[]string{"dmarc=fail header.from=quarantine.test"}},
		{"our own domain, no SPF or DKIM", "203.0.113.5", "demo@example.test", "From: demo@example.test\r\n\r\nhi\r\n", spamcheck.Reject, "5.7.1",
			[]string{"dmarc=fail header.from=example.test"}},
		{"gtube", "192.0.2.1", "x@pass.test", "From: x@pass.test\r\n\r\n" + strings.Repeat("x", 70000) + gtube + "\r\n", spamcheck.Reject, "5.7.1", nil},
		{"include loop is permerror", "203.0.113.5", "x@loop.test", "From: x@loop.test\r\n\r\nhi\r\n", spamcheck.Accept, "", []string{"spf=permerror"}},
		{"void lookups", "203.0.113.5", "x@void.test", "From: x@void.test\r\n\r\nhi\r\n", spamcheck.Accept, "", []string{"spf=permerror"}},
		{"no From:", "203.0.113.5", "", "Subject: x\r\n\r\nhi\r\n", spamcheck.Accept, "", nil},
	} {
		v := check(c, tc.ip, tc.from, tc.msg)
		if v.Action != tc.action || v.Code != tc.code {
			t.Errorf("%s: %s %s (%s), score %g %v; want %s %s", tc.name, v.Action, v.Code, v.Text, v.Score, v.Reasons, tc.action, tc.code)
		}
		if !strings.HasPrefix(v.AuthResults, "mx.example.test;") {
			t.Errorf("%s: Authentication-Results %q", tc.name, v.AuthResults)
		}
		for _, want := range tc.ar {
			if !strings.Contains(v.AuthResults, want) {
				t.Errorf("%s: Authentication-Results %q lacks %q", tc.name, v.AuthResults, want)
			}
		}
	}
	if len(*recs) == 0 || (*recs)[0].HeaderFrom != "pass.test" || (*recs)[0].Result != "pass" {
		t.Errorf("DMARC records %+v", *recs)
	}
	// The HELO identity is checked too (RFC 7208 §2.3).
	if v := checkHelo(c, "192.0.2.1", "helo-fail.test", "x@pass.test", "From: x@pass.test\r\n\r\nhi\r\n"); v.Action != spamcheck.Accept ||
		!strings.Contains(v.AuthResults, "spf=pass smtp.mailfrom=x@pass.test;\r\n\tspf=fail smtp.helo=helo-fail.test") || !strings.Contains(strings.Join(v.Reasons, " "), "SPF_HELO_FAIL=1") {
		t.Errorf("HELO fail: %+v", v)
	}
	// Whether From: names one of our domains cannot be told: try again later.
	c.Local = authdDown{}
	if v := check(c, "192.0.2.1", "x@pass.test", "From: x@pass.test\r\n\r\nhi\r\n"); v.Action != spamcheck.Tempfail {
		t.Errorf("authd down: %+v", v)
	}
	c.Local = localSet{"example.test": true}
	// A trusted relay is not checked.
	c.Trusted = []*net.IPNet{{IP: net.IPv4(203, 0, 113, 0).To4(), Mask: net.CIDRMask(24, 32)}}
	if v := check(c, "203.0.113.5", "demo@example.test", "From: demo@example.test\r\n\r\nhi\r\n"); v.Action != spamcheck.Accept {
		t.Errorf("trusted relay: %+v", v)
	}
}

// TestDKIM checks a signature that verifies (dkim=pass, DMARC aligned although SPF
// fails to align) and one broken by a change of the body.
func TestDKIM(t *testing.T) {
	c, dns, _ := newChecker(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := dns.Add(`sel._domainkey.reject.test. 300 IN TXT "v=DKIM1; k=ed25519; p=` + base64.StdEncoding.EncodeToString(pub) + `"`); err != nil {
		t.Fatal(err)
	}
	msg := "From: boss@reject.test\r\nSubject: hi\r\n\r\nhello\r\n"
	var signed bytes.Buffer
	if err := msgdkim.Sign(&signed, strings.NewReader(msg), &msgdkim.SignOptions{Domain: "reject.test", Selector: "sel", Signer: priv}); err != nil {
		t.Fatal(err)
	}
	v := check(c, "203.0.113.5", "x@soft.test", signed.String())
	if v.Action != spamcheck.Accept || !strings.Contains(v.AuthResults, "dkim=pass header.d=reject.test") || !strings.Contains(v.AuthResults, "dmarc=pass") {
		t.Errorf("signed: %+v", v)
	}
	broken := strings.Replace(signed.String(), "hello", "HELLO", 1)
	v = check(c, "203.0.113.5", "x@soft.test", broken)
	if v.Action != spamcheck.Reject || !strings.Contains(v.AuthResults, "dkim=fail header.d=reject.test") {
		t.Errorf("broken signature: %+v", v)
	}
}

// TestDNSFailure checks that a DNS server that fails gives temperror results and a
// verdict, not a hang or a crash.
func TestDNSFailure(t *testing.T) {
	c, dns, _ := newChecker(t)
	dns.Fail("pass.test.", 2)
	dns.Fail("_dmarc.pass.test.", 2)
	v := check(c, "192.0.2.1", "x@pass.test", "From: x@pass.test\r\n\r\nhi\r\n")
	if v.Action != spamcheck.Accept || !strings.Contains(v.AuthResults, "spf=temperror") {
		t.Errorf("SERVFAIL: %+v", v)
	}
}

type fixedClassifier float64

func (f fixedClassifier) SpamProbability(context.Context, string, string, io.ReaderAt, int64) (float64, bool, error) {
	return float64(f), true, nil
}

// TestClassifier checks that a classifier's probability moves the score.
func TestClassifier(t *testing.T) {
	c, _, _ := newChecker(t)
	c.Classifier = fixedClassifier(1)
	if v := check(c, "203.0.113.5", "x@soft.test", "From: x@soft.test\r\n\r\nhi\r\n"); v.Action != spamcheck.Junk {
		t.Errorf("spam probability 1: %+v", v)
	}
	c.Classifier = fixedClassifier(0)
	if v := check(c, "192.0.2.1", "x@pass.test", "From: x@pass.test\r\n\r\nhi\r\n"); v.Action != spamcheck.Accept || v.Score >= 0 {
		t.Errorf("spam probability 0: %+v", v)
	}
}

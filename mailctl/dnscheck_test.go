package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"postern/pkg/resolver/resolvertest"
)

// TestDNSCheck publishes in the fake DNS server exactly what dns records prints (less
// MTA-STS, whose policy nothing serves here), and dns check finds it all in place; then
// a missing SPF record and a wrong MX fail it, each with its fix.
func TestDNSCheck(t *testing.T) {
	srv, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "postern.toml")
	ta := newTestApp(t, "")
	if code := ta.run("-c", conf, "init", "--dev"); code != 0 {
		t.Fatalf("init: %d %s", code, ta.err)
	}
	raw, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	raw = []byte(strings.Replace(string(raw), "\n[remote]\n", "\n[remote]\nresolvers = [\""+srv.Addr+"\"]\n", 1))
	if err := os.WriteFile(conf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := ta.run("-c", conf, "dkim", "generate", "example.test", "--selector", "s1"); code != 0 {
		t.Fatalf("dkim generate: %d %s", code, ta.err)
	}
	if code := ta.run("-c", conf, "dns", "records", "example.test"); code != 0 {
		t.Fatalf("dns records: %d %s", code, ta.err)
	}
	zp := dns.NewZoneParser(strings.NewReader(ta.out.String()), "", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if strings.Contains(rr.Header().Name, "mta-sts") {
			continue
		}
		if err := srv.Add(rr.String()); err != nil {
			t.Fatal(err)
		}
	}
	// The host's address and its reverse, which dns records cannot know for a
	// development instance listening on loopback.
	if err := srv.Add("mail.example.test. A 127.0.0.1", "1.0.0.127.in-addr.arpa. PTR mail.example.test."); err != nil {
		t.Fatal(err)
	}

	code := ta.run("-c", conf, "dns", "check", "example.test")
	out := ta.out.String()
	if code != 0 {
		t.Fatalf("dns check of a complete zone: exit %d %s\n%s", code, ta.err, out)
	}
	for _, want := range []string{
		"ok                 MX         example.test: 10 mail.example.test",
		"ok                 A/AAAA     mail.example.test: 127.0.0.1",
		"ok                 PTR        1.0.0.127.in-addr.arpa: 127.0.0.1 → mail.example.test → 127.0.0.1 (forward-confirmed)",
		"ok                 SPF        example.test: v=spf1 mx -all (passes for 127.0.0.1)",
		"ok                 DKIM       s1._domainkey.example.test",
		"ok                 DMARC      _dmarc.example.test: p=quarantine",
		"missing (optional) MTA-STS    _mta-sts.example.test",
		"ok                 TLS-RPT",
		"ok                 SRV        _submission._tcp.example.test: mail.example.test:10587",
		"ok                 SRV        _pop3._tcp.example.test: mail.example.test:10110",
		"ok                 autoconfig autoconfig.example.test: CNAME mail.example.test",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dns check lacks %q:\n%s", want, out)
		}
	}

	srv.Remove("example.test", dns.TypeTXT)
	srv.Remove("example.test", dns.TypeMX)
	srv.Add("example.test. MX 10 mx.elsewhere.test.")
	code = ta.run("-c", conf, "dns", "check", "example.test")
	out = ta.out.String()
	if code != 1 || !strings.Contains(ta.err.String(), "2 of the records of example.test are wrong or missing") {
		t.Errorf("dns check without SPF, with a wrong MX: exit %d, %s", code, ta.err)
	}
	for _, want := range []string{
		"wrong              MX         example.test: points to mx.elsewhere.test, not to mail.example.test\n    fix: example.test.                            3600 IN MX    10 mail.example.test.",
		"missing            SPF        example.test: no SPF record\n    fix: example.test.                            3600 IN TXT   \"v=spf1 mx -all\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dns check lacks %q:\n%s", want, out)
		}
	}
	if code := ta.run("-c", conf, "dns", "check", "exa mple"); code != 2 {
		t.Errorf("a bad domain: exit %d", code)
	}
}

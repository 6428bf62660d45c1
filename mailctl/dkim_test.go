package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/pkg/mtasts"

	"github.com/miekg/dns"
)

func TestDKIMAndDNSRecords(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "postern.toml")
	ta := newTestApp(t, "")
	if code := ta.run("-c", conf, "init", "--dev"); code != 0 {
		t.Fatalf("init: %d %s", code, ta.err)
	}
	if code := ta.run("-c", conf, "dkim", "generate", "Example.test", "--selector", "s1"); code != 0 {
		t.Fatalf("dkim generate: %d %s", code, ta.err)
	}
	if !strings.Contains(ta.out.String(), `s1._domainkey.example.test.`) {
		t.Errorf("generate output:\n%s", ta.out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "dkim", "example.test", "s1.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %v %v", fi, err)
	}
	if code := ta.run("-c", conf, "dkim", "generate", "example.test", "--selector", "s1"); code != 1 {
		t.Errorf("second generate of s1: exit %d", code)
	}
	for _, bad := range [][]string{{"dkim", "generate", "example.test", "--algorithm", "dsa"}, {"dkim", "generate", "../x"}, {"dkim", "generate", "example.test", "--selector", "a/b"}, {"dns", "records", "example.test", "--dmarc", "maybe"}} {
		if code := ta.run(append([]string{"-c", conf}, bad...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
	if code := ta.run("-c", conf, "dkim", "generate", "example.test", "--algorithm", "rsa", "--selector", "r1"); code != 0 {
		t.Fatalf("rsa: %d %s", code, ta.err)
	}
	if code := ta.run("-c", conf, "dkim", "list"); code != 0 || !strings.Contains(ta.out.String(), "s1               ed25519") || !strings.Contains(ta.out.String(), "r1               rsa") {
		t.Errorf("dkim list: %d\n%s", code, ta.out)
	}

	if code := ta.run("-c", conf, "dns", "records", "example.test"); code != 0 {
		t.Fatalf("dns records: %d %s", code, ta.err)
	}
	// The output is a zone file: every record parses, and every kind is there.
	zp := dns.NewZoneParser(strings.NewReader(ta.out.String()), "", "")
	found := map[string]string{}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		key := dns.TypeToString[h.Rrtype] + " " + h.Name
		switch r := rr.(type) {
		case *dns.TXT:
			for _, s := range r.Txt {
				if len(s) > 255 {
					t.Errorf("%s: string of %d octets", key, len(s))
				}
			}
			found[key] = strings.Join(r.Txt, "")
		default:
			found[key] = strings.TrimPrefix(rr.String(), h.String())
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("not a zone file: %v\n%s", err, ta.out)
	}
	for key, want := range map[string]string{
		"MX example.test.":                    "10 mail.example.test.",
		"TXT example.test.":                   "v=spf1 mx -all",
		"TXT s1._domainkey.example.test.":     "v=DKIM1; k=ed25519; p=",
		"TXT r1._domainkey.example.test.":     "v=DKIM1; k=rsa; p=MIIB",
		"TXT _dmarc.example.test.":            "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test",
		"TXT _mta-sts.example.test.":          "v=STSv1; id=",
		"TXT _smtp._tls.example.test.":        "v=TLSRPTv1; rua=mailto:postmaster@example.test",
		"SRV _submission._tcp.example.test.":  "10 1 10587 mail.example.test.",
		"SRV _submissions._tcp.example.test.": "0 1 10465 mail.example.test.",
		"SRV _imap._tcp.example.test.":        "10 1 ",
		"SRV _imaps._tcp.example.test.":       "0 1 ",
		"SRV _pop3._tcp.example.test.":        "10 1 10110 mail.example.test.",
		"SRV _pop3s._tcp.example.test.":       "0 1 10995 mail.example.test.",
		"CNAME autoconfig.example.test.":      "mail.example.test.",
		"CNAME autodiscover.example.test.":    "mail.example.test.",
	} {
		if got, ok := found[key]; !ok || !strings.HasPrefix(got, want) {
			t.Errorf("%s = %q, want %q...", key, got, want)
		}
	}
	// The record announces the very policy httpd serves (pkg/mtasts).
	if _, id := mtasts.Published("mail.example.test"); found["TXT _mta-sts.example.test."] != "v=STSv1; id="+id {
		t.Errorf("_mta-sts record %q does not announce the served policy (id %s)", found["TXT _mta-sts.example.test."], id)
	}
	if len(found["TXT r1._domainkey.example.test."]) < 390 {
		t.Errorf("RSA record too short: %q", found["TXT r1._domainkey.example.test."])
	}
}

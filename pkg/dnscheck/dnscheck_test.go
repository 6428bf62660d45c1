package dnscheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"postern/pkg/mtasts"
	"postern/pkg/resolver"
	"postern/pkg/resolver/resolvertest"
)

// policyServer is an HTTPS server on loopback with a certificate for
// mta-sts.example.test, serving policy at the well-known path; it returns the server
// and the roots that trust it.
func policyServer(t *testing.T, policy *string) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mta-sts.example.test"},
		DNSNames: []string{"mta-sts.example.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts.example.test:"+strconv.Itoa(r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr).Port) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, *policy)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, pool
}

// good are the records of a domain set up as dns records says.
var good = []string{
	"example.test. MX 10 mail.example.test.",
	"mail.example.test. A 127.0.0.1",
	"1.0.0.127.in-addr.arpa. PTR mail.example.test.",
	`example.test. TXT "v=spf1 mx -all"`,
	`example.test. TXT "google-site-verification=abc"`,
	`sel._domainkey.example.test. TXT "v=DKIM1; k=ed25519; " "p=KEYKEYKEY"`,
	`_dmarc.example.test. TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test"`,
	`_mta-sts.example.test. TXT "v=STSv1; id=20261207"`,
	"mta-sts.example.test. CNAME mail.example.test.",
	`_smtp._tls.example.test. TXT "v=TLSRPTv1; rua=mailto:postmaster@example.test"`,
	"_submissions._tcp.example.test. SRV 0 1 465 mail.example.test.",
	"_submission._tcp.example.test. SRV 10 1 587 mail.example.test.",
	"_imaps._tcp.example.test. SRV 0 1 993 mail.example.test.",
	"_imap._tcp.example.test. SRV 10 1 143 mail.example.test.",
	"_pop3s._tcp.example.test. SRV 0 0 0 .",
	"_pop3._tcp.example.test. SRV 0 0 0 .",
	"autoconfig.example.test. CNAME mail.example.test.",
}

var expected = Expected{
	Domain: "example.test", Host: "mail.example.test",
	SPF: "v=spf1 mx -all", DMARC: "v=DMARC1; p=quarantine", TLSRPT: "v=TLSRPTv1; rua=mailto:postmaster@example.test",
	MTASTS: "v=STSv1; id=1",
	DKIM:   []Record{{"sel._domainkey.example.test", "TXT", "v=DKIM1; k=ed25519; p=KEY KEY KEY"}},
	SRV: []SRV{
		{"_submissions", 0, 465, "mail.example.test"}, {"_submission", 10, 587, "mail.example.test"},
		{"_imaps", 0, 993, "mail.example.test"}, {"_imap", 10, 143, "mail.example.test"},
		{"_pop3s", 0, 0, "."}, {"_pop3", 0, 0, "."},
	},
}

func setup(t *testing.T, records []string) (*Checker, *resolvertest.Server, *string) {
	t.Helper()
	dns, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	if err := dns.Add(records...); err != nil {
		t.Fatal(err)
	}
	res, err := resolver.New([]string{dns.Addr})
	if err != nil {
		t.Fatal(err)
	}
	policy := "version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 86400\n"
	srv, pool := policyServer(t, &policy)
	f := mtasts.NewFetcher(resolver.Dialer(res, &net.Dialer{Timeout: 5 * time.Second}), &tls.Config{RootCAs: pool})
	f.Port = srv.Listener.Addr().(*net.TCPAddr).Port
	return &Checker{DNS: res, FetchPolicy: f.Fetch}, dns, &policy
}

// byKey indexes results by "What Name".
func byKey(rs []Result) map[string]Result {
	out := map[string]Result{}
	for _, r := range rs {
		out[r.What+" "+r.Name] = r
	}
	return out
}

func TestAllGood(t *testing.T) {
	c, _, _ := setup(t, good)
	rs := c.Check(context.Background(), expected)
	for _, r := range rs {
		if r.Status != OK {
			t.Errorf("%s %s: %s: %s", r.What, r.Name, r.Status, r.Detail)
		}
	}
	m := byKey(rs)
	for _, k := range []string{"MX example.test", "A/AAAA mail.example.test", "PTR 1.0.0.127.in-addr.arpa", "SPF example.test",
		"DKIM sel._domainkey.example.test", "DMARC _dmarc.example.test", "MTA-STS _mta-sts.example.test",
		"TLS-RPT _smtp._tls.example.test", "SRV _imaps._tcp.example.test", "SRV _pop3._tcp.example.test", "autoconfig autoconfig.example.test"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no result for %s", k)
		}
	}
	if d := m["MTA-STS _mta-sts.example.test"].Detail; !strings.Contains(d, "mode enforce") {
		t.Errorf("MTA-STS detail %q does not give the fetched policy's mode", d)
	}
}

func TestWrongAndMissing(t *testing.T) {
	c, dns, policy := setup(t, good)
	dns.Remove("example.test", 15) // MX
	dns.Add("example.test. MX 10 mx.elsewhere.test.")
	dns.Remove("example.test", 16) // TXT: SPF that fails for 127.0.0.1
	dns.Add(`example.test. TXT "v=spf1 ip4:192.0.2.1 -all"`)
	dns.Remove("sel._domainkey.example.test", 16)
	dns.Add(`sel._domainkey.example.test. TXT "v=DKIM1; k=ed25519; p=OTHERKEY"`)
	dns.Add(`_dmarc.example.test. TXT "v=DMARC1; p=none"`) // a second one
	dns.Remove("1.0.0.127.in-addr.arpa", 12)
	dns.Remove("_smtp._tls.example.test", 16)
	dns.Remove("_imaps._tcp.example.test", 33)
	dns.Add("_imaps._tcp.example.test. SRV 0 1 9993 mail.example.test.")
	*policy = "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n"

	m := byKey(c.Check(context.Background(), expected))
	for _, tc := range []struct {
		key    string
		status Status
		detail string
		fix    string
	}{
		{"MX example.test", Wrong, "mx.elsewhere.test", "10 mail.example.test."},
		{"SPF example.test", Wrong, "fail", "v=spf1 mx -all"},
		{"DKIM sel._domainkey.example.test", Wrong, "not the key", "p=KEY KEY KEY"},
		{"DMARC _dmarc.example.test", Wrong, "2 DMARC records", "v=DMARC1; p=quarantine"},
		{"PTR 1.0.0.127.in-addr.arpa", Missing, "no PTR", ""},
		{"TLS-RPT _smtp._tls.example.test", Missing, "no TLS-RPT", "v=TLSRPTv1"},
		{"SRV _imaps._tcp.example.test", Wrong, "mail.example.test:9993", "0 1 993 mail.example.test."},
		{"MTA-STS _mta-sts.example.test", Wrong, "not mail.example.test", ""},
		{"autoconfig autoconfig.example.test", OK, "", ""},
	} {
		r, ok := m[tc.key]
		if !ok {
			t.Errorf("no result for %s", tc.key)
			continue
		}
		if r.Status != tc.status || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("%s: %s %q, want %s containing %q", tc.key, r.Status, r.Detail, tc.status, tc.detail)
		}
		if tc.fix != "" && (len(r.Fix) == 0 || !strings.Contains(r.Fix[0].Data, tc.fix)) {
			t.Errorf("%s: fix %v, want one with %q", tc.key, r.Fix, tc.fix)
		}
	}
	if !m["PTR 1.0.0.127.in-addr.arpa"].Failed() || m["TLS-RPT _smtp._tls.example.test"].Failed() {
		t.Errorf("a missing PTR must fail the check, a missing TLS-RPT (optional) not")
	}

	// The policy host does not answer: the record is there, the policy is not.
	dns.Remove("mta-sts.example.test", 5)
	dns.Add("mta-sts.example.test. A 127.0.0.9")
	c.FetchPolicy = mtasts.NewFetcher(resolver.Dialer(c.DNS, &net.Dialer{Timeout: 2 * time.Second}), nil).Fetch
	r := byKey(c.Check(context.Background(), expected))["MTA-STS _mta-sts.example.test"]
	if r.Status != Wrong || !strings.Contains(r.Detail, "the policy at https://mta-sts.example.test/.well-known/mta-sts.txt") {
		t.Errorf("MTA-STS without a policy: %s %q", r.Status, r.Detail)
	}

	// Nothing at all.
	dns.Remove("example.test", 0xff)
	dns.Remove("_dmarc.example.test", 0xff)
	m = byKey(c.Check(context.Background(), expected))
	for _, k := range []string{"MX example.test", "SPF example.test", "DMARC _dmarc.example.test"} {
		if m[k].Status != Missing || !m[k].Failed() {
			t.Errorf("%s: %s %q, want missing", k, m[k].Status, m[k].Detail)
		}
	}
}

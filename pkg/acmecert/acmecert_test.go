package acmecert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/pkg/acmecert/acmetest"
	"postern/pkg/resolver/resolvertest"
)

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestObtainAndRenewFromPebble gets a certificate for two names from pebble, which
// checks each with HTTP-01 against the Responder on loopback (names resolved by the
// fake DNS server), renews it when it is due, and fails clearly for a name the CA
// cannot reach and one it refuses.
func TestObtainAndRenewFromPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pebble")
	}
	dns, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	dns.Add("mail.example.test. A 127.0.0.1", "imap.example.test. A 127.0.0.1", "away.example.test. A 127.0.0.9")

	resp := &Responder{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: resp}
	go hs.Serve(l)
	defer hs.Close()

	ca := acmetest.Start(t, dns.Addr, l.Addr().(*net.TCPAddr).Port)
	url, client := ca.URL, ca.Client
	dir := t.TempDir()
	m := &Manager{
		DirectoryURL: url, Email: "postmaster@example.test", Names: []string{"mail.example.test", "imap.example.test"},
		AccountKey: filepath.Join(dir, "account.key"), CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"),
		Solver: resp, HTTPClient: client,
	}
	if due, why := m.Due(time.Now()); !due || !strings.Contains(why, "reading the certificate") {
		t.Errorf("without a certificate: due %v (%s)", due, why)
	}
	// A self-signed leaf such as mailctl init makes, valid for years, is due.
	selfSigned(t, m.CertFile, "mail.example.test")
	if due, why := m.Due(time.Now()); !due || !strings.Contains(why, "self-signed") {
		t.Errorf("with a self-signed certificate: due %v (%s)", due, why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leaf, err := m.Obtain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The files hold a pair that loads, for both names.
	pair, err := tls.LoadX509KeyPair(m.CertFile, m.KeyFile)
	if err != nil {
		t.Fatalf("the written pair does not load: %v", err)
	}
	if len(pair.Certificate) < 2 {
		t.Errorf("the chain has %d certificates, want the leaf and its issuer", len(pair.Certificate))
	}
	for _, n := range m.Names {
		if err := leaf.VerifyHostname(n); err != nil {
			t.Error(err)
		}
	}
	if fi, err := os.Stat(m.AccountKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("account key: %v %v", fi, err)
	}
	if due, why := m.Due(time.Now()); due {
		t.Errorf("a fresh certificate is due: %s", why)
	}

	// Within RenewBefore of its expiry it is due, and renewed with the same account.
	m.RenewBefore = 100 * 24 * time.Hour
	if due, why := m.Due(time.Now()); !due || !strings.Contains(why, "expires on") {
		t.Errorf("90-day certificate with renew_before 100 days: due %v (%s)", due, why)
	}
	acct, _ := os.ReadFile(m.AccountKey)
	renewed, err := m.Obtain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("renewal returned the same certificate")
	}
	if again, _ := os.ReadFile(m.AccountKey); string(again) != string(acct) {
		t.Error("renewal made a new account key")
	}
	if got := mustParse(t, mustPair(t, m).Certificate[0]); got.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Error("the files do not hold the renewed certificate")
	}

	// The CA cannot reach the name: the error names it, and the files are untouched.
	before, _ := os.ReadFile(m.CertFile)
	m.Names = []string{"away.example.test"}
	if _, err := m.Obtain(ctx); err == nil || !strings.Contains(err.Error(), "away.example.test") {
		t.Errorf("unreachable name: %v", err)
	}
	m.Names = []string{"blocked.example.test"}
	if _, err := m.Obtain(ctx); err == nil || !strings.Contains(err.Error(), "blocked.example.test") {
		t.Errorf("refused name: %v", err)
	}
	if after, _ := os.ReadFile(m.CertFile); string(after) != string(before) {
		t.Error("a failed order changed the certificate file")
	}
}

func mustPair(t *testing.T, m *Manager) tls.Certificate {
	p, err := tls.LoadX509KeyPair(m.CertFile, m.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The responder answers only the tokens it holds, only to GET and HEAD.
func TestResponder(t *testing.T) {
	r := &Responder{}
	r.Present("tok", "tok.thumb")
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", ChallengePath + "tok", 200, "tok.thumb"},
		{"GET", ChallengePath + "other", 404, ""},
		{"GET", "/tok", 404, ""},
		{"POST", ChallengePath + "tok", 404, ""},
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(tc.method, "http://mail.example.test"+tc.path, nil))
		if w.Code != tc.code || (tc.body != "" && w.Body.String() != tc.body) {
			t.Errorf("%s %s: %d %q", tc.method, tc.path, w.Code, w.Body.String())
		}
	}
	r.CleanUp("tok")
	w := httptest.NewRecorder()
	if r.ServeHTTP(w, httptest.NewRequest("GET", "http://x"+ChallengePath+"tok", nil)); w.Code != 404 {
		t.Errorf("after CleanUp: %d", w.Code)
	}
}

// selfSigned writes a self-signed leaf certificate (not a CA) for name, valid ten years.
func selfSigned(t *testing.T, path, name string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

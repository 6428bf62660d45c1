package tlsconf

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
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"postern/pkg/config"
)

// writePair writes a self-signed certificate for names and returns its files.
func writePair(t *testing.T, dir, base string, serial int64, names ...string) config.CertPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	p := config.CertPair{Cert: filepath.Join(dir, base+".crt"), Key: filepath.Join(dir, base+".key")}
	os.WriteFile(p.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(p.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	return p
}

// served runs a handshake asking for name and returns the serial of the certificate
// the server presented.
func served(t *testing.T, cfg *tls.Config, name string) int64 {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Server(a, cfg).Handshake()
	c := tls.Client(b, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake for %q: %v", name, err)
	}
	st := c.ConnectionState()
	if st.Version < tls.VersionTLS12 {
		t.Errorf("TLS version %x", st.Version)
	}
	return st.PeerCertificates[0].SerialNumber.Int64()
}

func TestSNIAndReload(t *testing.T) {
	dir := t.TempDir()
	def := writePair(t, dir, "default", 1, "mail.example.test")
	a := writePair(t, dir, "a", 2, "mail.a.test", "*.b.test")
	s, err := Load(config.TLS{Cert: def.Cert, Key: def.Key, Certificates: []config.CertPair{a}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.ServerConfig()
	for name, want := range map[string]int64{
		"mail.example.test": 1,
		"mail.a.test":       2,
		"MAIL.A.TEST.":      2,
		"imap.b.test":       2,
		"other.test":        1,
		"":                  1,
	} {
		if got := served(t, cfg, name); got != want {
			t.Errorf("name %q: served serial %d, want %d", name, got, want)
		}
	}

	// A renewed certificate in place of the old one is served after Reload, by the same
	// tls.Config.
	writePair(t, dir, "a", 3, "mail.a.test")
	if got := served(t, cfg, "mail.a.test"); got != 2 {
		t.Errorf("before reload: serial %d", got)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(t, cfg, "mail.a.test"); got != 3 {
		t.Errorf("after reload: serial %d, want 3", got)
	}

	// A broken file makes Reload fail and keeps what was loaded.
	os.WriteFile(a.Key, []byte("garbage"), 0o600)
	if err := s.Reload(); err == nil {
		t.Error("reload of a broken key succeeded")
	}
	if got := served(t, cfg, "mail.a.test"); got != 3 {
		t.Errorf("after failed reload: serial %d, want 3", got)
	}
}

func TestTLS11Refused(t *testing.T) {
	dir := t.TempDir()
	def := writePair(t, dir, "default", 1, "mail.example.test")
	s, err := Load(config.TLS{Cert: def.Cert, Key: def.Key})
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Server(a, s.ServerConfig()).Handshake()
	c := tls.Client(b, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err := c.Handshake(); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(config.TLS{}); err == nil {
		t.Error("no certificate: no error")
	}
	if _, err := Load(config.TLS{Cert: "/nonexistent.crt", Key: "/nonexistent.key"}); err == nil {
		t.Error("missing files: no error")
	}
	dir := t.TempDir()
	a := writePair(t, dir, "a", 2, "mail.a.test")
	s, err := Load(config.TLS{Certificates: []config.CertPair{a}})
	if err != nil {
		t.Fatalf("only SNI pairs: %v", err)
	}
	if n := s.Names(); len(n) != 1 || n[0] != "mail.a.test" {
		t.Errorf("names %v", n)
	}
}

// handshake12 runs a TLS 1.2 handshake with a client offering only suites and returns
// the suite agreed on, or the client's error.
func handshake12(cfg *tls.Config, suites ...uint16) (uint16, error) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Server(a, cfg).Handshake()
	c := tls.Client(b, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: suites})
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.ConnectionState().CipherSuite, nil
}

// TestCipherSuites: a TLS 1.2 client that offers only CBC suites with SHA-1 (or
// SHA-256) MACs, or static-RSA key exchange, finds no suite in common; one offering
// the AEAD suites OpenSSL clients put first gets one of them.
func TestCipherSuites(t *testing.T) {
	dir := t.TempDir()
	p := writePair(t, dir, "default", 1, "mail.example.test")
	s, err := Load(config.TLS{Cert: p.Cert, Key: p.Key})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.ServerConfig()
	for _, suite := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, // ECDHE-ECDSA-AES128-SHA
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_RSA_WITH_AES_256_CBC_SHA, // AES256-SHA
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	} {
		if got, err := handshake12(cfg, suite); err == nil {
			t.Errorf("a client offering only %s got %s", tls.CipherSuiteName(suite), tls.CipherSuiteName(got))
		}
	}
	for _, suite := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, // ECDHE-ECDSA-AES256-GCM-SHA384
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	} {
		got, err := handshake12(cfg, suite, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA)
		if err != nil || got != suite {
			t.Errorf("a client offering %s: got %s, %v", tls.CipherSuiteName(suite), tls.CipherSuiteName(got), err)
		}
	}
}

// Watch reloads when a certificate file is replaced, with no signal.
func TestWatchReloadsReplacedFiles(t *testing.T) {
	dir := t.TempDir()
	conf := config.TLS{}
	p := writePair(t, dir, "mail", 1, "one.example.test")
	conf.Cert, conf.Key = p.Cert, p.Key
	s, err := Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloaded := make(chan error, 10)
	Watch(ctx, conf, 10*time.Millisecond, func() { reloaded <- s.Reload() })

	// Replaced as a renewal does it: new files renamed over the old ones.
	n := writePair(t, dir, "new", 2, "two.example.test")
	if err := os.Rename(n.Key, conf.Key); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(n.Cert, conf.Cert); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for !slices.Contains(s.Names(), "two.example.test") {
		select {
		case <-reloaded:
		case <-deadline:
			t.Fatalf("after the files were replaced, the store still serves %v", s.Names())
		}
	}
}

package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCertificate writes a self-signed certificate for name with the given serial
// number, and its key, to certFile and keyFile, and returns a pool that trusts it.
func writeCertificate(t *testing.T, certFile, keyFile, name string, serial int64) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	// Written aside and renamed, the way certbot's deploy hooks leave files in place.
	for _, f := range []struct {
		path string
		data []byte
	}{{keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})}, {certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}} {
		if err := os.WriteFile(f.path+".new", f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".new", f.path); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// servedSerial makes a TLS connection to port 465 asking for name and returns the
// serial number of the certificate served, checked against roots.
func servedSerial(t *testing.T, in *Instance, name string, roots *x509.CertPool) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", in.SubmissionsAddr(), &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS to %s as %s: %v", in.SubmissionsAddr(), name, err)
	}
	defer c.Close()
	st := c.ConnectionState()
	if st.Version < tls.VersionTLS12 {
		t.Errorf("TLS version %x", st.Version)
	}
	return st.PeerCertificates[0].SerialNumber.Int64()
}

// TestCertificatesSNIAndReload: a second certificate, chosen by SNI; renewed in place
// and picked up on SIGHUP to master, by the same smtpd, while a session stays open.
func TestCertificatesSNIAndReload(t *testing.T) {
	var otherCert, otherKey string
	var roots *x509.CertPool
	in := newInstanceAt(t, "127.0.0.1", nextPortBase(), func(in *Instance) {
		otherCert, otherKey = filepath.Join(in.Dir, "tls", "other.pem"), filepath.Join(in.Dir, "tls", "other.key")
		roots = writeCertificate(t, otherCert, otherKey, "mail.other.test", 1001)
		f, err := os.OpenFile(in.Config, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("\n[[tls.certificates]]\ncert = \"tls/other.pem\"\nkey = \"tls/other.key\"\n")
		f.Close()
	})
	def := in.tlsConfig()
	if got := servedSerial(t, in, "mail.other.test", roots); got != 1001 {
		t.Errorf("SNI mail.other.test: serial %d, want 1001", got)
	}
	servedSerial(t, in, in.Cfg.Hostname, def.RootCAs) // the default pair, verified

	// A session opened before the reload.
	open, _ := in.dialRaw(t, in.SubmissionAddr(), false)
	open.startTLS(in)
	pid := in.DaemonPIDs()["smtpd"]

	roots = writeCertificate(t, otherCert, otherKey, "mail.other.test", 1002)
	in.Reload()
	in.WaitFor("smtpd to reload its certificates", 20*time.Second, func() bool {
		return strings.Contains(in.Log(), `msg="TLS certificates reloaded"`)
	})
	if got := servedSerial(t, in, "mail.other.test", roots); got != 1002 {
		t.Errorf("after SIGHUP: serial %d, want 1002", got)
	}
	if now := in.DaemonPIDs()["smtpd"]; now != pid {
		t.Errorf("smtpd restarted for a certificate change (pid %d, was %d)", now, pid)
	}
	open.expect("NOOP", "250") // not dropped
	open.expect(plainAuth("demo@example.test", in.Password), "235")

	// A broken certificate keeps the loaded ones.
	os.WriteFile(otherKey, []byte("not a key"), 0o600)
	in.Reload()
	in.WaitFor("the failed reload", 20*time.Second, func() bool {
		return strings.Contains(in.Log(), "reloading TLS certificates failed, keeping the old ones")
	})
	if got := servedSerial(t, in, "mail.other.test", roots); got != 1002 {
		t.Errorf("after a failed reload: serial %d, want 1002", got)
	}
}

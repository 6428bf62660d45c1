package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"postern/pkg/acmecert"
)

// certValidity is how long a self-signed certificate made by init is valid.
const certValidity = 10 * 365 * 24 * time.Hour

// selfSigned makes a self-signed ECDSA P-256 certificate for a TLS server named by
// names (DNS names, or IP addresses), and returns the certificate and the private key
// in PEM.
func selfSigned(names []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating the TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generating a serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Postern (self-signed)"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// A leaf, not a CA: clients that are told to trust it cannot be fooled by
		// certificates it signed.
		BasicConstraintsValid: true,
	}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// writeSelfSigned writes a new self-signed certificate and key to the given paths. The
// key is written mode 0600 to a temporary name and renamed into place, so that it is
// never readable by others, not even for a moment.
func writeSelfSigned(certPath, keyPath string, names []string) error {
	certPEM, keyPEM, err := selfSigned(names, time.Now())
	if err != nil {
		return err
	}
	for _, p := range []string{certPath, keyPath} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("creating the TLS directory: %w", err)
		}
	}
	if err := acmecert.ReplaceFile(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("writing the TLS key: %w", err)
	}
	if err := acmecert.ReplaceFile(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("writing the TLS certificate: %w", err)
	}
	return nil
}

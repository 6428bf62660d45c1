// Package tlsconf serves the certificates of postern.toml's [tls] section to the TLS
// servers (smtpd, imapd, httpd): one certificate per host name, chosen by the name the
// client asks for (SNI, RFC 6066 §3), TLS 1.2 or later (RFC 8996 retires 1.0 and 1.1;
// RFC 8314 §4.1 asks for 1.2 at least), on TLS 1.2 only AEAD cipher suites with forward
// secrecy (see CipherSuites), and reloadable while connections go on.
//
// The [tls] cert and key are the default pair, served when no other matches (or the
// client sends no name). Each [[tls.certificates]] entry adds a pair; a pair matches the
// names of its leaf certificate (DNS SANs, wildcards included). Reload re-reads every file
// and swaps the set in one step: handshakes that already started keep the old set, new
// ones get the new one, and no connection is dropped. A reload that fails keeps the old
// set.
//
// Use it like this:
//
//	store, err := tlsconf.Load(cfg.TLS)
//	srv := tls.NewListener(l, store.ServerConfig())
//	// on SIGHUP:
//	if err := store.Reload(); err != nil { log ... }
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"postern/pkg/config"
)

// Store holds the loaded certificates. It is safe for concurrent use.
type Store struct {
	conf config.TLS
	set  atomic.Pointer[certSet]
}

// certSet is one loaded generation of certificates.
type certSet struct {
	def    *tls.Certificate // the default pair; nil if only SNI pairs are configured
	byName []*tls.Certificate
	loaded time.Time
}

// Load reads the certificates that conf names. It fails when a configured file cannot
// be read or a pair does not match, and when no certificate is configured at all.
func Load(conf config.TLS) (*Store, error) {
	s := &Store{conf: conf}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On error the certificates loaded before stay in use.
func (s *Store) Reload() error {
	set := &certSet{loaded: time.Now()}
	if s.conf.Cert != "" || s.conf.Key != "" {
		c, err := loadPair(s.conf.Cert, s.conf.Key)
		if err != nil {
			return err
		}
		set.def = c
	}
	for _, p := range s.conf.Certificates {
		c, err := loadPair(p.Cert, p.Key)
		if err != nil {
			return err
		}
		set.byName = append(set.byName, c)
	}
	if set.def == nil {
		if len(set.byName) == 0 {
			return errors.New("tls: no certificate configured (tls.cert and tls.key)")
		}
		set.def = set.byName[0]
	}
	s.set.Store(set)
	return nil
}

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("tls: certificate %q needs both a cert and a key file", certFile+keyFile)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: loading %s and %s: %w", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: parsing %s: %w", certFile, err)
		}
	}
	return &c, nil
}

// Certificate picks the certificate for a handshake: the first configured pair whose
// leaf certificate is valid for the requested server name, else the default pair. It is
// the tls.Config GetCertificate callback.
func (s *Store) Certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := s.set.Load()
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if name != "" {
		if set.def.Leaf != nil && set.def.Leaf.VerifyHostname(name) == nil {
			return set.def, nil
		}
		for _, c := range set.byName {
			if c.Leaf.VerifyHostname(name) == nil {
				return c, nil
			}
		}
	}
	return set.def, nil
}

// CipherSuites are the TLS 1.2 cipher suites every Postern server offers: ECDHE key
// exchange (forward secrecy) with an AEAD cipher, AES-GCM or ChaCha20-Poly1305 — the
// TLS 1.2 part of Mozilla's "intermediate" configuration, and what RFC 9325 §4.2
// recommends. CBC suites (with their SHA-1 or SHA-256 MACs: Lucky Thirteen, padding
// oracles) and static-RSA key exchange (no forward secrecy) are not offered; a client
// that knows nothing else fails the handshake. TLS 1.3 suites are all AEAD with
// forward secrecy and are not configurable in Go.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerConfig returns a TLS server configuration that takes its certificates from the
// store at every handshake, so that a Reload applies to the next connection. It offers
// TLS 1.2 and 1.3, with CipherSuites on TLS 1.2.
func (s *Store) ServerConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: s.Certificate,
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   CipherSuites,
	}
}

// Names returns the DNS names of the loaded certificates, the default's first, for logs.
func (s *Store) Names() []string {
	set := s.set.Load()
	var out []string
	seen := map[string]bool{}
	for _, c := range append([]*tls.Certificate{set.def}, set.byName...) {
		if c.Leaf == nil {
			continue
		}
		for _, n := range c.Leaf.DNSNames {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// NotAfter returns the earliest expiry of the loaded leaf certificates.
func (s *Store) NotAfter() time.Time {
	set := s.set.Load()
	var t time.Time
	for _, c := range append([]*tls.Certificate{set.def}, set.byName...) {
		if c.Leaf != nil && (t.IsZero() || c.Leaf.NotAfter.Before(t)) {
			t = c.Leaf.NotAfter
		}
	}
	return t
}

// Package acmecert obtains and renews the TLS certificate of a Postern host from an
// ACME certificate authority such as Let's Encrypt (RFC 8555), with
// golang.org/x/crypto/acme. It proves control of each name with the HTTP-01 challenge
// (RFC 8555 §8.3): the CA fetches http://NAME/.well-known/acme-challenge/TOKEN on port
// 80, which a Responder answers (an http.Handler, served by mailctl cert renew or, once
// Postern has it, httpd) or a Webroot serves (files for another web server).
//
// The certificate and its key are written where [tls] names them, each replaced in
// one rename(2), so that smtpd, imapd, httpd and sieved, which watch the files
// (pkg/tlsconf), serve the new pair without a restart or a signal. The names a
// certificate was obtained for can be kept in a file (ReadNames, WriteNames), for the
// renewals that give none.
package acmecert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/acme"

	"postern/pkg/dirsync"
)

// LetsEncrypt is the directory of Let's Encrypt's production CA.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// ChallengePath is where HTTP-01 tokens are served (RFC 8555 §8.3).
const ChallengePath = "/.well-known/acme-challenge/"

// Solver publishes the answer to an HTTP-01 challenge while the CA checks it.
type Solver interface {
	Present(token, keyAuth string) error
	CleanUp(token string)
}

// Responder answers HTTP-01 challenges from memory; it is an http.Handler for port 80.
type Responder struct {
	mu     sync.Mutex
	tokens map[string]string
}

// Present implements Solver.
func (r *Responder) Present(token, keyAuth string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tokens == nil {
		r.tokens = map[string]string{}
	}
	r.tokens[token] = keyAuth
	return nil
}

// CleanUp implements Solver.
func (r *Responder) CleanUp(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tokens, token)
}

// ServeHTTP answers GET ChallengePath+TOKEN with the key authorization (RFC 8555
// §8.3), and everything else with 404.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	token, ok := strings.CutPrefix(req.URL.Path, ChallengePath)
	r.mu.Lock()
	ka, found := r.tokens[token]
	r.mu.Unlock()
	if !ok || !found || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write([]byte(ka))
}

// Webroot publishes the answers as files under Dir/.well-known/acme-challenge/, for a
// web server that already holds port 80 and serves Dir.
type Webroot struct{ Dir string }

func (w Webroot) path(token string) string {
	return filepath.Join(w.Dir, filepath.FromSlash(ChallengePath), token)
}

// Present implements Solver.
func (w Webroot) Present(token, keyAuth string) error {
	p := w.path(token)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("creating the challenge directory: %w", err)
	}
	if err := os.WriteFile(p, []byte(keyAuth), 0o644); err != nil {
		return fmt.Errorf("writing the challenge file: %w", err)
	}
	return nil
}

// CleanUp implements Solver.
func (w Webroot) CleanUp(token string) { os.Remove(w.path(token)) }

// Manager gets a certificate for Names into CertFile and KeyFile.
type Manager struct {
	// DirectoryURL is the CA's ACME directory; empty means LetsEncrypt.
	DirectoryURL string
	// Email is the account's contact, for the CA's expiry warnings; may be empty.
	Email string
	// Names are the host names the certificate is for, the first its subject.
	Names []string
	// AccountKey is the file of the account's key, made on first use.
	AccountKey string
	// CertFile and KeyFile receive the certificate chain and its key, in PEM.
	CertFile, KeyFile string
	// RenewBefore is how long before expiry a certificate is renewed; 0 means 30 days
	// (Let's Encrypt's certificates last 90).
	RenewBefore time.Duration
	// Solver answers the challenges.
	Solver Solver
	// HTTPClient talks to the CA; nil means http.DefaultClient.
	HTTPClient *http.Client
	Log        *slog.Logger
}

// Due reports whether the certificate should be obtained now, and why: there is none,
// it is not from a CA (self-signed), it does not cover every name, or it expires within
// RenewBefore.
func (m *Manager) Due(now time.Time) (bool, string) {
	leaf, err := readLeaf(m.CertFile)
	if err != nil {
		return true, err.Error()
	}
	// Signed by its own key (mailctl init's certificate is a leaf, not a CA, so
	// CheckSignatureFrom would refuse it as a parent).
	if bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil {
		return true, m.CertFile + " is self-signed"
	}
	for _, n := range m.Names {
		if leaf.VerifyHostname(n) != nil {
			return true, fmt.Sprintf("%s does not cover %s", m.CertFile, n)
		}
	}
	before := m.RenewBefore
	if before == 0 {
		before = 30 * 24 * time.Hour
	}
	if left := leaf.NotAfter.Sub(now); left < before {
		return true, fmt.Sprintf("%s expires on %s", m.CertFile, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	return false, fmt.Sprintf("%s is valid until %s; renewal from %s", m.CertFile,
		leaf.NotAfter.UTC().Format(time.DateOnly), leaf.NotAfter.Add(-before).UTC().Format(time.DateOnly))
}

func readLeaf(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return leaf, nil
}

// Obtain runs one order (RFC 8555 §7.4): it registers the account (or finds it), has
// every name authorized through HTTP-01, sends a CSR for a new P-256 key, and writes
// the certificate chain and key. It returns the new leaf.
func (m *Manager) Obtain(ctx context.Context) (*x509.Certificate, error) {
	if len(m.Names) == 0 {
		return nil, errors.New("acme: no host name to get a certificate for")
	}
	log := m.Log
	if log == nil {
		log = slog.Default()
	}
	key, err := loadOrCreateKey(m.AccountKey)
	if err != nil {
		return nil, err
	}
	dir := m.DirectoryURL
	if dir == "" {
		dir = LetsEncrypt
	}
	c := &acme.Client{Key: key, DirectoryURL: dir, HTTPClient: m.HTTPClient, UserAgent: "postern"}
	acct := &acme.Account{}
	if m.Email != "" {
		acct.Contact = []string{"mailto:" + m.Email}
	}
	if _, err := c.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("acme: registering the account at %s: %w", dir, err)
	}
	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(m.Names...))
	if err != nil {
		return nil, fmt.Errorf("acme: ordering a certificate for %s: %w", strings.Join(m.Names, ", "), err)
	}
	for _, u := range order.AuthzURLs {
		if err := m.authorize(ctx, c, u, log); err != nil {
			return nil, err
		}
	}
	if order, err = c.WaitOrder(ctx, order.URI); err != nil {
		return nil, fmt.Errorf("acme: waiting for the order: %w", err)
	}
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: m.Names[0]}, DNSNames: m.Names,
	}, certKey)
	if err != nil {
		return nil, fmt.Errorf("acme: making the CSR: %w", err)
	}
	chain, _, err := c.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		return nil, fmt.Errorf("acme: finalizing the order: %w", err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("acme: the CA's certificate does not parse: %w", err)
	}
	for _, n := range m.Names {
		if leaf.VerifyHostname(n) != nil {
			return nil, fmt.Errorf("acme: the CA's certificate does not cover %s", n)
		}
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(certKey.Public()) {
		return nil, errors.New("acme: the CA's certificate is not for the key sent")
	}
	kb, err := x509.MarshalPKCS8PrivateKey(certKey)
	if err != nil {
		return nil, err
	}
	var certPEM []byte
	for _, der := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	// The key first: a watcher that sees the new key with the old certificate fails to
	// load the pair and keeps the old one until the certificate follows.
	if err := ReplaceFile(m.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o640); err != nil {
		return nil, err
	}
	if err := ReplaceFile(m.CertFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	log.Info("certificate obtained", "names", strings.Join(leaf.DNSNames, ","), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "issuer", leaf.Issuer.CommonName)
	return leaf, nil
}

// authorize proves control of one name with HTTP-01.
func (m *Manager) authorize(ctx context.Context, c *acme.Client, url string, log *slog.Logger) error {
	z, err := c.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("acme: reading an authorization: %w", err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	i := slices.IndexFunc(z.Challenges, func(ch *acme.Challenge) bool { return ch.Type == "http-01" })
	if i < 0 {
		return fmt.Errorf("acme: the CA offers no http-01 challenge for %s", z.Identifier.Value)
	}
	ch := z.Challenges[i]
	ka, err := c.HTTP01ChallengeResponse(ch.Token)
	if err != nil {
		return err
	}
	if err := m.Solver.Present(ch.Token, ka); err != nil {
		return fmt.Errorf("acme: publishing the challenge for %s: %w", z.Identifier.Value, err)
	}
	defer m.Solver.CleanUp(ch.Token)
	log.Info("answering the http-01 challenge", "name", z.Identifier.Value)
	if _, err := c.Accept(ctx, ch); err != nil {
		return fmt.Errorf("acme: accepting the challenge for %s: %w", z.Identifier.Value, err)
	}
	if _, err := c.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("acme: the CA could not verify %s (it fetches http://%s%s... on port 80): %w", z.Identifier.Value, z.Identifier.Value, ChallengePath, err)
	}
	return nil
}

// loadOrCreateKey reads the account key, or makes one (P-256) and writes it, mode 0600.
func loadOrCreateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("acme: %s holds no PEM key", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("acme: parsing the account key %s: %w", path, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("acme: %s is not a signing key", path)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("acme: reading the account key: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := ReplaceFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// ReplaceFile writes data to path through a temporary file beside it, fsynced and renamed
// over path, then syncs the directory: a reader sees the old file or the new one, never
// a partial one, and the new one survives a crash once ReplaceFile returns. The new file
// keeps the mode and owner of the file it replaces, or gets mode for a new one; the
// temporary file has that mode before any data is written to it.
func ReplaceFile(path string, data []byte, mode os.FileMode) error {
	uid, gid := -1, -1
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename this fails harmlessly
	err = tmp.Chmod(mode)
	if err == nil && uid >= 0 {
		tmp.Chown(uid, gid) // best effort: only root may give a file away
	}
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = dirsync.Sync(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// WebrootDir is where mailctl cert renew writes the answers to HTTP-01 challenges for
// httpd, which serves them on its http listener (port 80): <data_dir>/acme.
func WebrootDir(dataDir string) string { return filepath.Join(dataDir, "acme") }

// ServeWebroot answers GET ChallengePath+TOKEN with the file dir/.well-known/
// acme-challenge/TOKEN that a Webroot wrote, and reports false, leaving the answer to
// the caller, for any other request. A token is base64url (RFC 8555 §8.3), so no path
// can lead out of the directory.
func ServeWebroot(dir string, w http.ResponseWriter, r *http.Request) bool {
	token, ok := strings.CutPrefix(r.URL.Path, ChallengePath)
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	if token == "" || strings.Trim(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		http.NotFound(w, r)
		return true
	}
	ka, err := os.ReadFile(Webroot{Dir: dir}.path(token))
	if err != nil {
		http.NotFound(w, r)
		return true
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(ka)
	return true
}

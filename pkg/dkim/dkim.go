// Package dkim keeps Postern's DKIM signing keys (RFC 6376) and signs outgoing mail with
// them through github.com/emersion/go-msgauth.
//
// The keys live under <data_dir>/dkim/<domain>/<selector>.key, one PKCS #8 PEM private
// key per file (mode 0600, owned by cleanup's user, which signs), with the public half
// beside it in <selector>.pub (0644, for `mailctl dkim list` and `mailctl dns records`
// run by members of the admin group). A domain may have several selectors: mail is
// signed with each of them, which is how an ed25519 key (RFC 8463) and an RSA key are
// used side by side, and how a key is rotated (publish the new selector, generate it,
// remove the old file later).
package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"postern/pkg/dirsync"
)

// Algorithms of Generate.
const (
	Ed25519 = "ed25519"
	RSA     = "rsa"
)

// RSABits is the size of generated RSA keys: RFC 8301 §3.2 asks for at least 1024 and
// recommends 2048; 2048 still fits a TXT record in two strings.
const RSABits = 2048

// Key is a signing key of one domain and selector.
type Key struct {
	Domain    string
	Selector  string
	Algorithm string // Ed25519 or RSA
	Signer    crypto.Signer
	// Public is the public key; Signer is nil when only the public half was read.
	Public  crypto.PublicKey
	Created time.Time
}

// Dir is the directory of the keys of a data directory.
func Dir(dataDir string) string { return filepath.Join(dataDir, "dkim") }

var (
	selectorRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	domainRe   = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// CheckSelector checks a selector: one DNS label (RFC 6376 §3.1 allows dotted
// selectors; Postern keeps to one label, which is also a safe file name).
func CheckSelector(s string) error {
	if !selectorRe.MatchString(s) {
		return fmt.Errorf("selector %q: want one DNS label of letters, digits and '-' (lower case)", s)
	}
	return nil
}

// CanonicalDomain returns a domain in lower case, without a final dot, or an error if it
// is not a host name (a safe directory name, too).
func CanonicalDomain(d string) (string, error) {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	if len(d) > 253 || !domainRe.MatchString(d) {
		return "", fmt.Errorf("domain %q is not a domain name", d)
	}
	return d, nil
}

// Generate makes a new key for domain and selector, writes it under dir (the .key file
// mode 0600 and the .pub file 0644, each to a temporary name then renamed, so that a
// reader never sees half a key) and returns it. An existing selector is never
// overwritten. uid and gid, when not -1, become the owner of what is written (cleanup's
// user, when run as root).
func Generate(dir, domain, selector, algorithm string, uid, gid int) (*Key, error) {
	domain, err := CanonicalDomain(domain)
	if err != nil {
		return nil, err
	}
	if err := CheckSelector(selector); err != nil {
		return nil, err
	}
	var signer crypto.Signer
	switch algorithm {
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating the key: %w", err)
		}
		signer = priv
	case RSA:
		priv, err := rsa.GenerateKey(rand.Reader, RSABits)
		if err != nil {
			return nil, fmt.Errorf("generating the key: %w", err)
		}
		signer = priv
	default:
		return nil, fmt.Errorf("algorithm %q: want %s or %s", algorithm, Ed25519, RSA)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, fmt.Errorf("encoding the key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	ddir := filepath.Join(dir, domain)
	for _, d := range []string{dir, ddir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
		if uid != -1 {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, fmt.Errorf("giving %s to cleanup's user: %w", d, err)
			}
		}
	}
	keyPath := filepath.Join(ddir, selector+".key")
	if _, err := os.Lstat(keyPath); err == nil {
		return nil, fmt.Errorf("%s exists already: choose another selector (keys are never overwritten)", keyPath)
	}
	if err := writeNew(filepath.Join(ddir, selector+".pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644, uid, gid); err != nil {
		return nil, err
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600, uid, gid); err != nil {
		return nil, err
	}
	return &Key{Domain: domain, Selector: selector, Algorithm: algorithm, Signer: signer, Public: signer.Public(), Created: time.Now()}, nil
}

// writeNew writes data to path through a temporary file of the given mode and owner,
// fsynced, then linked into place; it fails if path exists.
func writeNew(path string, data []byte, mode os.FileMode, uid, gid int) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(mode)
	if err == nil && uid != -1 {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// link(2) fails when path exists, where rename(2) would replace it.
		err = os.Link(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// parseKeyFile reads a .key (private) or .pub (public) file.
func parseKeyFile(path string) (crypto.Signer, crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, nil, fmt.Errorf("%s: no PEM block", path)
	}
	switch blk.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, nil, fmt.Errorf("%s: not a signing key", path)
		}
		return s, s.Public(), nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return k, k.Public(), nil
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, k, nil
	}
	return nil, nil, fmt.Errorf("%s: unexpected PEM block %q", path, blk.Type)
}

func algorithmOf(pub crypto.PublicKey) (string, error) {
	switch pub.(type) {
	case ed25519.PublicKey:
		return Ed25519, nil
	case *rsa.PublicKey:
		return RSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T", pub)
}

// Load reads the keys of one domain under dir, sorted by selector. private says
// whether the .key files are wanted (signing); else the .pub files are read, and a
// .key file only where its .pub is missing. A domain without keys gives none and no
// error.
func Load(dir, domain string, private bool) ([]*Key, error) {
	domain, err := CanonicalDomain(domain)
	if err != nil {
		return nil, err
	}
	ddir := filepath.Join(dir, domain)
	entries, err := os.ReadDir(ddir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ddir, err)
	}
	var out []*Key
	for _, e := range entries {
		sel, ok := strings.CutSuffix(e.Name(), ".key")
		if !ok || CheckSelector(sel) != nil {
			continue
		}
		path := filepath.Join(ddir, e.Name())
		if !private {
			if _, err := os.Stat(filepath.Join(ddir, sel+".pub")); err == nil {
				path = filepath.Join(ddir, sel+".pub")
			}
		}
		signer, pub, err := parseKeyFile(path)
		if err != nil {
			return nil, err
		}
		alg, err := algorithmOf(pub)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		k := &Key{Domain: domain, Selector: sel, Algorithm: alg, Signer: signer, Public: pub}
		if info, err := e.Info(); err == nil {
			k.Created = info.ModTime()
		}
		out = append(out, k)
	}
	return out, nil
}

// Domains lists the domains that have a key directory under dir, sorted.
func Domains(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if d, err := CanonicalDomain(e.Name()); err == nil && e.IsDir() && d == e.Name() {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out, nil
}

// LoadAll reads the public keys of domain under dir, or of every domain when domain is
// "", sorted by domain and selector (what `mailctl dkim list` and the admin panel show).
func LoadAll(dir, domain string) ([]*Key, error) {
	domains := []string{domain}
	if domain == "" {
		var err error
		if domains, err = Domains(dir); err != nil {
			return nil, err
		}
	}
	var out []*Key
	for _, d := range domains {
		keys, err := Load(dir, d, false)
		if err != nil {
			return nil, err
		}
		out = append(out, keys...)
	}
	return out, nil
}

// DefaultSelector is the selector of a new key when none is given: the algorithm and
// the month (ed202611, rsa202611), so that a key made later gets another name.
func DefaultSelector(algorithm string, now time.Time) string {
	short := "ed"
	if algorithm == RSA {
		short = "rsa"
	}
	return short + now.UTC().Format("200601")
}

// Remove retires the key of domain and selector under dir: its private half first, so
// that no message is signed with it any more (cleanup's Keyring sees the directory
// change), then its public half. Publish the record of the key that replaces it, and
// wait for the mail signed with the old one to be delivered, before removing it and
// its record.
func Remove(dir, domain, selector string) error {
	domain, err := CanonicalDomain(domain)
	if err != nil {
		return err
	}
	if err := CheckSelector(selector); err != nil {
		return err
	}
	ddir := filepath.Join(dir, domain)
	keyPath := filepath.Join(ddir, selector+".key")
	if err := os.Remove(keyPath); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("domain %s has no key %s: %w", domain, selector, os.ErrNotExist)
		}
		return fmt.Errorf("removing %s: %w", keyPath, err)
	}
	if err := os.Remove(filepath.Join(ddir, selector+".pub")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the public key of %s: %w", selector, err)
	}
	// The removal survives a crash; the key is gone already, so a failed fsync is not
	// reported as a failed removal.
	dirsync.Sync(ddir)
	return nil
}

// RecordName is the owner name of a key's TXT record (RFC 6376 §3.6.2.1).
func (k *Key) RecordName() string { return k.Selector + "._domainkey." + k.Domain }

// Record is the content of the key's TXT record (RFC 6376 §3.6.1): for RSA the
// SubjectPublicKeyInfo, for ed25519 the raw 32-octet key (RFC 8463 §4.2).
func (k *Key) Record() (string, error) {
	var p []byte
	switch pub := k.Public.(type) {
	case ed25519.PublicKey:
		p = pub
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		p = der
	default:
		return "", fmt.Errorf("unsupported key type %T", k.Public)
	}
	return "v=DKIM1; k=" + k.Algorithm + "; p=" + base64.StdEncoding.EncodeToString(p), nil
}

// SplitTXT cuts a TXT record's text into character-strings of at most 255 octets, the
// limit of one string in a TXT record (RFC 1035 §3.3.14); resolvers join them again
// (RFC 6376 §3.6.2.2).
func SplitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// signedHeaders are the fields signed (RFC 6376 §5.4.1's list). Those named twice are
// "oversigned": the second name covers an instance that is not there, so that a field
// added in transit breaks the signature (RFC 6376 §8.15).
var signedHeaders = []string{
	"From", "From", "Reply-To", "Reply-To", "Subject", "Subject", "Date", "Date",
	"To", "To", "Cc", "Cc", "Message-ID", "Message-ID", "Sender",
	"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"Resent-Date", "Resent-From", "Resent-To", "Resent-Cc",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post", "List-Owner", "List-Archive",
}

// MaxSignatureSize bounds the length of one DKIM-Signature field made by Signer, for
// queue.Writer.Reserve: the tags, the base64 of a 4096-bit RSA signature (684 octets),
// the header list, a 253-octet domain and a 63-octet selector, with folding.
const MaxSignatureSize = 3072

// Signer signs one message with every key given, as the message streams through Write.
type Signer struct {
	signers []*dkim.Signer
	err     error
}

// NewSigner starts signing with keys (which must have their private halves). Relaxed
// canonicalization of header and body (RFC 6376 §3.4.2, §3.4.4) survives the
// whitespace changes of relays.
func NewSigner(keys []*Key) (*Signer, error) {
	s := &Signer{}
	for _, k := range keys {
		if k.Signer == nil {
			return nil, fmt.Errorf("dkim: key %s has no private half", k.RecordName())
		}
		ds, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 k.Domain,
			Selector:               k.Selector,
			Signer:                 k.Signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             signedHeaders,
		})
		if err != nil {
			s.abort()
			return nil, fmt.Errorf("dkim: %s: %w", k.RecordName(), err)
		}
		s.signers = append(s.signers, ds)
	}
	return s, nil
}

// Write passes message octets to every signer.
func (s *Signer) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	for _, ds := range s.signers {
		if _, err := ds.Write(p); err != nil {
			s.err = fmt.Errorf("dkim: signing: %w", err)
			return 0, s.err
		}
	}
	return len(p), nil
}

// Signatures ends the message and returns the DKIM-Signature fields, CRLF-terminated,
// to be put in front of it.
func (s *Signer) Signatures() ([]byte, error) {
	if s.err != nil {
		s.abort()
		return nil, s.err
	}
	var out []byte
	for _, ds := range s.signers {
		if err := ds.Close(); err != nil {
			s.abort()
			return nil, fmt.Errorf("dkim: signing: %w", err)
		}
		out = append(out, ds.Signature()...)
	}
	return out, nil
}

// Abort ends signing without signatures (a message that was not queued).
func (s *Signer) Abort() { s.abort() }

func (s *Signer) abort() {
	for _, ds := range s.signers {
		ds.Close()
	}
}

var _ io.Writer = (*Signer)(nil)

// Keyring gives the signing keys of a domain to cleanup, reading them again when a
// domain's directory changed (a key added or removed, or replaced by rename, changes its
// modification time) and at least every keyringRecheck (a key file rewritten in place
// does not touch the directory).
type Keyring struct {
	Dir string

	mu    sync.Mutex
	cache map[string]keyringEntry
	now   func() time.Time // for tests; time.Now when nil
}

// keyringRecheck bounds how long a key file rewritten in place goes unnoticed.
const keyringRecheck = time.Minute

type keyringEntry struct {
	mtime  time.Time
	loaded time.Time
	keys   []*Key
}

// Keys returns the signing keys of domain; none if it has no key directory.
func (r *Keyring) Keys(domain string) ([]*Key, error) {
	domain, err := CanonicalDomain(domain)
	if err != nil {
		return nil, nil // no such domain can have keys
	}
	fi, err := os.Stat(filepath.Join(r.Dir, domain))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.cache[domain]; ok && e.mtime.Equal(fi.ModTime()) && now.Sub(e.loaded) < keyringRecheck {
		return e.keys, nil
	}
	keys, err := Load(r.Dir, domain, true)
	if err != nil {
		return nil, err
	}
	if r.cache == nil {
		r.cache = map[string]keyringEntry{}
	}
	r.cache[domain] = keyringEntry{mtime: fi.ModTime(), loaded: now, keys: keys}
	return keys, nil
}

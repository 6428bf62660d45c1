// Package srs is the Sender Rewriting Scheme (Shevek's SRS paper, as libsrs2 and
// Postfix's postsrsd implement it): the envelope sender of mail this host forwards — an
// alias that leads to another domain, a Sieve redirect — is rewritten into an address of
// our own domain, so that the receiver's SPF check (RFC 7208) of the forwarded message
// asks about our domain, whose record names this host, instead of the original sender's.
// A bounce to the rewritten address comes back here, and Reverse turns it into the
// original sender again, only if the address carries our hash and a fresh timestamp:
// nobody can make this host relay to an address of their choosing.
//
// The forms, with "=" as the separator:
//
//	SRS0=HHH=TT=orig-domain=orig-local@our-domain            (forward of a plain sender)
//	SRS1=HHH=first-domain==HHH=TT=orig-domain=orig-local@our-domain  (forward of an SRS0 address)
//
// HHH is the HMAC-SHA1 of the rest of the address (lower-cased) under the secret, in
// base64, truncated to HashLength characters; it is compared case-insensitively, for
// some hosts change the case of local parts. TT is the day of the rewrite (days since
// the Unix epoch, modulo 1024) in two base32 characters; an address older than MaxAge
// days is refused. An SRS1 address keeps the first forwarder's opaque part, so that a
// chain of forwarders grows the address once only; its bounce goes back to the first
// forwarder, which checks its own hash.
package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of Reverse.
var (
	// ErrNotSRS: the address is no SRS address (it does not start with SRS0 or SRS1
	// and a separator).
	ErrNotSRS = errors.New("srs: not an SRS address")
	// ErrSyntax: an SRS address with parts missing.
	ErrSyntax = errors.New("srs: malformed SRS address")
	// ErrHash: the hash is not ours (forged or made with another secret).
	ErrHash = errors.New("srs: hash does not match")
	// ErrExpired: the timestamp is older than MaxAge days (or in the future).
	ErrExpired = errors.New("srs: address expired")
)

// Defaults of a Rewriter.
const (
	// DefaultHashLength is the number of base64 characters of the hash kept: 8, about
	// 43 bits after case folding (libsrs2's default is 4).
	DefaultHashLength = 8
	// DefaultMaxAge is how long a rewritten address stays valid: 21 days, libsrs2's
	// and postsrsd's default.
	DefaultMaxAge = 21 * 24 * time.Hour
)

// timePrecision is the unit of the timestamp (a day), timeSlots its period: two base32
// characters, 10 bits.
const (
	timePrecision = 24 * time.Hour
	timeSlots     = 1024
	base32Chars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
)

// Rewriter rewrites senders into SRS addresses of Domain and back. Its zero value is not
// usable: Secrets must hold at least one secret.
type Rewriter struct {
	// Domain is the domain of the rewritten addresses: one of ours, whose SPF record
	// names this host and whose mail comes here.
	Domain string
	// Secrets are the HMAC keys: the first makes new addresses, every one is accepted
	// when checking, so that a secret can be replaced without breaking the addresses
	// made in the last MaxAge days.
	Secrets [][]byte
	// HashLength is the number of hash characters (0: DefaultHashLength).
	HashLength int
	// MaxAge is how long an address stays valid (0: DefaultMaxAge); at most 1023 days.
	MaxAge time.Duration
	// Now returns the time; nil means time.Now.
	Now func() time.Time
}

func (r *Rewriter) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Rewriter) hashLength() int {
	if r.HashLength > 0 {
		return min(r.HashLength, 27) // a SHA-1 digest is 27 base64 characters unpadded
	}
	return DefaultHashLength
}

// Forward returns the envelope sender to use when forwarding mail from sender: "" (the
// null reverse-path) stays "", a sender of Domain itself stays as it is (its SPF names
// us already), an SRS0 or SRS1 address of another forwarder becomes an SRS1 address,
// anything else an SRS0 address.
func (r *Rewriter) Forward(sender string) (string, error) {
	if sender == "" {
		return "", nil
	}
	if len(r.Secrets) == 0 || len(r.Secrets[0]) == 0 {
		return "", errors.New("srs: no secret")
	}
	at := strings.LastIndexByte(sender, '@')
	if at <= 0 || at == len(sender)-1 {
		return "", fmt.Errorf("srs: forwarding %q: not an address with a domain", sender)
	}
	local, domain := sender[:at], sender[at+1:]
	if strings.ContainsAny(domain, "=+ \t\r\n") {
		// "=" would end the domain early when the address comes back.
		return "", fmt.Errorf("srs: forwarding %q: not a domain", sender)
	}
	if strings.EqualFold(domain, r.Domain) {
		return sender, nil
	}
	if tag, rest, ok := cutTag(local); ok {
		if tag == '0' {
			// SRS0=rest@domain (rest begins with its separator) → SRS1=HHH=domain==rest.
			return "SRS1=" + r.hash(domain, rest) + "=" + domain + "=" + rest + "@" + r.Domain, nil
		}
		// SRS1=HHH=first==opaque@domain: keep the first forwarder and its opaque part.
		parts := strings.SplitN(rest[1:], "=", 3)
		if len(parts) == 3 && parts[1] != "" && len(parts[2]) >= 2 && isSep(parts[2][0]) {
			first, opaque := parts[1], parts[2]
			return "SRS1=" + r.hash(first, opaque) + "=" + first + "=" + opaque + "@" + r.Domain, nil
		}
		// A malformed SRS1 address is rewritten as any other sender.
	}
	ts := r.timestamp(r.now())
	return "SRS0=" + r.hash(ts, domain, local) + "=" + ts + "=" + domain + "=" + local + "@" + r.Domain, nil
}

// IsSRS reports whether addr (an address, or its local part) has the form of an SRS
// address: its local part starts with SRS0 or SRS1, in any case, and a separator.
func IsSRS(addr string) bool {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		addr = addr[:at]
	}
	_, _, ok := cutTag(addr)
	return ok
}

// Reverse returns the address an SRS address of ours stands for: the original sender
// of an SRS0 address, the first forwarder's SRS0 address for an SRS1 one. The domain of
// addr is not checked (the caller knows which domains it serves). It fails with
// ErrNotSRS, ErrSyntax, ErrHash or ErrExpired.
func (r *Rewriter) Reverse(addr string) (string, error) {
	local := addr
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		local = addr[:at]
	}
	tag, rest, ok := cutTag(local)
	if !ok {
		return "", ErrNotSRS
	}
	if tag == '1' {
		// =HHH=first=opaque, where opaque begins with the SRS0 part's separator.
		parts := strings.SplitN(rest[1:], "=", 3)
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || len(parts[2]) < 2 || !isSep(parts[2][0]) {
			return "", ErrSyntax
		}
		hash, first, opaque := parts[0], parts[1], parts[2]
		if !r.check(hash, first, opaque) {
			return "", ErrHash
		}
		return "SRS0" + opaque + "@" + first, nil
	}
	// =HHH=TT=domain=local; the original local part may hold "=" itself.
	parts := strings.SplitN(rest[1:], "=", 4)
	if len(parts) != 4 || parts[0] == "" || len(parts[1]) != 2 || parts[2] == "" || parts[3] == "" {
		return "", ErrSyntax
	}
	hash, ts, domain, orig := parts[0], parts[1], parts[2], parts[3]
	if !r.check(hash, ts, domain, orig) {
		return "", ErrHash
	}
	if !r.fresh(ts) {
		return "", ErrExpired
	}
	return orig + "@" + domain, nil
}

// cutTag splits an SRS local part into its tag ('0' or '1') and the rest, which begins
// with the separator ("=", or the "+" and "-" libsrs2 also accepts).
func cutTag(local string) (tag byte, rest string, ok bool) {
	if len(local) < 5 || !strings.EqualFold(local[:3], "SRS") || (local[3] != '0' && local[3] != '1') {
		return 0, "", false
	}
	if !isSep(local[4]) {
		return 0, "", false
	}
	return local[3], "=" + local[5:], true
}

// isSep reports whether c is an SRS separator.
func isSep(c byte) bool { return c == '=' || c == '+' || c == '-' }

// timestamp encodes the day of t.
func (r *Rewriter) timestamp(t time.Time) string {
	d := (t.Unix() / int64(timePrecision/time.Second)) % timeSlots
	return string([]byte{base32Chars[d>>5], base32Chars[d&31]})
}

// fresh reports whether the timestamp ts is no older than MaxAge (RFC-less, as libsrs2:
// a stamp "from the future" is taken as one from 1024 days ago, and so is stale).
func (r *Rewriter) fresh(ts string) bool {
	hi := strings.IndexByte(base32Chars, upper(ts[0]))
	lo := strings.IndexByte(base32Chars, upper(ts[1]))
	if hi < 0 || lo < 0 {
		return false
	}
	then := int64(hi<<5 | lo)
	now := (r.now().Unix() / int64(timePrecision/time.Second)) % timeSlots
	for now < then {
		now += timeSlots
	}
	maxAge := r.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	return now-then <= int64(maxAge/timePrecision)
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// hash is the truncated base64 HMAC-SHA1 of the lower-cased parts under the first
// secret, as libsrs2 computes it.
func (r *Rewriter) hash(parts ...string) string {
	return mac(r.Secrets[0], parts)[:r.hashLength()]
}

// check compares hash with the hash of parts under every secret, case-insensitively.
func (r *Rewriter) check(hash string, parts ...string) bool {
	n := r.hashLength()
	if len(hash) != n {
		return false
	}
	for _, s := range r.Secrets {
		if len(s) == 0 {
			continue
		}
		want := mac(s, parts)[:n]
		if hmac.Equal([]byte(strings.ToLower(want)), []byte(strings.ToLower(hash))) {
			return true
		}
	}
	return false
}

func mac(secret []byte, parts []string) string {
	h := hmac.New(sha1.New, secret)
	for _, p := range parts {
		h.Write([]byte(strings.ToLower(p)))
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Package mtasts is SMTP MTA Strict Transport Security (RFC 8461), both sides:
// a domain says in a TXT record at _mta-sts.<domain> that it has a policy, publishes the
// policy over HTTPS at https://mta-sts.<domain>/.well-known/mta-sts.txt, and a sender
// that holds a policy in "enforce" mode delivers only to the MX hosts the policy names,
// only over TLS with a certificate valid for the MX host's name.
//
// The package parses the TXT record (ParseRecord) and the policy (ParsePolicy), matches
// MX hosts against a policy (Policy.Matches), fetches policies (Fetcher) and keeps them
// for their max_age in memory, refreshing them when the record's id changes (Cache),
// which is how RFC 8461 §5.1 says a sender should find the policy in force.
//
// On the receiving side, Published is the policy Postern publishes for its domains
// (mailctl dns records prints the record that announces it) and Handler serves it to
// senders at https://mta-sts.<domain>/.well-known/mta-sts.txt.
package mtasts

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Modes of a policy (RFC 8461 §5).
const (
	Enforce = "enforce"
	Testing = "testing"
	None    = "none"
)

// Limits of RFC 8461.
const (
	// MaxAge is the longest max_age a policy may have (§3.2: 31557600 seconds).
	MaxAge = 31557600 * time.Second
	// MaxPolicySize bounds the policy file read (§3.3: senders may limit it to 64 KB).
	MaxPolicySize = 64 << 10
)

// ErrSyntax marks a malformed TXT record or policy.
var ErrSyntax = errors.New("mtasts: syntax error")

// ParseRecord parses the TXT record found at _mta-sts.<domain> and returns its id
// (RFC 8461 §3.1): "v=STSv1; id=20160831085700Z;". Fields are separated by ";" with
// optional white space; v must come first; other fields are ignored.
func ParseRecord(txt string) (id string, err error) {
	fields := strings.Split(txt, ";")
	for i, f := range fields {
		f = strings.Trim(f, " \t")
		if f == "" {
			if i == len(fields)-1 {
				continue
			}
			return "", fmt.Errorf("%w: empty field in %q", ErrSyntax, txt)
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return "", fmt.Errorf("%w: field %q has no value", ErrSyntax, f)
		}
		switch {
		case i == 0 && (k != "v" || v != "STSv1"):
			return "", fmt.Errorf("%w: the record does not start with v=STSv1", ErrSyntax)
		case k == "id":
			// sts-id = 1*32(ALPHA / DIGIT)
			if v == "" || len(v) > 32 || strings.TrimLeft(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
				return "", fmt.Errorf("%w: bad id %q", ErrSyntax, v)
			}
			id = v
		}
	}
	if id == "" {
		return "", fmt.Errorf("%w: no id in %q", ErrSyntax, txt)
	}
	return id, nil
}

// Policy is a parsed policy file.
type Policy struct {
	Mode   string
	MX     []string // host names and "*.domain" patterns, lower-case, without final dot
	MaxAge time.Duration
}

// ParsePolicy parses a policy file (RFC 8461 §3.2): lines of "key: value" ending in CRLF
// or LF; version (STSv1), mode and max_age are required, and mx, which may repeat, is
// required unless the mode is none. Unknown keys are ignored.
func ParsePolicy(body []byte) (*Policy, error) {
	p := &Policy{}
	var version string
	var haveMode, haveAge bool
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1024), MaxPolicySize)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %q is not key: value", ErrSyntax, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "version":
			version = v
		case "mode":
			switch v {
			case Enforce, Testing, None:
				p.Mode, haveMode = v, true
			default:
				return nil, fmt.Errorf("%w: mode %q", ErrSyntax, v)
			}
		case "max_age":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || len(v) > 10 || time.Duration(n)*time.Second > MaxAge {
				return nil, fmt.Errorf("%w: max_age %q", ErrSyntax, v)
			}
			p.MaxAge, haveAge = time.Duration(n)*time.Second, true
		case "mx":
			pat := strings.ToLower(strings.TrimSuffix(v, "."))
			if !validPattern(pat) {
				return nil, fmt.Errorf("%w: mx %q", ErrSyntax, v)
			}
			p.MX = append(p.MX, pat)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	switch {
	case version != "STSv1":
		return nil, fmt.Errorf("%w: version is not STSv1", ErrSyntax)
	case !haveMode:
		return nil, fmt.Errorf("%w: no mode", ErrSyntax)
	case !haveAge:
		return nil, fmt.Errorf("%w: no max_age", ErrSyntax)
	case p.Mode != None && len(p.MX) == 0:
		return nil, fmt.Errorf("%w: no mx", ErrSyntax)
	}
	return p, nil
}

// validPattern checks an mx value: a host name, or "*." and a host name.
func validPattern(p string) bool {
	p = strings.TrimPrefix(p, "*.")
	if p == "" || len(p) > 253 {
		return false
	}
	for _, label := range strings.Split(p, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Matches reports whether the MX host may receive mail under the policy (RFC 8461
// §4.1): it equals one of the mx values, or a "*.domain" value covers it with exactly
// one more label on the left.
func (p *Policy) Matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			if _, parent, found := strings.Cut(host, "."); found && parent == rest {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// Fetcher fetches policies over HTTPS.
type Fetcher struct {
	// Client makes the requests; it must verify certificates and must not follow
	// redirects (RFC 8461 §3.3). NewFetcher makes one.
	Client *http.Client
	// Port is the HTTPS port of the policy hosts: 443, another one only in tests.
	Port int
}

// NewFetcher returns a fetcher that connects with dial (which resolves names the way
// the caller wants) and verifies certificates against the system's authorities, or as
// tlsConfig says when it is not nil (tests give their own roots).
func NewFetcher(dial func(ctx context.Context, network, addr string) (net.Conn, error), tlsConfig *tls.Config) *Fetcher {
	tr := &http.Transport{
		DialContext:           dial,
		TLSHandshakeTimeout:   20 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second,
		MaxIdleConns:          10,
		IdleConnTimeout:       30 * time.Second,
		Proxy:                 nil,
	}
	if tlsConfig != nil {
		tr.TLSClientConfig = tlsConfig
	}
	return &Fetcher{
		Client: &http.Client{
			Transport: tr,
			Timeout:   60 * time.Second,
			// RFC 8461 §3.3: HTTP 3xx redirects MUST NOT be followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Port: 443,
	}
}

// Fetch gets the policy of domain from https://mta-sts.<domain>/.well-known/mta-sts.txt
// (RFC 8461 §3.3): it must come with status 200 and media type text/plain.
func (f *Fetcher) Fetch(ctx context.Context, domain string) (*Policy, error) {
	host := "mta-sts." + domain
	if f.Port != 0 && f.Port != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(f.Port))
	}
	url := "https://" + host + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching the MTA-STS policy of %s: %w", domain, err)
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the MTA-STS policy of %s: %w", domain, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the MTA-STS policy of %s: HTTP status %d", domain, resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("fetching the MTA-STS policy of %s: media type %q, not text/plain", domain, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("fetching the MTA-STS policy of %s: %w", domain, err)
	}
	if len(body) > MaxPolicySize {
		return nil, fmt.Errorf("the MTA-STS policy of %s is larger than %d bytes", domain, MaxPolicySize)
	}
	p, err := ParsePolicy(body)
	if err != nil {
		return nil, fmt.Errorf("the MTA-STS policy of %s: %w", domain, err)
	}
	return p, nil
}

// TXTResolver looks up TXT records; *resolver.Resolver implements it.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Cache finds the policy in force for a domain and keeps it in memory.
type Cache struct {
	DNS   TXTResolver
	Fetch func(ctx context.Context, domain string) (*Policy, error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]cached
	// failed remembers, per domain, a record id whose policy could not be fetched and
	// until when not to try again: a policy host that does not answer must not cost
	// every message a timeout.
	failed map[string]cached
}

// RetryFetch is how long a failed policy fetch is not tried again for the same record.
const RetryFetch = 5 * time.Minute

// maxEntries is the size of the cache at which expired policies are dropped.
const maxEntries = 10000

type cached struct {
	policy  *Policy
	id      string
	expires time.Time
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Get returns the policy in force for domain, or nil when it has none (RFC 8461 §5.1):
//   - the TXT record names the policy's id; a cached policy with that id is used as
//     it is, a new id means a fresh fetch;
//   - when the TXT lookup or the fetch fails, a cached policy that has not expired
//     stays in force, so that an attacker who blocks them cannot turn MTA-STS off;
//   - without a record and without a cached policy, there is none.
//
// The error, when not nil, says what failed, for logs; the policy is still the one to
// apply.
func (c *Cache) Get(ctx context.Context, domain string) (*Policy, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[domain]
	c.mu.Unlock()
	if ok && !now.Before(e.expires) {
		ok = false
	}
	var id string
	txts, err := c.DNS.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		if ok {
			return e.policy, fmt.Errorf("MTA-STS record lookup for %s failed, using the cached policy: %w", domain, err)
		}
		// A name that does not exist is simply no policy.
		return nil, nil
	}
	var found int
	for _, t := range txts {
		if !strings.HasPrefix(t, "v=STSv1") {
			continue
		}
		found++
		if got, perr := ParseRecord(t); perr == nil {
			id = got
		}
	}
	if found != 1 || id == "" {
		// §3.1: none, several, or a bad one: no valid record.
		if ok {
			return e.policy, nil
		}
		return nil, nil
	}
	if ok && e.id == id {
		return e.policy, nil
	}
	c.mu.Lock()
	f, failedBefore := c.failed[domain]
	c.mu.Unlock()
	if failedBefore && f.id == id && now.Before(f.expires) {
		if ok {
			return e.policy, nil
		}
		return nil, fmt.Errorf("the MTA-STS policy of %s could not be fetched a moment ago; not trying again before %s", domain, f.expires.Format(time.TimeOnly))
	}
	p, err := c.Fetch(ctx, domain)
	if err != nil {
		c.mu.Lock()
		if c.failed == nil || len(c.failed) >= maxEntries {
			c.failed = map[string]cached{}
		}
		c.failed[domain] = cached{id: id, expires: now.Add(RetryFetch)}
		c.mu.Unlock()
		if ok {
			return e.policy, fmt.Errorf("%w; using the cached policy", err)
		}
		return nil, err
	}
	c.mu.Lock()
	delete(c.failed, domain)
	if c.entries == nil {
		c.entries = map[string]cached{}
	}
	if len(c.entries) >= maxEntries {
		for d, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, d)
			}
		}
	}
	c.entries[domain] = cached{policy: p, id: id, expires: now.Add(p.MaxAge)}
	c.mu.Unlock()
	return p, nil
}

// Package dmarc evaluates DMARC (RFC 7489) for a received message: it finds the policy
// record of the domain of the From: header (at the domain, else at its organizational
// domain, found with the public suffix list), checks whether a passing SPF or DKIM
// identifier is aligned with that domain (relaxed or strict), and says which policy
// applies, after pct, sp and np (RFC 9091).
package dmarc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Policies (RFC 7489 §6.3, p=).
const (
	None       = "none"
	Quarantine = "quarantine"
	Reject     = "reject"
)

// Record is a parsed DMARC policy record.
type Record struct {
	Policy string
	// SubdomainPolicy (sp=) and NonexistentPolicy (np=, RFC 9091) default to Policy
	// (np to SubdomainPolicy).
	SubdomainPolicy   string
	NonexistentPolicy string
	// StrictDKIM and StrictSPF are adkim=s and aspf=s.
	StrictDKIM, StrictSPF bool
	// Pct is the percentage of failing mail the policy applies to.
	Pct int
	// RUA are the aggregate report addresses (rua=), kept for reports.
	RUA []string
	// FO is the failure reporting option (fo=), kept for reports; "0" by default.
	FO string
}

// ErrNoRecord says that a name has no DMARC record.
var ErrNoRecord = errors.New("no DMARC record")

// Parse parses the text of a DMARC record (RFC 7489 §6.4): "v=DMARC1" first, then
// tag=value pairs separated by semicolons. Unknown tags are ignored (§6.3); a missing or
// bad p= is an error, save that a record with a valid rua= and no p= is taken as p=none
// (§6.6.3).
func Parse(txt string) (*Record, error) {
	parts := strings.Split(txt, ";")
	if v := strings.TrimSpace(parts[0]); !strings.EqualFold(strings.ReplaceAll(v, " ", ""), "v=DMARC1") {
		return nil, errors.New("dmarc: record does not start with v=DMARC1")
	}
	r := &Record{Pct: 100, FO: "0"}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		tag, val, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("dmarc: %q is not tag=value", clip(p))
		}
		tag, val = strings.ToLower(strings.TrimSpace(tag)), strings.TrimSpace(val)
		if seen[tag] {
			continue
		}
		seen[tag] = true
		var err error
		switch tag {
		case "p":
			r.Policy, err = policy(val)
		case "sp":
			r.SubdomainPolicy, err = policy(val)
		case "np":
			r.NonexistentPolicy, err = policy(val)
		case "adkim":
			r.StrictDKIM, err = alignment(val)
		case "aspf":
			r.StrictSPF, err = alignment(val)
		case "pct":
			n, perr := strconv.Atoi(val)
			if perr != nil || n < 0 || n > 100 {
				err = fmt.Errorf("dmarc: pct=%q is not 0 to 100", clip(val))
			}
			r.Pct = n
		case "fo":
			r.FO = val
		case "rua":
			for _, u := range strings.Split(val, ",") {
				if u = strings.TrimSpace(u); u != "" {
					r.RUA = append(r.RUA, u)
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if r.Policy == "" {
		if len(r.RUA) == 0 {
			return nil, errors.New("dmarc: record without p=")
		}
		r.Policy = None // RFC 7489 §6.6.3
	}
	if r.SubdomainPolicy == "" {
		r.SubdomainPolicy = r.Policy
	}
	if r.NonexistentPolicy == "" {
		r.NonexistentPolicy = r.SubdomainPolicy // RFC 9091 §4.1
	}
	return r, nil
}

func policy(v string) (string, error) {
	switch p := strings.ToLower(v); p {
	case None, Quarantine, Reject:
		return p, nil
	}
	return "", fmt.Errorf("dmarc: unknown policy %q", clip(v))
}

func alignment(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "r":
		return false, nil
	case "s":
		return true, nil
	}
	return false, fmt.Errorf("dmarc: alignment %q is neither r nor s", clip(v))
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// OrganizationalDomain is the registered domain of domain (RFC 7489 §3.2): one label
// below its public suffix. A domain that is itself a public suffix is its own.
func OrganizationalDomain(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// Aligned reports whether identifier domain id is aligned with the From: domain: equal
// in strict mode, of the same organizational domain in relaxed mode (RFC 7489 §3.1).
func Aligned(id, from string, strict bool) bool {
	id, from = strings.ToLower(strings.TrimSuffix(id, ".")), strings.ToLower(strings.TrimSuffix(from, "."))
	if id == "" || from == "" {
		return false
	}
	if strict {
		return id == from
	}
	return OrganizationalDomain(id) == OrganizationalDomain(from)
}

// Resolver is what Evaluate asks the DNS.
type Resolver interface {
	// LookupTXT returns the TXT records at name; a name without any returns none and
	// no error, and NotFound tells NXDOMAIN apart.
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// Exists reports whether domain has an A, AAAA or MX record (RFC 9091 §2.1).
	Exists(ctx context.Context, domain string) (bool, error)
	// NotFound reports whether err says that the name does not exist.
	NotFound(err error) bool
}

// Lookup finds the DMARC record for the From: domain (RFC 7489 §6.6.3): at
// _dmarc.<domain>, else at _dmarc.<organizational domain>. It returns the record and the
// domain it was found at; ErrNoRecord when neither has one.
func Lookup(ctx context.Context, r Resolver, domain string) (*Record, string, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	names := []string{domain}
	if org := OrganizationalDomain(domain); org != domain {
		names = append(names, org)
	}
	for _, d := range names {
		txts, err := r.LookupTXT(ctx, "_dmarc."+d)
		if err != nil && !r.NotFound(err) {
			return nil, d, fmt.Errorf("dmarc: looking up _dmarc.%s: %w", d, err)
		}
		var recs []string
		for _, t := range txts {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(t)), "v=dmarc1") {
				recs = append(recs, t)
			}
		}
		if len(recs) != 1 {
			continue // none, or several: as none (§6.6.3)
		}
		rec, err := Parse(recs[0])
		if err != nil {
			continue // an unparseable record is as none (§6.6.3)
		}
		return rec, d, nil
	}
	return nil, domain, ErrNoRecord
}

// Results of an evaluation (RFC 8601 §2.7 and RFC 7489 §11.2).
const (
	Pass      = "pass"
	Fail      = "fail"
	NoPolicy  = "none"
	TempError = "temperror"
	PermError = "permerror"
)

// Input is what is known about a message.
type Input struct {
	// From is the domain of the From: header.
	From string
	// SPFDomain is the domain SPF checked (MAIL FROM, or HELO for <>); SPFPass says it
	// passed.
	SPFDomain string
	SPFPass   bool
	// DKIMDomains are the d= of the signatures that verified.
	DKIMDomains []string
	// Override is a policy to apply when the domain publishes no record (a local
	// domain's own policy); empty applies none.
	Override string
}

// Evaluation is the outcome for one message.
type Evaluation struct {
	Result string
	// Policy is what the receiver should do: none, quarantine or reject, after pct.
	Policy string
	// Published is the policy of the record (p=, sp= or np=) before pct.
	Published string
	// RecordDomain is where the record was found; Record the record (nil if none).
	RecordDomain string
	Record       *Record
	SPFAligned   bool
	DKIMAligned  bool
}

// Evaluate evaluates DMARC for in (RFC 7489 §6.6).
func Evaluate(ctx context.Context, r Resolver, in Input) Evaluation {
	from := strings.ToLower(strings.TrimSuffix(in.From, "."))
	ev := Evaluation{Result: NoPolicy, Policy: None}
	rec, at, err := Lookup(ctx, r, from)
	ev.RecordDomain = at
	switch {
	case errors.Is(err, ErrNoRecord):
		if in.Override == "" {
			return ev
		}
		rec = &Record{Policy: in.Override, SubdomainPolicy: in.Override, NonexistentPolicy: in.Override, Pct: 100}
		ev.RecordDomain = from
	case err != nil:
		ev.Result = TempError
		return ev
	}
	ev.Record = rec
	ev.Published = rec.Policy
	if ev.RecordDomain != from {
		// Found at the organizational domain: sp= applies, or np= for a From:
		// domain that does not exist (RFC 9091 §3.2).
		ev.Published = rec.SubdomainPolicy
		if exists, err := r.Exists(ctx, from); err == nil && !exists {
			ev.Published = rec.NonexistentPolicy
		}
	}
	ev.SPFAligned = in.SPFPass && Aligned(in.SPFDomain, from, rec.StrictSPF)
	for _, d := range in.DKIMDomains {
		if Aligned(d, from, rec.StrictDKIM) {
			ev.DKIMAligned = true
			break
		}
	}
	if ev.SPFAligned || ev.DKIMAligned {
		ev.Result = Pass
		return ev
	}
	ev.Result = Fail
	ev.Policy = ev.Published
	// pct: the policy applies to that share of failing mail; the rest gets the next
	// policy down (RFC 7489 §6.6.4).
	if rec.Pct < 100 && rand.IntN(100) >= rec.Pct {
		switch ev.Policy {
		case Reject:
			ev.Policy = Quarantine
		case Quarantine:
			ev.Policy = None
		}
	}
	return ev
}

package dmarc

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
)

// The aggregate report of RFC 7489 §7.2, in the XML of its Appendix C.

// Feedback is an aggregate report: what one receiver saw of one domain's mail over a
// period.
type Feedback struct {
	XMLName         xml.Name        `xml:"feedback"`
	Version         string          `xml:"version"`
	ReportMetadata  ReportMetadata  `xml:"report_metadata"`
	PolicyPublished PolicyPublished `xml:"policy_published"`
	Records         []ReportRecord  `xml:"record"`
}

// ReportMetadata says who reports, and the period.
type ReportMetadata struct {
	OrgName          string    `xml:"org_name"`
	Email            string    `xml:"email"`
	ExtraContactInfo string    `xml:"extra_contact_info,omitempty"`
	ReportID         string    `xml:"report_id"`
	DateRange        DateRange `xml:"date_range"`
	Errors           []string  `xml:"error,omitempty"`
}

// DateRange is the period, in seconds since the epoch (UTC).
type DateRange struct {
	Begin int64 `xml:"begin"`
	End   int64 `xml:"end"`
}

// PolicyPublished is the DMARC record the receiver applied.
type PolicyPublished struct {
	Domain string `xml:"domain"`
	ADKIM  string `xml:"adkim,omitempty"`
	ASPF   string `xml:"aspf,omitempty"`
	P      string `xml:"p"`
	SP     string `xml:"sp"`
	Pct    int    `xml:"pct"`
	FO     string `xml:"fo"`
}

// ReportRecord is one row: messages from one source IP with the same results.
type ReportRecord struct {
	Row         Row         `xml:"row"`
	Identifiers Identifiers `xml:"identifiers"`
	AuthResults AuthResults `xml:"auth_results"`
}

// Row is a source address, a count, and what DMARC made of the messages.
type Row struct {
	SourceIP        string          `xml:"source_ip"`
	Count           int             `xml:"count"`
	PolicyEvaluated PolicyEvaluated `xml:"policy_evaluated"`
}

// PolicyEvaluated is the disposition applied and the aligned results (pass or fail).
type PolicyEvaluated struct {
	Disposition string                 `xml:"disposition"`
	DKIM        string                 `xml:"dkim"`
	SPF         string                 `xml:"spf"`
	Reasons     []PolicyOverrideReason `xml:"reason,omitempty"`
}

// PolicyOverrideReason says why the disposition differs from the published policy.
type PolicyOverrideReason struct {
	Type    string `xml:"type"`
	Comment string `xml:"comment,omitempty"`
}

// Policy override reasons (Appendix C, PolicyOverrideType).
const (
	ReasonSampledOut  = "sampled_out"
	ReasonLocalPolicy = "local_policy"
)

// Identifiers are the domains of the envelope and of From:.
type Identifiers struct {
	EnvelopeTo   string `xml:"envelope_to,omitempty"`
	EnvelopeFrom string `xml:"envelope_from"`
	HeaderFrom   string `xml:"header_from"`
}

// AuthResults are the raw (unaligned) DKIM and SPF results.
type AuthResults struct {
	DKIM []DKIMAuthResult `xml:"dkim,omitempty"`
	SPF  []SPFAuthResult  `xml:"spf"`
}

// DKIMAuthResult is the result of one signature.
type DKIMAuthResult struct {
	Domain   string `xml:"domain"`
	Selector string `xml:"selector,omitempty"`
	Result   string `xml:"result"`
}

// SPFAuthResult is the result of SPF for a domain, checked as MAIL FROM ("mfrom") or
// HELO ("helo").
type SPFAuthResult struct {
	Domain string `xml:"domain"`
	Scope  string `xml:"scope,omitempty"`
	Result string `xml:"result"`
}

// Marshal returns the report as an XML document.
func (f *Feedback) Marshal() ([]byte, error) {
	b, err := xml.MarshalIndent(f, "", " ")
	if err != nil {
		return nil, fmt.Errorf("dmarc: encoding a report: %w", err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

// ReportURI is one address of rua= (RFC 7489 §6.4): a mailto: URI and an optional
// size limit.
type ReportURI struct {
	// Address is the mailbox of the mailto: URI.
	Address string
	// MaxSize is the limit of the "!" suffix in octets; 0 means none.
	MaxSize int64
}

// ParseReportURI parses one element of rua= (RFC 7489 §6.2): a URI, then optionally
// "!" and a size with an optional unit k, m, g or t (powers of 2^10). Only mailto:
// URIs are supported; others are an error. The address is percent-decoded (RFC 6068
// §2); header fields after "?" are ignored.
func ParseReportURI(s string) (ReportURI, error) {
	s = strings.TrimSpace(s)
	var u ReportURI
	if i := strings.LastIndexByte(s, '!'); i >= 0 {
		size := strings.ToLower(s[i+1:])
		s = s[:i]
		mult := int64(1)
		if n := len(size); n > 0 {
			switch size[n-1] {
			case 'k':
				mult = 1 << 10
			case 'm':
				mult = 1 << 20
			case 'g':
				mult = 1 << 30
			case 't':
				mult = 1 << 40
			}
			if mult > 1 {
				size = size[:n-1]
			}
		}
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil || n <= 0 || size[0] < '0' || size[0] > '9' || n > (1<<62)/mult {
			return u, fmt.Errorf("dmarc: bad size limit in report URI %q", clip(s))
		}
		u.MaxSize = n * mult
	}
	if len(s) < 7 || !strings.EqualFold(s[:7], "mailto:") {
		return u, fmt.Errorf("dmarc: report URI %q is not mailto:", clip(s))
	}
	addr, _, _ := strings.Cut(s[7:], "?")
	addr, err := url.PathUnescape(addr)
	if err != nil {
		return u, fmt.Errorf("dmarc: report URI %q: %w", clip(s), err)
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr || strings.ContainsAny(addr, ",;\r\n") {
		return u, fmt.Errorf("dmarc: report URI %q has no single address", clip(s))
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return u, fmt.Errorf("dmarc: report URI %q has no domain", clip(s))
	}
	u.Address = addr[:at] + "@" + strings.ToLower(addr[at+1:])
	return u, nil
}

// Domain returns the domain of the URI's address.
func (u ReportURI) Domain() string {
	return u.Address[strings.LastIndexByte(u.Address, '@')+1:]
}

// ErrNotAuthorized says that a report destination outside the policy domain did not
// agree to receive its reports.
var ErrNotAuthorized = errors.New("dmarc: the report destination does not accept reports for this domain")

// VerifyDestination checks that the domain of a report URI accepts the reports of
// policyDomain (RFC 7489 §7.1): a destination of the same organizational domain always
// does; another must publish a TXT record starting with v=DMARC1 at
// <policyDomain>._report._dmarc.<destination>. It returns nil when reports may go,
// ErrNotAuthorized when they may not, and another error when the DNS did not answer.
func VerifyDestination(ctx context.Context, r Resolver, policyDomain string, u ReportURI) error {
	dest := u.Domain()
	policyDomain = strings.ToLower(strings.TrimSuffix(policyDomain, "."))
	if OrganizationalDomain(dest) == OrganizationalDomain(policyDomain) {
		return nil
	}
	name := policyDomain + "._report._dmarc." + dest
	txts, err := r.LookupTXT(ctx, name)
	if err != nil && !r.NotFound(err) {
		return fmt.Errorf("dmarc: looking up %s: %w", name, err)
	}
	for _, t := range txts {
		// §7.1 step 5: a record that begins with "v=DMARC1" says yes.
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(t)), "v=dmarc1") {
			return nil
		}
	}
	return ErrNotAuthorized
}

// Package dnscheck compares what the DNS says about a mail domain with what Postern
// needs there: the records `mailctl dns records` prints (Expected), each looked up and
// judged ok, wrong (with the record that fixes it) or missing. It checks MX, the
// host's A/AAAA, PTR with forward confirmation, SPF (evaluated for the host's
// addresses), DKIM, DMARC, MTA-STS (the record and the policy fetched over HTTPS),
// TLS-RPT, the SRV records of RFC 6186 and autoconfig.
package dnscheck

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/miekg/dns"

	"postern/pkg/dkim"
	"postern/pkg/dmarc"
	"postern/pkg/mtasts"
	"postern/pkg/resolver"
)

// Record is one resource record, as a zone file writes it (names without final dot).
type Record struct {
	Name, Type, Data string
}

// SRV is one SRV record Postern wants (RFC 6186): Target "." says the service is not
// offered (RFC 2782).
type SRV struct {
	Service        string // "_submissions", "_imap" ...
	Priority, Port int
	Target         string
}

// Expected is what the domain's DNS should hold for this Postern instance.
type Expected struct {
	Domain string
	// Host is the instance's host name: the MX target, the SMTP greeting's name.
	Host string
	// IPs are the public addresses smtpd listens on, when the configuration names
	// them; empty when it listens on every address.
	IPs []net.IP
	// SPF, DMARC and TLSRPT are the TXT data dns records suggests.
	SPF, DMARC, TLSRPT string
	// DKIM are the TXT records of the domain's keys.
	DKIM []Record
	// MTASTS is the TXT data of _mta-sts, with the policy it announces.
	MTASTS string
	SRV    []SRV
}

// Status is a check's verdict.
type Status string

// The verdicts.
const (
	OK      Status = "ok"
	Wrong   Status = "wrong"
	Missing Status = "missing"
)

// Result is the verdict on one record.
type Result struct {
	// What names the check: MX, A/AAAA, PTR, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, SRV,
	// autoconfig.
	What string
	// Name is the DNS name looked at.
	Name   string
	Status Status
	// Detail says what was found, or why it is wrong.
	Detail string
	// Fix are the records to publish; Advice what else to do (a PTR is set by the
	// address's provider, not in the zone).
	Fix    []Record
	Advice string
	// Optional results (MTA-STS, TLS-RPT, SRV, autoconfig) make the domain better,
	// not working; a missing one is not a failure.
	Optional bool
}

// Failed reports whether the result should make the check fail: anything wrong, or a
// required record missing.
func (r Result) Failed() bool {
	return r.Status == Wrong || r.Status == Missing && !r.Optional
}

// Checker looks the records up.
type Checker struct {
	DNS *resolver.Resolver
	// FetchPolicy gets a domain's MTA-STS policy over HTTPS (mtasts.Fetcher.Fetch).
	FetchPolicy func(ctx context.Context, domain string) (*mtasts.Policy, error)
}

// Check runs every check and returns the results in the order of dns records.
func (c *Checker) Check(ctx context.Context, e Expected) []Result {
	var out []Result
	out = append(out, c.mx(ctx, e))
	addrRes, ips := c.addresses(ctx, e)
	out = append(out, addrRes)
	out = append(out, c.ptr(ctx, e, ips)...)
	out = append(out, c.spf(ctx, e, ips))
	out = append(out, c.dkim(ctx, e)...)
	out = append(out, c.dmarc(ctx, e))
	out = append(out, c.mtasts(ctx, e))
	out = append(out, c.tlsrpt(ctx, e))
	out = append(out, c.srv(ctx, e)...)
	out = append(out, c.autoconfig(ctx, e, ips))
	return out
}

// lookupErr turns a failed lookup into a result: a name that does not exist is
// missing, anything else (a timeout, SERVFAIL) wrong, with the error.
func lookupErr(r Result, err error) Result {
	if resolver.IsNotFound(err) {
		r.Status = Missing
		r.Detail = "the name does not exist"
		return r
	}
	r.Status = Wrong
	r.Detail = fmt.Sprintf("lookup failed: %v", err)
	return r
}

func (c *Checker) mx(ctx context.Context, e Expected) Result {
	r := Result{What: "MX", Name: e.Domain, Fix: []Record{{e.Domain, "MX", "10 " + e.Host + "."}}}
	mxs, err := c.DNS.LookupMX(ctx, e.Domain)
	if err != nil {
		return lookupErr(r, err)
	}
	if len(mxs) == 0 {
		r.Status, r.Detail = Missing, "no MX record: senders fall back to the domain's address (RFC 5321 §5.1)"
		return r
	}
	var hosts []string
	for _, m := range mxs {
		if m.Host == e.Host {
			r.Status, r.Detail, r.Fix = OK, fmt.Sprintf("%d %s", m.Pref, m.Host), nil
			return r
		}
		hosts = append(hosts, cmp.Or(m.Host, ".")) // "." is the null MX (RFC 7505)
	}
	r.Status, r.Detail = Wrong, "points to "+strings.Join(hosts, ", ")+", not to "+e.Host
	return r
}

// addresses checks that the host has addresses, and the configured ones; it returns
// those found.
func (c *Checker) addresses(ctx context.Context, e Expected) (Result, []net.IP) {
	r := Result{What: "A/AAAA", Name: e.Host}
	for _, ip := range e.IPs {
		typ := "A"
		if ip.To4() == nil {
			typ = "AAAA"
		}
		r.Fix = append(r.Fix, Record{e.Host, typ, ip.String()})
	}
	ips, err := c.DNS.LookupIP(ctx, e.Host)
	if err != nil {
		return lookupErr(r, err), nil
	}
	if len(ips) == 0 {
		r.Status, r.Detail = Missing, "the host has no address"
		if len(r.Fix) == 0 {
			r.Advice = "publish an A (and AAAA) record of " + e.Host + " with the server's public address"
		}
		return r, nil
	}
	for _, want := range e.IPs {
		if !slices.ContainsFunc(ips, want.Equal) {
			r.Status, r.Detail = Wrong, fmt.Sprintf("%s has %s, not %s, the address smtpd listens on", e.Host, joinIPs(ips), want)
			return r, ips
		}
	}
	r.Status, r.Detail, r.Fix = OK, joinIPs(ips), nil
	return r, ips
}

func joinIPs(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// ptr checks the reverse DNS of each address: its PTR must name the host, and the
// host must have the address (forward-confirmed reverse DNS), which many receivers
// demand of a sending server.
func (c *Checker) ptr(ctx context.Context, e Expected, ips []net.IP) []Result {
	var out []Result
	nd := resolver.NetDNS{R: c.DNS}
	for _, ip := range ips {
		rev, _ := dns.ReverseAddr(ip.String())
		r := Result{What: "PTR", Name: strings.TrimSuffix(rev, "."),
			Advice: fmt.Sprintf("ask the provider of %s to set its reverse DNS (PTR) to %s", ip, e.Host)}
		names, err := nd.LookupAddr(ctx, ip.String())
		if err != nil && !nd.NotFound(err) {
			out = append(out, lookupErr(r, err))
			continue
		}
		if len(names) == 0 {
			r.Status, r.Detail = Missing, ip.String()+" has no PTR record"
			out = append(out, r)
			continue
		}
		var found []string
		for _, n := range names {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			found = append(found, n)
			if n == e.Host {
				// Forward confirmation: ips are the host's own addresses.
				r.Status, r.Detail, r.Advice = OK, ip.String()+" → "+n+" → "+ip.String()+" (forward-confirmed)", ""
			}
		}
		if r.Status == "" {
			r.Status, r.Detail = Wrong, fmt.Sprintf("%s → %s, not %s", ip, strings.Join(found, ", "), e.Host)
		}
		out = append(out, r)
	}
	return out
}

// txts returns the TXT records at name that start with prefix (case-insensitive).
func (c *Checker) txts(ctx context.Context, name, prefix string) ([]string, error) {
	all, err := c.DNS.LookupTXT(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range all {
		if len(t) >= len(prefix) && strings.EqualFold(t[:len(prefix)], prefix) {
			out = append(out, t)
		}
	}
	return out, nil
}

// spf checks that the domain has one SPF record and that it lets the host's addresses
// send for the domain (RFC 7208 §4).
func (c *Checker) spf(ctx context.Context, e Expected, ips []net.IP) Result {
	r := Result{What: "SPF", Name: e.Domain, Fix: []Record{{e.Domain, "TXT", e.SPF}}}
	recs, err := c.txts(ctx, e.Domain, "v=spf1")
	if err != nil && !resolver.IsNotFound(err) {
		return lookupErr(r, err)
	}
	switch {
	case len(recs) == 0:
		r.Status, r.Detail = Missing, "no SPF record"
		return r
	case len(recs) > 1:
		// RFC 7208 §4.5: more than one record is a permerror.
		r.Status, r.Detail = Wrong, fmt.Sprintf("%d SPF records (RFC 7208 §4.5 makes that an error): keep one", len(recs))
		return r
	}
	for _, ip := range ips {
		res, err := spf.CheckHostWithSender(ip, e.Host, "postmaster@"+e.Domain,
			spf.WithResolver(resolver.NetDNS{R: c.DNS}), spf.WithContext(ctx))
		if res != spf.Pass {
			detail := fmt.Sprintf("%q gives %s for %s, the host's address", recs[0], res, ip)
			if err != nil {
				detail += " (" + err.Error() + ")"
			}
			r.Status, r.Detail = Wrong, detail
			return r
		}
	}
	r.Status, r.Detail, r.Fix = OK, recs[0], nil
	if len(ips) > 0 {
		r.Detail += " (passes for " + joinIPs(ips) + ")"
	}
	return r
}

// dkim checks that each key's public half is published as it is.
func (c *Checker) dkim(ctx context.Context, e Expected) []Result {
	if len(e.DKIM) == 0 {
		return []Result{{What: "DKIM", Name: "_domainkey." + e.Domain, Status: Missing,
			Detail: "the domain has no DKIM key", Advice: "mailctl dkim generate " + e.Domain + ", then publish the record it prints"}}
	}
	var out []Result
	for _, want := range e.DKIM {
		r := Result{What: "DKIM", Name: want.Name, Fix: []Record{want}}
		recs, err := c.txts(ctx, want.Name, "v=DKIM1")
		if err != nil && !resolver.IsNotFound(err) {
			out = append(out, lookupErr(r, err))
			continue
		}
		wantP := dkimTag(want.Data, "p")
		switch {
		case len(recs) == 0:
			r.Status, r.Detail = Missing, "no DKIM record"
		case len(recs) > 1:
			r.Status, r.Detail = Wrong, fmt.Sprintf("%d DKIM records at one selector: keep one", len(recs))
		case dkimTag(recs[0], "p") != wantP:
			r.Status, r.Detail = Wrong, "the published key (p=) is not the key Postern signs with"
		default:
			r.Status, r.Detail, r.Fix = OK, "the key Postern signs with", nil
		}
		out = append(out, r)
	}
	return out
}

// dkimTag returns the value of a tag of a DKIM key record (RFC 6376 §3.6.1), with the
// folding whitespace removed.
func dkimTag(rec, tag string) string {
	for _, t := range strings.Split(rec, ";") {
		k, v, ok := strings.Cut(t, "=")
		if ok && strings.TrimSpace(k) == tag {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}

func (c *Checker) dmarc(ctx context.Context, e Expected) Result {
	name := "_dmarc." + e.Domain
	r := Result{What: "DMARC", Name: name, Fix: []Record{{name, "TXT", e.DMARC}}}
	recs, err := c.txts(ctx, name, "v=DMARC1")
	if err != nil && !resolver.IsNotFound(err) {
		return lookupErr(r, err)
	}
	switch {
	case len(recs) == 0:
		r.Status, r.Detail = Missing, "no DMARC record"
		return r
	case len(recs) > 1:
		// RFC 7489 §6.6.3: more than one record means no DMARC at all.
		r.Status, r.Detail = Wrong, fmt.Sprintf("%d DMARC records (RFC 7489 §6.6.3: receivers then apply none): keep one", len(recs))
		return r
	}
	rec, err := dmarc.Parse(recs[0])
	if err != nil {
		r.Status, r.Detail = Wrong, fmt.Sprintf("%q: %v", recs[0], err)
		return r
	}
	r.Status, r.Detail, r.Fix = OK, fmt.Sprintf("p=%s", rec.Policy), nil
	return r
}

// mtasts checks the _mta-sts record and fetches the policy it announces, which must
// name the host among its mx patterns (RFC 8461 §3, §4.1).
func (c *Checker) mtasts(ctx context.Context, e Expected) Result {
	name := "_mta-sts." + e.Domain
	r := Result{What: "MTA-STS", Name: name, Optional: true,
		Fix: []Record{{name, "TXT", e.MTASTS}, {"mta-sts." + e.Domain, "CNAME", e.Host + "."}}}
	recs, err := c.txts(ctx, name, "v=STSv1")
	if err != nil && !resolver.IsNotFound(err) {
		return lookupErr(r, err)
	}
	if len(recs) == 0 {
		r.Status, r.Detail = Missing, "no MTA-STS record"
		return r
	}
	if len(recs) > 1 {
		r.Status, r.Detail = Wrong, fmt.Sprintf("%d MTA-STS records (RFC 8461 §3.1: senders then assume none): keep one", len(recs))
		return r
	}
	id, err := mtasts.ParseRecord(recs[0])
	if err != nil {
		r.Status, r.Detail = Wrong, fmt.Sprintf("%q: %v", recs[0], err)
		return r
	}
	url := "https://mta-sts." + e.Domain + "/.well-known/mta-sts.txt"
	p, err := c.FetchPolicy(ctx, e.Domain)
	if err != nil {
		r.Status, r.Detail = Wrong, fmt.Sprintf("record id=%s, but the policy at %s: %v", id, url, err)
		r.Fix = nil
		r.Advice = "serve the policy at " + url + " with a certificate valid for mta-sts." + e.Domain
		return r
	}
	if p.Mode != mtasts.None && !p.Matches(e.Host) {
		r.Status, r.Detail = Wrong, fmt.Sprintf("the policy (mode %s) names mx %s, not %s: senders would refuse to deliver", p.Mode, strings.Join(p.MX, ", "), e.Host)
		r.Fix = nil
		r.Advice = "add \"mx: " + e.Host + "\" to the policy at " + url + " and change the record's id"
		return r
	}
	r.Status, r.Detail, r.Fix = OK, fmt.Sprintf("id=%s, policy mode %s, mx %s", id, p.Mode, strings.Join(p.MX, ", ")), nil
	return r
}

func (c *Checker) tlsrpt(ctx context.Context, e Expected) Result {
	name := "_smtp._tls." + e.Domain
	r := Result{What: "TLS-RPT", Name: name, Optional: true, Fix: []Record{{name, "TXT", e.TLSRPT}}}
	recs, err := c.txts(ctx, name, "v=TLSRPTv1")
	if err != nil && !resolver.IsNotFound(err) {
		return lookupErr(r, err)
	}
	switch {
	case len(recs) == 0:
		r.Status, r.Detail = Missing, "no TLS-RPT record"
	case len(recs) > 1:
		// RFC 8460 §3: several records are no policy at all.
		r.Status, r.Detail = Wrong, fmt.Sprintf("%d TLS-RPT records (RFC 8460 §3): keep one", len(recs))
	case !strings.Contains(recs[0], "rua="):
		// RFC 8460 §3: rua is required.
		r.Status, r.Detail = Wrong, fmt.Sprintf("%q has no rua= (RFC 8460 §3)", recs[0])
	default:
		r.Status, r.Detail, r.Fix = OK, recs[0], nil
	}
	return r
}

// srv checks the records mail clients use to find their servers (RFC 6186).
func (c *Checker) srv(ctx context.Context, e Expected) []Result {
	var out []Result
	for _, s := range e.SRV {
		name := s.Service + "._tcp." + e.Domain
		data := fmt.Sprintf("%d 1 %d %s.", s.Priority, s.Port, s.Target)
		if s.Target == "." {
			data = "0 0 0 ."
		}
		r := Result{What: "SRV", Name: name, Optional: true, Fix: []Record{{name, "SRV", data}}}
		a, err := c.DNS.Query(ctx, name, dns.TypeSRV)
		if err != nil {
			out = append(out, lookupErr(r, err))
			continue
		}
		var found []string
		for _, rr := range a.Records {
			v := rr.(*dns.SRV)
			target := strings.ToLower(v.Target)
			if target != "." {
				target = strings.TrimSuffix(target, ".")
			}
			found = append(found, fmt.Sprintf("%s:%d", target, v.Port))
			if target == s.Target && (s.Target == "." || int(v.Port) == s.Port) {
				r.Status, r.Detail, r.Fix = OK, found[len(found)-1], nil
			}
		}
		switch {
		case r.Status == OK:
		case len(found) == 0:
			r.Status, r.Detail = Missing, "no SRV record"
		default:
			r.Status, r.Detail = Wrong, "points to "+strings.Join(found, ", ")
		}
		out = append(out, r)
	}
	return out
}

// autoconfig checks that autoconfig.<domain> leads to the host (a CNAME, or the same
// addresses), where Thunderbird looks for the client settings.
func (c *Checker) autoconfig(ctx context.Context, e Expected, hostIPs []net.IP) Result {
	name := "autoconfig." + e.Domain
	r := Result{What: "autoconfig", Name: name, Optional: true, Fix: []Record{{name, "CNAME", e.Host + "."}}}
	a, err := c.DNS.Query(ctx, name, dns.TypeA)
	if err != nil {
		return lookupErr(r, err)
	}
	if strings.EqualFold(a.Canonical, e.Host) {
		r.Status, r.Detail, r.Fix = OK, "CNAME "+e.Host, nil
		return r
	}
	var ips []net.IP
	for _, rr := range a.Records {
		ips = append(ips, rr.(*dns.A).A)
	}
	if len(ips) == 0 {
		r.Status, r.Detail = Missing, "no address"
		return r
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(hostIPs, ip.Equal) {
			r.Status, r.Detail = Wrong, fmt.Sprintf("%s has %s, which is not %s", name, joinIPs(ips), e.Host)
			return r
		}
	}
	r.Status, r.Detail, r.Fix = OK, joinIPs(ips)+", the host's address", nil
	return r
}

// TTL is the time to live of the records Postern suggests.
const TTL = 3600

// ZoneLine is one resource record in zone-file syntax, the owner name absolute, data as
// given (QuoteTXT makes TXT data): the lines `mailctl dns records` prints and the admin
// panel shows.
func ZoneLine(name, typ, data string) string {
	return fmt.Sprintf("%-40s %d IN %-5s %s", name+".", TTL, typ, data)
}

// QuoteTXT renders TXT data as zone-file character-strings, split at 255 octets
// (dkim.SplitTXT).
func QuoteTXT(s string) string {
	parts := dkim.SplitTXT(s)
	for i, p := range parts {
		parts[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "( " + strings.Join(parts, "\n"+strings.Repeat(" ", 53)) + " )"
}

// DKIM checks the published records of the keys e.DKIM alone: cheap (one TXT lookup a
// key) where Check looks everything up.
func (c *Checker) DKIM(ctx context.Context, e Expected) []Result {
	return c.dkim(ctx, e)
}

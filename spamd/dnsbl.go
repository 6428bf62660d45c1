package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"postern/pkg/config"
	"postern/pkg/resolver"
	"postern/pkg/spamcheck"
)

// DNS blocklists and allowlists (DNSxLs, RFC 5782): zones in [[spamd.dnsbl]] and
// [[spamd.dnswl]] that answer an A record for a listed client address. spamd asks them
// all at once through the resolver SPF and DMARC use, whose cache keeps each answer for
// its TTL (an hour at most) and each "not listed" (NXDOMAIN) for its zone's negative TTL
// (five minutes at most, RFC 2308), in a bounded cache: a client sending a burst of mail
// costs one query per zone. A DNS failure is never fatal: it is a reason without a
// weight, and the other signals decide.

// dnsList is one configured DNS list.
type dnsList struct {
	zone   string
	weight float64
	// reject refuses mail from a listed address (blocklists only).
	reject bool
	// allow marks an allowlist (DNSWL).
	allow bool
	// returns are the answers that count as a listing; nil counts every answer in
	// 127.0.0.0/8 but the error codes (see listed).
	returns []*net.IPNet
}

// dnsListsOf returns the lists of the configuration, blocklists first.
func dnsListsOf(s config.Spamd) []dnsList {
	var out []dnsList
	for _, b := range s.DNSBL {
		out = append(out, dnsList{zone: b.Zone, weight: b.Weighed(), reject: b.Reject, returns: config.ParseNets(b.Returns)})
	}
	for _, w := range s.DNSWL {
		out = append(out, dnsList{zone: w.Zone, weight: w.Weighed(), allow: true, returns: config.ParseNets(w.Returns)})
	}
	return out
}

// dnsxlName returns the name to look up for ip in zone: for IPv4 the four octets in
// reverse order (RFC 5782 §2.1: 192.0.2.99 in bl.example is 99.2.0.192.bl.example), for
// IPv6 the 32 nibbles of the address in reverse order, as in ip6.arpa (RFC 5782 §2.4).
func dnsxlName(ip net.IP, zone string) string {
	if ip == nil {
		return ""
	}
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return ""
	}
	for _, arpa := range []string{"in-addr.arpa.", "ip6.arpa."} {
		if r, ok := strings.CutSuffix(rev, arpa); ok {
			return r + zone
		}
	}
	return ""
}

// errorCodes are answers some lists give for an error instead of a listing: Spamhaus's
// 127.255.255.0/24 (query through a public resolver, over quota ...) and dnswl.org's
// 127.0.0.255. They never count as a listing unless the list's returns name them.
var errorCodes = []*net.IPNet{
	{IP: net.IPv4(127, 255, 255, 0).To4(), Mask: net.CIDRMask(24, 32)},
	{IP: net.IPv4(127, 0, 0, 255).To4(), Mask: net.CIDRMask(32, 32)},
}

// loopback8 is 127.0.0.0/8, where DNS lists answer (RFC 5782 §2.1: "127.0.0.2"
// and other 127.0.0.0/8 values); an answer elsewhere is a resolver that rewrites
// NXDOMAIN, or a broken list.
var loopback8 = &net.IPNet{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}

// listed says whether the answer code is a listing of l.
func (l *dnsList) listed(code net.IP) bool {
	if l.returns != nil {
		for _, n := range l.returns {
			if n.Contains(code) {
				return true
			}
		}
		return false
	}
	if !loopback8.Contains(code) {
		return false
	}
	for _, n := range errorCodes {
		if n.Contains(code) {
			return false
		}
	}
	return true
}

// dnsListing is the answer of one list about the client.
type dnsListing struct {
	list *dnsList
	// code is the answer that counted as a listing; nil when not listed.
	code net.IP
	// ignored is an answer that did not count (an error code, or one outside the
	// list's returns), for the reasons.
	ignored net.IP
	// err is a temporary DNS failure.
	err error
}

// queryDNSLists asks every list about ip at once and returns their answers, in the
// order of lists.
func queryDNSLists(ctx context.Context, r *resolver.Resolver, lists []dnsList, ip net.IP) []dnsListing {
	out := make([]dnsListing, len(lists))
	if len(lists) == 0 || r == nil || ip == nil {
		return nil
	}
	var wg sync.WaitGroup
	for i := range lists {
		out[i].list = &lists[i]
		wg.Add(1)
		go func(d *dnsListing) {
			defer wg.Done()
			name := dnsxlName(ip, d.list.zone)
			a, err := r.Query(ctx, name, dns.TypeA)
			if err != nil {
				if !resolver.IsNotFound(err) {
					d.err = err
				}
				return // NXDOMAIN: not listed (RFC 5782 §2.1)
			}
			for _, rr := range a.Records {
				rec, ok := rr.(*dns.A)
				if !ok {
					continue
				}
				if d.list.listed(rec.A) {
					d.code = rec.A.To4()
					return
				}
				if d.ignored == nil {
					d.ignored = rec.A.To4()
				}
			}
		}(&out[i])
	}
	wg.Wait()
	return out
}

// applyDNSListings adds the answers of the lists to s, and refuses the message in v
// when a rejecting blocklist lists the client.
func applyDNSListings(listings []dnsListing, client string, s *score, v *spamcheck.Verdict) {
	for _, d := range listings {
		kind := "DNSBL"
		if d.list.allow {
			kind = "DNSWL"
		}
		switch {
		case d.code != nil:
			s.add(fmt.Sprintf("%s(%s:%s)", kind, d.list.zone, d.code), d.list.weight)
			if d.list.reject && v.Action == spamcheck.Accept {
				v.Action, v.Code = spamcheck.Reject, "5.7.1"
				v.Text = fmt.Sprintf("Client address %s is listed by %s", client, d.list.zone)
			}
		case d.err != nil:
			// A failure is a reason without a weight: the other signals decide.
			s.reasons = append(s.reasons, fmt.Sprintf("%s_TEMPERROR(%s)", kind, d.list.zone))
		case d.ignored != nil:
			s.reasons = append(s.reasons, fmt.Sprintf("%s_IGNORED(%s:%s)", kind, d.list.zone, d.ignored))
		}
	}
}

package resolver

import (
	"context"
	"net"

	"github.com/miekg/dns"
)

// NetDNS presents a Resolver the way blitiri.com.ar/go/spf and pkg/dmarc ask the DNS:
// the lookups of *net.Resolver, with *net.DNSError errors that tell a name that does not
// exist (IsNotFound) from a failure that may pass (IsTemporary), which SPF turns into
// its "none" and "temperror" results (RFC 7208 §4.4, §5).
type NetDNS struct{ R *Resolver }

func (d NetDNS) wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	if IsNotFound(err) {
		return &net.DNSError{Err: err.Error(), Name: name, IsNotFound: true}
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
}

// LookupTXT implements spf.DNSResolver and dmarc.Resolver.
func (d NetDNS) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txt, err := d.R.LookupTXT(ctx, name)
	return txt, d.wrap(name, err)
}

// LookupMX implements spf.DNSResolver.
func (d NetDNS) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, err := d.R.LookupMX(ctx, name)
	if err != nil {
		return nil, d.wrap(name, err)
	}
	out := make([]*net.MX, 0, len(mxs))
	for _, m := range mxs {
		out = append(out, &net.MX{Host: m.Host, Pref: m.Pref})
	}
	return out, nil
}

// LookupIPAddr implements spf.DNSResolver.
func (d NetDNS) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ips, err := d.R.LookupIP(ctx, host)
	if err != nil {
		return nil, d.wrap(host, err)
	}
	out := make([]net.IPAddr, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.IPAddr{IP: ip})
	}
	return out, nil
}

// LookupAddr implements spf.DNSResolver: the PTR names of an address.
func (d NetDNS) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	rev, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: addr, IsNotFound: true}
	}
	a, err := d.R.Query(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, d.wrap(rev, err)
	}
	var out []string
	for _, rr := range a.Records {
		if p, ok := rr.(*dns.PTR); ok {
			out = append(out, p.Ptr)
		}
	}
	return out, nil
}

// Exists implements dmarc.Resolver: whether domain has an A, AAAA or MX record (RFC 9091
// §2.1).
func (d NetDNS) Exists(ctx context.Context, domain string) (bool, error) {
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX} {
		a, err := d.R.Query(ctx, domain, t)
		if err != nil {
			if IsNotFound(err) {
				return false, nil
			}
			return false, err
		}
		if len(a.Records) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// NotFound implements dmarc.Resolver.
func (d NetDNS) NotFound(err error) bool {
	if ne, ok := err.(*net.DNSError); ok {
		return ne.IsNotFound
	}
	return IsNotFound(err)
}

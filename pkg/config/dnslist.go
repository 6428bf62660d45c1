package config

import (
	"net"
	"strings"
)

// Default weights of a DNS list entry that gives none.
const (
	// DefaultDNSBLWeight is the junk_score default: a listing alone files the message
	// into Junk.
	DefaultDNSBLWeight = 5.0
	// DefaultDNSWLWeight lowers the score by as much as an SPF and DMARC pass together
	// raise the trust, and a little more.
	DefaultDNSWLWeight = -3.0
)

// DNSBL is one DNS blocklist ([[spamd.dnsbl]]) that spamd asks about the client's IP
// address (RFC 5782 §2.1, §2.4).
type DNSBL struct {
	// Zone is the list's DNS zone, such as "zen.spamhaus.org".
	Zone string `toml:"zone"`
	// Weight is added to the score of a message from a listed address; nil means
	// DefaultDNSBLWeight (see Weighed).
	Weight *float64 `toml:"weight"`
	// Reject refuses mail from a listed address at DATA (550 5.7.1), whatever the score.
	Reject bool `toml:"reject"`
	// Returns are the answers (127.0.0.x addresses or CIDRs) that count as a listing;
	// empty counts every answer in 127.0.0.0/8 but the lists' error codes.
	Returns []string `toml:"returns"`
}

// DNSWL is one DNS allowlist ([[spamd.dnswl]]): a listed client address lowers the
// score.
type DNSWL struct {
	Zone    string   `toml:"zone"`
	Weight  *float64 `toml:"weight"`
	Returns []string `toml:"returns"`
}

// Weighed returns the weight of a listing, the default when none is configured.
func (b DNSBL) Weighed() float64 { return weightOr(b.Weight, DefaultDNSBLWeight) }

// Weighed returns the weight of a listing, the default when none is configured.
func (w DNSWL) Weighed() float64 { return weightOr(w.Weight, DefaultDNSWLWeight) }

func weightOr(w *float64, def float64) float64 {
	if w == nil {
		return def
	}
	return *w
}

// validateDNSList checks a zone and its return values.
func validateDNSList(key string, i int, zone string, returns []string, bad func(key, format string, args ...any) error) error {
	z := strings.TrimSuffix(zone, ".")
	if z == "" || len(z) > 200 || strings.ContainsAny(z, " \t\r\n\\;()\"") || !strings.Contains(z, ".") {
		return bad(key, "entry %d: zone must be a DNS zone such as zen.example.org, not %q", i+1, zone)
	}
	for _, r := range returns {
		n, err := ParseNet(r)
		if err != nil {
			return bad(key, "entry %d: returns: %v", i+1, err)
		}
		if n.IP.To4() == nil {
			return bad(key, "entry %d: returns: %q is not an IPv4 address (DNS lists answer with A records)", i+1, r)
		}
	}
	return nil
}

// validateDNSLists checks [[spamd.dnsbl]] and [[spamd.dnswl]].
func (s *Spamd) validateDNSLists(bad func(key, format string, args ...any) error) error {
	seen := map[string]bool{}
	for i, l := range s.DNSBL {
		if err := validateDNSList("spamd.dnsbl", i, l.Zone, l.Returns, bad); err != nil {
			return err
		}
		s.DNSBL[i].Zone = strings.ToLower(strings.TrimSuffix(l.Zone, "."))
		if seen[s.DNSBL[i].Zone] {
			return bad("spamd.dnsbl", "zone %s is listed twice", l.Zone)
		}
		seen[s.DNSBL[i].Zone] = true
	}
	for i, l := range s.DNSWL {
		if err := validateDNSList("spamd.dnswl", i, l.Zone, l.Returns, bad); err != nil {
			return err
		}
		s.DNSWL[i].Zone = strings.ToLower(strings.TrimSuffix(l.Zone, "."))
		if seen[s.DNSWL[i].Zone] {
			return bad("spamd.dnswl", "zone %s is listed twice", l.Zone)
		}
		seen[s.DNSWL[i].Zone] = true
		if l.Weight != nil && *l.Weight > 0 {
			return bad("spamd.dnswl", "entry %d: weight must not be positive: an allowlist lowers the score", i+1)
		}
	}
	return nil
}

// ParseNets parses a list of addresses and CIDRs that validation has checked (a DNS
// list's return values, trusted_relays), leaving out any that does not parse.
func ParseNets(list []string) []*net.IPNet {
	var out []*net.IPNet
	for _, r := range list {
		if n, err := ParseNet(r); err == nil {
			out = append(out, n)
		}
	}
	return out
}

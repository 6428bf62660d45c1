// Package resolver is Postern's DNS client. It asks the recursive resolvers of the host
// (or those the configuration names) for the records mail needs — MX, A, AAAA, TXT and
// TLSA — with github.com/miekg/dns, and sorts the answers into three outcomes that mail
// routing must tell apart:
//
//   - records: the name has records of the type asked for;
//   - no records: the name exists but has none of that type (NODATA), or does not exist
//     at all (NXDOMAIN, IsNotFound), which are both final answers;
//   - a temporary failure (SERVFAIL, REFUSED, a timeout, no resolver reachable), after
//     which a mail system must try again later rather than give up (RFC 5321 §5.1).
//
// Queries carry EDNS0 with the DO bit and the AD bit set (RFC 6840 §5.7), so that a
// validating resolver says in Answer.Authenticated whether DNSSEC vouched for the
// answer; DANE (RFC 7672) may use TLSA records only when it did.
//
// A Resolver keeps answers for as long as their TTL says (at most an hour; "no such
// name" and "no such record" for the SOA's negative TTL, at most five minutes, RFC
// 2308), so that mail to one destination does not ask the same questions again for
// every message. Temporary failures are never kept.
package resolver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultResolvConf is the file FromResolvConf reads by default.
const DefaultResolvConf = "/etc/resolv.conf"

// Resolver asks recursive DNS servers. The zero value is not usable; use New.
type Resolver struct {
	// Servers are the resolvers, "ip:port", asked in order until one answers.
	Servers []string
	// Timeout bounds one query to one server; Attempts is how many rounds over Servers
	// are made before giving up.
	Timeout  time.Duration
	Attempts int

	cache cache
}

// New returns a resolver asking servers, each "ip" or "ip:port" (port 53 by default).
func New(servers []string) (*Resolver, error) {
	r := &Resolver{Timeout: 5 * time.Second, Attempts: 2}
	for _, s := range servers {
		addr, err := serverAddr(s)
		if err != nil {
			return nil, err
		}
		r.Servers = append(r.Servers, addr)
	}
	if len(r.Servers) == 0 {
		return nil, errors.New("resolver: no DNS server given")
	}
	return r, nil
}

func serverAddr(s string) (string, error) {
	host, port := s, "53"
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	if net.ParseIP(host) == nil {
		return "", fmt.Errorf("resolver: %q is not an IP address (or ip:port)", s)
	}
	return net.JoinHostPort(host, port), nil
}

// NewFromConfig is New for a daemon's configured servers ([remote] resolvers); with none
// configured it asks the nameservers of DefaultResolvConf.
func NewFromConfig(servers []string) (*Resolver, error) {
	if len(servers) == 0 {
		var err error
		if servers, err = FromResolvConf(DefaultResolvConf); err != nil {
			return nil, err
		}
	}
	return New(servers)
}

// FromResolvConf returns the nameservers listed in a resolv.conf(5) file, such as
// /etc/resolv.conf.
func FromResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading resolvers: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			// A scoped IPv6 address (fe80::1%eth0) keeps its zone for the dialer.
			if ip, _, _ := strings.Cut(fields[1], "%"); net.ParseIP(ip) != nil {
				out = append(out, net.JoinHostPort(fields[1], "53"))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no nameserver", path)
	}
	return out, nil
}

// Error is a failed lookup.
type Error struct {
	Name string
	Type string
	// NotFound is set when the name does not exist (NXDOMAIN): a final answer.
	// Otherwise the failure is temporary.
	NotFound bool
	// Reason says what went wrong: "NXDOMAIN", "SERVFAIL", "timeout" ...
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("DNS lookup of %s %s: %s", e.Name, e.Type, e.Reason)
}

// IsNotFound reports whether err says that the name does not exist.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.NotFound
}

// IsTemporary reports whether err is a failure that may go away (anything but
// NXDOMAIN).
func IsTemporary(err error) bool {
	return err != nil && !IsNotFound(err)
}

// Answer is the records of one type found at a name.
type Answer struct {
	// Records are the answer's records of the type asked for, at the name or at the
	// end of its CNAME chain.
	Records []dns.RR
	// Authenticated is the AD bit: the resolver validated the answer with DNSSEC.
	Authenticated bool
	// Canonical is the name the records belong to, after CNAMEs, without final dot.
	Canonical string
}

// Query asks for the records of type qtype (dns.TypeMX ...) at name. A name that
// exists without records of the type gives an empty Answer and no error.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) (*Answer, error) {
	fqdn := dns.Fqdn(name)
	tname := dns.TypeToString[qtype]
	if _, ok := dns.IsDomainName(fqdn); !ok || strings.ContainsAny(fqdn, " \t\r\n\\") {
		return nil, &Error{Name: name, Type: tname, NotFound: true, Reason: "not a domain name"}
	}
	key := cacheKeyOf(fqdn, qtype)
	if a, err, ok := r.cache.get(key); ok {
		return a, err
	}
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	// RFC 6840 §5.7: set AD to learn whether the resolver validated the answer.
	m.AuthenticatedData = true
	// RFC 6891: 1232 octets is the size the DNS flag day 2020 settled on; DO asks for
	// DNSSEC processing (RFC 3225).
	m.SetEdns0(1232, true)

	var last error = errors.New("no resolver answered")
	for range max(r.Attempts, 1) {
		for _, srv := range r.Servers {
			if err := ctx.Err(); err != nil {
				return nil, &Error{Name: name, Type: tname, Reason: err.Error()}
			}
			resp, err := r.exchange(ctx, m, srv)
			if err != nil {
				last = err
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess:
				a := answer(resp, fqdn, qtype)
				r.cache.put(key, resp, a, nil)
				return a, nil
			case dns.RcodeNameError:
				err := &Error{Name: name, Type: tname, NotFound: true, Reason: "NXDOMAIN (no such domain)"}
				r.cache.put(key, resp, nil, err)
				return nil, err
			default:
				// SERVFAIL, REFUSED ...: another resolver may do better.
				last = errors.New(dns.RcodeToString[resp.Rcode])
			}
		}
	}
	reason := last.Error()
	var ne net.Error
	if errors.As(last, &ne) && ne.Timeout() {
		reason = "timeout"
	}
	return nil, &Error{Name: name, Type: tname, Reason: reason}
}

// exchange asks one server, over UDP and then over TCP when the answer was truncated
// (RFC 7766 §5).
func (r *Resolver) exchange(ctx context.Context, m *dns.Msg, srv string) (*dns.Msg, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: 1232}
	resp, _, err := c.ExchangeContext(qctx, m, srv)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(qctx, m, srv)
	}
	if err != nil {
		return nil, err
	}
	// miekg/dns checks the ID; the question must match as well, or the answer is for
	// something else (a spoofing attempt or a broken middlebox).
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, m.Question[0].Name) ||
		resp.Question[0].Qtype != m.Question[0].Qtype {
		return nil, errors.New("answer does not match the question")
	}
	return resp, nil
}

// answer picks the records of type qtype at name, following CNAMEs within the answer
// section (a recursive resolver gives the whole chain, RFC 1034 §3.6.2).
func answer(resp *dns.Msg, name string, qtype uint16) *Answer {
	a := &Answer{Authenticated: resp.AuthenticatedData}
	target := strings.ToLower(name)
	for range 16 { // a bound against CNAME loops
		var next string
		found := false
		for _, rr := range resp.Answer {
			h := rr.Header()
			if strings.ToLower(h.Name) != target {
				continue
			}
			if h.Rrtype == qtype {
				a.Records = append(a.Records, rr)
				found = true
			} else if c, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME {
				next = strings.ToLower(c.Target)
			}
		}
		if found || next == "" {
			break
		}
		target = next
	}
	a.Canonical = strings.TrimSuffix(target, ".")
	return a
}

// MX is one mail exchanger.
type MX struct {
	// Host is the exchanger's name without the final dot; "" for the null MX's "."
	// (RFC 7505).
	Host string
	Pref uint16
}

// LookupMX returns the MX records of domain, unsorted. A domain without MX records
// gives none and no error.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]MX, error) {
	mx, _, err := r.LookupMXSecure(ctx, domain)
	return mx, err
}

// LookupMXSecure is LookupMX that also says whether the resolver validated the answer
// with DNSSEC (the AD bit), which DANE needs (RFC 7672 §2.2.1): for an answer with
// records and for one without (a validated NODATA) alike.
func (r *Resolver) LookupMXSecure(ctx context.Context, domain string) ([]MX, bool, error) {
	a, err := r.Query(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, false, err
	}
	var out []MX
	for _, rr := range a.Records {
		mx := rr.(*dns.MX)
		out = append(out, MX{Host: strings.ToLower(strings.TrimSuffix(mx.Mx, ".")), Pref: mx.Preference})
	}
	return out, a.Authenticated, nil
}

// LookupTLSA returns the TLSA records of an SMTP server (RFC 6698, RFC 7672 §2.2):
// those at _port._tcp.host, and whether the resolver validated them. A name without
// TLSA records gives none and no error.
func (r *Resolver) LookupTLSA(ctx context.Context, host string, port int) ([]*dns.TLSA, bool, error) {
	a, err := r.Query(ctx, "_"+strconv.Itoa(port)+"._tcp."+host, dns.TypeTLSA)
	if IsNotFound(err) {
		// NXDOMAIN: no records. Whether it was validated does not matter: either way
		// there is nothing to authenticate the server with.
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var out []*dns.TLSA
	for _, rr := range a.Records {
		out = append(out, rr.(*dns.TLSA))
	}
	return out, a.Authenticated, nil
}

// LookupIP returns the IPv4 and then the IPv6 addresses of host. It fails only when
// neither lookup gave an address; it is NotFound only when both said NXDOMAIN, and a
// host that exists without addresses gives none and no error.
func (r *Resolver) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	ips, _, err := r.LookupIPSecure(ctx, host)
	return ips, err
}

// LookupIPSecure is LookupIP that also says whether the resolver validated both the A
// and the AAAA answers with DNSSEC, which DANE needs of an MX host (RFC 7672 §2.2.2).
func (r *Resolver) LookupIPSecure(ctx context.Context, host string) ([]net.IP, bool, error) {
	type result struct {
		ips  []net.IP
		auth bool
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		ips, auth, err := r.lookupAddr(ctx, host, dns.TypeAAAA)
		ch <- result{ips, auth, err}
	}()
	v4, auth4, err4 := r.lookupAddr(ctx, host, dns.TypeA)
	res6 := <-ch
	out := append(v4, res6.ips...)
	secure := err4 == nil && res6.err == nil && auth4 && res6.auth
	switch {
	case len(out) > 0:
		return out, secure, nil
	case err4 == nil && res6.err == nil:
		return nil, secure, nil
	case err4 != nil && IsTemporary(err4):
		return nil, false, err4
	case res6.err != nil && IsTemporary(res6.err):
		return nil, false, res6.err
	case err4 == nil || res6.err == nil:
		// One type said NODATA, the other NXDOMAIN: a broken server; no addresses.
		return nil, false, nil
	}
	return nil, false, err4
}

func (r *Resolver) lookupAddr(ctx context.Context, host string, qtype uint16) ([]net.IP, bool, error) {
	a, err := r.Query(ctx, host, qtype)
	if err != nil {
		return nil, false, err
	}
	var out []net.IP
	for _, rr := range a.Records {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A)
		case *dns.AAAA:
			out = append(out, v.AAAA)
		}
	}
	return out, a.Authenticated, nil
}

// LookupTXT returns the TXT records at name, the strings of each record joined into one
// (RFC 7208 §3.3, RFC 6376 §3.6.2.2). A name without TXT records gives none and no error.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	a, err := r.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range a.Records {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// IPResolver finds the addresses of a host; *Resolver implements it.
type IPResolver interface {
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
}

// Dialer returns a DialContext function that finds the addresses of a host:port with
// r (not the system's resolver) and connects to each with d until one answers.
func Dialer(r IPResolver, d *net.Dialer) func(ctx context.Context, network, hostport string) (net.Conn, error) {
	return func(ctx context.Context, network, hostport string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return nil, err
		}
		ips, err := r.LookupIP(ctx, host)
		if err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("%s has no address", host)
		}
		var last error
		for _, ip := range ips {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return c, nil
			}
			last = err
		}
		return nil, last
	}
}

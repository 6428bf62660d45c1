// Package resolvertest is a fake authoritative DNS server for tests: it serves, over UDP
// and TCP on one loopback port, the records a test gives it in zone-file syntax, so that
// mail between test instances is routed by MX records the way it is on the internet.
package resolvertest

import (
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Server is a running fake DNS server.
type Server struct {
	// Addr is "ip:port", the address to give as a resolver.
	Addr string

	mu      sync.Mutex
	records map[string][]dns.RR // by lower-case owner name, with final dot
	fail    map[string]int      // names answered with this rcode
	queries int
	// secure says whether answers carry the AD bit, as from a validating resolver.
	secure bool
	// keepTTL says whether answers carry the records' TTLs; otherwise they carry 0.
	keepTTL bool

	udp, tcp *dns.Server
}

// Start starts a server on ip (such as "127.0.0.1") at a port both UDP and TCP have
// free, or at ip:port when ip holds one ("127.0.0.53:53").
func Start(ip string) (*Server, error) {
	s := &Server{records: map[string][]dns.RR{}, fail: map[string]int{}}
	host, port, err := net.SplitHostPort(ip)
	if err != nil {
		host, port = ip, "0"
	}
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, fmt.Errorf("fake DNS server: %w", err)
		}
		addr := pc.LocalAddr().String()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			if port == "0" && attempt < 20 {
				continue // the TCP port was taken: try another pair
			}
			return nil, fmt.Errorf("fake DNS server: %w", err)
		}
		s.Addr = addr
		var started sync.WaitGroup
		started.Add(2)
		s.udp = &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: started.Done}
		s.tcp = &dns.Server{Listener: l, Handler: s, NotifyStartedFunc: started.Done}
		go s.udp.ActivateAndServe()
		go s.tcp.ActivateAndServe()
		// Shutdown works only on a started server.
		started.Wait()
		return s, nil
	}
}

// Close stops the server.
func (s *Server) Close() {
	s.udp.Shutdown()
	s.tcp.Shutdown()
}

// Add adds records written as in a zone file: "b.test. 300 IN MX 10 mx.b.test.". A
// name without a final dot is taken as absolute; TTL and class may be left out.
func (s *Server) Add(records ...string) error {
	for _, text := range records {
		rr, err := dns.NewRR(text)
		if err != nil {
			return fmt.Errorf("fake DNS record %q: %w", text, err)
		}
		if rr == nil {
			continue
		}
		s.mu.Lock()
		name := strings.ToLower(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
		s.mu.Unlock()
	}
	return nil
}

// Remove removes the records of type qtype at name (all types when qtype is
// dns.TypeANY).
func (s *Server) Remove(name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(dns.Fqdn(name))
	var keep []dns.RR
	for _, rr := range s.records[key] {
		if qtype != dns.TypeANY && rr.Header().Rrtype != qtype {
			keep = append(keep, rr)
		}
	}
	s.records[key] = keep
	if len(keep) == 0 {
		delete(s.records, key)
	}
}

// Has reports whether the server has records of type qtype at name.
func (s *Server) Has(name string, qtype uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range s.records[strings.ToLower(dns.Fqdn(name))] {
		if rr.Header().Rrtype == qtype {
			return true
		}
	}
	return false
}

// Fail makes the server answer every question about name with rcode (such as
// dns.RcodeServerFailure); dns.RcodeSuccess undoes it.
func (s *Server) Fail(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(dns.Fqdn(name))
	if rcode == dns.RcodeSuccess {
		delete(s.fail, key)
		return
	}
	s.fail[key] = rcode
}

// SetAuthenticated makes the server set the AD bit in its answers (on) or not: it then
// plays a validating resolver that found the zone signed (RFC 4035 §3.2.3), which DANE
// tests need.
func (s *Server) SetAuthenticated(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secure = on
}

// KeepTTLs makes the answers carry the TTLs of the records (on) or TTL 0, the
// default: a caching resolver then asks again every time, so a test may change the
// records between two deliveries and be sure the next one sees the change.
func (s *Server) KeepTTLs(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepTTL = on
}

// Queries returns how many questions the server answered.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// ServeDNS implements dns.Handler: an authoritative answer from the records given, with
// CNAMEs followed; NXDOMAIN for a name without any record, NODATA for a name without
// records of the type asked for.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	s.mu.Lock()
	m.AuthenticatedData = s.secure
	s.mu.Unlock()
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	s.mu.Lock()
	s.queries++
	name := strings.ToLower(q.Name)
	if rc, ok := s.fail[name]; ok {
		s.mu.Unlock()
		m.Rcode = rc
		w.WriteMsg(m)
		return
	}
	for range 8 {
		rrs, exists := s.records[name]
		if !exists {
			if len(m.Answer) == 0 {
				m.Rcode = dns.RcodeNameError
			}
			break
		}
		var cname string
		for _, rr := range rrs {
			switch {
			case rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY:
				m.Answer = append(m.Answer, dns.Copy(rr))
			case rr.Header().Rrtype == dns.TypeCNAME:
				m.Answer = append(m.Answer, dns.Copy(rr))
				cname = strings.ToLower(rr.(*dns.CNAME).Target)
			}
		}
		if cname == "" || q.Qtype == dns.TypeCNAME {
			break
		}
		name = cname
	}
	if len(m.Answer) == 0 {
		// NXDOMAIN or NODATA: the zone's SOA goes into the authority section, whose
		// TTL and MINIMUM say how long the answer may be cached (RFC 2308 §3).
		if soa := s.soaAbove(name); soa != nil {
			m.Ns = append(m.Ns, dns.Copy(soa))
		}
	}
	if !s.keepTTL {
		for _, rr := range append(m.Answer, m.Ns...) {
			rr.Header().Ttl = 0
		}
	}
	s.mu.Unlock()
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	if w.RemoteAddr().Network() == "udp" && m.Len() > udpSize(req) {
		// RFC 1035 §4.2.1: too long for UDP; the client asks again over TCP.
		m.Answer = nil
		m.Truncated = true
	}
	w.WriteMsg(m)
}

// soaAbove returns the SOA record of the closest zone holding name, or nil. s.mu is
// held.
func (s *Server) soaAbove(name string) dns.RR {
	for n := name; ; {
		for _, rr := range s.records[n] {
			if rr.Header().Rrtype == dns.TypeSOA {
				return rr
			}
		}
		_, rest, ok := strings.Cut(n, ".")
		if !ok || rest == "" {
			return nil
		}
		n = rest
	}
}

func udpSize(req *dns.Msg) int {
	if opt := req.IsEdns0(); opt != nil && opt.UDPSize() >= 512 {
		return int(opt.UDPSize())
	}
	return 512
}

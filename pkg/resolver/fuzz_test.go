package resolver

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswer feeds what a DNS server could send — any bytes that miekg/dns unpacks —
// to the code that picks the records out of the answer and follows its CNAMEs.
func FuzzAnswer(f *testing.F) {
	seed := func(records ...string) {
		m := new(dns.Msg)
		m.SetQuestion("b.test.", dns.TypeMX)
		for _, r := range records {
			rr, err := dns.NewRR(r)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed("b.test. 300 IN MX 10 mx.b.test.")
	seed("b.test. 300 IN CNAME c.test.", "c.test. 300 IN MX 0 .")
	seed("b.test. 300 IN CNAME c.test.", "c.test. 300 IN CNAME b.test.")
	seed("b.test. 300 IN A 192.0.2.1", "other.test. 300 IN MX 5 evil.test.")
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if m.Unpack(data) != nil || len(m.Question) != 1 {
			return
		}
		q := m.Question[0]
		a := answer(m, q.Name, q.Qtype)
		for _, rr := range a.Records {
			if rr.Header().Rrtype != q.Qtype {
				t.Fatalf("record of type %d in an answer for type %d", rr.Header().Rrtype, q.Qtype)
			}
		}
		if q.Qtype == dns.TypeMX {
			for _, rr := range a.Records {
				_ = rr.(*dns.MX) // the type assertion LookupMX makes
			}
		}
	})
}

package dmarc

import (
	"context"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	r, err := Parse("v=DMARC1; p=quarantine; sp=reject; adkim=s; pct=50; rua=mailto:a@example.org,mailto:b@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if r.Policy != Quarantine || r.SubdomainPolicy != Reject || r.NonexistentPolicy != Reject || !r.StrictDKIM || r.StrictSPF || r.Pct != 50 || len(r.RUA) != 2 {
		t.Errorf("parsed %+v", r)
	}
	if r, err := Parse("v=DMARC1; p=none; np=reject"); err != nil || r.NonexistentPolicy != Reject || r.SubdomainPolicy != None {
		t.Errorf("np: %+v %v", r, err)
	}
	if r, err := Parse("v=DMARC1; rua=mailto:x@example.org"); err != nil || r.Policy != None {
		t.Errorf("rua without p: %+v %v", r, err)
	}
	for _, bad := range []string{"", "v=spf1 -all", "v=DMARC1", "v=DMARC1; p=maybe", "v=DMARC1; p=reject; pct=101", "v=DMARC1; p=reject; adkim=x", "v=DMARC1; p"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"v=DMARC1; p=reject", "v=DMARC1;p=quarantine;sp=none;np=reject;pct=0;adkim=r;aspf=s", "v=DMARC1; rua=mailto:a@b", "v=DMARC1; p=;;;=", "v=DMARC1; pct=-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		for _, p := range []string{r.Policy, r.SubdomainPolicy, r.NonexistentPolicy} {
			if p != None && p != Quarantine && p != Reject {
				t.Fatalf("policy %q from %q", p, s)
			}
		}
		if r.Pct < 0 || r.Pct > 100 {
			t.Fatalf("pct %d", r.Pct)
		}
	})
}

func TestAlignment(t *testing.T) {
	for _, c := range []struct {
		id, from string
		strict   bool
		want     bool
	}{
		{"example.org", "example.org", true, true},
		{"mail.example.org", "example.org", false, true},
		{"mail.example.org", "example.org", true, false},
		{"example.org", "example.com", false, false},
		{"a.co.uk", "b.co.uk", false, false}, // co.uk is a public suffix
		{"", "example.org", false, false},
	} {
		if got := Aligned(c.id, c.from, c.strict); got != c.want {
			t.Errorf("Aligned(%q, %q, %v) = %v", c.id, c.from, c.strict, got)
		}
	}
	if o := OrganizationalDomain("x.y.example.co.uk"); o != "example.co.uk" {
		t.Errorf("organizational domain %q", o)
	}
}

// fakeDNS serves TXT records from a map; names in missing do not exist; temp fails.
type fakeDNS struct {
	txt     map[string][]string
	missing map[string]bool
	temp    bool
}

var errNX = errors.New("NXDOMAIN")

func (f *fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	if f.temp {
		return nil, errors.New("SERVFAIL")
	}
	if v, ok := f.txt[name]; ok {
		return v, nil
	}
	return nil, errNX
}
func (f *fakeDNS) Exists(_ context.Context, d string) (bool, error) { return !f.missing[d], nil }
func (f *fakeDNS) NotFound(err error) bool                          { return errors.Is(err, errNX) }

func TestEvaluate(t *testing.T) {
	dns := &fakeDNS{
		txt: map[string][]string{
			"_dmarc.example.org": {"v=DMARC1; p=reject; sp=quarantine; np=reject; aspf=s"},
			"_dmarc.q.test":      {"v=DMARC1; p=quarantine"},
			"_dmarc.two.test":    {"v=DMARC1; p=reject", "v=DMARC1; p=none"},
		},
		missing: map[string]bool{"ghost.example.org": true},
	}
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		in     Input
		result string
		policy string
	}{
		{"dkim aligned relaxed", Input{From: "example.org", DKIMDomains: []string{"mail.example.org"}}, Pass, None},
		{"spf aligned strict", Input{From: "example.org", SPFDomain: "example.org", SPFPass: true}, Pass, None},
		{"spf not aligned strict", Input{From: "example.org", SPFDomain: "bounce.example.org", SPFPass: true}, Fail, Reject},
		{"spf failed", Input{From: "example.org", SPFDomain: "example.org"}, Fail, Reject},
		{"subdomain sp", Input{From: "sub.example.org"}, Fail, Quarantine},
		{"nonexistent np", Input{From: "ghost.example.org"}, Fail, Reject},
		{"quarantine", Input{From: "q.test", DKIMDomains: []string{"other.test"}}, Fail, Quarantine},
		{"no record", Input{From: "none.test"}, NoPolicy, None},
		{"two records are none", Input{From: "two.test"}, NoPolicy, None},
		{"override", Input{From: "local.test", Override: Reject}, Fail, Reject},
		{"override passes", Input{From: "local.test", Override: Reject, DKIMDomains: []string{"local.test"}}, Pass, None},
	} {
		ev := Evaluate(ctx, dns, c.in)
		if ev.Result != c.result || ev.Policy != c.policy {
			t.Errorf("%s: %s, policy %s; want %s, %s", c.name, ev.Result, ev.Policy, c.result, c.policy)
		}
	}
	dns.temp = true
	if ev := Evaluate(ctx, dns, Input{From: "example.org"}); ev.Result != TempError {
		t.Errorf("SERVFAIL gave %s", ev.Result)
	}
}

func TestPct(t *testing.T) {
	dns := &fakeDNS{txt: map[string][]string{"_dmarc.p.test": {"v=DMARC1; p=reject; pct=0"}}}
	for range 20 {
		if ev := Evaluate(context.Background(), dns, Input{From: "p.test"}); ev.Policy != Quarantine || ev.Published != Reject {
			t.Fatalf("pct=0: policy %s published %s", ev.Policy, ev.Published)
		}
	}
}

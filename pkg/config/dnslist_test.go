package config

import (
	"strings"
	"testing"
)

func TestSpamdDNSLists(t *testing.T) {
	c, err := Parse("/srv/postern.toml", []byte(`
[spamd]
classifier_min_spam = 5
classifier_min_ham = 7

[[spamd.dnsbl]]
zone = "Zen.Example.ORG."
reject = true
returns = ["127.0.0.2", "127.0.0.4/30"]

[[spamd.dnsbl]]
zone = "bl.example.net"
weight = 2.5

[[spamd.dnswl]]
zone = "list.dnswl.example"
`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Spamd
	if len(s.DNSBL) != 2 || s.DNSBL[0].Zone != "zen.example.org" || !s.DNSBL[0].Reject || s.DNSBL[0].Weighed() != DefaultDNSBLWeight ||
		len(ParseNets(s.DNSBL[0].Returns)) != 2 || s.DNSBL[1].Weighed() != 2.5 || s.DNSBL[1].Reject {
		t.Errorf("dnsbl: %+v", s.DNSBL)
	}
	if len(s.DNSWL) != 1 || s.DNSWL[0].Weighed() != DefaultDNSWLWeight {
		t.Errorf("dnswl: %+v", s.DNSWL)
	}
	if s.ClassifierMinSpam != 5 || s.ClassifierMinHam != 7 {
		t.Errorf("classifier minimums %d %d", s.ClassifierMinSpam, s.ClassifierMinHam)
	}
	if d := Default().Spamd; d.ClassifierMinSpam != 50 || d.ClassifierMinHam != 50 || d.DNSBL != nil {
		t.Errorf("defaults: %+v", d)
	}
	for bad, want := range map[string]string{
		"[[spamd.dnsbl]]\nzone = \"nodot\"\n":                                    "spamd.dnsbl: entry 1: zone",
		"[[spamd.dnsbl]]\nzone = \"a.test\"\nreturns = [\"x\"]\n":                "spamd.dnsbl: entry 1: returns",
		"[[spamd.dnsbl]]\nzone = \"a.test\"\nreturns = [\"::1\"]\n":              "not an IPv4",
		"[[spamd.dnswl]]\nzone = \"a.test\"\nweight = 1.0\n":                     "weight must not be positive",
		"[[spamd.dnsbl]]\nzone = \"a.test\"\n[[spamd.dnswl]]\nzone = \"A.test\"": "listed twice",
		"[[spamd.dnsbl]]\nzone = \"a.test\"\nrejects = true\n":                   "unknown key",
		"[spamd]\nclassifier_min_ham = 0\n":                                      ":2: spamd.classifier_min_ham",
	} {
		if _, err := Parse("/srv/postern.toml", []byte(bad)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", bad, err, want)
		}
	}
}

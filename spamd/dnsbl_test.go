package main

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"postern/pkg/config"
	"postern/pkg/spamcheck"
)

func TestDNSxLName(t *testing.T) {
	for ip, want := range map[string]string{
		// RFC 5782 §2.1 and §2.4 give these examples.
		"192.0.2.99":                "99.2.0.192.bl.example",
		"::ffff:192.0.2.1":          "1.2.0.192.bl.example",
		"2001:db8:1:2:3:4:567:89ab": "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example",
	} {
		if got := dnsxlName(net.ParseIP(ip), "bl.example"); got != want {
			t.Errorf("%s: %s, want %s", ip, got, want)
		}
	}
	if got := dnsxlName(nil, "bl.example"); got != "" {
		t.Errorf("no address: %q", got)
	}
}

func TestDNSListReturns(t *testing.T) {
	def := dnsList{zone: "bl.test"}
	filtered := dnsList{zone: "bl.test", returns: config.ParseNets([]string{"127.0.0.4", "127.0.1.0/24"})}
	for _, tc := range []struct {
		l    *dnsList
		code string
		want bool
	}{
		{&def, "127.0.0.2", true},
		{&def, "127.0.0.10", true},
		{&def, "127.255.255.254", false}, // Spamhaus: query refused
		{&def, "127.0.0.255", false},     // dnswl.org: over quota
		{&def, "192.0.2.1", false},       // NXDOMAIN rewritten by a resolver
		{&filtered, "127.0.0.2", false},
		{&filtered, "127.0.0.4", true},
		{&filtered, "127.0.1.9", true},
	} {
		if got := tc.l.listed(net.ParseIP(tc.code)); got != tc.want {
			t.Errorf("returns %v, answer %s: %v", tc.l.returns, tc.code, got)
		}
	}
}

// TestDNSLists checks verdicts with DNS lists served by the fake DNS server: a listing
// scores or refuses (the zone named in the reply), an allowlist lowers the score, an
// IPv6 client is asked about by nibbles, error codes and DNS failures give a reason
// without a weight, and answers come from the resolver's cache for their TTL.
func TestDNSLists(t *testing.T) {
	c, srv, _ := newChecker(t)
	srv.KeepTTLs(true)
	if err := srv.Add(
		`bl.test. 300 IN SOA ns.bl.test. hostmaster.bl.test. 1 3600 600 86400 300`,
		`9.113.0.203.bl.test. 300 IN A 127.0.0.2`,
		`8.113.0.203.bl.test. 300 IN A 127.255.255.254`,
		`4.113.0.203.bl.test. 300 IN A 127.0.0.2`,
		`1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test. 300 IN A 127.0.0.3`,
		`hard.test. 300 IN SOA ns.hard.test. hostmaster.hard.test. 1 3600 600 86400 300`,
		`7.113.0.203.hard.test. 300 IN A 127.0.0.2`,
		`wl.test. 300 IN SOA ns.wl.test. hostmaster.wl.test. 1 3600 600 86400 300`,
		`1.2.0.192.wl.test. 300 IN A 127.0.10.2`,
	); err != nil {
		t.Fatal(err)
	}
	c.DNSLists = dnsListsOf(config.Spamd{
		DNSBL: []config.DNSBL{{Zone: "bl.test"}, {Zone: "hard.test", Reject: true}, {Zone: "down.test"}},
		DNSWL: []config.DNSWL{{Zone: "wl.test"}},
	})
	srv.Fail("9.113.0.203.down.test.", dns.RcodeServerFailure)
	srv.Fail("8.113.0.203.down.test.", dns.RcodeServerFailure)
	msg := "From: x@soft.test\r\n\r\nhi\r\n"
	reasons := func(v *spamcheck.Verdict) string { return strings.Join(v.Reasons, " ") }

	// Listed by bl.test: its weight, 5, files the softfail (1) into Junk.
	v := check(c, "203.0.113.9", "x@soft.test", msg)
	if v.Action != spamcheck.Junk || v.Score != 6 || !strings.Contains(reasons(v), "DNSBL(bl.test:127.0.0.2)=5") ||
		!strings.Contains(reasons(v), "DNSBL_TEMPERROR(down.test)") {
		t.Errorf("listed: %+v", v)
	}
	// An error code is no listing.
	v = check(c, "203.0.113.8", "x@soft.test", msg)
	if v.Action != spamcheck.Accept || v.Score != 1 || !strings.Contains(reasons(v), "DNSBL_IGNORED(bl.test:127.255.255.254)") {
		t.Errorf("error code: %+v", v)
	}
	// A rejecting list refuses, naming itself.
	v = check(c, "203.0.113.7", "x@soft.test", msg)
	if v.Action != spamcheck.Reject || v.Code != "5.7.1" || !strings.Contains(v.Text, "hard.test") || !strings.Contains(v.Text, "203.0.113.7") {
		t.Errorf("rejecting list: %+v", v)
	}
	// IPv6, by nibbles.
	v = check(c, "2001:db8::1", "x@soft.test", msg)
	if !strings.Contains(reasons(v), "DNSBL(bl.test:127.0.0.3)=5") {
		t.Errorf("IPv6 listed: %+v", v)
	}
	// The allowlist lowers the score: SPF pass -0.5, DMARC pass -1, DNSWL -3.
	v = check(c, "192.0.2.1", "x@pass.test", "From: x@pass.test\r\n\r\nhi\r\n")
	if v.Action != spamcheck.Accept || v.Score != -4.5 || !strings.Contains(reasons(v), "DNSWL(wl.test:127.0.10.2)=-3") {
		t.Errorf("allowlisted: %+v", v)
	}
	// Unlisted: nothing from the lists.
	v = check(c, "198.51.100.1", "x@soft.test", msg)
	if v.Score != 1 || strings.Contains(reasons(v), "DNSBL(") || strings.Contains(reasons(v), "DNSWL(") {
		t.Errorf("unlisted: %+v", v)
	}
	// The answers, listings and NXDOMAIN alike, are cached for their TTL: asking
	// again about the same client sends no query.
	lists := dnsListsOf(config.Spamd{DNSBL: []config.DNSBL{{Zone: "bl.test"}, {Zone: "hard.test"}}, DNSWL: []config.DNSWL{{Zone: "wl.test"}}})
	for _, ip := range []string{"203.0.113.4", "198.51.100.2"} {
		before := srv.Queries()
		first := queryDNSLists(context.Background(), c.DNS.R, lists, net.ParseIP(ip))
		if n := srv.Queries() - before; n != 3 {
			t.Errorf("%s: %d queries, want one per list", ip, n)
		}
		before = srv.Queries()
		again := queryDNSLists(context.Background(), c.DNS.R, lists, net.ParseIP(ip))
		if n := srv.Queries() - before; n != 0 {
			t.Errorf("%s asked about again: %d queries, want none (cached)", ip, n)
		}
		if listed := ip == "203.0.113.4"; listed != (first[0].code != nil) || !first[0].code.Equal(again[0].code) {
			t.Errorf("%s: cached answer %v, first %v", ip, again[0].code, first[0].code)
		}
	}
}

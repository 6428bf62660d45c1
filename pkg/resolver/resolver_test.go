package resolver_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"postern/pkg/resolver"
	"postern/pkg/resolver/resolvertest"
)

func start(t *testing.T) (*resolvertest.Server, *resolver.Resolver) {
	t.Helper()
	srv, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	r, err := resolver.New([]string{srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	r.Timeout = time.Second
	return srv, r
}

func TestLookups(t *testing.T) {
	srv, r := start(t)
	if err := srv.Add(
		"b.test. 300 IN MX 10 mx1.b.test.",
		"b.test. 300 IN MX 20 MX2.b.test.",
		"b.test. 300 IN TXT \"v=spf1 \" \"ip4:127.0.0.3 -all\"",
		"mx1.b.test. 300 IN A 127.0.0.3",
		"mx1.b.test. 300 IN AAAA ::1",
		"alias.b.test. 300 IN CNAME mx1.b.test.",
		"v6only.b.test. 300 IN AAAA ::1",
	); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	mx, err := r.LookupMX(ctx, "B.test")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(mx, func(i, j int) bool { return mx[i].Pref < mx[j].Pref })
	if want := []resolver.MX{{Host: "mx1.b.test", Pref: 10}, {Host: "mx2.b.test", Pref: 20}}; !reflect.DeepEqual(mx, want) {
		t.Errorf("MX: %v, want %v", mx, want)
	}

	ips, err := r.LookupIP(ctx, "alias.b.test")
	if err != nil || len(ips) != 2 || ips[0].String() != "127.0.0.3" || ips[1].String() != "::1" {
		t.Errorf("IP through a CNAME: %v %v", ips, err)
	}
	if ips, err := r.LookupIP(ctx, "v6only.b.test"); err != nil || len(ips) != 1 {
		t.Errorf("IPv6 only: %v %v", ips, err)
	}

	txt, err := r.LookupTXT(ctx, "b.test")
	if err != nil || len(txt) != 1 || txt[0] != "v=spf1 ip4:127.0.0.3 -all" {
		t.Errorf("TXT: %q %v", txt, err)
	}

	// The AD bit of a validating resolver.
	if _, secure, err := r.LookupIPSecure(ctx, "mx1.b.test"); err != nil || secure {
		t.Errorf("unvalidated answer said secure: %v", err)
	}
	srv.SetAuthenticated(true)
	if _, secure, err := r.LookupIPSecure(ctx, "mx1.b.test"); err != nil || !secure {
		t.Errorf("validated answer not secure: %v", err)
	}
	if _, secure, err := r.LookupMXSecure(ctx, "mx1.b.test"); err != nil || !secure {
		t.Errorf("validated NODATA not secure: %v", err)
	}
	if tlsa, secure, err := r.LookupTLSA(ctx, "mx1.b.test", 25); err != nil || secure || tlsa != nil {
		t.Errorf("TLSA at a name that does not exist: %v %v %v", tlsa, secure, err)
	}
	srv.SetAuthenticated(false)

	// NODATA: the name exists, the type does not.
	if mx, err := r.LookupMX(ctx, "mx1.b.test"); err != nil || len(mx) != 0 {
		t.Errorf("NODATA: %v %v", mx, err)
	}
	// NXDOMAIN is final.
	_, err = r.LookupMX(ctx, "nowhere.test")
	if !resolver.IsNotFound(err) || resolver.IsTemporary(err) {
		t.Errorf("NXDOMAIN: %v (not found %v)", err, resolver.IsNotFound(err))
	}
	if _, err := r.LookupIP(ctx, "nowhere.test"); !resolver.IsNotFound(err) {
		t.Errorf("NXDOMAIN for addresses: %v", err)
	}
	// SERVFAIL is temporary.
	srv.Fail("b.test", dns.RcodeServerFailure)
	_, err = r.LookupMX(ctx, "b.test")
	if !resolver.IsTemporary(err) || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("SERVFAIL: %v", err)
	}
	srv.Fail("b.test", dns.RcodeSuccess)
	if _, err := r.LookupMX(ctx, "b.test"); err != nil {
		t.Errorf("after SERVFAIL ends: %v", err)
	}
	// Not a domain name at all.
	if _, err := r.LookupMX(ctx, "a b..test"); !resolver.IsNotFound(err) {
		t.Errorf("bad name: %v", err)
	}
}

func TestTruncatedAnswerGoesOverTCP(t *testing.T) {
	srv, r := start(t)
	var recs []string
	for i := range 60 {
		recs = append(recs, "big.test. 300 IN TXT \""+strings.Repeat("x", 100)+string(rune('a'+i%26))+"\"")
	}
	if err := srv.Add(recs...); err != nil {
		t.Fatal(err)
	}
	txt, err := r.LookupTXT(context.Background(), "big.test")
	if err != nil || len(txt) != 60 {
		t.Fatalf("got %d records, %v; want 60 over TCP", len(txt), err)
	}
}

func TestUnreachableResolverIsTemporary(t *testing.T) {
	srv, r := start(t)
	addr := srv.Addr
	srv.Close()
	r.Servers = []string{addr}
	r.Timeout = 200 * time.Millisecond
	r.Attempts = 1
	_, err := r.LookupMX(context.Background(), "b.test")
	if err == nil || !resolver.IsTemporary(err) {
		t.Fatalf("got %v, want a temporary error", err)
	}
}

func TestFromResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("# comment\nsearch example.test\nnameserver 10.0.0.1\nnameserver ::1\nnameserver bogus\noptions ndots:2\n"), 0o644)
	got, err := resolver.FromResolvConf(p)
	if err != nil || !reflect.DeepEqual(got, []string{"10.0.0.1:53", "[::1]:53"}) {
		t.Errorf("got %v %v", got, err)
	}
	os.WriteFile(p, []byte("search x\n"), 0o644)
	if _, err := resolver.FromResolvConf(p); err == nil {
		t.Error("a file without nameservers gave no error")
	}
	if _, err := resolver.New([]string{"dns.example"}); err == nil {
		t.Error("a resolver named by host name was accepted")
	}
	if r, err := resolver.New([]string{"127.0.0.1", "127.0.0.2:5353"}); err != nil || !reflect.DeepEqual(r.Servers, []string{"127.0.0.1:53", "127.0.0.2:5353"}) {
		t.Errorf("New: %v %v", r, err)
	}
	// Configured servers are used as they are, without looking at resolv.conf.
	if r, err := resolver.NewFromConfig([]string{"127.0.0.3"}); err != nil || !reflect.DeepEqual(r.Servers, []string{"127.0.0.3:53"}) {
		t.Errorf("NewFromConfig: %v %v", r, err)
	}
}

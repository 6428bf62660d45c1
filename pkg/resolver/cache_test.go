package resolver

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"

	"postern/pkg/resolver/resolvertest"
)

// cachedResolver is a Resolver asking a fake server that hands out real TTLs, with a
// clock the test moves.
func cachedResolver(t *testing.T) (*resolvertest.Server, *Resolver, *time.Time) {
	t.Helper()
	srv, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.KeepTTLs(true)
	r, err := New([]string{srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r.cache.now = func() time.Time { return now }
	return srv, r, &now
}

func TestCacheKeepsAnswersForTheirTTL(t *testing.T) {
	srv, r, now := cachedResolver(t)
	if err := srv.Add(
		"b.test. 300 MX 10 mx.b.test.",
		"mx.b.test. 60 A 127.0.0.3",
		"short.b.test. 0 A 127.0.0.4",
		"alias.b.test. 30 CNAME mx.b.test.",
	); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ask := func(name string, qtype uint16) *Answer {
		t.Helper()
		a, err := r.Query(ctx, name, qtype)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return a
	}
	queries := func(want int, when string) {
		t.Helper()
		if got := srv.Queries(); got != want {
			t.Errorf("%s: the server was asked %d times, want %d", when, got, want)
		}
	}

	ask("b.test", dns.TypeMX)
	if a := ask("B.TEST.", dns.TypeMX); len(a.Records) != 1 {
		t.Errorf("cached MX: %+v", a)
	}
	queries(1, "the same question twice (names compared without case)")

	// The caller may reorder what it gets; the cache keeps its own copy.
	a := ask("b.test", dns.TypeMX)
	a.Records[0] = nil
	if a := ask("b.test", dns.TypeMX); a.Records[0] == nil {
		t.Error("a caller's change reached the cache")
	}

	ask("short.b.test", dns.TypeA)
	ask("short.b.test", dns.TypeA)
	queries(3, "TTL 0 is not cached")

	// A CNAME chain lives as long as its shortest link.
	ask("alias.b.test", dns.TypeA)
	*now = now.Add(31 * time.Second)
	ask("alias.b.test", dns.TypeA)
	queries(5, "a CNAME chain past its CNAME's TTL")

	*now = now.Add(270 * time.Second) // 301 s after the MX answer
	srv.Remove("b.test", dns.TypeMX)
	srv.Add("b.test. 300 MX 20 new.b.test.")
	if a := ask("b.test", dns.TypeMX); len(a.Records) != 1 || a.Records[0].(*dns.MX).Mx != "new.b.test." {
		t.Errorf("after the TTL the new MX is seen: %+v", a.Records)
	}
	queries(6, "an MX past its TTL")
}

func TestCacheNegativeAnswers(t *testing.T) {
	srv, r, now := cachedResolver(t)
	if err := srv.Add(
		"b.test. 3600 SOA ns.b.test. hostmaster.b.test. 1 3600 600 86400 120",
		"b.test. 3600 MX 10 mx.b.test.",
		"c.test. 300 A 127.0.0.5", // a zone without SOA: its negative answers are not kept
	); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if _, err := r.Query(ctx, "nowhere.b.test", dns.TypeA); !IsNotFound(err) {
			t.Fatalf("NXDOMAIN: %v", err)
		}
		if a, err := r.Query(ctx, "b.test", dns.TypeTLSA); err != nil || len(a.Records) != 0 {
			t.Fatalf("NODATA: %+v %v", a, err)
		}
	}
	if n := srv.Queries(); n != 2 {
		t.Errorf("negative answers asked %d times, want 2 (kept for the SOA's MINIMUM)", n)
	}
	// A validated NODATA stays validated when it comes from the cache: DANE needs it of
	// the AAAA answer of an IPv4-only MX host (RFC 7672 §2.2.2).
	srv.SetAuthenticated(true)
	for i := range 2 {
		if a, err := r.Query(ctx, "b.test", dns.TypeAAAA); err != nil || len(a.Records) != 0 || !a.Authenticated || a.Canonical != "b.test" {
			t.Errorf("validated NODATA, asked %d times: %+v %v", i+1, a, err)
		}
	}
	if n := srv.Queries(); n != 3 {
		t.Errorf("validated NODATA: %d queries, want 3", n)
	}
	srv.SetAuthenticated(false)
	// RFC 2308 §5: kept for the lesser of the SOA's TTL and MINIMUM, here 120 s.
	*now = now.Add(121 * time.Second)
	r.Query(ctx, "nowhere.b.test", dns.TypeA)
	if n := srv.Queries(); n != 4 {
		t.Errorf("NXDOMAIN past the SOA's MINIMUM: %d queries, want 4", n)
	}
	r.Query(ctx, "c.test", dns.TypeMX)
	r.Query(ctx, "c.test", dns.TypeMX)
	if n := srv.Queries(); n != 6 {
		t.Errorf("NODATA without an SOA: %d queries, want 6 (not kept)", n)
	}
}

func TestCacheSkipsTemporaryFailures(t *testing.T) {
	srv, r, _ := cachedResolver(t)
	r.Timeout = time.Second
	srv.Add("b.test. 300 MX 10 mx.b.test.")
	srv.Fail("b.test", dns.RcodeServerFailure)
	ctx := context.Background()
	if _, err := r.Query(ctx, "b.test", dns.TypeMX); err == nil || !IsTemporary(err) {
		t.Fatalf("SERVFAIL: %v", err)
	}
	srv.Fail("b.test", dns.RcodeSuccess)
	if a, err := r.Query(ctx, "b.test", dns.TypeMX); err != nil || len(a.Records) != 1 {
		t.Errorf("after the failure went away: %+v %v", a, err)
	}
}

func TestCacheBounded(t *testing.T) {
	var c cache
	now := time.Now()
	c.now = func() time.Time { return now }
	resp := new(dns.Msg)
	rr, _ := dns.NewRR("b.test. 300 A 127.0.0.3")
	resp.Answer = []dns.RR{rr}
	a := &Answer{Records: resp.Answer}
	for i := range maxCacheEntries + 50 {
		c.put(cacheKey{name: "b.test.", qtype: uint16(i)}, resp, a, nil)
	}
	if n := len(c.entries); n > maxCacheEntries {
		t.Errorf("%d entries, limit %d", n, maxCacheEntries)
	}
	// A huge TTL is capped.
	rr.Header().Ttl = 1 << 30
	c.put(cacheKey{name: "big.test.", qtype: dns.TypeA}, resp, a, nil)
	now = now.Add(maxCacheTTL)
	if _, _, ok := c.get(cacheKey{name: "big.test.", qtype: dns.TypeA}); ok {
		t.Error("an answer outlived maxCacheTTL")
	}
}

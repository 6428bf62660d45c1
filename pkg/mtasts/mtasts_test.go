package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct{ in, id string }{
		{"v=STSv1; id=20160831085700Z;", "20160831085700Z"},
		{"v=STSv1;id=abc", "abc"},
		{"v=STSv1; id=abc; ext=1", "abc"},
		{"v=STSv1 ; id=abc", "abc"}, // white space around ";" (RFC 8461 §3.1)
		{"id=abc; v=STSv1", ""},     // v must come first
		{"v=STSv1; id=", ""},        // empty id
		{"v=STSv1; id=a-b", ""},     // bad character
		{"v=STSv2; id=abc", ""},     // unknown version
		{"v=STSv1;; id=abc", ""},    // empty field
		{"v=STSv1; id=" + strings.Repeat("a", 33), ""},
	} {
		id, err := ParseRecord(tc.in)
		if id != tc.id || (tc.id == "") != (err != nil) {
			t.Errorf("%q: got %q %v, want %q", tc.in, id, err, tc.id)
		}
	}
}

const goodPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 86400\r\nfuture: yes\r\n"

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(goodPolicy))
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{Mode: Enforce, MX: []string{"mail.example.com", "*.example.net"}, MaxAge: 24 * time.Hour}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v, want %+v", p, want)
	}
	for host, ok := range map[string]bool{
		"mail.example.com": true, "MAIL.example.com.": true, "mx1.example.net": true,
		"example.net": false, "a.b.example.net": false, "other.example.com": false,
	} {
		if p.Matches(host) != ok {
			t.Errorf("Matches(%q) = %v", host, !ok)
		}
	}
	if p, err := ParsePolicy([]byte("version: STSv1\nmode: none\nmax_age: 0\n")); err != nil || p.Mode != None {
		t.Errorf("mode none without mx: %+v %v", p, err)
	}
	for _, bad := range []string{
		"mode: enforce\nmx: a.test\nmax_age: 1\n",                        // no version
		"version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",         // bad mode
		"version: STSv1\nmode: enforce\nmax_age: 1\n",                    // no mx
		"version: STSv1\nmode: enforce\nmx: a.test\n",                    // no max_age
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n", // too long
		"version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 1\n",
		"version STSv1\n",
	} {
		if _, err := ParsePolicy([]byte(bad)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

type fakeTXT struct {
	records map[string][]string
	err     error
}

func (f *fakeTXT) LookupTXT(_ context.Context, name string) ([]string, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.records[name], nil
}

func TestCache(t *testing.T) {
	dns := &fakeTXT{records: map[string][]string{"_mta-sts.b.test": {"v=STSv1; id=1"}}}
	fetches := 0
	var fetchErr error
	now := time.Now()
	c := &Cache{
		DNS: dns,
		Fetch: func(context.Context, string) (*Policy, error) {
			fetches++
			if fetchErr != nil {
				return nil, fetchErr
			}
			return &Policy{Mode: Enforce, MX: []string{"mx.b.test"}, MaxAge: time.Hour}, nil
		},
		Now: func() time.Time { return now },
	}
	ctx := context.Background()
	get := func() *Policy {
		t.Helper()
		p, _ := c.Get(ctx, "B.test")
		return p
	}
	if p := get(); p == nil || fetches != 1 {
		t.Fatalf("first: %+v after %d fetches", p, fetches)
	}
	if p := get(); p == nil || fetches != 1 {
		t.Errorf("same id: fetched again (%d)", fetches)
	}
	// A new id: fetched again; when that fails, the cached policy stays.
	dns.records["_mta-sts.b.test"] = []string{"v=STSv1; id=2"}
	fetchErr = errors.New("HTTPS blocked")
	if p := get(); p == nil || fetches != 2 {
		t.Errorf("failed refresh: %+v, %d fetches", p, fetches)
	}
	// A failed fetch is not tried again at once for the same id.
	if p := get(); p == nil || fetches != 2 {
		t.Errorf("failed fetch retried at once: %+v, %d fetches", p, fetches)
	}
	now = now.Add(RetryFetch)
	if get(); fetches != 3 {
		t.Errorf("failed fetch not retried after RetryFetch: %d fetches", fetches)
	}
	// The DNS fails: the cached policy stays, until it expires.
	dns.err = errors.New("SERVFAIL")
	if p := get(); p == nil {
		t.Error("DNS failure dropped the cached policy")
	}
	now = now.Add(2 * time.Hour)
	if p := get(); p != nil {
		t.Errorf("expired policy still in force: %+v", p)
	}
	// No record and nothing cached: no policy, and nothing fetched.
	dns.err = nil
	if p, err := c.Get(ctx, "c.test"); p != nil || err != nil {
		t.Errorf("no record: %+v %v", p, err)
	}
	// Two records: invalid, no policy.
	dns.records["_mta-sts.d.test"] = []string{"v=STSv1; id=1", "v=STSv1; id=2"}
	before := fetches
	if p, _ := c.Get(ctx, "d.test"); p != nil || fetches != before {
		t.Errorf("two records: %+v", p)
	}
}

func TestFetch(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.Host)
		switch host {
		case "mta-sts.good.test":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte(goodPolicy))
		case "mta-sts.html.test":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(goodPolicy))
		case "mta-sts.redirect.test":
			http.Redirect(w, r, "https://mta-sts.good.test/.well-known/mta-sts.txt", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// Every name resolves to the test server; its certificate is for example.com, so
	// the client is told to trust it for any name through a custom verification.
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}
	f := NewFetcher(dial, &tls.Config{RootCAs: roots, ServerName: "example.com"})
	f.Port, _ = strconv.Atoi(port)
	ctx := context.Background()
	if p, err := f.Fetch(ctx, "good.test"); err != nil || p.Mode != Enforce {
		t.Fatalf("good: %+v %v", p, err)
	}
	for _, d := range []string{"html.test", "redirect.test", "missing.test"} {
		if p, err := f.Fetch(ctx, d); err == nil {
			t.Errorf("%s: %+v", d, p)
		}
	}
	// Without the test root, the certificate does not verify.
	f2 := NewFetcher(dial, nil)
	f2.Port = f.Port
	if _, err := f2.Fetch(ctx, "good.test"); err == nil {
		t.Error("an unverifiable certificate was accepted")
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(goodPolicy))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	f.Add([]byte("version:STSv1\nmode:testing\nmx:*.a\nmax_age:31557600\n\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			return
		}
		if p.MaxAge < 0 || p.MaxAge > MaxAge || (p.Mode != None && len(p.MX) == 0) {
			t.Fatalf("bad policy %+v", p)
		}
		for _, m := range p.MX {
			p.Matches(strings.TrimPrefix(m, "*."))
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"v=STSv1; id=20160831085700Z;", "v=STSv1;id=a;x=;", "v=STSv1", ";;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseRecord(s)
		if err == nil && (id == "" || len(id) > 32) {
			t.Fatalf("%q: id %q", s, id)
		}
	})
}

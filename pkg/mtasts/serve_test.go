package mtasts

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPublished(t *testing.T) {
	policy, id := Published("MX.Example.Test.")
	if policy != "version: STSv1\r\nmode: testing\r\nmx: mx.example.test\r\nmax_age: 604800\r\n" {
		t.Errorf("policy %q", policy)
	}
	// The id mailctl dns records has published from the start for this policy: the
	// first 8 octets of the SHA-256 of the policy with LF line ends.
	if id != "e66b138583866cc3" {
		t.Errorf("id %q", id)
	}
	if _, id2 := Published("mx2.example.test"); id2 == id {
		t.Error("the id does not change with the policy")
	}
	// The id is what a TXT record may carry (RFC 8461 §3.1: 1 to 32 alphanumerics).
	if got, err := ParseRecord("v=STSv1; id=" + id); err != nil || got != id {
		t.Errorf("ParseRecord of the published record: %q, %v", got, err)
	}
}

func TestHandler(t *testing.T) {
	var asked []string
	h := &Handler{MX: "mx.example.test", Known: func(_ context.Context, d string) (bool, error) {
		asked = append(asked, d)
		switch d {
		case "example.test":
			return true, nil
		case "broken.test":
			return false, errors.New("authd is down")
		}
		return false, nil
	}}
	do := func(method, host, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "https://"+host+path, nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := do("GET", "MTA-STS.Example.Test:10443", PolicyPath)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("GET: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	// What a sender makes of it: Postern's own parser, as remote uses it.
	p, err := ParsePolicy(w.Body.Bytes())
	if err != nil || p.Mode != Testing || len(p.MX) != 1 || p.MX[0] != "mx.example.test" || p.MaxAge != 7*24*time.Hour || !p.Matches("mx.example.test") {
		t.Errorf("served policy %q parses to %+v, %v", w.Body.String(), p, err)
	}
	if want, _ := Published("mx.example.test"); w.Body.String() != want {
		t.Errorf("served %q; want %q", w.Body.String(), want)
	}
	if w := do("HEAD", "mta-sts.example.test", PolicyPath); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d, %d octets", w.Code, w.Body.Len())
	}
	for _, c := range []struct {
		method, host, path string
		code               int
	}{
		{"GET", "mta-sts.other.test", PolicyPath, 404},    // not our domain
		{"GET", "example.test", PolicyPath, 404},          // not a policy host
		{"GET", "mta-sts.", PolicyPath, 404},              // no domain
		{"GET", "mta-sts.example.test", "/other", 404},    // another path
		{"POST", "mta-sts.example.test", PolicyPath, 405}, // RFC 8461 §3.3: GET
		{"GET", "mta-sts.broken.test", PolicyPath, 503},
	} {
		if w := do(c.method, c.host, c.path); w.Code != c.code {
			t.Errorf("%s %s%s: %d; want %d", c.method, c.host, c.path, w.Code, c.code)
		}
	}
	if strings.Join(asked, " ") != "example.test example.test other.test broken.test" {
		t.Errorf("Known was asked %q", asked)
	}
}

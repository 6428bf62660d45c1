package main

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"postern/pkg/auth"
	"postern/pkg/srs"
)

// An SRS address of our SRS domain resolves to the original sender only when its hash
// and timestamp check: a forged or expired one is an unknown recipient of ours (550 at
// RCPT), never a relay; the domain's catch-all does not take it either.
func TestResolveSRS(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	db := e.a.DB
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "pw", 0))
	must(db.AddAlias("@example.org", []string{"alice@example.org"}))
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	e.a.SRS = &srs.Rewriter{Domain: "example.org", Secrets: [][]byte{[]byte("k")}, Now: func() time.Time { return now }}

	addr, err := e.a.SRS.Forward("bob@remote.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{addr, strings.ToLower(addr), strings.Replace(addr, "@example.org", "@EXAMPLE.ORG", 1)} {
		res, err := e.auth.Resolve(ctx, a)
		want := auth.ResolveResult{Local: true, Found: true, Targets: []string{"bob@remote.example"}}
		if err != nil || !res.Found || !strings.EqualFold(res.Targets[0], want.Targets[0]) || !res.Local {
			t.Errorf("resolve %s = %+v, %v; want %+v", a, res, err, want)
		}
	}

	old := &srs.Rewriter{Domain: "example.org", Secrets: [][]byte{[]byte("k")}, Now: func() time.Time { return now.Add(-30 * 24 * time.Hour) }}
	expired, _ := old.Forward("bob@remote.example")
	forged := "SRS0=AAAAAAAA" + addr[len("SRS0=AAAAAAAA"):]
	for _, a := range []string{expired, forged, "SRS0=junk@example.org", "srs1=x=y==z@example.org"} {
		res, err := e.auth.Resolve(ctx, a)
		if want := (auth.ResolveResult{Local: true}); err != nil || !reflect.DeepEqual(res, want) {
			t.Errorf("resolve %s = %+v, %v; want unknown", a, res, err)
		}
	}
	// Elsewhere than the SRS domain, SRS-like addresses are ordinary.
	if res, err := e.auth.Resolve(ctx, "SRS0=x=y=z=w@other.example"); err != nil || res.Local {
		t.Errorf("an SRS-like foreign address = %+v, %v", res, err)
	}
	// Without SRS, the catch-all takes it.
	e.a.SRS = nil
	if res, err := e.auth.Resolve(ctx, forged); err != nil || !res.Found || res.Targets[0] != "alice@example.org" {
		t.Errorf("without SRS, the catch-all: %+v, %v", res, err)
	}
}

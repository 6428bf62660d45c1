package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/pkg/control"
	"postern/pkg/dkim"
)

// TestDKIMKeys: dkim.generate writes a key of one of our domains that pkg/dkim (as
// cleanup) reads with its private half, dkim.list answers it with its record, dkim.remove
// retires it; both changes are in the audit log, with the web administrator named.
func TestDKIMKeys(t *testing.T) {
	e := start(t, true)
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	e.callErr(t, "notfound", control.DKIMGenerate, control.DKIMRequest{Domain: "other.test"})
	e.callErr(t, "invalid", control.DKIMGenerate, control.DKIMRequest{Domain: "example.org", Algorithm: "dsa"})
	e.callErr(t, "invalid", control.DKIMGenerate, control.DKIMRequest{Domain: "example.org", Selector: "../x"})
	var k control.DKIMKey
	web := control.Origin{Actor: "admin@example.org", RemoteIP: "192.0.2.7"}
	e.call(t, control.DKIMGenerate, control.DKIMRequest{Origin: web, Domain: "Example.org", Selector: "s1"}, &k)
	if k.Domain != "example.org" || k.Selector != "s1" || k.Algorithm != dkim.Ed25519 || k.Name != "s1._domainkey.example.org" || !strings.HasPrefix(k.Record, "v=DKIM1; k=ed25519; p=") {
		t.Errorf("generated %+v", k)
	}
	e.callErr(t, "invalid", control.DKIMGenerate, control.DKIMRequest{Domain: "example.org", Selector: "s1"})
	keys, err := dkim.Load(e.a.DKIMDir, "example.org", true)
	if err != nil || len(keys) != 1 || keys[0].Signer == nil {
		t.Fatalf("cleanup's view: %v, %v", keys, err)
	}
	if fi, err := os.Stat(filepath.Join(e.a.DKIMDir, "example.org", "s1.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the private key: %v, %v", fi, err)
	}
	var list control.DKIMListResult
	e.call(t, control.DKIMList, control.DKIMRequest{}, &list)
	if len(list.Keys) != 1 || list.Keys[0].Record != k.Record {
		t.Errorf("list: %+v", list)
	}
	e.callErr(t, "notfound", control.DKIMRemove, control.DKIMRequest{Domain: "example.org", Selector: "s2"})
	e.call(t, control.DKIMRemove, control.DKIMRequest{Origin: web, Domain: "example.org", Selector: "s1"}, nil)
	if keys, _ := dkim.Load(e.a.DKIMDir, "example.org", true); len(keys) != 0 {
		t.Errorf("after remove: %d keys", len(keys))
	}
	var audit control.AuditResult
	e.call(t, control.AuditList, control.AuditRequest{Limit: 10}, &audit)
	var ops []string
	for _, a := range audit.Entries {
		if strings.HasPrefix(a.Op, "dkim.") {
			if a.Web != web.Actor || a.IP != web.RemoteIP || a.Target != "example.org" {
				t.Errorf("audit entry %+v", a)
			}
			ops = append(ops, a.Op+" "+a.Detail)
		}
	}
	if strings.Join(ops, ",") != "dkim.generate s1 ed25519,dkim.remove s1" {
		t.Errorf("audit: %q", ops)
	}
	// Refused when cleanup runs as another user: the list still answers.
	e.a.DKIMRefused = "cleanup runs as another user"
	e.callErr(t, "unavailable", control.DKIMGenerate, control.DKIMRequest{Domain: "example.org"})
	e.call(t, control.DKIMList, control.DKIMRequest{}, &list)
}

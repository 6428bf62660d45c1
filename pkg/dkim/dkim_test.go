package dkim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// lookup answers DKIM TXT queries from the keys' records, as DNS would once
// `mailctl dns records` is published: joined from its 255-octet strings.
func lookup(keys []*Key) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		for _, k := range keys {
			if name == k.RecordName() {
				rec, err := k.Record()
				if err != nil {
					return nil, err
				}
				return []string{strings.Join(SplitTXT(rec), "")}, nil
			}
		}
		return nil, fmt.Errorf("no TXT record for %s", name)
	}
}

func TestGenerateSignVerify(t *testing.T) {
	dir := t.TempDir()
	ed, err := Generate(dir, "Example.TEST.", "ed1", Ed25519, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Generate(dir, "example.test", "rsa1", RSA, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir, "example.test", "ed1", Ed25519, -1, -1); err == nil {
		t.Error("an existing selector was overwritten")
	}
	for _, bad := range [][2]string{{"example.test", "../x"}, {"example.test", "A B"}, {"../etc", "s"}, {"example.test", ""}} {
		if _, err := Generate(dir, bad[0], bad[1], Ed25519, -1, -1); err == nil {
			t.Errorf("Generate(%q, %q) succeeded", bad[0], bad[1])
		}
	}
	if _, err := Generate(dir, "example.test", "x", "dsa", -1, -1); err == nil {
		t.Error("unknown algorithm accepted")
	}
	fi, err := os.Stat(filepath.Join(dir, "example.test", "ed1.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "example.test", "rsa1.pub")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("public key file: %v %v", fi, err)
	}

	keys, err := Load(dir, "example.test", true)
	if err != nil || len(keys) != 2 || keys[0].Selector != "ed1" || keys[1].Selector != "rsa1" || keys[1].Algorithm != RSA {
		t.Fatalf("Load = %+v, %v", keys, err)
	}
	pubs, err := Load(dir, "example.test", false)
	if err != nil || len(pubs) != 2 || pubs[0].Signer != nil {
		t.Fatalf("Load public = %+v, %v", pubs, err)
	}
	for i := range pubs {
		a, _ := pubs[i].Record()
		b, _ := keys[i].Record()
		if a != b {
			t.Errorf("records from .pub and .key differ:\n%s\n%s", a, b)
		}
	}
	edRec, _ := ed.Record()
	if !strings.HasPrefix(edRec, "v=DKIM1; k=ed25519; p=") || len(edRec) > 255 {
		t.Errorf("ed25519 record %q", edRec)
	}
	rsRec, _ := rs.Record()
	if parts := SplitTXT(rsRec); len(parts) != 2 || len(parts[0]) != 255 || strings.Join(parts, "") != rsRec {
		t.Errorf("RSA record in %d strings", len(parts))
	}

	msg := "From: Demo <demo@example.test>\r\nTo: bob@b.test\r\nSubject: hello\r\n" +
		"Date: Fri, 27 Nov 2026 08:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nbody line\r\n\r\n\r\n"
	s, err := NewSigner(keys)
	if err != nil {
		t.Fatal(err)
	}
	// Streamed in small pieces, as cleanup receives it.
	for i := 0; i < len(msg); i += 7 {
		if _, err := s.Write([]byte(msg[i:min(i+7, len(msg))])); err != nil {
			t.Fatal(err)
		}
	}
	sigs, err := s.Signatures()
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) > 2*MaxSignatureSize || bytes.Count(sigs, []byte("DKIM-Signature:")) != 2 {
		t.Fatalf("signatures:\n%s", sigs)
	}
	signed := append(sigs, msg...)
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{LookupTXT: lookup(keys)})
	if err != nil || len(vs) != 2 {
		t.Fatalf("verify: %v, %d verifications", err, len(vs))
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "example.test" {
			t.Errorf("verification %+v", v)
		}
	}
	// Changing the body, or adding a second From, breaks both signatures.
	for _, tampered := range []string{
		strings.Replace(string(signed), "body line", "body lime", 1),
		strings.Replace(string(signed), "Subject: hello", "From: evil@evil.test\r\nSubject: hello", 1),
	} {
		vs, _ := dkim.VerifyWithOptions(strings.NewReader(tampered), &dkim.VerifyOptions{LookupTXT: lookup(keys)})
		for _, v := range vs {
			if v.Err == nil {
				t.Errorf("tampered message verified: %+v", v)
			}
		}
	}
}

func TestKeyring(t *testing.T) {
	dir := t.TempDir()
	r := &Keyring{Dir: dir}
	if keys, err := r.Keys("example.test"); err != nil || len(keys) != 0 {
		t.Fatalf("no keys: %v %v", keys, err)
	}
	if keys, err := r.Keys("../../etc"); err != nil || len(keys) != 0 {
		t.Fatalf("bad domain: %v %v", keys, err)
	}
	Generate(dir, "example.test", "a", Ed25519, -1, -1)
	if keys, _ := r.Keys("EXAMPLE.test"); len(keys) != 1 {
		t.Fatalf("%d keys", len(keys))
	}
	Generate(dir, "example.test", "b", Ed25519, -1, -1)
	first, _ := r.Keys("example.test")
	if len(first) != 2 {
		t.Fatalf("new key not seen: %d keys", len(first))
	}
	// Nothing changed: the keys come from the cache, not from the disk again (cleanup
	// asks for every message).
	if again, _ := r.Keys("example.test"); len(again) != 2 || again[0] != first[0] || again[1] != first[1] {
		t.Errorf("unchanged key directory loaded again: %p %p, first %p %p", again[0], again[1], first[0], first[1])
	}
	if ds, err := Domains(dir); err != nil || len(ds) != 1 || ds[0] != "example.test" {
		t.Errorf("Domains = %v, %v", ds, err)
	}
}

// A key file rewritten in place (cp over it) leaves the directory's time alone; the
// keyring still sees it within keyringRecheck.
func TestKeyringSeesAKeyRewrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r := &Keyring{Dir: dir, now: func() time.Time { return now }}
	other := t.TempDir()
	if _, err := Generate(dir, "example.test", "a", Ed25519, -1, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(other, "example.test", "a", Ed25519, -1, -1); err != nil {
		t.Fatal(err)
	}
	first, _ := r.Keys("example.test")
	files, _ := filepath.Glob(filepath.Join(dir, "example.test", "*"))
	domainDir := filepath.Join(dir, "example.test")
	before, _ := os.Stat(domainDir)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(other, "example.test", filepath.Base(f)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, b, 0o600); err != nil { // in place: same inode
			t.Fatal(err)
		}
	}
	os.Chtimes(domainDir, before.ModTime(), before.ModTime())
	if again, _ := r.Keys("example.test"); again[0] != first[0] {
		t.Fatal("reloaded at once: the test does not show what it means to")
	}
	now = now.Add(keyringRecheck)
	later, _ := r.Keys("example.test")
	rec1, _ := first[0].Record()
	if len(later) != 1 {
		t.Fatalf("%d keys", len(later))
	}
	if rec2, _ := later[0].Record(); rec2 == rec1 {
		t.Errorf("the key rewritten in place was not seen after %v", keyringRecheck)
	}
}

func TestSplitTXT(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 510, 511} {
		s := strings.Repeat("a", n)
		parts := SplitTXT(s)
		if strings.Join(parts, "") != s {
			t.Errorf("%d: parts do not join back", n)
		}
		for _, p := range parts {
			if len(p) > 255 {
				t.Errorf("%d: part of %d octets", n, len(p))
			}
		}
	}
}

func TestLoadAllAndRemove(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []struct{ domain, sel string }{{"b.example", "s1"}, {"a.example", "s2"}, {"a.example", "s1"}} {
		if _, err := Generate(dir, k.domain, k.sel, Ed25519, -1, -1); err != nil {
			t.Fatal(err)
		}
	}
	names := func(domain string) string {
		t.Helper()
		keys, err := LoadAll(dir, domain)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range keys {
			out = append(out, k.Selector+"."+k.Domain)
		}
		return strings.Join(out, " ")
	}
	if got := names(""); got != "s1.a.example s2.a.example s1.b.example" {
		t.Errorf("LoadAll: %s", got)
	}
	if err := Remove(dir, "a.example", "s1"); err != nil {
		t.Fatal(err)
	}
	if got := names("a.example"); got != "s2.a.example" {
		t.Errorf("after Remove: %s", got)
	}
	if err := Remove(dir, "a.example", "s1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removing a missing key: %v", err)
	}
	if err := Remove(dir, "a.example", "../b.example/s1"); err == nil {
		t.Error("a selector with a path was accepted")
	}
	if got := DefaultSelector(RSA, time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)); got != "rsa202611" {
		t.Errorf("DefaultSelector: %s", got)
	}
}

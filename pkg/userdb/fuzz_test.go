package userdb

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseAddress checks that address parsing never panics, that the canonical form is
// a fixed point, and that an accepted account address never leads outside the mail root.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"user@example.org", "User+Tag@Example.ORG", "a.b@c.d", "Jörg@example.org", "@example.org",
		"../x@example.org", "a/b@example.org", "x@..", "\"q\"@x.y", "a@b@c", "İ@x.y", "K@x.y",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + ".c", "a\x00@b.c", "\xff@b.c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		local, domain, err := ParseAddress(s)
		if err != nil {
			return
		}
		canon := local + "@" + domain
		if l2, d2, err := ParseAddress(canon); err != nil || l2 != local || d2 != domain {
			t.Fatalf("canonical form %q of %q does not parse to itself: %q %q %v", canon, s, l2, d2, err)
		}
		dir, err := Maildir("/mail", s)
		if err != nil {
			return
		}
		rel, rerr := filepath.Rel("/mail", dir)
		if rerr != nil || strings.HasPrefix(rel, "..") || strings.Count(rel, "/") != 1 || strings.ContainsRune(rel, 0) {
			t.Fatalf("Maildir(%q) = %q, outside the root", s, dir)
		}
	})
}

// FuzzParseHash checks that parsing a stored hash never panics and never accepts costs
// beyond the bounds.
func FuzzParseHash(f *testing.F) {
	f.Add("$argon2id$v=19$m=256,t=3,p=2$cG9zdGVybi1zYWx0LTE2Yg$mBJZvVE+8nZwWkNHIlvjFU4vOYPf6jVypTQeiLZx0lg")
	f.Add("$argon2id$v=19$m=65536,t=1,p=2$c29tZXNhbHQ$AAAA")
	f.Add("$argon2i$v=19$m=1,t=1,p=1$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHash(s)
		if err != nil {
			return
		}
		if h.params.Memory > maxMemory || h.params.Time > maxTime || h.params.Threads == 0 || len(h.key) > maxKeyLen {
			t.Fatalf("parseHash(%q) accepted %+v", s, h.params)
		}
	})
}

// FuzzResolve checks that recipient lookup of any string never panics and only fails
// for input without an @.
func FuzzResolve(f *testing.F) {
	db, err := OpenWith(filepath.Join(f.TempDir(), "users.db"), Options{Hash: cheap})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "pw", 0))
	must(db.AddAlias("team@example.org", []string{"alice@example.org", "x@external.example"}))
	must(db.AddAlias("@example.org", []string{"team@example.org"}))
	for _, s := range []string{"alice@example.org", "ALICE+x@EXAMPLE.org", "who@example.org", "a@b", "", "@", "x@@example.org", "\"a b\"@example.org"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := db.Resolve(s)
		if err != nil {
			if strings.Contains(s, "@") {
				t.Fatalf("Resolve(%q): %v", s, err)
			}
			return
		}
		if r.Found != (len(r.Targets) > 0) || r.Found && !r.Local {
			t.Fatalf("Resolve(%q) = %+v", s, r)
		}
	})
}

package userdb

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	good := []struct{ in, want string }{
		{"user@example.org", "user@example.org"},
		{"User@Example.ORG", "user@example.org"},
		{"first.last@sub.example.org", "first.last@sub.example.org"},
		{"a+tag@x.y", "a+tag@x.y"},
		{"o'neil@example.org", "o'neil@example.org"},
		{"!#$%&'*+-/=?^_`{|}~@example.org", "!#$%&'*+-/=?^_`{|}~@example.org"},
		{"Jörg@example.org", "jörg@example.org"},
		{"x@localhost", "x@localhost"},
		{"x@xn--bcher-kva.example", "x@xn--bcher-kva.example"},
		{strings.Repeat("a", 64) + "@example.org", strings.Repeat("a", 64) + "@example.org"},
	}
	for _, c := range good {
		got, err := CanonicalAddress(c.in)
		if err != nil || got != c.want {
			t.Errorf("CanonicalAddress(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	bad := []string{
		"", "user", "@example.org", "user@", "user@@example.org", "us er@example.org",
		".user@example.org", "user.@example.org", "us..er@example.org", "us\x00er@example.org",
		"us\ter@example.org", "\"quoted\"@example.org", "user@exa mple.org", "user@-example.org",
		"user@example-.org", "user@example..org", "user@example.org.", "user@[127.0.0.1]",
		"user@exam_ple.org", "us\xffer@example.org", "us\u0085er@example.org", "us\u00a0er@example.org",
		strings.Repeat("a", 65) + "@example.org",
		"a@" + strings.Repeat("b", 64) + ".org",
		"a@" + strings.Repeat(strings.Repeat("b", 60)+".", 5) + "org",
		"user@ex(ample).org", "us(er)@example.org", "us,er@example.org", "<user@example.org>",
	}
	for _, in := range bad {
		if got, err := CanonicalAddress(in); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("CanonicalAddress(%q) = %q, %v; want ErrInvalid", in, got, err)
		}
	}
}

func TestCanonicalDomain(t *testing.T) {
	if d, err := CanonicalDomain("Mail.Example.ORG"); err != nil || d != "mail.example.org" {
		t.Errorf("CanonicalDomain = %q, %v", d, err)
	}
	for _, in := range []string{"", ".", "a..b", "a.b.", "-a.b", "a_b.c", "a b", "ä.example", "a/b", "@a.b"} {
		if _, err := CanonicalDomain(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("CanonicalDomain(%q) err = %v; want ErrInvalid", in, err)
		}
	}
}

func TestMaildir(t *testing.T) {
	root := "/var/lib/postern/mail"
	got, err := Maildir(root+"/", "First.Last@Example.ORG")
	if err != nil || got != filepath.Join(root, "example.org", "first.last") {
		t.Errorf("Maildir = %q, %v", got, err)
	}
	for _, in := range []string{
		"a/b@example.org", "../x@example.org", "..@example.org", ".x@example.org",
		"x\x00@example.org", "a\\b@example.org", "x@..", "x@a/b", "/@example.org", "x@.",
	} {
		if got, err := Maildir(root, in); err == nil {
			t.Errorf("Maildir(%q) = %q; want an error", in, got)
		}
	}
}

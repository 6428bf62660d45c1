package srs

import (
	"strings"
	"testing"
)

// FuzzReverse feeds Reverse the recipient addresses a stranger may send to smtpd: it
// never panics, accepts only what it made (a forward of what it returns names it again),
// and what it accepts is an address.
func FuzzReverse(f *testing.F) {
	r := rewriter("fwd.example", day0, "secret")
	for _, s := range []string{"user@orig.example", "a=b@c.example", "SRS0=h=TT=d=l@one.example", "SRS1=h=one.example==h=TT=d=l@two.example"} {
		if a, err := r.Forward(s); err == nil {
			f.Add(a)
		}
	}
	for _, s := range []string{"", "SRS0", "SRS0=", "SRS0====@x", "srs1=a=b=c@x", "SRS1-x-y--z@x", "SRS0=AAAAAAAA=zz=d=l", "@", "SRS0=\x00=\xff=d=l@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		got, err := r.Reverse(addr)
		if err != nil {
			if got != "" {
				t.Fatalf("Reverse(%q) = %q with error %v", addr, got, err)
			}
			return
		}
		at := strings.LastIndexByte(got, '@')
		if at <= 0 || at == len(got)-1 {
			t.Fatalf("Reverse(%q) = %q, not an address", addr, got)
		}
		if !IsSRS(addr) {
			t.Fatalf("Reverse accepted %q, which IsSRS refuses", addr)
		}
	})
}

// FuzzForward checks that whatever sender Forward rewrites, Reverse gives it back.
func FuzzForward(f *testing.F) {
	for _, s := range []string{"user@orig.example", "a=b@c.example", "SRS0=h=TT=d=l@one.example", "x@fwd.example", "\"q u\"@d.example"} {
		f.Add(s)
	}
	r := rewriter("fwd.example", day0, "secret")
	f.Fuzz(func(t *testing.T, sender string) {
		fwd, err := r.Forward(sender)
		if err != nil || fwd == sender {
			return
		}
		back, err := r.Reverse(fwd)
		if err != nil {
			t.Fatalf("Reverse(Forward(%q) = %q): %v", sender, fwd, err)
		}
		if IsSRS(sender) {
			return // an SRS sender comes back as the first forwarder's SRS0 address
		}
		if !strings.EqualFold(back, sender) {
			t.Fatalf("Reverse(Forward(%q)) = %q", sender, back)
		}
	})
}

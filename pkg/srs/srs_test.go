package srs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var day0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func rewriter(domain string, at time.Time, secrets ...string) *Rewriter {
	r := &Rewriter{Domain: domain, Now: func() time.Time { return at }}
	for _, s := range secrets {
		r.Secrets = append(r.Secrets, []byte(s))
	}
	return r
}

func TestForwardAndReverse(t *testing.T) {
	r := rewriter("fwd.example", day0, "secret")
	got, err := r.Forward("Alice.Smith=x@Orig.Example")
	if err != nil {
		t.Fatal(err)
	}
	// SRS0=HHHHHHHH=TT=Orig.Example=Alice.Smith=x@fwd.example
	parts := strings.Split(strings.TrimSuffix(got, "@fwd.example"), "=")
	if len(parts) != 6 || parts[0] != "SRS0" || len(parts[1]) != DefaultHashLength || len(parts[2]) != 2 ||
		parts[3] != "Orig.Example" || parts[4] != "Alice.Smith" || parts[5] != "x" || !strings.HasSuffix(got, "@fwd.example") {
		t.Fatalf("Forward = %q", got)
	}
	back, err := r.Reverse(got)
	if err != nil || back != "Alice.Smith=x@Orig.Example" {
		t.Fatalf("Reverse(%q) = %q, %v", got, back, err)
	}
	// Hosts that fold the case of local parts: still ours.
	if back, err := r.Reverse(strings.ToLower(got)); err != nil || !strings.EqualFold(back, "Alice.Smith=x@Orig.Example") {
		t.Fatalf("Reverse of the lower-cased address = %q, %v", back, err)
	}
	if back, err := r.Reverse(strings.ToUpper(got)); err != nil || !strings.EqualFold(back, "Alice.Smith=x@Orig.Example") {
		t.Fatalf("Reverse of the upper-cased address = %q, %v", back, err)
	}
	// The same sender the same day gives the same address.
	if again, _ := r.Forward("Alice.Smith=x@Orig.Example"); again != got {
		t.Errorf("Forward is not stable: %q, then %q", got, again)
	}
}

func TestForwardLeavesAlone(t *testing.T) {
	r := rewriter("fwd.example", day0, "secret")
	for _, s := range []string{"", "bob@fwd.example", "bob@FWD.example"} {
		if got, err := r.Forward(s); err != nil || got != s {
			t.Errorf("Forward(%q) = %q, %v; want it unchanged", s, got, err)
		}
	}
	for _, s := range []string{"nodomain", "@x.example", "x@"} {
		if _, err := r.Forward(s); err == nil {
			t.Errorf("Forward(%q) took a sender without a domain", s)
		}
	}
	if _, err := (&Rewriter{Domain: "fwd.example"}).Forward("a@b.example"); err == nil {
		t.Error("Forward without a secret worked")
	}
}

// A second forwarder turns an SRS0 address into SRS1, a third keeps SRS1 short, and the
// bounces go back through the first forwarder's own check.
func TestChainOfForwarders(t *testing.T) {
	first := rewriter("one.example", day0, "s1")
	second := rewriter("two.example", day0, "s2")
	third := rewriter("three.example", day0, "s3")
	a, err := first.Forward("user@orig.example")
	if err != nil {
		t.Fatal(err)
	}
	b, err := second.Forward(a)
	if err != nil {
		t.Fatal(err)
	}
	opaque := strings.TrimPrefix(strings.TrimSuffix(a, "@one.example"), "SRS0")
	if !strings.HasPrefix(b, "SRS1=") || !strings.HasSuffix(b, "=one.example="+opaque+"@two.example") {
		t.Fatalf("second forward = %q (first %q)", b, a)
	}
	c, err := third.Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c, "SRS1=") || !strings.HasSuffix(c, "=one.example="+opaque+"@three.example") || len(c) != len(b)-len("two")+len("three") {
		t.Fatalf("third forward = %q (second %q)", c, b)
	}
	// The bounce to c: three gives back one's SRS0 address, which one reverses.
	back, err := third.Reverse(c)
	if err != nil || back != a {
		t.Fatalf("third.Reverse = %q, %v; want %q", back, err, a)
	}
	if orig, err := first.Reverse(back); err != nil || orig != "user@orig.example" {
		t.Fatalf("first.Reverse = %q, %v", orig, err)
	}
	// An SRS1 address is the secret's of whoever made it.
	if _, err := second.Reverse(c); !errors.Is(err, ErrHash) {
		t.Errorf("second.Reverse(third's address) = %v, want ErrHash", err)
	}
}

func TestReverseRefuses(t *testing.T) {
	r := rewriter("fwd.example", day0, "secret")
	good, _ := r.Forward("user@orig.example")
	parts := strings.SplitN(good, "=", 3)
	forged := parts[0] + "=AAAAAAAA=" + parts[2]
	other := strings.Replace(good, "=user@", "=admin@", 1)
	for _, c := range []struct {
		addr string
		want error
	}{
		{"user@fwd.example", ErrNotSRS},
		{"SRS2=x=y@fwd.example", ErrNotSRS},
		{"SRS0x@fwd.example", ErrNotSRS},
		{"SRS0=@fwd.example", ErrSyntax},
		{"SRS0=hash=TT=domain@fwd.example", ErrSyntax},
		{"SRS0=hash=TTT=domain=user@fwd.example", ErrSyntax},
		{"SRS1=hash=domain@fwd.example", ErrSyntax},
		{"SRS1=hash=domain=x@fwd.example", ErrSyntax},
		{forged, ErrHash},
		{other, ErrHash},
	} {
		if _, err := r.Reverse(c.addr); !errors.Is(err, c.want) {
			t.Errorf("Reverse(%q) = %v, want %v", c.addr, err, c.want)
		}
	}
	// Another secret: not ours.
	if _, err := rewriter("fwd.example", day0, "other").Reverse(good); !errors.Is(err, ErrHash) {
		t.Errorf("Reverse under another secret = %v", err)
	}
}

func TestTimestampWindow(t *testing.T) {
	old := rewriter("fwd.example", day0, "secret")
	addr, _ := old.Forward("user@orig.example")
	for _, c := range []struct {
		after time.Duration
		want  error
	}{
		{0, nil},
		{20 * 24 * time.Hour, nil},
		{21 * 24 * time.Hour, nil},
		{22 * 24 * time.Hour, ErrExpired},
		{500 * 24 * time.Hour, ErrExpired},
		{-2 * 24 * time.Hour, ErrExpired}, // from the future
		{1024 * 24 * time.Hour, nil},      // the stamp wrapped: as libsrs2, it cannot tell
	} {
		r := rewriter("fwd.example", day0.Add(c.after), "secret")
		if _, err := r.Reverse(addr); !errors.Is(err, c.want) {
			t.Errorf("%v later: %v, want %v", c.after, err, c.want)
		}
	}
	short := rewriter("fwd.example", day0.Add(3*24*time.Hour), "secret")
	short.MaxAge = 2 * 24 * time.Hour
	if _, err := short.Reverse(addr); !errors.Is(err, ErrExpired) {
		t.Errorf("MaxAge 2 days, 3 days later: %v", err)
	}
}

// A new secret in front of the old one: new addresses use it, old ones still work.
func TestSecretRotation(t *testing.T) {
	old := rewriter("fwd.example", day0, "old")
	addr, _ := old.Forward("user@orig.example")
	both := rewriter("fwd.example", day0, "new", "old")
	if got, err := both.Reverse(addr); err != nil || got != "user@orig.example" {
		t.Fatalf("old address after rotation: %q, %v", got, err)
	}
	fresh, _ := both.Forward("user@orig.example")
	if fresh == addr {
		t.Fatal("the new secret did not make the new address")
	}
	if _, err := old.Reverse(fresh); !errors.Is(err, ErrHash) {
		t.Errorf("the old secret alone took the new address: %v", err)
	}
}

func TestIsSRS(t *testing.T) {
	for s, want := range map[string]bool{
		"SRS0=a=b=c=d@x": true, "srs1+a@x": true, "Srs0-x": true,
		"srs0@x": false, "srs2=x@x": false, "user@x": false, "SRS": false,
	} {
		if IsSRS(s) != want {
			t.Errorf("IsSRS(%q) = %v", s, !want)
		}
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "srs.key")
	if _, err := LoadSecrets(path); err == nil {
		t.Fatal("LoadSecrets of a missing file worked")
	}
	created, err := EnsureKeyFile(path, -1, -1)
	if err != nil || !created {
		t.Fatalf("EnsureKeyFile = %v, %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != KeyFileMode {
		t.Fatalf("key file: %v %v", fi, err)
	}
	s1, err := LoadSecrets(path)
	if err != nil || len(s1) != 1 || len(s1[0]) != 44 {
		t.Fatalf("LoadSecrets = %q, %v", s1, err)
	}
	if created, err := EnsureKeyFile(path, -1, -1); err != nil || created {
		t.Fatalf("EnsureKeyFile of an existing file = %v, %v", created, err)
	}
	if s2, _ := LoadSecrets(path); string(s2[0]) != string(s1[0]) {
		t.Fatal("EnsureKeyFile replaced the secret")
	}
	// Rotation by hand: a new line in front, a comment.
	os.WriteFile(path, []byte("# rotated\nnewsecret\n\n"+string(s1[0])+"\n"), 0o640)
	if s, err := LoadSecrets(path); err != nil || len(s) != 2 || string(s[0]) != "newsecret" {
		t.Fatalf("LoadSecrets after rotation = %q, %v", s, err)
	}
	os.WriteFile(path, []byte("# nothing\n\n"), 0o640)
	if _, err := LoadSecrets(path); err == nil {
		t.Fatal("LoadSecrets of a file without a secret worked")
	}
}

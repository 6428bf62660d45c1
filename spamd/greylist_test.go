package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"blitiri.com.ar/go/spf"
	bolt "go.etcd.io/bbolt"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/spamcheck"
)

// newTestGreylister returns a greylister with the default delays (5 minutes, window 4
// hours), auto-allow after 2 passes, and a clock the test moves.
func newTestGreylister(t *testing.T, db *bolt.DB, clock *time.Time) *greylister {
	t.Helper()
	cfg := config.Default()
	cfg.Spamd.GreylistAutoAllow = 2
	cfg.Spamd.TrustedRelays = []string{"198.51.100.0/24"}
	cfg.Spamd.GreylistExempt = []string{"203.0.113.9", "alerts@bank.example", "partner.example"}
	if db == nil {
		var err error
		db, err = bolt.Open(filepath.Join(t.TempDir(), "spamd.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
	}
	g, err := newGreylister(cfg, db, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return *clock })
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGreylist(t *testing.T) {
	clock := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	g := newTestGreylister(t, nil, &clock)
	ask := func(ip, from, rcpt string) spamcheck.GreylistResult {
		return g.Check(context.Background(), &spamcheck.GreylistRequest{ClientAddr: ip, From: from, Rcpt: rcpt})
	}
	expect := func(what string, got spamcheck.GreylistResult, pass bool, retry int) {
		t.Helper()
		if got.Pass != pass || got.Retry != retry {
			t.Errorf("%s: %+v, want pass %v retry %d", what, got, pass, retry)
		}
	}
	expect("first attempt", ask("192.0.2.1", "a@sender.example", "demo@example.test"), false, 300)
	clock = clock.Add(100 * time.Second)
	expect("retry before the delay", ask("192.0.2.1", "a@sender.example", "demo@example.test"), false, 200)
	// Another server of the same /24 retries: the same triplet.
	clock = clock.Add(201 * time.Second)
	expect("retry after the delay, from the same /24", ask("192.0.2.200", "A@Sender.example", "Demo@example.test"), true, 0)
	clock = clock.Add(10 * 24 * time.Hour)
	expect("a passed triplet, days later", ask("192.0.2.1", "a@sender.example", "demo@example.test"), true, 0)
	expect("another recipient", ask("192.0.2.1", "a@sender.example", "other@example.test"), false, 300)
	expect("another /24", ask("192.0.3.1", "a@sender.example", "demo@example.test"), false, 300)
	// A triplet not retried within the window starts over.
	clock = clock.Add(5 * time.Hour)
	expect("a retry after the window", ask("192.0.3.1", "a@sender.example", "demo@example.test"), false, 300)
	// A BATV tag or a +extension is the same sender; the null sender is a sender.
	expect("null sender", ask("2001:db8:1:2::1", "", "demo@example.test"), false, 300)
	clock = clock.Add(6 * time.Minute)
	expect("null sender retried from the same /64", ask("2001:db8:1:2:ffff::9", "", "demo@example.test"), true, 0)
	expect("a second triplet of the /64", ask("2001:db8:1:2::1", "prvs=1234abcd=list@news.example", "demo@example.test"), false, 300)
	clock = clock.Add(6 * time.Minute)
	expect("its retry with another BATV tag", ask("2001:db8:1:2::1", "prvs=9999ffff=list@news.example", "demo@example.test"), true, 0)
	// Two passes: the /64 is allowed, a new triplet passes at once.
	expect("auto-allowed network", ask("2001:db8:1:2::7", "new@elsewhere.example", "demo@example.test"), true, 0)
	expect("another /64", ask("2001:db8:1:3::1", "new@elsewhere.example", "demo@example.test"), false, 300)
	// Exempt: trusted relays, greylist_exempt clients, addresses and domains.
	for _, c := range [][2]string{{"198.51.100.7", "x@y.example"}, {"203.0.113.9", "x@y.example"}, {"192.0.2.99", "Alerts@bank.example"},
		{"192.0.2.99", "x@mail.partner.example"}, {"::ffff:203.0.113.9", "x@y.example"}} {
		expect("exempt "+c[0]+" "+c[1], ask(c[0], c[1], "demo@example.test"), true, 0)
	}
	expect("a sender of bank.example not exempt", ask("192.0.2.99", "other@bank.example", "demo@example.test"), false, 300)
}

// TestGreylistPersists checks that the state survives a restart of spamd: written
// behind into the database, read back at start; expired entries are not.
func TestGreylistPersists(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "spamd.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	g := newTestGreylister(t, db, &clock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.run(ctx); close(done) }()
	ask := func(g *greylister, rcpt string) bool {
		return g.Check(context.Background(), &spamcheck.GreylistRequest{ClientAddr: "192.0.2.1", From: "a@sender.example", Rcpt: rcpt}).Pass
	}
	ask(g, "passed@example.test")
	ask(g, "pending@example.test")
	clock = clock.Add(6 * time.Minute)
	if !ask(g, "passed@example.test") {
		t.Fatal("the retry did not pass")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := 0
		db.View(func(tx *bolt.Tx) error { n = tx.Bucket(greylistBucket).Stats().KeyN; return nil })
		if n == 3 { // two triplets and the network
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys written, want 3", n)
		}
	}
	cancel()
	<-done
	g2 := newTestGreylister(t, db, &clock)
	if len(g2.triplets) != 2 || !ask(g2, "passed@example.test") {
		t.Errorf("after a restart: %d triplets, %d networks", len(g2.triplets), len(g2.nets))
	}
	if g2.nets["192.0.2.0/24"] == nil || g2.nets["192.0.2.0/24"].Passes != 1 {
		t.Errorf("network state %+v", g2.nets)
	}
	// Past the window, the unretried triplet is not loaded.
	clock = clock.Add(5 * time.Hour)
	g3 := newTestGreylister(t, db, &clock)
	if len(g3.triplets) != 1 {
		t.Errorf("after the window: %d triplets, want the passed one", len(g3.triplets))
	}
	// and it is gone from the database too, not left there for ever.
	n := 0
	db.View(func(tx *bolt.Tx) error { n = tx.Bucket(greylistBucket).Stats().KeyN; return nil })
	if n != 2 {
		t.Errorf("after the window: %d keys in the database, want the passed triplet and the network", n)
	}
}

func TestNormalizeSender(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Example.ORG":              "alice@example.org",
		"prvs=0123abcd=bob@example.org":  "bob@example.org",
		"bounce-12345-678@lists.example": "bounce-#-#@lists.example",
		"carol+news@example.org":         "carol@example.org",
		"":                               "",
		"noat":                           "noat",
	} {
		if got := normalizeSender(in); got != want {
			t.Errorf("normalizeSender(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGreylistAllowList: the administrator's allow list spares greylisting, by its
// rules: an allowed client network always; an allowed sender domain or address only
// with SPF pass for it (checked at RCPT, with the client's HELO name); never when a
// block entry matches too.
func TestGreylistAllowList(t *testing.T) {
	clock := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	db, err := bolt.Open(filepath.Join(t.TempDir(), "spamd.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := newTestGreylister(t, db, &clock)
	l, err := openLists(db, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for action, entries := range map[string][]string{
		control.SpamAllow: {"192.0.2.0/25", "friend.test", "boss@corp.test", "pest.test"},
		control.SpamBlock: {"192.0.2.66", "x@pest.test"},
	} {
		if _, err := l.add(ctx, control.SpamListAddRequest{Action: action, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
	g.lists = l
	var spfAsked []string
	g.spf = func(_ context.Context, ip net.IP, helo, sender string) spf.Result {
		spfAsked = append(spfAsked, ip.String()+" "+helo+" "+sender)
		if ip.Equal(net.ParseIP("198.18.0.7")) {
			return spf.Pass
		}
		return spf.SoftFail
	}
	ask := func(ip, from string) spamcheck.GreylistResult {
		return g.Check(ctx, &spamcheck.GreylistRequest{ClientAddr: ip, From: from, Rcpt: "demo@example.test", Helo: "mx.sender.test"})
	}
	for _, c := range []struct {
		ip, from string
		pass     bool
	}{
		{"192.0.2.5", "anyone@anywhere.test", true},   // allowed network
		{"192.0.2.66", "anyone@anywhere.test", false}, // in the /25, but blocked
		{"198.18.0.7", "a@friend.test", true},         // allowed domain, SPF pass
		{"198.18.0.7", "boss@corp.test", true},        // allowed address, SPF pass
		{"198.18.0.7", "other@corp.test", false},      // not the allowed address
		{"203.0.113.50", "a@friend.test", false},      // allowed domain, SPF softfail
		{"198.18.0.7", "x@pest.test", false},          // allowed domain, blocked address
		{"198.18.0.7", "y@pest.test", true},           // allowed domain, SPF pass
		{"198.18.0.7", "", false},                     // the null sender
	} {
		if r := ask(c.ip, c.from); r.Pass != c.pass {
			t.Errorf("%s <%s>: %+v, want pass %v", c.ip, c.from, r, c.pass)
		}
	}
	if len(spfAsked) == 0 || spfAsked[0] != "198.18.0.7 mx.sender.test a@friend.test" {
		t.Errorf("SPF was asked %q", spfAsked)
	}
	for _, a := range spfAsked {
		if strings.Contains(a, "anywhere.test") || strings.Contains(a, "other@corp.test") {
			t.Errorf("SPF asked about a sender no allow entry names: %q", a)
		}
	}
}

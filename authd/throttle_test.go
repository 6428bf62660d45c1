package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"postern/pkg/config"
)

// newTestThrottle is a Throttle with the default limits of postern.toml and a fake clock.
func newTestThrottle() (*Throttle, *clock) {
	c := &clock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
	th := NewThrottle(LimitsOf(config.Default().Authd))
	th.Now = c.Now
	return th, c
}

// fail records n failed logins of user from remote.
func fail(th *Throttle, user, remote string, n int) {
	for range n {
		th.Fail(newAttempt(user, remote))
	}
}

// blocked says whether a login of user from remote is refused now.
func blocked(th *Throttle, user, remote string) bool {
	b, _, _ := th.Check(newAttempt(user, remote))
	return b
}

func TestThrottleDefaults(t *testing.T) {
	l := LimitsOf(config.Default().Authd)
	want := Limits{Client: 10, Network: 50, Pair: 5, Account: 100, Window: 15 * time.Minute,
		Block: time.Minute, MaxBlock: time.Hour, Remember: 30 * 24 * time.Hour}
	if l != want {
		t.Errorf("default limits %+v; want %+v", l, want)
	}
}

// A client that guesses at many accounts is stopped at the client limit, for every
// account, while its neighbours are not.
func TestThrottlePerClient(t *testing.T) {
	th, _ := newTestThrottle()
	for i := range 9 {
		fail(th, fmt.Sprintf("user%d@example.org", i), "192.0.2.7:4567", 1)
	}
	if blocked(th, "alice@example.org", "192.0.2.7") {
		t.Fatal("blocked after 9 failures")
	}
	fail(th, "user9@example.org", "192.0.2.7", 1)
	if !blocked(th, "alice@example.org", "192.0.2.7") {
		t.Error("not blocked after 10 failures")
	}
	if !blocked(th, "alice@example.org", "::ffff:192.0.2.7") {
		t.Error("an IPv4-mapped IPv6 address is another client")
	}
	if blocked(th, "alice@example.org", "192.0.2.8") {
		t.Error("a neighbour in the same /24 is blocked by the client limit")
	}
	// IPv6: the client is one address.
	for i := range 10 {
		fail(th, fmt.Sprintf("user%d@example.org", i), "2001:db8::7", 1)
	}
	if !blocked(th, "alice@example.org", "2001:db8::7") {
		t.Error("IPv6 client not blocked after 10 failures")
	}
	if blocked(th, "alice@example.org", "2001:db8::8") {
		t.Error("a neighbour in the same /64 is blocked by the client limit")
	}
}

// Guessing from many addresses of one network is stopped at the network limit: a /24 for
// IPv4, a /64 for IPv6.
func TestThrottlePerNetwork(t *testing.T) {
	th, _ := newTestThrottle()
	for i := range 49 {
		fail(th, fmt.Sprintf("user%d@example.org", i), fmt.Sprintf("192.0.2.%d", i+1), 1)
		fail(th, fmt.Sprintf("user%d@example.org", i), fmt.Sprintf("2001:db8:1:2::%x", i+1), 1)
	}
	if blocked(th, "alice@example.org", "192.0.2.200") || blocked(th, "alice@example.org", "2001:db8:1:2::ff") {
		t.Fatal("blocked after 49 failures in the network")
	}
	fail(th, "user49@example.org", "192.0.2.50", 1)
	fail(th, "user49@example.org", "2001:db8:1:2::50", 1)
	if !blocked(th, "alice@example.org", "192.0.2.200") {
		t.Error("the /24 is not blocked after 50 failures")
	}
	if !blocked(th, "alice@example.org", "2001:db8:1:2:aaaa::1") {
		t.Error("the /64 is not blocked after 50 failures")
	}
	if blocked(th, "alice@example.org", "192.0.3.1") || blocked(th, "alice@example.org", "2001:db8:1:3::1") {
		t.Error("the next network is blocked")
	}
}

// Guessing at one account from one place is stopped at the pair limit: that account from
// that site only. An IPv6 site is the /64.
func TestThrottlePerAccountAndClient(t *testing.T) {
	th, _ := newTestThrottle()
	fail(th, "alice@example.org", "192.0.2.7", 4)
	if blocked(th, "alice@example.org", "192.0.2.7") {
		t.Fatal("blocked after 4 failures")
	}
	fail(th, "Alice@Example.ORG", "192.0.2.7", 1)
	if !blocked(th, "alice@example.org", "192.0.2.7") {
		t.Error("the pair is not blocked after 5 failures (case folded)")
	}
	if blocked(th, "bob@example.org", "192.0.2.7") {
		t.Error("another account from the same client is blocked")
	}
	if blocked(th, "alice@example.org", "192.0.2.8") {
		t.Error("the account from another client is blocked")
	}
	for i := range 5 {
		fail(th, "bob@example.org", fmt.Sprintf("2001:db8::%d", i+1), 1)
	}
	if !blocked(th, "bob@example.org", "2001:db8::ffff") {
		t.Error("failures from five addresses of one /64 do not add up for the account")
	}
	// A name that is no account at all is counted the same way, so that throttling
	// does not tell which accounts exist.
	fail(th, "nobody@example.org", "192.0.2.9", 5)
	if !blocked(th, "nobody@example.org", "192.0.2.9") {
		t.Error("a name without an account is not throttled like one")
	}
}

// Failures spread over many networks reach the account limit: new clients are refused,
// clients that logged in before are not.
func TestThrottlePerAccount(t *testing.T) {
	th, _ := newTestThrottle()
	th.Succeed(newAttempt("alice@example.org", "198.51.100.1"))      // her phone
	th.Succeed(newAttempt("alice@example.org", "2001:db8:aa:bb::1")) // her laptop
	for i := range 99 {
		fail(th, "alice@example.org", fmt.Sprintf("10.%d.%d.1", i/200, i%200), 1)
	}
	if blocked(th, "alice@example.org", "203.0.113.1") {
		t.Fatal("blocked after 99 failures")
	}
	fail(th, "alice@example.org", "10.99.0.1", 1)
	if !blocked(th, "alice@example.org", "203.0.113.1") {
		t.Error("a new client is not blocked after 100 failures for the account")
	}
	if !blocked(th, "alice@example.org", "") {
		t.Error("a login without a client address is not blocked after 100 failures for the account")
	}
	b, _, known := th.Check(newAttempt("alice@example.org", "198.51.100.1"))
	if b || !known {
		t.Errorf("the owner's phone: blocked %v, known %v; want let in, known", b, known)
	}
	// Her laptop moved to another address of its /64 (privacy addresses).
	if blocked(th, "alice@example.org", "2001:db8:aa:bb::2") {
		t.Error("the owner's laptop is blocked")
	}
	if blocked(th, "bob@example.org", "203.0.113.1") {
		t.Error("another account is blocked")
	}
}

// A remembered site is exempt from the client, network and account limits, not from its
// own pair limit; it is forgotten after Remember.
func TestThrottleKnownClient(t *testing.T) {
	th, c := newTestThrottle()
	th.Succeed(newAttempt("alice@example.org", "192.0.2.7"))
	// Someone at the same address guesses at other accounts: the client is blocked, but
	// not for alice, who logged in from there.
	for i := range 10 {
		fail(th, fmt.Sprintf("user%d@example.org", i), "192.0.2.7", 1)
	}
	if !blocked(th, "bob@example.org", "192.0.2.7") {
		t.Fatal("the client is not blocked")
	}
	if blocked(th, "alice@example.org", "192.0.2.7") {
		t.Error("the known client is blocked by the client limit")
	}
	// Guessing at alice from there is still bounded by the pair limit.
	fail(th, "alice@example.org", "192.0.2.7", 5)
	if !blocked(th, "alice@example.org", "192.0.2.7") {
		t.Error("a known client is not blocked by its pair limit")
	}

	// Remembered for 30 days, then not.
	th, c = newTestThrottle()
	th.Succeed(newAttempt("alice@example.org", "192.0.2.7"))
	spread := func() {
		for i := range 100 {
			fail(th, "alice@example.org", fmt.Sprintf("10.%d.0.1", i), 1)
		}
	}
	c.Add(29 * 24 * time.Hour)
	spread()
	if blocked(th, "alice@example.org", "192.0.2.7") {
		t.Error("known after 29 days: blocked")
	}
	c.Add(24*time.Hour + time.Second)
	spread()
	if !blocked(th, "alice@example.org", "192.0.2.7") {
		t.Error("still known after 30 days")
	}
}

// The attack of issue 9: 100 wrong passwords for one account from 49 other addresses of
// the owner's network neither stop the owner's device nor go unthrottled.
func TestThrottleLockoutAttack(t *testing.T) {
	th, _ := newTestThrottle()
	owner := newAttempt("demo@example.test", "127.0.0.1")
	th.Succeed(owner)
	refused := 0
	for i := range 100 {
		at := newAttempt("demo@example.test", fmt.Sprintf("127.0.0.%d", 2+i%49))
		if b, _, _ := th.Check(at); b {
			refused++
			continue
		}
		th.Fail(at)
	}
	if refused == 0 {
		t.Error("100 guesses from one /24 were never refused")
	}
	if b, _, known := th.Check(owner); b || !known {
		t.Errorf("the owner: blocked %v, known %v; want let in", b, known)
	}
	if !blocked(th, "demo@example.test", "127.0.0.51") {
		t.Error("a new client in the attacked network is let in")
	}
}

// Blocks double while failures go on, up to MaxBlock; a quiet window forgives. A success
// forgives the pair, not the client.
func TestThrottleDoublingAndForgiveness(t *testing.T) {
	th, c := newTestThrottle()
	wait := func(user, remote string) time.Duration {
		b, until, _ := th.Check(newAttempt(user, remote))
		if !b {
			return 0
		}
		return until.Sub(c.Now())
	}
	// Spread out, failures never add up.
	fail(th, "alice@example.org", "192.0.2.7", 4)
	c.Add(16 * time.Minute)
	fail(th, "alice@example.org", "192.0.2.7", 4)
	if d := wait("alice@example.org", "192.0.2.7"); d != 0 {
		t.Errorf("failures outside the window added up: blocked %v", d)
	}
	fail(th, "alice@example.org", "192.0.2.7", 1)
	want := time.Minute
	for range 8 {
		if d := wait("alice@example.org", "192.0.2.7"); d != want {
			t.Errorf("blocked for %v; want %v", d, want)
		}
		c.Add(want)
		fail(th, "alice@example.org", "192.0.2.7", 1)
		want = min(2*want, time.Hour)
	}
	if d := wait("alice@example.org", "192.0.2.7"); d != time.Hour {
		t.Errorf("blocked for %v; want the maximum, an hour", d)
	}
	// Quiet for a window after the refusal ends: forgiven.
	c.Add(time.Hour + 16*time.Minute)
	fail(th, "alice@example.org", "192.0.2.7", 4)
	if d := wait("alice@example.org", "192.0.2.7"); d != 0 {
		t.Errorf("not forgiven: blocked %v", d)
	}
	// A success forgives the pair ...
	th.Succeed(newAttempt("alice@example.org", "192.0.2.7"))
	fail(th, "alice@example.org", "192.0.2.7", 4)
	if d := wait("alice@example.org", "192.0.2.7"); d != 0 {
		t.Errorf("a success did not forgive the pair: blocked %v", d)
	}
	// ... but not the client: its failures in this window (4 + 4 + 2) add up.
	fail(th, "bob@example.org", "192.0.2.7", 2)
	if d := wait("carol@example.org", "192.0.2.7"); d != time.Minute {
		t.Errorf("the client after a success and 10 failures: blocked %v; want a minute", d)
	}
}

func TestThrottleBounded(t *testing.T) {
	th, c := newTestThrottle()
	th.MaxEntries = 10
	th.MaxKnown = 3
	for i := range 100 {
		fail(th, fmt.Sprintf("u%d@example.org", i), "", 1)
	}
	if len(th.keys) > 10 {
		t.Errorf("table grew to %d entries", len(th.keys))
	}
	c.Add(20 * time.Minute)
	fail(th, "new@example.org", "", 1)
	if len(th.keys) != 1 {
		t.Errorf("forgiven entries were not pruned: %d left", len(th.keys))
	}
	for i := range 5 {
		c.Add(time.Second)
		th.Succeed(newAttempt("alice@example.org", fmt.Sprintf("192.0.2.%d", i)))
	}
	if len(th.known) != 3 {
		t.Errorf("%d sites remembered; want at most 3", len(th.known))
	}
	if _, ok := th.known[knownSite{"alice@example.org", "192.0.2.4"}]; !ok {
		t.Error("the newest site was not kept")
	}
	if _, ok := th.known[knownSite{"alice@example.org", "192.0.2.0"}]; ok {
		t.Error("the oldest site was kept")
	}
}

func TestThrottleListAndLift(t *testing.T) {
	th, c := newTestThrottle()
	fail(th, "alice@example.org", "192.0.2.7", 5) // pair
	for i := range 10 {
		fail(th, fmt.Sprintf("u%d@example.org", i), "198.51.100.9", 1) // client
	}
	for i := range 50 {
		fail(th, "x@example.org", fmt.Sprintf("2001:db8:0:1::%x", i+1), 1) // network, pair, account
	}
	got := map[string]bool{}
	for _, b := range th.Blocks() {
		got[b.Kind+" "+b.Account+" "+b.Client] = true
		if !b.Until.After(c.Now()) || b.Failures == 0 {
			t.Errorf("block %+v", b)
		}
	}
	for _, want := range []string{"pair alice@example.org 192.0.2.7", "client  198.51.100.9",
		"network  2001:db8:0:1::/64", "pair x@example.org 2001:db8:0:1::/64"} {
		if !got[want] {
			t.Errorf("Blocks lacks %q: %v", want, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("Blocks = %v; want 4", got)
	}

	// The account and its pair.
	if n := len(th.Lift("Alice@example.org")); n != 2 || blocked(th, "alice@example.org", "192.0.2.7") {
		t.Errorf("lifting the account lifted %d keys; still blocked: %v", n, blocked(th, "alice@example.org", "192.0.2.7"))
	}
	if th.Lift("198.51.100.9"); blocked(th, "alice@example.org", "198.51.100.9") {
		t.Error("lifting the address left it blocked")
	}
	// An address lifts its network and the pairs at its site too.
	if th.Lift("2001:db8:0:1::77"); blocked(th, "x@example.org", "2001:db8:0:1::77") {
		t.Errorf("lifting an address of the network left it blocked: %+v", th.Blocks())
	}
	for i := range 50 {
		fail(th, "y@example.org", fmt.Sprintf("192.0.2.%d", i+1), 1)
	}
	if !blocked(th, "z@example.org", "192.0.2.100") {
		t.Fatal("network not blocked")
	}
	th.Lift("192.0.2.0/24")
	for k := range th.keys {
		if k.kind != kindAccount && strings.HasPrefix(k.client, "192.0.2.") {
			t.Errorf("lifting the /24 left %+v", k)
		}
	}
	if blocked(th, "z@example.org", "192.0.2.100") {
		t.Error("lifting the network left it blocked")
	}
	if len(th.Lift("nothing@example.org")) != 0 {
		t.Error("lifted keys of an account that has none")
	}
}

func TestNewAttempt(t *testing.T) {
	for _, tc := range []struct {
		user, remote string
		want         attempt
	}{
		{"Alice@Example.ORG", "", attempt{account: "alice@example.org"}},
		{"not an address", "192.0.2.1", attempt{"not an address", "192.0.2.1", "192.0.2.0/24", "192.0.2.1"}},
		{"a@b.c", "192.0.2.1:25", attempt{"a@b.c", "192.0.2.1", "192.0.2.0/24", "192.0.2.1"}},
		{"a@b.c", "::ffff:192.0.2.1", attempt{"a@b.c", "192.0.2.1", "192.0.2.0/24", "192.0.2.1"}},
		{"a@b.c", "2001:db8::1", attempt{"a@b.c", "2001:db8::1", "2001:db8::/64", "2001:db8::/64"}},
		{"a@b.c", "[2001:db8:0:0:ffff::1]:99", attempt{"a@b.c", "2001:db8::ffff:0:0:1", "2001:db8::/64", "2001:db8::/64"}},
		{"a@b.c", "fe80::1%eth0", attempt{"a@b.c", "fe80::1", "fe80::/64", "fe80::/64"}},
		{"a@b.c", "unix socket", attempt{"a@b.c", "unix socket", "", "unix socket"}},
	} {
		if got := newAttempt(tc.user, tc.remote); got != tc.want {
			t.Errorf("newAttempt(%q, %q) = %+v; want %+v", tc.user, tc.remote, got, tc.want)
		}
	}
}

package main

import (
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/ratelimit"
	"postern/pkg/userdb"
)

// Throttle slows down password guessing without letting a guesser lock an account's owner
// out. It counts failed logins under four keys, each with its own limit:
//
//   - the client: one IP address, for guessing at many accounts from one machine;
//   - the client's network, the /24 of an IPv4 address or the /64 of an IPv6 one, for
//     guessing from many addresses of one network (an IPv6 host picks any address of its
//     /64 at will);
//   - the pair of an account and a client site (an IPv4 address or an IPv6 /64), for
//     guessing at one account from one place;
//   - the account, from anywhere, for guessing spread over many networks. Its limit is far
//     higher, and it never stops a client that logged in to the account successfully
//     before: a site (IPv4 address or IPv6 /64) where the account logged in within
//     Limits.Remember is remembered, and a login from there is checked against its pair
//     key alone. So a guesser anywhere else, however many failures it causes, does not
//     keep the owner's devices out (the lock-out an account-wide limit otherwise invites).
//
// Once a key has had its limit of failures within Window, logins under it are refused for
// Block, the right password too (the answer is "try again later", not "wrong password",
// and no password is checked); every further failure before the key is forgiven doubles
// that time, up to MaxBlock. A key is forgiven when it has been quiet (no failure, no
// refusal in force) for Window. A successful login forgives its pair key only: forgiving
// the client would let one valid account spray guesses at the others, and forgiving the
// account would give a guesser a new allowance every time the owner's phone logs in.
//
// The counts and blocks live in memory only: restarting authd forgets them. They need no
// writes to users.db that way, and an attacker gains little from a restart they cannot
// cause. The remembered sites are kept in users.db too (Succeed says when to store one;
// Recall loads them at start), so that a restart during an attack does not leave the
// owner's devices to the account limit. The tables are bounded: at most MaxEntries keys
// (when full of keys not yet forgiven, new keys are not tracked) and MaxKnown remembered
// sites (when full, the oldest is forgotten).
type Throttle struct {
	Limits
	MaxEntries int
	MaxKnown   int
	// Now tells the time; tests replace it.
	Now func() time.Time

	mu        sync.Mutex
	keys      map[throttleKey]*throttleEntry
	known     map[knownSite]time.Time // last successful login
	lastPrune time.Time
}

// Limits are the numbers of a Throttle: how many failures each key may have within
// Window, and for how long a key is then refused.
type Limits struct {
	// Client, Network, Pair and Account are the failures allowed per key of each kind.
	Client, Network, Pair, Account int
	// Window is the time over which failures add up, and the quiet time that forgives.
	Window time.Duration
	// Block is the first refusal; MaxBlock bounds its doubling.
	Block, MaxBlock time.Duration
	// Remember is how long a site where an account logged in stays known.
	Remember time.Duration
}

// LimitsOf returns the limits that the [authd] table of postern.toml sets (its defaults:
// 10 failures per client address, 50 per network, 5 per account and client, 100 per
// account, within 15 minutes; blocks of 1 minute doubling to 1 hour; sites remembered
// for 30 days).
func LimitsOf(c config.Authd) Limits {
	return Limits{
		Client:   c.ClientFailures,
		Network:  c.NetworkFailures,
		Pair:     c.AccountClientFailures,
		Account:  c.AccountFailures,
		Window:   c.FailureWindow.D(),
		Block:    c.BlockTime.D(),
		MaxBlock: c.MaxBlockTime.D(),
		Remember: c.RememberLogins.D(),
	}
}

// Kinds of throttling keys, as control.ThrottleBlock names them.
const (
	kindClient  = "client"
	kindNetwork = "network"
	kindPair    = "pair"
	kindAccount = "account"
)

// throttleKey is what failures are counted under. client is an address, a network
// prefix or a site; account an account's address (canonical if it parses, whether or not
// the account exists, so that throttling does not tell).
type throttleKey struct {
	kind, account, client string
}

type knownSite struct{ account, site string }

type throttleEntry struct {
	fails   int       // failures since first
	first   time.Time // start of the counting window
	last    time.Time // last failure
	strikes int       // how often the limit was passed since the key was last forgiven
	until   time.Time // refused until then
}

// attempt holds the keys of one login attempt.
type attempt struct {
	account string
	// client, network and site are empty when the client's address is not known.
	client, network, site string
}

// newAttempt makes the keys of a login as user from remote (an IP address, with or
// without a port, or empty).
func newAttempt(user, remote string) attempt {
	a := attempt{account: clipKey(strings.ToLower(user))}
	if c, err := userdb.CanonicalAddress(user); err == nil {
		a.account = c
	}
	if remote == "" {
		return a
	}
	addr, err := netip.ParseAddr(remote)
	if err != nil {
		ap, perr := netip.ParseAddrPort(remote)
		if perr != nil {
			a.client = clipKey(remote)
			a.site = a.client
			return a
		}
		addr = ap.Addr()
	}
	addr = addr.Unmap().WithZone("")
	a.client = addr.String()
	a.network = ratelimit.Network(addr).String()
	a.site = ratelimit.Site(addr)
	return a
}

// keys are the attempt's keys; only the pair key when the site is known. Without a
// client address, only the account key.
func (a attempt) keys(known bool) []throttleKey {
	pair := throttleKey{kindPair, a.account, a.site}
	if known {
		return []throttleKey{pair}
	}
	ks := []throttleKey{{kind: kindAccount, account: a.account}}
	if a.site != "" {
		ks = append(ks, pair)
	}
	if a.client != "" {
		ks = append(ks, throttleKey{kind: kindClient, client: a.client})
	}
	if a.network != "" {
		ks = append(ks, throttleKey{kind: kindNetwork, client: a.network})
	}
	return ks
}

// NewThrottle returns a Throttle with limits l.
func NewThrottle(l Limits) *Throttle {
	return &Throttle{Limits: l, MaxEntries: 100000, MaxKnown: 100000, Now: time.Now}
}

func (t *Throttle) limit(k throttleKey) int {
	switch k.kind {
	case kindClient:
		return t.Client
	case kindNetwork:
		return t.Network
	case kindPair:
		return t.Pair
	}
	return t.Account
}

// forgiven reports whether an entry has been quiet long enough to be dropped.
func (t *Throttle) forgiven(e *throttleEntry, now time.Time) bool {
	quiet := e.last
	if e.until.After(quiet) {
		quiet = e.until
	}
	return now.Sub(quiet) > t.Window
}

// isKnown reports whether a's account logged in from a's site within Remember.
func (t *Throttle) isKnown(a attempt, now time.Time) bool {
	if a.site == "" {
		return false
	}
	last, ok := t.known[knownSite{a.account, a.site}]
	return ok && now.Sub(last) < t.Remember
}

// Check reports whether a login attempt is refused now, and until when. known says
// whether the attempt came from a site where the account logged in before.
func (t *Throttle) Check(a attempt) (blocked bool, until time.Time, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	known = t.isKnown(a, now)
	for _, k := range a.keys(known) {
		if e := t.keys[k]; e != nil && now.Before(e.until) && e.until.After(until) {
			until = e.until
		}
	}
	return !until.IsZero(), until, known
}

// Fail records a failed login under each of the attempt's keys (all of them, known site
// or not) and returns the keys that it blocked: those whose refusal starts now.
func (t *Throttle) Fail(a attempt) []control.ThrottleBlock {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	t.prune(now)
	var started []control.ThrottleBlock
	for _, k := range a.keys(false) {
		e := t.keys[k]
		if e == nil || t.forgiven(e, now) {
			if e == nil && len(t.keys) >= t.MaxEntries {
				continue
			}
			e = &throttleEntry{first: now}
			if t.keys == nil {
				t.keys = map[throttleKey]*throttleEntry{}
			}
			t.keys[k] = e
		}
		if now.Sub(e.first) > t.Window {
			e.fails, e.first = 0, now
		}
		e.fails++
		e.last = now
		// Once past the limit, every failure until the key is forgiven doubles the wait.
		if e.fails >= t.limit(k) || e.strikes > 0 {
			e.strikes++
			d := t.MaxBlock
			if e.strikes <= 30 {
				d = min(t.Block<<(e.strikes-1), t.MaxBlock)
			}
			e.until = now.Add(d)
			started = append(started, block(k, e))
		}
	}
	return started
}

// Succeed forgets the failures of the attempt's pair key and remembers its site. It
// reports whether the site is new or was last remembered a day ago or more: then the
// caller stores it (users.db), so that a restart of authd does not forget it. Within a
// day the time is not updated, which keeps that to one write per account and site a day.
func (t *Throttle) Succeed(a attempt) (store bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a.site == "" {
		return false
	}
	delete(t.keys, throttleKey{kindPair, a.account, a.site})
	if t.Remember <= 0 {
		return false
	}
	now := t.Now()
	s := knownSite{a.account, a.site}
	if last, ok := t.known[s]; ok && now.Sub(last) < rememberEvery {
		return false
	}
	t.remember(s, now)
	return true
}

// rememberEvery is how often a site's time is renewed: Remember is counted from the
// first success of the last day the site logged in.
const rememberEvery = 24 * time.Hour

// Recall remembers a site where account logged in at at (from users.db, at start).
func (t *Throttle) Recall(account, site string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := knownSite{account, site}
	if last, ok := t.known[s]; (!ok || at.After(last)) && t.Now().Sub(at) < t.Remember {
		t.remember(s, at)
	}
}

// remember records a site, forgetting the oldest when the table is full.
func (t *Throttle) remember(s knownSite, at time.Time) {
	now := t.Now()
	if _, ok := t.known[s]; !ok && len(t.known) >= t.MaxKnown {
		var oldest knownSite
		var oldestAt time.Time
		for k, kat := range t.known {
			if now.Sub(kat) >= t.Remember {
				delete(t.known, k)
			} else if oldestAt.IsZero() || kat.Before(oldestAt) {
				oldest, oldestAt = k, kat
			}
		}
		if len(t.known) >= t.MaxKnown {
			delete(t.known, oldest)
		}
	}
	if t.known == nil {
		t.known = map[knownSite]time.Time{}
	}
	t.known[s] = at
}

// Blocks lists the keys refused now, soonest free first.
func (t *Throttle) Blocks() []control.ThrottleBlock {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	out := []control.ThrottleBlock{}
	for k, e := range t.keys {
		if now.Before(e.until) {
			out = append(out, block(k, e))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Until.Equal(out[j].Until) {
			return out[i].Until.Before(out[j].Until)
		}
		return out[i].Kind+out[i].Account+out[i].Client < out[j].Kind+out[j].Account+out[j].Client
	})
	return out
}

// Lift forgives every key that target names and returns them: for an account's address,
// the account and its pairs; for an IP address, the address, its network and every pair
// at its site; for a network (a CIDR prefix), the network and the addresses and pairs in
// it. Blocked or not, the keys' failures are forgotten.
func (t *Throttle) Lift(target string) []control.ThrottleBlock {
	match := liftMatcher(target)
	t.mu.Lock()
	defer t.mu.Unlock()
	var lifted []control.ThrottleBlock
	for k, e := range t.keys {
		if match(k) {
			lifted = append(lifted, block(k, e))
			delete(t.keys, k)
		}
	}
	return lifted
}

// liftMatcher returns the test of the keys Lift forgives for target.
func liftMatcher(target string) func(throttleKey) bool {
	if p, err := netip.ParsePrefix(target); err == nil {
		p = p.Masked()
		return func(k throttleKey) bool {
			if k.kind == kindAccount {
				return false
			}
			if kp, err := netip.ParsePrefix(k.client); err == nil {
				return p.Bits() <= kp.Bits() && p.Contains(kp.Addr())
			}
			a, err := netip.ParseAddr(k.client)
			return err == nil && p.Contains(a)
		}
	}
	if _, err := netip.ParseAddr(target); err == nil {
		a := newAttempt("", target)
		return func(k throttleKey) bool {
			switch k.kind {
			case kindClient:
				return k.client == a.client
			case kindNetwork:
				return k.client == a.network
			case kindPair:
				return k.client == a.site
			}
			return false
		}
	}
	account := newAttempt(target, "").account
	return func(k throttleKey) bool {
		return (k.kind == kindAccount || k.kind == kindPair) && k.account == account
	}
}

func block(k throttleKey, e *throttleEntry) control.ThrottleBlock {
	return control.ThrottleBlock{Kind: k.kind, Account: k.account, Client: k.client, Failures: e.fails, Until: e.until}
}

// prune drops forgiven entries and sites remembered too long ago, at most once a
// minute, or once a second while the table is full.
func (t *Throttle) prune(now time.Time) {
	every := time.Minute
	if len(t.keys) >= t.MaxEntries {
		every = time.Second
	}
	if now.Sub(t.lastPrune) < every {
		return
	}
	t.lastPrune = now
	for k, e := range t.keys {
		if t.forgiven(e, now) {
			delete(t.keys, k)
		}
	}
	for k, at := range t.known {
		if now.Sub(at) >= t.Remember {
			delete(t.known, k)
		}
	}
}

func clipKey(s string) string {
	if len(s) > 320 {
		return s[:320]
	}
	return s
}

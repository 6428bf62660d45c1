package main

import (
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Throttle slows down password guessing. It counts failed logins per key — a client's
// address and the account tried, separately — and once a key has had Limit failures
// within Window, refuses it for Base; every further failure before the key is forgiven
// doubles that time, up to Max. A key is forgiven when it has been quiet (no failure, no
// refusal in force) for Window. A successful login forgives the account's key but not the
// client address's: otherwise one valid account would let a client spray guesses at
// every other account.
//
// The counts live in memory only: restarting authd forgets them. That is a deliberate
// trade: they need no writes to users.db, and an attacker gains little from a restart
// they cannot cause. The table holds at most MaxEntries keys; when it is full of keys
// that are not yet forgiven, new keys are not tracked (keys already in it still are).
type Throttle struct {
	Limit      int
	Window     time.Duration
	Base       time.Duration
	Max        time.Duration
	MaxEntries int
	// Now tells the time; tests replace it.
	Now func() time.Time

	mu        sync.Mutex
	keys      map[string]*throttleEntry
	lastPrune time.Time
}

type throttleEntry struct {
	fails   int       // failures since first
	first   time.Time // start of the counting window
	last    time.Time // last failure
	strikes int       // how often the limit was passed since the key was last forgiven
	until   time.Time // refused until then
}

// NewThrottle returns a Throttle with the defaults: 5 failures in 15 minutes, then 1
// minute, doubling to at most 1 hour.
func NewThrottle() *Throttle {
	return &Throttle{
		Limit:      5,
		Window:     15 * time.Minute,
		Base:       time.Minute,
		Max:        time.Hour,
		MaxEntries: 100000,
		Now:        time.Now,
	}
}

// forgiven reports whether an entry has been quiet long enough to be dropped.
func (t *Throttle) forgiven(e *throttleEntry, now time.Time) bool {
	quiet := e.last
	if e.until.After(quiet) {
		quiet = e.until
	}
	return now.Sub(quiet) > t.Window
}

// Blocked reports whether any of the keys is refused now, and until when.
func (t *Throttle) Blocked(keys ...string) (bool, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	var until time.Time
	for _, k := range keys {
		if e := t.keys[k]; e != nil && now.Before(e.until) && e.until.After(until) {
			until = e.until
		}
	}
	return !until.IsZero(), until
}

// Fail records a failed login for each key.
func (t *Throttle) Fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	t.prune(now)
	for _, k := range keys {
		e := t.keys[k]
		if e == nil || t.forgiven(e, now) {
			if e == nil && len(t.keys) >= t.MaxEntries {
				continue
			}
			e = &throttleEntry{first: now}
			if t.keys == nil {
				t.keys = map[string]*throttleEntry{}
			}
			t.keys[k] = e
		}
		if now.Sub(e.first) > t.Window {
			e.fails, e.first = 0, now
		}
		e.fails++
		e.last = now
		// Once past the limit, every failure until the key is forgiven doubles the wait.
		if e.fails >= t.Limit || e.strikes > 0 {
			e.strikes++
			d := t.Max
			if e.strikes <= 30 {
				d = min(t.Base<<(e.strikes-1), t.Max)
			}
			e.until = now.Add(d)
		}
	}
}

// Succeed forgets the failures of key.
func (t *Throttle) Succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, key)
}

// prune drops forgiven entries, at most once a minute, or once a second while the table
// is full.
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
}

// clientKey is the throttling key of a client address: an IPv4 address, or the /64 an
// IPv6 address belongs to (one machine usually has a whole /64). A port, if any, is
// dropped. Empty means no key.
func clientKey(remote string) string {
	if remote == "" {
		return ""
	}
	addr, err := netip.ParseAddr(remote)
	if err != nil {
		ap, perr := netip.ParseAddrPort(remote)
		if perr != nil {
			return "client:" + clipKey(remote)
		}
		addr = ap.Addr()
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		return "client:" + netip.PrefixFrom(addr, 64).Masked().String()
	}
	return "client:" + addr.String()
}

// accountKey is the throttling key of the account a login names, whether it exists or
// not (so that throttling does not tell either).
func accountKey(canonical, given string) string {
	if canonical != "" {
		return "account:" + canonical
	}
	return "account:" + clipKey(strings.ToLower(given))
}

func clipKey(s string) string {
	if len(s) > 320 {
		return s[:320]
	}
	return s
}

// Package ratelimit counts events per key in a sliding window, the way Postfix's anvil
// counts MAIL and RCPT commands: two kinds of events (messages and recipients, say),
// each with its own limit, in a window of 60 buckets of a sixtieth of it. smtpd counts
// the messages, recipients and connections of each client address per minute; authd
// counts the messages and recipients each account submits per hour, and keeps those
// counts in users.db (Export, Import) so that they survive a restart.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

// Network is the network whose clients count together: the /24 of an IPv4 address,
// the /64 of an IPv6 one (what one customer of a provider usually has).
func Network(ip netip.Addr) netip.Prefix {
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Site is the key of one client: its IPv4 address, or the /64 of its IPv6 address,
// for a host with a /64 picks any address in it at will.
func Site(ip netip.Addr) string {
	if ip.Is4() {
		return ip.String()
	}
	return Network(ip).String()
}

// Buckets is the number of buckets in the window.
const Buckets = 60

// Limiter counts two kinds of events per key. It is safe for concurrent use.
type Limiter struct {
	maxFirst, maxSecond int   // 0: no limit
	unit                int64 // seconds per bucket
	// Now is the clock; tests replace it.
	Now func() time.Time

	mu   sync.Mutex
	keys map[string]*Counts
	// dirty holds the keys changed since the last Export; nil for a limiter made
	// with New, whose counts are never exported (smtpd's): it would only grow.
	dirty map[string]bool
	prune time.Time
}

// Counts are the events of one key: Slot[i] is the bucket number (Unix time / unit)
// that First[i] and Second[i] count.
type Counts struct {
	Slot   [Buckets]int64 `json:"slot"`
	First  [Buckets]int   `json:"first"`
	Second [Buckets]int   `json:"second"`
}

// New returns a limiter of maxFirst events of the first kind and maxSecond of the
// second per window (0: no limit); window is a whole number of minutes, or of seconds
// times 60.
func New(maxFirst, maxSecond int, window time.Duration) *Limiter {
	return &Limiter{maxFirst: maxFirst, maxSecond: maxSecond, unit: max(int64(window/time.Second)/Buckets, 1),
		Now: time.Now, keys: map[string]*Counts{}}
}

// NewPersistent is New for counts that are stored: the limiter remembers which keys
// changed, for Export.
func NewPersistent(maxFirst, maxSecond int, window time.Duration) *Limiter {
	r := New(maxFirst, maxSecond, window)
	r.dirty = map[string]bool{}
	return r
}

// sum adds up the buckets of the window ending at bucket now.
func (u *Counts) sum(now int64, counts *[Buckets]int) int {
	n := 0
	for i := range Buckets {
		if now-u.Slot[i] < Buckets {
			n += counts[i]
		}
	}
	return n
}

// bucket returns the bucket of number now, emptied if it held an older one.
func (u *Counts) bucket(now int64) int {
	i := int(now % Buckets)
	if u.Slot[i] != now {
		u.Slot[i], u.First[i], u.Second[i] = now, 0, 0
	}
	return i
}

// Take counts one event of the first kind (second false) or of the second for key,
// unless that would pass the limit: then it returns false and counts nothing.
func (r *Limiter) Take(key string, second bool) bool {
	limit := r.maxFirst
	if second {
		limit = r.maxSecond
	}
	if limit <= 0 {
		return true
	}
	t := r.Now()
	now := t.Unix() / r.unit
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(t, now)
	u := r.keys[key]
	if u == nil {
		u = &Counts{}
		r.keys[key] = u
	}
	counts := &u.First
	if second {
		counts = &u.Second
	}
	if u.sum(now, counts) >= limit {
		return false
	}
	counts[u.bucket(now)]++
	if r.dirty != nil {
		r.dirty[key] = true
	}
	return true
}

// Export returns a copy of the counts of the keys changed since the last Export, and
// forgets that they changed (nothing for a limiter made with New). A key whose window is empty comes as nil: it may be
// deleted from storage.
func (r *Limiter) Export() map[string]*Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.dirty) == 0 {
		return nil
	}
	out := make(map[string]*Counts, len(r.dirty))
	for k := range r.dirty {
		if u := r.keys[k]; u != nil {
			c := *u
			out[k] = &c
		} else {
			out[k] = nil
		}
	}
	clear(r.dirty)
	return out
}

// Import sets the counts of key, as an earlier Export gave them.
func (r *Limiter) Import(key string, c Counts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[key] = &c
}

// pruneLocked forgets, at most every sixth of the window, the keys quiet for a window.
func (r *Limiter) pruneLocked(t time.Time, now int64) {
	if t.Sub(r.prune) < time.Duration(r.unit)*10*time.Second {
		return
	}
	r.prune = t
	for name, u := range r.keys {
		if u.sum(now, &u.First)+u.sum(now, &u.Second) == 0 {
			delete(r.keys, name)
			if r.dirty != nil {
				r.dirty[name] = true
			}
		}
	}
}

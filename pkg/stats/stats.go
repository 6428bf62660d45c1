// Package stats counts what happens to mail, hour by hour and day by day: the numbers of
// the admin panel's charts, of mailctl stats, and of any metrics exporter. What is
// counted, and by whom:
//
//   - Received: messages that entered the queue from a client (SMTP or sendmail), when
//     qmgr takes them from incoming/. Postern's own delivery status notifications are
//     not counted.
//   - Delivered: recipients delivered for good (written into a Maildir, or accepted by
//     the remote server with 250 after DATA), by qmgr, one per recipient.
//   - Deferred: delivery attempts that failed temporarily, by qmgr, one per recipient
//     and attempt (a recipient deferred three times counts three).
//   - Bounced: recipients that failed for good (a permanent error, or the message
//     expired in the queue), by qmgr, one per recipient.
//   - Rejected: what smtpd refused with a 5xx reply: a recipient at RCPT TO (unknown
//     user, relaying denied, full mailbox, policy), or a message at the end of DATA
//     (cleanup's checks, spamd's reject verdict); smtpd reports its counts to qmgr.
//   - Junk: received messages that spamd judged junk (local files them into Junk),
//     from the verdict cleanup wrote into the queue file, by qmgr.
//
// qmgr owns the counters (Counters): it counts in memory and stores them in its state
// database every minute and when it stops, so a kill -9 forgets a minute at most. Hourly
// counts are kept for HourKeep hours and daily counts for DayKeep days (days are those
// of the server's time zone). Total gives the counts since qmgr started, which never go
// down, as a metrics exporter wants.
package stats

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Kind is one of the counted events.
type Kind int

// The kinds of events counted; see the package documentation.
const (
	Received Kind = iota
	Delivered
	Deferred
	Bounced
	Rejected
	Junk
)

// Names are the kinds' names, indexed by Kind, as Counts encodes them.
var Names = []string{"received", "delivered", "deferred", "bounced", "rejected", "junk"}

const (
	// HourKeep is how many hours of hourly counts are kept, DayKeep how many days of
	// daily counts.
	HourKeep = 48
	DayKeep  = 60
)

// Counts are the numbers of each kind of event in some period.
type Counts struct {
	Received  int64 `json:"received"`
	Delivered int64 `json:"delivered"`
	Deferred  int64 `json:"deferred"`
	Bounced   int64 `json:"bounced"`
	Rejected  int64 `json:"rejected"`
	Junk      int64 `json:"junk"`
}

// field returns the counter of kind k, nil for an unknown kind.
func (c *Counts) field(k Kind) *int64 {
	switch k {
	case Received:
		return &c.Received
	case Delivered:
		return &c.Delivered
	case Deferred:
		return &c.Deferred
	case Bounced:
		return &c.Bounced
	case Rejected:
		return &c.Rejected
	case Junk:
		return &c.Junk
	}
	return nil
}

// Get returns the count of kind k.
func (c Counts) Get(k Kind) int64 {
	if p := c.field(k); p != nil {
		return *p
	}
	return 0
}

// Plus returns c and o added.
func (c Counts) Plus(o Counts) Counts {
	for k := range Names {
		if p := c.field(Kind(k)); p != nil {
			*p += o.Get(Kind(k))
		}
	}
	return c
}

// Zero reports whether every count is zero.
func (c Counts) Zero() bool { return c == Counts{} }

// Period is the counts of the hour or the day that begins at Start.
type Period struct {
	Start time.Time `json:"start"`
	Counts
}

// Counters counts events by hour and by day. It is safe for concurrent use.
type Counters struct {
	// Now is the clock (time.Now if nil); Loc the time zone of the days (time.Local if
	// nil).
	Now func() time.Time
	Loc *time.Location

	mu    sync.Mutex
	hours map[int64]*Counts // by the hour's start, Unix seconds
	days  map[int64]*Counts // by the day's start, Unix seconds
	total Counts
	dirty map[int64]bool // periods changed since the last Save: start*2 for an hour, start*2+1 for a day
}

func (c *Counters) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Counters) loc() *time.Location {
	if c.Loc != nil {
		return c.Loc
	}
	return time.Local
}

func (c *Counters) initLocked() {
	if c.hours == nil {
		c.hours, c.days, c.dirty = map[int64]*Counts{}, map[int64]*Counts{}, map[int64]bool{}
	}
}

// hourStart and dayStart are the beginnings of t's hour and day.
func hourStart(t time.Time) time.Time { return t.Truncate(time.Hour) }

func (c *Counters) dayStart(t time.Time) time.Time {
	t = t.In(c.loc())
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, c.loc())
}

// Add counts n events of kind k now.
func (c *Counters) Add(k Kind, n int64) {
	var cs Counts
	p := cs.field(k)
	if p == nil || n <= 0 {
		return
	}
	*p = n
	c.AddCounts(cs)
}

// AddCounts adds cs to the counts of now (what a daemon reports, say).
func (c *Counters) AddCounts(cs Counts) {
	if cs.Zero() {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initLocked()
	h, d := hourStart(now).Unix(), c.dayStart(now).Unix()
	for _, p := range []struct {
		m   map[int64]*Counts
		key int64
		tag int64
	}{{c.hours, h, 0}, {c.days, d, 1}} {
		cur := p.m[p.key]
		if cur == nil {
			cur = &Counts{}
			p.m[p.key] = cur
		}
		*cur = cur.Plus(cs)
		c.dirty[p.key*2+p.tag] = true
	}
	c.total = c.total.Plus(cs)
}

// Total returns the counts since the Counters were made (not those Loaded): they only
// grow.
func (c *Counters) Total() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// Hours returns the last n hours (at most HourKeep), the current one last, with zeros
// for hours without events.
func (c *Counters) Hours(n int) []Period {
	n = min(max(n, 1), HourKeep)
	now := hourStart(c.now())
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Period, 0, n)
	for i := n - 1; i >= 0; i-- {
		start := now.Add(-time.Duration(i) * time.Hour)
		p := Period{Start: start}
		if cs := c.hours[start.Unix()]; cs != nil {
			p.Counts = *cs
		}
		out = append(out, p)
	}
	return out
}

// Days returns the last n days (at most DayKeep), today last, with zeros for days
// without events.
func (c *Counters) Days(n int) []Period {
	n = min(max(n, 1), DayKeep)
	today := c.dayStart(c.now())
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Period, 0, n)
	for i := n - 1; i >= 0; i-- {
		start := today.AddDate(0, 0, -i)
		p := Period{Start: start}
		if cs := c.days[start.Unix()]; cs != nil {
			p.Counts = *cs
		}
		out = append(out, p)
	}
	return out
}

// Store layout, in the bucket given to Save and Load: key "h" or "d" and the period's
// start (8 bytes, big-endian Unix seconds) → Counts as JSON.

func storeKey(tag byte, start int64) []byte {
	k := make([]byte, 9)
	k[0] = tag
	binary.BigEndian.PutUint64(k[1:], uint64(start))
	return k
}

// Save writes the counts changed since the last Save into b, and deletes the hours and
// days older than HourKeep and DayKeep (from b and from memory).
func (c *Counters) Save(b *bolt.Bucket) error {
	now := c.now()
	oldHour := hourStart(now).Add(-HourKeep * time.Hour).Unix()
	oldDay := c.dayStart(now).AddDate(0, 0, -DayKeep).Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initLocked()
	for key := range c.dirty {
		start, tag, m := key/2, byte('h'), c.hours
		if key%2 == 1 {
			tag, m = 'd', c.days
		}
		cs := m[start]
		if cs == nil {
			continue
		}
		data, err := json.Marshal(cs)
		if err != nil {
			return err
		}
		if err := b.Put(storeKey(tag, start), data); err != nil {
			return fmt.Errorf("storing statistics: %w", err)
		}
	}
	clear(c.dirty)
	// Prune.
	var gone [][]byte
	cur := b.Cursor()
	for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
		if len(k) != 9 {
			continue
		}
		start := int64(binary.BigEndian.Uint64(k[1:]))
		if k[0] == 'h' && start < oldHour || k[0] == 'd' && start < oldDay {
			gone = append(gone, append([]byte(nil), k...))
		}
	}
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("pruning statistics: %w", err)
		}
	}
	for h := range c.hours {
		if h < oldHour {
			delete(c.hours, h)
		}
	}
	for d := range c.days {
		if d < oldDay {
			delete(c.days, d)
		}
	}
	return nil
}

// Load adds the counts stored in b (by an earlier run) to those in memory. Total does
// not include them.
func (c *Counters) Load(b *bolt.Bucket) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initLocked()
	return b.ForEach(func(k, v []byte) error {
		if len(k) != 9 || (k[0] != 'h' && k[0] != 'd') {
			return nil
		}
		var cs Counts
		if err := json.Unmarshal(v, &cs); err != nil {
			return fmt.Errorf("statistics %c %d: damaged: %w", k[0], binary.BigEndian.Uint64(k[1:]), err)
		}
		start := int64(binary.BigEndian.Uint64(k[1:]))
		m := c.hours
		if k[0] == 'd' {
			m = c.days
		}
		cur := m[start]
		if cur == nil {
			cur = &Counts{}
			m[start] = cur
		}
		*cur = cur.Plus(cs)
		// Counted before Load too: the period is dirty already, and Save stores the sum.
		return nil
	})
}

// Sum adds up periods.
func Sum(ps []Period) Counts {
	var t Counts
	for _, p := range ps {
		t = t.Plus(p.Counts)
	}
	return t
}

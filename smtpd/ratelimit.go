package main

import (
	"sync"
	"time"
)

// rateLimiter counts, per key, two kinds of events in a sliding window, the way
// Postfix's anvil counts MAIL and RCPT commands: per account the messages and
// recipients submitted in the last hour ([submission] max_messages_per_hour,
// max_recipients_per_hour; a message counts when its MAIL command is accepted, a
// recipient when its RCPT command is), and per client address the messages and
// recipients, or the connections, of the last minute ([smtpd] message_rate,
// recipient_rate, connection_rate). The window is 60 buckets of a sixtieth of it. The
// counts live in smtpd's memory — smtpd is one process, so every session sees them —
// and a restart forgets them.
type rateLimiter struct {
	maxMessages, maxRecipients int   // 0: no limit
	unit                       int64 // seconds per bucket
	now                        func() time.Time

	mu    sync.Mutex
	users map[string]*userRate
	prune time.Time
}

// rateBuckets is the number of one-minute buckets in the window.
const rateBuckets = 60

type userRate struct {
	minute              [rateBuckets]int64 // the minute (Unix time / 60) each bucket counts
	messages, recipient [rateBuckets]int
}

// newRateLimiter counts over window, a whole number of minutes or of seconds times 60.
func newRateLimiter(maxMessages, maxRecipients int, window time.Duration) *rateLimiter {
	return &rateLimiter{maxMessages: maxMessages, maxRecipients: maxRecipients, unit: max(int64(window/time.Second)/rateBuckets, 1),
		now: time.Now, users: map[string]*userRate{}}
}

// sum adds up the buckets of the last hour.
func (u *userRate) sum(now int64, counts *[rateBuckets]int) int {
	n := 0
	for i := range rateBuckets {
		if now-u.minute[i] < rateBuckets {
			n += counts[i]
		}
	}
	return n
}

// bucket returns the bucket of minute now, emptied if it held an older minute.
func (u *userRate) bucket(now int64) int {
	i := int(now % rateBuckets)
	if u.minute[i] != now {
		u.minute[i], u.messages[i], u.recipient[i] = now, 0, 0
	}
	return i
}

// take counts one message (recipient false) or one recipient for user, unless that
// would pass the limit: then it returns false and counts nothing.
func (r *rateLimiter) take(user string, recipient bool) bool {
	limit := r.maxMessages
	if recipient {
		limit = r.maxRecipients
	}
	if limit <= 0 {
		return true
	}
	t := r.now()
	now := t.Unix() / r.unit
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(t, now)
	u := r.users[user]
	if u == nil {
		u = &userRate{}
		r.users[user] = u
	}
	counts := &u.messages
	if recipient {
		counts = &u.recipient
	}
	if u.sum(now, counts) >= limit {
		return false
	}
	counts[u.bucket(now)]++
	return true
}

// pruneLocked forgets, at most every sixth of the window, the keys quiet for a window.
func (r *rateLimiter) pruneLocked(t time.Time, now int64) {
	if t.Sub(r.prune) < time.Duration(r.unit)*10*time.Second {
		return
	}
	r.prune = t
	for name, u := range r.users {
		if u.sum(now, &u.messages)+u.sum(now, &u.recipient) == 0 {
			delete(r.users, name)
		}
	}
}

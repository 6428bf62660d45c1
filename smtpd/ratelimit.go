package main

import (
	"sync"
	"time"
)

// rateLimiter counts, per account, the messages and recipients submitted in the last
// hour ([submission] max_messages_per_hour, max_recipients_per_hour), the way Postfix's
// anvil counts MAIL and RCPT commands: a message counts when its MAIL command is
// accepted, a recipient when its RCPT command is. The hour is a sliding window of 60
// one-minute buckets. The counts live in smtpd's memory: a restart forgets them, which
// is acceptable for a limit meant to contain a stolen password or a runaway script, not
// to bill anybody.
type rateLimiter struct {
	maxMessages, maxRecipients int // 0: no limit
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

func newRateLimiter(maxMessages, maxRecipients int) *rateLimiter {
	return &rateLimiter{maxMessages: maxMessages, maxRecipients: maxRecipients, now: time.Now, users: map[string]*userRate{}}
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
	now := t.Unix() / 60
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

// pruneLocked forgets, at most every ten minutes, the accounts quiet for an hour.
func (r *rateLimiter) pruneLocked(t time.Time, now int64) {
	if t.Sub(r.prune) < 10*time.Minute {
		return
	}
	r.prune = t
	for name, u := range r.users {
		if u.sum(now, &u.messages)+u.sum(now, &u.recipient) == 0 {
			delete(r.users, name)
		}
	}
}

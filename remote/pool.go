package main

import (
	"context"
	"sync"
	"time"
)

// pool keeps, per destination domain, a limit on the connections in use at once and
// the idle connections kept for the next message (Postfix's connection cache), so
// that a burst of mail to one domain goes over a few connections, each carrying
// message after message.
type pool struct {
	// limit is the most connections in use at once per destination, and the most idle
	// ones kept; ttl how long an idle connection is kept (0: not at all).
	limit int
	ttl   time.Duration

	mu    sync.Mutex
	dests map[string]*destination
}

type destination struct {
	slots chan struct{}
	idle  []idleSession
	// users counts the deliveries holding or waiting for a slot; a destination
	// without users and idle connections is forgotten.
	users int
}

type idleSession struct {
	s     *session
	until time.Time
}

func newPool(limit int, ttl time.Duration) *pool {
	return &pool{limit: max(limit, 1), ttl: ttl, dests: map[string]*destination{}}
}

// acquire waits for a free connection slot to the destination key. Give it back with
// release.
func (p *pool) acquire(ctx context.Context, key string) (*destination, error) {
	p.mu.Lock()
	d := p.dests[key]
	if d == nil {
		d = &destination{slots: make(chan struct{}, p.limit)}
		p.dests[key] = d
	}
	d.users++
	p.mu.Unlock()
	select {
	case d.slots <- struct{}{}:
		return d, nil
	case <-ctx.Done():
		p.mu.Lock()
		d.users--
		p.mu.Unlock()
		return nil, ctx.Err()
	}
}

// release frees a slot taken by acquire.
func (p *pool) release(d *destination) {
	<-d.slots
	p.mu.Lock()
	d.users--
	p.mu.Unlock()
}

// take returns an idle connection to the destination that accept approves and that
// still answers RSET, or nil. Idle connections accept refuses are closed.
func (p *pool) take(key string, accept func(*session) bool) *session {
	for {
		p.mu.Lock()
		d := p.dests[key]
		if d == nil || len(d.idle) == 0 {
			p.mu.Unlock()
			return nil
		}
		is := d.idle[len(d.idle)-1]
		d.idle = d.idle[:len(d.idle)-1]
		p.mu.Unlock()
		if time.Now().After(is.until) || !accept(is.s) {
			is.s.quit()
			is.s.close()
			continue
		}
		// RFC 5321 §4.1.1.5: RSET between messages on one connection; a server that
		// closed the connection meanwhile fails here, before a message is at stake.
		if err := is.s.reset(); err != nil {
			is.s.close()
			continue
		}
		return is.s
	}
}

// put gives back a connection after a transaction: kept for the next message when it
// is healthy and there is room, closed otherwise.
func (p *pool) put(key string, s *session) {
	if !s.broken && s.inTx && p.ttl > 0 {
		// A transaction that ended without a message (every recipient refused, DATA
		// refused) is still open at the server, which would count the connection as
		// busy: end it now (RFC 5321 §4.1.1.5), not when the connection is reused.
		if err := s.reset(); err != nil {
			s.close()
			return
		}
	}
	if s.broken || p.ttl <= 0 {
		if !s.broken {
			s.quit()
		}
		s.close()
		return
	}
	p.mu.Lock()
	d := p.dests[key]
	if d != nil && len(d.idle) < p.limit {
		d.idle = append(d.idle, idleSession{s: s, until: time.Now().Add(p.ttl)})
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	s.quit()
	s.close()
}

// expire closes the idle connections whose time is up, every second until ctx is done,
// then all of them.
func (p *pool) expire(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		var done bool
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
		}
		now := time.Now()
		var old []*session
		p.mu.Lock()
		for key, d := range p.dests {
			keep := d.idle[:0]
			for _, is := range d.idle {
				if done || now.After(is.until) {
					old = append(old, is.s)
				} else {
					keep = append(keep, is)
				}
			}
			d.idle = keep
			if len(d.idle) == 0 && d.users == 0 {
				delete(p.dests, key)
			}
		}
		p.mu.Unlock()
		for _, s := range old {
			s.quit()
			s.close()
		}
		if done {
			return
		}
	}
}

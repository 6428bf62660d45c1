package main

import (
	"context"
	"net/netip"
	"time"

	"postern/pkg/auth"
)

// accountWatch is imapd's subscription to authd's account changes (auth.Watch): a
// disabled or deleted account's sessions end (IMAP with BYE, RFC 9051 §7.1.5; POP3 with
// -ERR and the connection closed, no UPDATE state), and every change drops the
// account's cached logins, before authd hears the acknowledgement and answers the
// administrator. While the subscription is down the login cache is not used, so that no
// change can be missed by it.
type accountWatch struct{ s *Server }

// Subscribed turns the login cache on, and checks the accounts with open sessions: one
// disabled or deleted while the subscription was down loses them now.
func (w accountWatch) Subscribed() {
	s := w.s
	s.mu.Lock()
	s.authLive = true
	seen := map[string]bool{}
	var addrs []string
	for _, a := range s.bound {
		if !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	s.mu.Unlock()
	if len(addrs) == 0 {
		return
	}
	go func() {
		for _, a := range addrs {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			r, err := s.auth.Account(ctx, a)
			cancel()
			switch {
			case err != nil:
				s.log.Warn("checking an account with open sessions", "user", a, "err", err)
			case !r.Exists:
				w.Changed(auth.AccountEvent{Address: a, Change: auth.ChangeDeleted})
			case r.Disabled:
				w.Changed(auth.AccountEvent{Address: a, Change: auth.ChangeDisabled})
			}
		}
	}()
}

// Lost turns the login cache off and empties it.
func (w accountWatch) Lost(err error) {
	s := w.s
	s.mu.Lock()
	s.authLive = false
	s.gen++
	s.logins.clear()
	s.mu.Unlock()
	s.log.Warn("authd's account changes are not heard; logins go to authd every time until they are", "err", err)
}

// Changed drops the account's cached logins and, when it was disabled or deleted, ends
// its sessions.
func (w accountWatch) Changed(ev auth.AccountEvent) {
	s := w.s
	reason := "Account " + ev.Change
	var end []conn
	s.mu.Lock()
	s.gen++
	dropped := s.logins.dropAccount(ev.Address)
	if ev.Ends() {
		for c, a := range s.bound {
			if a == ev.Address {
				end = append(end, c)
			}
		}
	}
	s.mu.Unlock()
	for _, c := range end {
		c.revoke(reason)
	}
	s.log.Info("account changed", "user", ev.Address, "change", ev.Change, "cached_logins_dropped", dropped, "sessions_ended", len(end))
}

// generation returns the count of account changes heard (or subscriptions lost), and
// whether the login cache may answer.
func (s *Server) generation() (gen uint64, live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen, s.authLive
}

// remember puts a login authd accepted into the cache, unless an account changed since
// gen (the answer may be stale) or changes are not heard.
func (s *Server) remember(gen uint64, user, password string, ip netip.Addr, addr, maildir string, quota int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.authLive && s.gen == gen {
		s.logins.put(user, password, ip, addr, maildir, quota)
	}
}

// bind ties session c to the account addr, whose login was checked as of gen: from now on
// the account's being disabled or deleted ends c. It fails when an account changed since
// gen: the login must be checked again.
func (s *Server) bind(c conn, addr string, gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return false
	}
	s.bound[c] = addr
	return true
}

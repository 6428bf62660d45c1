package main

import (
	"strings"
	"sync"

	"postern/pkg/imap"
)

// NOTIFY (RFC 5465): a session tells which mailboxes it wants to hear about. imapd
// supports the message events (MessageNew, MessageExpunge, FlagChange) for every filter:
// changes to a mailbox other than the selected one are reported with STATUS responses
// (§5.1: MESSAGES, UIDNEXT and UIDVALIDITY for new messages, MESSAGES for expunges,
// UIDVALIDITY and HIGHESTMODSEQ for flag changes), at the next
// command or at once during IDLE; the selected mailbox is reported as always. The
// mailbox events (MailboxName, SubscriptionChange) and metadata events are refused
// with NO [BADEVENT] (§3), as are fetch attributes with MessageNew.

// notifyEvents are the events imapd reports, in the order of its BADEVENT answer.
var notifyEvents = []string{"MessageNew", "MessageExpunge", "FlagChange"}

// notifyGroup is an event group of NOTIFY SET with canonical mailbox names.
type notifyGroup struct {
	filter string
	names  []string
	events map[string]bool // by notifyEvents name; empty for NONE
}

// notifyWatchers are the sessions of an account that asked for NOTIFY, with their
// state (which other sessions' goroutines reach through here, not through the session).
type notifyWatchers struct {
	mu       sync.Mutex
	sessions map[*Session]*notifyState
}

// notifyState is a session's NOTIFY state.
type notifyState struct {
	groups []notifyGroup
	mu     sync.Mutex
	// pending are the names of mailboxes that changed since they were last reported.
	pending map[string]bool
}

// notifyCmd runs NOTIFY (RFC 5465 §3).
func (s *Session) notifyCmd(c *imap.Command) {
	w := &s.acct.watchers
	if c.Notify.None {
		w.remove(s)
		s.notify = nil
		s.done(c, "NOTIFY completed")
		return
	}
	st := &notifyState{pending: map[string]bool{}}
	for _, g := range c.Notify.Groups {
		ng := notifyGroup{filter: g.Filter, events: map[string]bool{}}
		for _, raw := range g.Mailboxes {
			name, err := s.mailboxName(raw)
			if err == nil {
				name, _, err = s.acct.canonical(name)
			}
			if err != nil {
				s.mailboxError(c, err)
				return
			}
			ng.names = append(ng.names, name)
		}
		for _, e := range g.Events {
			i := -1
			for j, k := range notifyEvents {
				if strings.EqualFold(k, e) {
					i = j
				}
			}
			if i < 0 || len(g.FetchAtts) > 0 {
				// §3: NO [BADEVENT] lists the events the server supports.
				s.no(c, "[BADEVENT ("+strings.Join(notifyEvents, " ")+")] Event not supported")
				return
			}
			ng.events[notifyEvents[i]] = true
		}
		st.groups = append(st.groups, ng)
	}
	s.notify = st
	w.add(s, st)
	if c.Notify.Status {
		// §3: a STATUS response for every mailbox the groups name, except the
		// selected one.
		folders, _ := s.acct.folders()
		for _, f := range folders {
			if s.mb != nil && f == s.mb.name {
				continue
			}
			if items := s.notifyItems(f); len(items) > 0 {
				s.statusOf(f, items)
			}
		}
	}
	s.done(c, "NOTIFY completed")
}

// groupFor returns the events for the mailbox name (not the selected one): those of the
// first group whose filter matches it.
func (s *Session) groupFor(name string) map[string]bool {
	var subs map[string]bool
	for _, g := range s.notify.groups {
		match := false
		switch g.filter {
		case "INBOXES":
			match = name == "INBOX"
		case "PERSONAL":
			match = true
		case "SUBSCRIBED":
			if subs == nil {
				subs = s.acct.subscriptions()
			}
			match = subs[name]
		case "MAILBOXES":
			match = has(g.names, name)
		case "SUBTREE":
			for _, n := range g.names {
				match = match || name == n || strings.HasPrefix(name, n+"/")
			}
		}
		if match {
			return g.events
		}
	}
	return nil
}

// notifyItems returns the STATUS items the events of name call for (§5.1).
func (s *Session) notifyItems(name string) []string {
	ev := s.groupFor(name)
	var items []string
	if ev["MessageNew"] || ev["MessageExpunge"] {
		items = append(items, "MESSAGES")
	}
	if ev["MessageNew"] {
		items = append(items, "UIDNEXT", "UIDVALIDITY")
	}
	if ev["FlagChange"] {
		// Flag changes show in the mod-sequence (as Dovecot reports them too,
		// CONDSTORE enabled or not).
		if !ev["MessageNew"] {
			items = append(items, "UIDVALIDITY")
		}
		items = append(items, "HIGHESTMODSEQ")
	}
	return items
}

// flushNotify writes the STATUS responses of the mailboxes that changed.
func (s *Session) flushNotify() {
	st := s.notify
	if st == nil {
		return
	}
	st.mu.Lock()
	names := make([]string, 0, len(st.pending))
	for n := range st.pending {
		names = append(names, n)
	}
	clear(st.pending)
	st.mu.Unlock()
	for _, n := range names {
		if s.mb != nil && n == s.mb.name {
			continue
		}
		if items := s.notifyItems(n); len(items) > 0 {
			s.statusOf(n, items)
		}
	}
}

func (w *notifyWatchers) add(s *Session, st *notifyState) {
	w.mu.Lock()
	if w.sessions == nil {
		w.sessions = map[*Session]*notifyState{}
	}
	w.sessions[s] = st
	w.mu.Unlock()
}

func (w *notifyWatchers) remove(s *Session) {
	w.mu.Lock()
	delete(w.sessions, s)
	w.mu.Unlock()
}

// changed tells the watching sessions (but except, which made the change) that mb
// changed.
func (w *notifyWatchers) changed(mb *Mailbox, except *Session) {
	w.mu.Lock()
	if len(w.sessions) == 0 {
		w.mu.Unlock()
		return
	}
	type watcher struct {
		s  *Session
		st *notifyState
	}
	var ws []watcher
	for s, st := range w.sessions {
		if s != except {
			ws = append(ws, watcher{s, st})
		}
	}
	w.mu.Unlock()
	for _, x := range ws {
		x.st.mu.Lock()
		x.st.pending[mb.name] = true
		x.st.mu.Unlock()
		x.s.wake()
	}
}

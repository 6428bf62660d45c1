package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"

	"postern/pkg/imap"
)

// update tells the client what changed in the selected mailbox since it last heard:
// EXPUNGE for messages gone (only when allowExpunge: RFC 3501 §7.4.1 forbids it during
// FETCH, STORE and SEARCH, whose message numbers must not shift), EXISTS (and RECENT
// for IMAP4rev1) for new ones, and FETCH FLAGS for flags changed by other sessions.
func (s *Session) update(allowExpunge bool) {
	// NOTIFY (RFC 5465): other mailboxes that changed.
	s.flushNotify()
	mb := s.mb
	if mb == nil {
		return
	}
	mb.mu.RLock()
	if mb.deleted {
		mb.mu.RUnlock()
		// The mailbox was deleted or renamed under us; Dovecot ends the session too.
		s.untagged("BYE Selected mailbox was deleted or renamed")
		s.state = stateLogout
		return
	}
	msgs := mb.msgs
	removed := 0
	if allowExpunge {
		j := 0
		kept := s.view[:0]
		var vanished []uint32
		for i, uid := range s.view {
			for j < len(msgs) && msgs[j].uid < uid {
				j++
			}
			if j < len(msgs) && msgs[j].uid == uid {
				kept = append(kept, uid)
				continue
			}
			removed++
			if s.qresync {
				// RFC 7162 §3.2.10: VANISHED replaces EXPUNGE once QRESYNC is on.
				vanished = append(vanished, uid)
				continue
			}
			// Each EXPUNGE renumbers the messages after it (RFC 3501 §7.4.1).
			b := append(s.buf[:0], "* "...)
			b = strconv.AppendInt(b, int64(i+2-removed), 10)
			s.buf = append(b, " EXPUNGE\r\n"...)
			s.w.Write(s.buf)
		}
		s.view = kept
		if len(vanished) > 0 {
			s.writeVanished(false, toRanges(vanished))
		}
		if removed > 0 && s.saved != nil {
			s.saved = s.pruneSaved()
		}
	}
	if len(mb.keywords) > len(s.keywords) {
		// Keywords new in the folder, whether or not a message this session sees
		// has them: every session lists the same ones (RFC 3501 §7.2.6).
		s.announceKeywords(mb.keywords)
	}
	var last uint32
	if len(s.view) > 0 {
		last = s.view[len(s.view)-1]
	}
	// Flags changed by others, on messages the client knows.
	if mb.modseq > s.seenModseq {
		j := 0
		for i, uid := range s.view {
			for j < len(msgs) && msgs[j].uid < uid {
				j++
			}
			if j == len(msgs) {
				break
			}
			if m := msgs[j]; m.uid == uid && m.modseq > s.seenModseq {
				s.writeFlags(i+1, m)
			}
		}
	}
	first := sort.Search(len(msgs), func(i int) bool { return msgs[i].uid > last })
	added := msgs[first:]
	recentFrom := mb.recentFrom
	// What this update reported is the state at this modseq; a change made after the
	// lock is released is reported by the next update, not skipped.
	modseq := mb.modseq
	mb.mu.RUnlock()
	if testHookUpdate != nil {
		testHookUpdate()
	}
	if len(added) > 0 {
		for _, m := range added {
			s.view = append(s.view, m.uid)
		}
		s.untagged(strconv.Itoa(len(s.view)) + " EXISTS")
		if added[len(added)-1].uid >= recentFrom {
			s.claimRecent(added[0].uid, added[len(added)-1].uid)
		}
	}
	if !s.rev2 && (len(added) > 0 || removed > 0) {
		// RFC 3501 §7.3.2: RECENT goes with a change of the mailbox's size; after
		// EXPUNGEs only when the number changed (clients such as imaptest keep the
		// last number they were told, and EXPUNGE does not lower it).
		if n := s.recentCount(); len(added) > 0 || n != s.recentSent {
			s.untagged(strconv.Itoa(n) + " RECENT")
			s.recentSent = n
		}
	}
	s.seenModseq = max(s.seenModseq, modseq)
}

// testHookUpdate, set by tests only, runs in update between reading the mailbox and
// the end of the update, where other sessions may change it.
var testHookUpdate func()

func (mb *Mailbox) modseqNow() uint64 {
	mb.mu.RLock()
	defer mb.mu.RUnlock()
	return mb.modseq
}

// claimRecent makes the mailbox's not yet claimed new messages \Recent in this
// session (RFC 3501 §2.3.2: one session only). A read-only session sees those among
// the UIDs from to to, just added to its view, as \Recent and leaves them to a
// read-write session.
func (s *Session) claimRecent(from, to uint32) {
	mb := s.mb
	mb.mu.Lock()
	if mb.recentFrom < mb.uidNext {
		if s.readOnly {
			if start := max(mb.recentFrom, from); start <= to {
				s.recent = append(s.recent, imap.SeqRange{Start: start, Stop: to})
			}
		} else {
			s.recent = append(s.recent, imap.SeqRange{Start: mb.recentFrom, Stop: mb.uidNext - 1})
			mb.recentFrom = mb.uidNext
		}
	}
	mb.mu.Unlock()
}

func (s *Session) isRecent(uid uint32) bool {
	for _, r := range s.recent {
		if r.Start <= uid && uid <= r.Stop {
			return true
		}
	}
	return false
}

func (s *Session) recentCount() int {
	n := 0
	for _, r := range s.recent {
		i := sort.Search(len(s.view), func(i int) bool { return s.view[i] >= r.Start })
		j := sort.Search(len(s.view), func(i int) bool { return s.view[i] > r.Stop })
		n += j - i
	}
	return n
}

func (s *Session) pruneSaved() []uint32 {
	out := s.saved[:0]
	for _, u := range s.saved {
		if _, ok := s.viewIndex(u); ok {
			out = append(out, u)
		}
	}
	return out
}

// writeFlagsList writes the FLAGS response with the system flags and s.keywords, and
// the PERMANENTFLAGS that go with it (RFC 3501 §7.2.6 and §7.1, RFC 9051 §7.3.5).
func (s *Session) writeFlagsList() {
	sort.Strings(s.keywords)
	flags := `\Answered \Flagged \Deleted \Seen \Draft`
	if len(s.keywords) > 0 {
		flags += " " + strings.Join(s.keywords, " ")
	}
	s.untagged("FLAGS (" + flags + ")")
	if s.readOnly {
		s.untagged("OK [PERMANENTFLAGS ()] Read-only mailbox")
	} else {
		s.untagged("OK [PERMANENTFLAGS (" + flags + ` \*)] Flags permitted`)
	}
}

// announceKeywords makes sure that the client has seen every keyword of kws in a FLAGS
// response before a FETCH shows it on a message: FLAGS lists the flags that apply in
// the mailbox (RFC 3501 §7.2.6, RFC 9051 §7.3.5), and a client such as imaptest takes
// a keyword it was not told of for a server error. A keyword new to the session, set
// by this session or by another one, gets a new FLAGS (and PERMANENTFLAGS) first, which
// keeps every keyword listed before, as Dovecot does.
func (s *Session) announceKeywords(kws []string) {
	added := false
	for _, k := range kws {
		if !hasFold(s.keywords, k) {
			s.keywords = append(s.keywords, k)
			added = true
		}
	}
	if added {
		s.writeFlagsList()
	}
}

// writeFlags writes an unsolicited or STORE FETCH response: FLAGS, UID, and MODSEQ
// once CONDSTORE is on (RFC 7162 §3.1.4.1 and §3.2).
func (s *Session) writeFlags(seq int, m *message) {
	s.announceKeywords(m.keywords)
	b := append(s.buf[:0], "* "...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, " FETCH (UID "...)
	b = strconv.AppendUint(b, uint64(m.uid), 10)
	b = append(b, " FLAGS "...)
	b = m.appendFlags(b, !s.rev2 && s.isRecent(m.uid))
	if s.condstore {
		b = append(b, " MODSEQ ("...)
		b = strconv.AppendUint(b, m.modseq, 10)
		b = append(b, ')')
	}
	s.buf = append(b, ")\r\n"...)
	s.w.Write(s.buf)
}

// wake is called by a mailbox when it changed. A session in IDLE hears of it at once
// (RFC 2177), from a short-lived goroutine; the others at their next command.
func (s *Session) wake() {
	if !s.idling.Load() || !s.waking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.waking.Store(false)
		if s.idling.Load() && (s.state == stateSelected || s.notify != nil) {
			s.begin()
			s.update(true)
			s.end()
		}
	}()
}

// idleLine reads the line that ends IDLE. When nothing is buffered, the read buffer
// goes back to the pool for the wait and the line is read through a small one.
func (s *Session) idleLine() ([]byte, error) {
	if s.br.Buffered() > 0 {
		return s.dec.ReadLine()
	}
	s.br.Reset(nil)
	readerPool.Put(s.br)
	s.br = nil
	var small [64]byte
	var line []byte
	var err error
	for {
		var n int
		n, err = s.conn.Read(small[:])
		line = append(line, small[:n]...)
		if err != nil || bytes.IndexByte(line, '\n') >= 0 || len(line) > 1024 {
			break
		}
	}
	s.br = readerPool.Get().(*bufio.Reader)
	var rest []byte
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line, rest = line[:i], line[i+1:]
	} else if err == nil {
		err = errors.New("line too long")
	}
	if len(rest) > 0 {
		// Commands pipelined after DONE.
		s.br.Reset(io.MultiReader(bytes.NewReader(append([]byte(nil), rest...)), s.conn))
	} else {
		s.br.Reset(s.conn)
	}
	s.dec.Reset(s.br)
	return bytes.TrimSuffix(line, []byte("\r")), err
}

// idle runs IDLE (RFC 2177, RFC 9051 §6.3.13): changes are pushed while the client
// waits; DONE ends it. The response buffer is given back while idling, so an idle
// connection holds only its goroutine, its read buffer and its view.
func (s *Session) idle(c *imap.Command) {
	s.update(true)
	s.w.WriteString("+ idling\r\n")
	s.end()
	s.idling.Store(true)
	s.mu.Unlock()
	if s.mb != nil || s.notify != nil {
		// What changed between the update above and idling.
		s.wake()
	}
	s.setReadDeadline()
	line, err := s.idleLine()
	s.idling.Store(false)
	s.mu.Lock()
	s.begin()
	if err != nil {
		if isTimeout(err) && !s.closing.Load() {
			s.untagged("BYE Autologout; idle for too long")
		} else if s.closing.Load() {
			s.untagged(s.bye())
		}
		s.state = stateLogout
		return
	}
	if !strings.EqualFold(string(line), "DONE") {
		s.tagged(c.Tag, "BAD", "Expected DONE")
		return
	}
	s.done(c, "IDLE terminated")
}

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"postern/pkg/imap"
	"postern/pkg/maildir"
)

// mailboxName turns a mailbox argument into its UTF-8 name: IMAP4rev1 clients send
// modified UTF-7 (RFC 3501 §5.1.3), IMAP4rev2 clients and those that enabled
// UTF8=ACCEPT UTF-8 (RFC 9051 §5.1, RFC 6855 §3). A rev1 client that sends raw UTF-8
// anyway is understood.
func (s *Session) mailboxName(raw string) (string, error) {
	if s.rev2 || s.utf8 {
		if !utf8.ValidString(raw) {
			return "", &nameError{"mailbox name is not UTF-8"}
		}
		return raw, nil
	}
	n, err := imap.DecodeUTF7(raw)
	if err != nil {
		if utf8.ValidString(raw) && !isASCII(raw) {
			return raw, nil
		}
		return "", &nameError{"mailbox name is not valid modified UTF-7"}
	}
	return n, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// wireName is a UTF-8 mailbox name as this client reads it.
func (s *Session) wireName(name string) string {
	if s.rev2 || s.utf8 {
		return name
	}
	return imap.EncodeUTF7(name)
}

// appendName appends a mailbox name in wire form.
func (s *Session) appendName(b []byte, name string) []byte {
	return imap.AppendMailbox(b, s.wireName(name))
}

// mailboxError answers a failed mailbox operation with the response code that fits
// (RFC 5530).
func (s *Session) mailboxError(c *imap.Command, err error) {
	var ne *nameError
	switch {
	case errors.As(err, &ne):
		s.no(c, "[CANNOT] "+ne.msg)
	case errors.Is(err, errNoMailbox):
		s.no(c, "[NONEXISTENT] No such mailbox")
	case errors.Is(err, fs.ErrExist):
		s.no(c, "[ALREADYEXISTS] Mailbox exists already")
	case errors.Is(err, errGone):
		s.no(c, "[NONEXISTENT] Mailbox was deleted")
	default:
		s.log.Error("mailbox operation", "command", c.Name, "err", err)
		s.no(c, "[SERVERBUG] Internal error, see the server log")
	}
}

func (s *Session) unselect() {
	if s.mb == nil {
		return
	}
	s.mb.removeSession(s)
	s.acct.release(s.mb)
	s.mb, s.view, s.recent, s.saved = nil, nil, nil, nil
}

func (s *Session) selectCmd(c *imap.Command) {
	if s.mb != nil {
		s.unselect()
		s.state = stateAuth
		// RFC 9051 §6.3.2 (and RFC 7162 §3.2.11 for QRESYNC): the old mailbox is
		// closed before the new one's responses.
		s.untagged("OK [CLOSED] Previous mailbox closed")
	}
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	if c.QResync != nil && !s.qresync {
		// RFC 7162 §3.2.5: QRESYNC without ENABLE QRESYNC first is BAD.
		s.tagged(c.Tag, "BAD", "QRESYNC is not enabled")
		return
	}
	mb, err := s.acct.openMailbox(name)
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	if c.CondStore {
		s.enableCondstore()
	}
	s.mb = mb
	s.readOnly = c.Name == "EXAMINE"
	s.saved = nil
	mb.addSession(s)
	mb.mu.Lock()
	s.view = make([]uint32, len(mb.msgs))
	// FLAGS lists every keyword of the folder, in use or not (as Dovecot does), so
	// that all sessions have the same list.
	s.keywords = append(s.keywords[:0], mb.keywords...)
	firstUnseen := 0
	for i, m := range mb.msgs {
		s.view[i] = m.uid
		if firstUnseen == 0 && m.flags&flagSeen == 0 {
			firstUnseen = i + 1
		}
	}
	s.seenModseq = mb.modseq
	s.recent = nil
	nrecent := 0
	if mb.recentFrom < mb.uidNext {
		// This session is the first to see them: they are \Recent here. A read-write
		// session takes them, so that no later one sees them as \Recent; EXAMINE
		// reports them and leaves them (RFC 3501 §2.3.2 and §6.3.2).
		s.recent = append(s.recent, imap.SeqRange{Start: mb.recentFrom, Stop: mb.uidNext - 1})
		i, _ := mb.find(mb.recentFrom)
		nrecent = len(mb.msgs) - i
		if !s.readOnly {
			mb.recentFrom = mb.uidNext
		}
	}
	validity, next, modseq := mb.uidValidity, mb.uidNext, mb.modseq
	mb.mu.Unlock()

	s.writeFlagsList()
	s.untagged(strconv.Itoa(len(s.view)) + " EXISTS")
	if !s.rev2 {
		// RFC 3501 §6.3.1; IMAP4rev2 dropped RECENT and UNSEEN (RFC 9051 App. E).
		s.untagged(strconv.Itoa(nrecent) + " RECENT")
		s.recentSent = nrecent
		if firstUnseen > 0 {
			s.untagged("OK [UNSEEN " + strconv.Itoa(firstUnseen) + "] First unseen")
		}
	}
	s.untagged("OK [UIDVALIDITY " + strconv.FormatUint(uint64(validity), 10) + "] UIDs valid")
	s.untagged("OK [UIDNEXT " + strconv.FormatUint(uint64(next), 10) + "] Predicted next UID")
	// RFC 8474 §4.2.
	s.untagged("OK [MAILBOXID (" + mailboxID(validity) + ")] Ok")
	// RFC 7162 §3.1.2.1: every SELECT/EXAMINE of a CONDSTORE server says it.
	s.untagged("OK [HIGHESTMODSEQ " + strconv.FormatUint(modseq, 10) + "] Highest")
	if s.rev2 {
		// RFC 9051 §6.3.2: the mailbox's LIST response.
		b := append(s.buf[:0], `* LIST () "/" `...)
		b = s.appendName(b, mb.name)
		s.w.Write(append(b, "\r\n"...))
	}
	if c.QResync != nil {
		s.qresyncSelect(c.QResync, validity)
	}
	s.state = stateSelected
	if s.readOnly {
		s.tagged(c.Tag, "OK", "[READ-ONLY] EXAMINE completed")
	} else {
		s.tagged(c.Tag, "OK", "[READ-WRITE] SELECT completed")
	}
}

func (s *Session) create(c *imap.Command) {
	uses, err := checkUses(c.SpecialUse)
	if err != nil {
		// RFC 6154 §3.
		s.no(c, "[USEATTR] Special-use attributes that can be given: "+strings.Join(creatableUses, " "))
		return
	}
	name, err := s.mailboxName(c.Mailbox)
	if err == nil {
		// RFC 3501 §6.3.3: a trailing separator means "will have children".
		name = strings.TrimSuffix(name, "/")
		err = s.acct.create(name)
	}
	if err == nil && len(uses) > 0 {
		err = s.acct.setSpecialUse(name, uses)
	}
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	code := ""
	if mb, err := s.acct.openMailbox(name); err == nil {
		// RFC 8474 §4.1: the new mailbox's id in the tagged OK.
		code = "[MAILBOXID (" + mailboxID(mb.uidValidity) + ")] "
		s.acct.release(mb)
	}
	s.done(c, code+"CREATE completed")
}

func (s *Session) deleteCmd(c *imap.Command) {
	name, err := s.mailboxName(c.Mailbox)
	if err == nil && s.mb != nil {
		if n, _, _ := s.acct.canonical(name); n == s.mb.name {
			// Deleting the selected mailbox: leave it first.
			s.unselect()
			s.state = stateAuth
		}
	}
	if err == nil {
		err = s.acct.deleteFolder(name)
	}
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	s.done(c, "DELETE completed")
}

func (s *Session) renameCmd(c *imap.Command) {
	from, err := s.mailboxName(c.Mailbox)
	var to string
	if err == nil {
		to, err = s.mailboxName(c.NewName)
	}
	if err == nil && s.mb != nil {
		if n, _, _ := s.acct.canonical(from); n == s.mb.name && n != "INBOX" {
			s.unselect()
			s.state = stateAuth
		}
	}
	if err == nil {
		err = s.acct.rename(from, to)
	}
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	s.done(c, "RENAME completed")
}

func (s *Session) subscribeCmd(c *imap.Command) {
	name, err := s.mailboxName(c.Mailbox)
	if err == nil {
		err = s.acct.subscribe(name, c.Name == "SUBSCRIBE")
	}
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	s.done(c, c.Name+" completed")
}

// specialUse gives the special-use attribute (RFC 6154 §2) of the default folders.
func specialUse(name string) string {
	switch name {
	case "Sent":
		return `\Sent`
	case "Drafts":
		return `\Drafts`
	case "Junk":
		return `\Junk`
	case "Trash":
		return `\Trash`
	case "Archive":
		return `\Archive`
	}
	return ""
}

// match reports whether name matches a LIST pattern: "*" matches anything, "%" anything
// but the separator "/" (RFC 3501 §6.3.8). INBOX matches case-insensitively.
func match(pattern, name string) bool {
	if len(name) >= 5 && strings.EqualFold(name[:5], "INBOX") && (len(name) == 5 || name[5] == '/') &&
		len(pattern) >= 5 && strings.EqualFold(pattern[:5], "INBOX") {
		pattern = "INBOX" + pattern[5:]
	}
	return matchAt(pattern, name, 0)
}

func matchAt(p, n string, depth int) bool {
	if depth > 20 {
		return false
	}
	for len(p) > 0 {
		switch p[0] {
		case '*', '%':
			wild := p[0]
			for len(p) > 0 && (p[0] == '*' || p[0] == '%') {
				if p[0] == '*' {
					wild = '*'
				}
				p = p[1:]
			}
			if len(p) == 0 {
				return wild == '*' || !strings.Contains(n, "/")
			}
			for i := 0; i <= len(n); i++ {
				if matchAt(p, n[i:], depth+1) {
					return true
				}
				if i < len(n) && wild == '%' && n[i] == '/' {
					return false
				}
			}
			return false
		default:
			if len(n) == 0 || n[0] != p[0] {
				return false
			}
			p, n = p[1:], n[1:]
		}
	}
	return len(n) == 0
}

type listEntry struct {
	name      string
	exists    bool
	children  bool
	subscribe bool
}

func has(l []string, s string) bool { return slices.Contains(l, s) }

// hasFold reports whether l holds s, compared case-insensitively (keywords, RFC 3501
// §2.3.2).
func hasFold(l []string, s string) bool {
	return slices.ContainsFunc(l, func(x string) bool { return strings.EqualFold(x, s) })
}

// The LIST-EXTENDED options this server knows (RFC 5258 §3, RFC 6154 §5, RFC 5819).
var (
	listSelectionOptions = []string{"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
	listReturnOptions    = []string{"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"}
)

func (s *Session) list(c *imap.Command) {
	l := c.List
	lsub := c.Name == "LSUB"
	// RFC 5258 §3: a selection or return option the server does not know makes the
	// command invalid: BAD, not a listing that ignores it.
	for _, o := range l.Selection {
		if !has(listSelectionOptions, o) {
			s.tagged(c.Tag, "BAD", "Unknown LIST selection option "+o)
			return
		}
	}
	for _, o := range l.Return {
		if !has(listReturnOptions, o) {
			s.tagged(c.Tag, "BAD", "Unknown LIST return option "+o)
			return
		}
	}
	// A reference or pattern that is not a valid mailbox name (modified UTF-7 for an
	// IMAP4rev1 client) is no error: it is not a name being created, it merely matches
	// no mailbox, since every name this server lists is valid (RFC 3501 §6.3.8 "the
	// reference and mailbox name arguments are interpreted into a canonical form that
	// represents an unambiguous left-to-right hierarchy").
	ref, err := s.mailboxName(c.Mailbox)
	valid := err == nil
	var patterns []string
	for _, p := range l.Patterns {
		if p, err := s.mailboxName(p); err == nil && valid {
			patterns = append(patterns, p)
		}
	}
	if !lsub && len(l.Patterns) == 1 && len(patterns) == 1 && patterns[0] == "" && !l.Extended {
		// RFC 3501 §6.3.8: the hierarchy delimiter and root.
		s.untagged(`LIST (\Noselect) "/" ""`)
		s.done(c, "LIST completed")
		return
	}
	if len(patterns) == 0 {
		s.done(c, c.Name+" completed")
		return
	}
	folders, err := s.acct.folders()
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	// RFC 5258 §3: RECURSIVEMATCH qualifies another selection option; alone (or
	// with REMOTE only) it is a syntax error.
	recursive := has(l.Selection, "RECURSIVEMATCH")
	if recursive && !has(l.Selection, "SUBSCRIBED") && !has(l.Selection, "SPECIAL-USE") {
		s.tagged(c.Tag, "BAD", "RECURSIVEMATCH needs another selection option")
		return
	}
	subs := s.acct.subscriptions()
	subscribedOnly := lsub || has(l.Selection, "SUBSCRIBED")
	matches := func(n string) bool {
		for _, p := range patterns {
			if match(ref+p, n) {
				return true
			}
		}
		return false
	}
	// unlisted are the subscribed names that no pattern matches. A name above one of
	// them is listed for it: by LSUB with \Noselect when it is not subscribed itself
	// (RFC 3501 §6.3.9: "foo/bar" subscribed, LSUB "%" returns "foo", \Noselect), by
	// LIST (SUBSCRIBED RECURSIVEMATCH) with CHILDINFO (RFC 5258 §3.5 and §4: only
	// for children that meet the selection criteria but are not listed themselves).
	var unlisted []string
	if lsub || recursive {
		for sn := range subs {
			if !matches(sn) {
				unlisted = append(unlisted, sn)
			}
		}
	}
	unlistedBelow := func(n string) bool {
		for _, sn := range unlisted {
			if strings.HasPrefix(sn, n+"/") {
				return true
			}
		}
		return false
	}
	specialOnly := has(l.Selection, "SPECIAL-USE")
	// Attributes given at CREATE (RFC 6154 §3), else those of the standard folders.
	created := s.acct.createdUses()
	specialUse := func(n string) string { return folderUses(created, n) }
	retSubscribed := has(l.Return, "SUBSCRIBED") || has(l.Selection, "SUBSCRIBED")

	entries := map[string]*listEntry{}
	for _, f := range folders {
		entries[f] = &listEntry{name: f, exists: true, subscribe: subs[f]}
	}
	for n := range subs {
		if entries[n] == nil && subscribedOnly {
			entries[n] = &listEntry{name: n, subscribe: true}
		}
	}
	// Parents: a name "A/B" gives "A" children; an absent "A" is listed as
	// \NonExistent / \Noselect when a pattern asks for it.
	for _, f := range folders {
		for i := strings.LastIndexByte(f, '/'); i > 0; i = strings.LastIndexByte(f[:i], '/') {
			p := f[:i]
			e := entries[p]
			if e == nil {
				e = &listEntry{name: p}
				entries[p] = e
			}
			e.children = true
		}
	}
	for n := range subs {
		// Parents of subscribed names, for RECURSIVEMATCH and LSUB.
		for i := strings.LastIndexByte(n, '/'); i > 0; i = strings.LastIndexByte(n[:i], '/') {
			if entries[n[:i]] == nil {
				entries[n[:i]] = &listEntry{name: n[:i], children: true}
			}
		}
	}
	childInfo := map[string]bool{}
	noselect := map[string]bool{} // LSUB: listed only for a subscribed name below
	var names []string
	for n, e := range entries {
		switch {
		case lsub && !e.subscribe:
			if !unlistedBelow(n) {
				continue
			}
			noselect[n] = true
		case subscribedOnly && recursive && unlistedBelow(n):
			childInfo[n] = true
		case subscribedOnly && !e.subscribe:
			continue
		}
		if !e.exists && !e.subscribe && !e.children && !childInfo[n] && !noselect[n] {
			continue
		}
		if specialOnly && (specialUse(n) == "" || !e.exists) {
			continue
		}
		for _, p := range patterns {
			if match(ref+p, n) {
				if !e.exists && !e.subscribe && !childInfo[n] && !noselect[n] && !strings.Contains(p, "%") {
					// A missing parent matched by "*" only: its children are listed.
					break
				}
				names = append(names, n)
				break
			}
		}
	}
	sort.Slice(names, func(i, j int) bool {
		if names[i] == "INBOX" || names[j] == "INBOX" {
			return names[i] == "INBOX" && names[j] != "INBOX"
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		e := entries[n]
		var attrs []string
		if !e.exists || noselect[n] {
			if lsub {
				attrs = append(attrs, `\Noselect`)
			} else if l.Extended {
				attrs = append(attrs, `\NonExistent`)
			} else {
				attrs = append(attrs, `\Noselect`)
			}
		}
		if !lsub {
			if e.children {
				attrs = append(attrs, `\HasChildren`)
			} else if e.exists {
				attrs = append(attrs, `\HasNoChildren`)
			}
			if u := specialUse(n); u != "" && e.exists {
				attrs = append(attrs, u)
			}
			if retSubscribed && e.subscribe {
				attrs = append(attrs, `\Subscribed`)
			}
		}
		b := append(s.buf[:0], "* "...)
		b = append(b, c.Name...)
		b = append(b, " ("...)
		b = append(b, strings.Join(attrs, " ")...)
		b = append(b, `) "/" `...)
		b = s.appendName(b, n)
		if childInfo[n] {
			b = append(b, ` ("CHILDINFO" ("SUBSCRIBED"))`...)
		}
		s.buf = append(b, "\r\n"...)
		s.w.Write(s.buf)
		if l.StatusItems != nil && e.exists {
			// LIST-STATUS (RFC 5819 §2): the STATUS after its LIST.
			s.statusOf(n, l.StatusItems)
		}
	}
	s.done(c, c.Name+" completed")
}

func (s *Session) status(c *imap.Command) {
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	for _, it := range c.StatusItems {
		switch it {
		case "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "HIGHESTMODSEQ", "MAILBOXID":
		default:
			s.tagged(c.Tag, "BAD", "Unknown STATUS item "+it)
			return
		}
	}
	if has(c.StatusItems, "HIGHESTMODSEQ") {
		s.enableCondstore()
	}
	if err := s.statusOf(name, c.StatusItems); err != nil {
		s.mailboxError(c, err)
		return
	}
	s.done(c, "STATUS completed")
}

// statusOf writes the STATUS response of a mailbox (RFC 3501 §6.3.10, RFC 9051 §6.3.11
// with DELETED and SIZE, RFC 7162 HIGHESTMODSEQ).
func (s *Session) statusOf(name string, items []string) error {
	mb, err := s.acct.openMailbox(name)
	if err != nil {
		return err
	}
	defer s.acct.release(mb)
	mb.mu.RLock()
	var unseen, deleted, size int64
	for _, m := range mb.msgs {
		if m.flags&flagSeen == 0 {
			unseen++
		}
		if m.flags&flagDeleted != 0 {
			deleted++
		}
		size += m.size
	}
	recent := 0
	if mb.recentFrom < mb.uidNext {
		i, _ := mb.find(mb.recentFrom)
		recent = len(mb.msgs) - i
	}
	vals := map[string]uint64{
		"MESSAGES": uint64(len(mb.msgs)), "RECENT": uint64(recent), "UIDNEXT": uint64(mb.uidNext),
		"UIDVALIDITY": uint64(mb.uidValidity), "UNSEEN": uint64(unseen), "DELETED": uint64(deleted),
		"SIZE": uint64(size), "HIGHESTMODSEQ": mb.modseq,
	}
	mb.mu.RUnlock()
	b := append(s.buf[:0], "* STATUS "...)
	b = s.appendName(b, mb.name)
	b = append(b, " ("...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, it...)
		b = append(b, ' ')
		if it == "MAILBOXID" {
			// RFC 8474 §4.3.
			b = append(b, '(')
			b = append(b, mailboxID(uint32(vals["UIDVALIDITY"]))...)
			b = append(b, ')')
			continue
		}
		b = strconv.AppendUint(b, vals[it], 10)
	}
	s.buf = append(b, ")\r\n"...)
	s.w.Write(s.buf)
	return nil
}

// maxKeywords bounds the keywords one message may carry.
const maxKeywords = 50

// parseFlags turns STORE and APPEND flags into a flagChange; \Recent and unknown
// system flags are refused (RFC 3501 §2.3.2), keywords must be atoms (the parser saw to
// that).
func parseFlags(flags []string) (*flagChange, error) {
	c := &flagChange{}
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			bit := flagBit(f)
			if bit == 0 || bit == flagPassed {
				return nil, fmt.Errorf("cannot store flag %s", f)
			}
			c.bits |= bit
			continue
		}
		if len(f) > imap.MaxKeywordLen {
			return nil, errors.New("keyword too long")
		}
		if !hasFold(c.keywords, f) {
			c.keywords = append(c.keywords, f)
		}
	}
	if len(c.keywords) > maxKeywords {
		return nil, errors.New("too many keywords")
	}
	sort.Strings(c.keywords)
	return c, nil
}

// exactReader fails with io.ErrUnexpectedEOF unless it yields exactly n bytes, so that
// a client that disconnects mid-APPEND leaves no truncated message behind.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	k, err := e.r.Read(p)
	e.n -= int64(k)
	if err == io.EOF && e.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF && e.n == 0 {
		err = nil
	}
	return k, err
}

func (s *Session) appendCmd(c *imap.Command) {
	a := c.Append
	fail := func(f func()) {
		if err := s.dec.SkipAppend(); err != nil {
			s.state = stateLogout
			return
		}
		f()
	}
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		fail(func() { s.mailboxError(c, err) })
		return
	}
	fc, err := parseFlags(a.Flags)
	if err != nil {
		fail(func() { s.tagged(c.Tag, "BAD", err.Error()) })
		return
	}
	mb, err := s.acct.openMailbox(name)
	if err != nil {
		if errors.Is(err, errNoMailbox) {
			// RFC 3501 §6.3.11: TRYCREATE tells the client to CREATE it first.
			fail(func() { s.no(c, "[TRYCREATE] No such mailbox") })
			return
		}
		fail(func() { s.mailboxError(c, err) })
		return
	}
	defer s.acct.release(mb)
	if a.Size == 0 {
		fail(func() { s.no(c, "Empty messages are not stored") })
		return
	}
	if err := s.acct.checkQuota(a.Size, 1); err != nil {
		// RFC 9051 §7.1 (and RFC 5530 §3): OVERQUOTA. The message is taken and
		// dropped first, as Dovecot does: clients such as go-imap give up the
		// connection when a synchronizing literal is refused.
		r, rerr := s.dec.AppendMessage()
		if rerr == nil {
			_, rerr = io.Copy(io.Discard, &exactReader{r: r, n: a.Size})
		}
		if rerr == nil {
			rerr = s.dec.EndAppend()
		}
		if rerr != nil {
			s.state = stateLogout
			return
		}
		s.quotaError(c, err)
		return
	}
	r, err := s.dec.AppendMessage()
	if err != nil {
		s.state = stateLogout
		return
	}
	s.conn.SetReadDeadline(time.Now().Add(s.srv.idleTimeout))
	uid, err := mb.deliver(&exactReader{r: r, n: a.Size}, fc.bits, fc.keywords, a.Date, a.Binary)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || isTimeout(err) {
			s.state = stateLogout
			return
		}
		s.log.Error("APPEND", "folder", mb.name, "err", err)
		io.Copy(io.Discard, r)
		s.dec.EndAppend()
		s.no(c, "[SERVERBUG] Could not store the message")
		return
	}
	if err := s.dec.EndAppend(); err != nil {
		s.state = stateLogout
		return
	}
	mb.changed(s)
	s.addUsage(mb.sizeOf([]uint32{uid}), 1) // a literal8 may have grown in base64
	s.update(true)
	// UIDPLUS (RFC 4315 §3).
	s.tagged(c.Tag, "OK", fmt.Sprintf("[APPENDUID %d %d] APPEND completed", mb.uidValidity, uid))
}

// quotaError answers a failed quota check.
func (s *Session) quotaError(c *imap.Command, err error) {
	if errors.Is(err, errOverQuota) {
		s.no(c, "[OVERQUOTA] Mailbox is full")
		return
	}
	s.log.Error("quota", "err", err)
	s.no(c, "[SERVERBUG] Cannot read the quota")
}

// addUsage keeps the Maildir++ quota file (maildirsize) that local checks in step
// with what imapd adds and removes.
func (s *Session) addUsage(bytes, count int64) { s.acct.addUsage(bytes, count) }

// addUsage is Session.addUsage for the account, for POP3 sessions too.
func (a *Account) addUsage(bytes, count int64) {
	if err := maildir.AddUsage(a.root, bytes, count); err != nil {
		a.log.Debug("updating maildirsize", "err", err)
	}
}

// resolve turns a sequence set into indexes of the view (ascending, without
// duplicates). ok is false for a message number that does not exist (RFC 9051 §6.4:
// BAD). "$" is the saved search result.
func (s *Session) resolve(set imap.SeqSet, uid bool) (idx []int, ok bool) {
	n := len(s.view)
	if set.IsSearchRes() {
		for _, u := range s.saved {
			if i, found := s.viewIndex(u); found {
				idx = append(idx, i)
			}
		}
		return idx, true
	}
	mark := func(lo, hi int) {
		for i := lo; i <= hi; i++ {
			idx = append(idx, i)
		}
	}
	for _, r := range set {
		if uid {
			star := uint32(0)
			if n > 0 {
				star = s.view[n-1]
			}
			lo, hi := r.Bounds(star)
			if n == 0 {
				continue
			}
			i := sort.Search(n, func(i int) bool { return s.view[i] >= lo })
			j := sort.Search(n, func(i int) bool { return s.view[i] > hi })
			mark(i, j-1)
			continue
		}
		if n == 0 && (r.Start == 0 || r.Stop == 0) {
			// "1:*" in an empty mailbox names nothing; clients send it after
			// SELECT without looking at EXISTS.
			continue
		}
		lo, hi := r.Bounds(uint32(n))
		if lo == 0 || int(hi) > n {
			return nil, false
		}
		mark(int(lo)-1, int(hi)-1)
	}
	if len(set) > 1 {
		sort.Ints(idx)
		out := idx[:0]
		for i, x := range idx {
			if i == 0 || x != idx[i-1] {
				out = append(out, x)
			}
		}
		idx = out
	}
	return idx, true
}

// uidsOf returns the UIDs of the view indexes idx (from resolve).
func (s *Session) uidsOf(idx []int) []uint32 {
	uids := make([]uint32, len(idx))
	for i, x := range idx {
		uids[i] = s.view[x]
	}
	return uids
}

func (s *Session) viewIndex(uid uint32) (int, bool) {
	i := sort.Search(len(s.view), func(i int) bool { return s.view[i] >= uid })
	return i, i < len(s.view) && s.view[i] == uid
}

func (s *Session) expungeCmd(c *imap.Command) {
	if s.readOnly {
		s.no(c, "[READ-ONLY] Mailbox is read-only")
		return
	}
	var uids []uint32
	if c.UID {
		idx, _ := s.resolve(c.Set, true)
		uids = s.uidsOf(idx)
		if len(uids) == 0 {
			s.done(c, "EXPUNGE completed")
			return
		}
	}
	gone, freed, err := s.mb.expunge(uids)
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	if len(gone) > 0 {
		s.mb.changed(s)
		s.addUsage(-freed, -int64(len(gone)))
	}
	s.done(c, "EXPUNGE completed")
}

func (s *Session) copyCmd(c *imap.Command) {
	move := c.Name == "MOVE"
	if move && s.readOnly {
		s.no(c, "[READ-ONLY] Mailbox is read-only")
		return
	}
	idx, ok := s.resolve(c.Set, c.UID)
	if !ok {
		s.tagged(c.Tag, "BAD", "Invalid message sequence number")
		return
	}
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	dst, err := s.acct.openMailbox(name)
	if err != nil {
		if errors.Is(err, errNoMailbox) {
			s.no(c, "[TRYCREATE] No such mailbox")
			return
		}
		s.mailboxError(c, err)
		return
	}
	defer s.acct.release(dst)
	uids := s.uidsOf(idx)
	if !move {
		if err := s.acct.checkQuota(s.mb.sizeOf(uids), int64(len(uids))); err != nil {
			s.quotaError(c, err)
			return
		}
	}
	src, dstUIDs, err := s.mb.copyTo(dst, uids, move)
	s.learnMoved(s.mb, dst, dstUIDs)
	if len(dstUIDs) > 0 {
		dst.changed(s)
		if move {
			s.mb.changed(s)
		} else {
			s.addUsage(s.mb.sizeOf(src), int64(len(src)))
		}
	}
	if errors.Is(err, errExpungeIssued) {
		if len(dstUIDs) == 0 {
			// Another session expunged them (RFC 2180 §4.4.1, RFC 5530 §3).
			s.no(c, "[EXPUNGEISSUED] Some of the requested messages no longer exist")
			return
		}
		err = nil // the others were copied; COPYUID says which
	}
	if err != nil && len(dstUIDs) == 0 {
		s.mailboxError(c, err)
		return
	}
	if err != nil {
		s.log.Error(c.Name, "err", err)
	}
	code := ""
	if len(src) > 0 {
		// UIDPLUS (RFC 4315 §3): COPYUID <uidvalidity> <source UIDs> <new UIDs>.
		b := []byte("[COPYUID ")
		b = strconv.AppendUint(b, uint64(dst.uidValidity), 10)
		b = append(b, ' ')
		b = imap.AppendUIDSet(b, src)
		b = append(b, ' ')
		b = imap.AppendUIDSet(b, dstUIDs)
		code = string(append(b, "] "...))
	}
	if move {
		// RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
		if code != "" {
			s.untagged("OK " + strings.TrimSpace(code) + " Moved")
		}
		s.done(c, "MOVE completed")
		return
	}
	s.done(c, code+"COPY completed")
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/dmarc"
	"postern/pkg/ipc"
)

// The block and allow lists of senders: the administrator's (IP addresses and networks,
// domains and mail addresses) and each user's own (domains and addresses). They live in
// spamd's database (<data_dir>/spam/spamd.db, bucket "lists") and in memory, where every
// verdict reads them; mailctl spam block|allow|unblock|lists changes them over
// control/spamd, and the web account page (httpd) a user's own over private/spamd.
//
// What an entry trusts (spamd(8) says the same):
//   - A block entry needs no proof: a forged sender that matches is refused all the same.
//   - An allowed IP address or network is the connection itself, which cannot be forged.
//   - An allowed domain or address is a claim anyone can write, so it counts only when
//     authenticated: the MAIL FROM address when SPF passes for its domain, the From:
//     address when SPF or DKIM passes for a domain aligned with it (relaxed alignment,
//     RFC 7489 §3.1) and DMARC does not fail.
//   - No allow entry overrides SPF's or DMARC's refusals or quarantine (mail in the name
//     of our own domains included): the allow lists override the score, the DNS lists and
//     the classifier. trusted_relays is for hosts whose mail must not be checked at all.
//   - A block entry wins over an allow entry that matches the same message.

// Entry kinds.
const (
	kindIP      = "ip"
	kindAddress = "address"
	kindDomain  = "domain"
)

// Bounds of the lists, so that no caller can make spamd hold much.
const (
	maxEntryLen      = 320
	maxUserEntries   = 1000
	maxGlobalEntries = 100000
	maxEntriesPerOp  = 1000
)

var listsBucket = []byte("lists")

// listEntry is one stored entry.
type listEntry struct {
	Kind       string    `json:"kind"`
	Value      string    `json:"value"`
	Subdomains bool      `json:"subdomains,omitempty"`
	Action     string    `json:"action"`
	Added      time.Time `json:"added"`

	net *net.IPNet // kindIP, parsed
}

// key is the entry's name in its scope: one entry per value, whatever its action.
func (e *listEntry) key() string { return e.Kind + ":" + e.Value }

// parseEntry reads an entry as a user or the administrator gives it: an IP address or
// CIDR (only when ip is true), a mail address (local@domain, angle brackets allowed) or a
// domain. Values are lower-cased; a domain loses its final dot. It is the parser of what
// the web account page will pass on from users, so it trusts nothing.
func parseEntry(s string, ip bool) (listEntry, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") && len(s) >= 2 {
		s = s[1 : len(s)-1]
	}
	if s == "" || len(s) > maxEntryLen {
		return listEntry{}, fmt.Errorf("%q is not an entry (an address, a domain or an IP address)", trimmed(s))
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`<>()[],;:\"`, r) && !(ip && r == ':') {
			return listEntry{}, fmt.Errorf("%q is not an entry: it holds %q", trimmed(s), r)
		}
	}
	if n, err := config.ParseNet(s); err == nil {
		if !ip {
			return listEntry{}, fmt.Errorf("%q: a user's list holds addresses and domains, not IP addresses", s)
		}
		v := n.String()
		if ones, bits := n.Mask.Size(); ones == bits {
			v = n.IP.String()
		}
		return listEntry{Kind: kindIP, Value: v, net: n}, nil
	}
	s = strings.ToLower(s)
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		local, domain := s[:i], s[i+1:]
		if local == "" || strings.ContainsRune(local, '@') {
			return listEntry{}, fmt.Errorf("%q is not a mail address (local@domain)", s)
		}
		d, err := entryDomain(domain)
		if err != nil {
			return listEntry{}, fmt.Errorf("%q is not a mail address: %w", s, err)
		}
		return listEntry{Kind: kindAddress, Value: local + "@" + d}, nil
	}
	d, err := entryDomain(s)
	if err != nil {
		return listEntry{}, err
	}
	return listEntry{Kind: kindDomain, Value: d}, nil
}

// entryDomain checks a domain name (RFC 1035 §2.3.1 letters, digits and hyphens, in
// labels of at most 63; A-labels for international names) and drops its final dot.
func entryDomain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return "", fmt.Errorf("%q is not a domain", d)
	}
	labels := strings.Split(d, ".")
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		// No top-level domain is all digits (RFC 3696 §2): this is an IP address.
		return "", fmt.Errorf("%q is not a domain", d)
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%q is not a domain", d)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return "", fmt.Errorf("%q is not a domain (international names are written as A-labels, xn--...)", d)
			}
		}
	}
	return d, nil
}

func trimmed(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// scope is the entries of the administrator or of one user.
type scope struct {
	entries map[string]*listEntry // by key()
	nets    []*listEntry          // the kindIP entries
}

func (sc *scope) put(e *listEntry) {
	if old := sc.entries[e.key()]; old != nil && old.Kind == kindIP {
		sc.dropNet(old)
	}
	sc.entries[e.key()] = e
	if e.Kind == kindIP {
		sc.nets = append(sc.nets, e)
	}
}

func (sc *scope) remove(key string) bool {
	e := sc.entries[key]
	if e == nil {
		return false
	}
	delete(sc.entries, key)
	if e.Kind == kindIP {
		sc.dropNet(e)
	}
	return true
}

func (sc *scope) dropNet(e *listEntry) {
	for i, n := range sc.nets {
		if n == e {
			sc.nets = append(sc.nets[:i], sc.nets[i+1:]...)
			return
		}
	}
}

// identity is a sender identity of a message that the lists are matched against.
type identity struct {
	// Kind is "client" (the IP address), "mailfrom" or "from" (an address of From:).
	kind    string
	ip      net.IP
	address string // lower case
}

// listMatch is an entry that matched an identity.
type listMatch struct {
	entry *listEntry
	id    identity
}

// reason names the match in X-Spam-Status and the log: ALLOWLIST(address:a@b.test).
func (m listMatch) reason(prefix string) string {
	v := m.entry.Value
	if m.entry.Subdomains {
		v = "*." + v
	}
	return fmt.Sprintf("%s(%s:%s)", prefix, m.entry.Kind, v)
}

// match returns the entries of action that match one of ids.
func (sc *scope) match(ids []identity, action string) []listMatch {
	if sc == nil {
		return nil
	}
	var out []listMatch
	for _, id := range ids {
		if id.kind == "client" {
			for _, e := range sc.nets {
				if e.Action == action && e.net.Contains(id.ip) {
					out = append(out, listMatch{e, id})
				}
			}
			continue
		}
		if e := sc.entries[kindAddress+":"+id.address]; e != nil && e.Action == action {
			out = append(out, listMatch{e, id})
		}
		// The domain, then each parent domain for the entries that take subdomains.
		d := domainOf(id.address)
		for exact := true; d != ""; exact = false {
			if e := sc.entries[kindDomain+":"+d]; e != nil && e.Action == action && (exact || e.Subdomains) {
				out = append(out, listMatch{e, id})
			}
			_, parent, ok := strings.Cut(d, ".")
			if !ok || !strings.Contains(parent, ".") {
				break // a top-level domain is never an entry's parent
			}
			d = parent
		}
	}
	return out
}

// senderLists holds every list. Safe for concurrent use.
type senderLists struct {
	db    *bolt.DB
	local LocalDomains
	log   *slog.Logger

	mu     sync.RWMutex
	scopes map[string]*scope // "" the administrator's, else the user's address
	// reads counts the times read took mu, which TestListVerdicts and
	// BenchmarkCheckLists look at: a check takes it once per message.
	reads atomic.Int64
	now   func() time.Time
}

// openLists loads the lists from db.
func openLists(db *bolt.DB, local LocalDomains, log *slog.Logger) (*senderLists, error) {
	l := &senderLists{db: db, local: local, log: log, scopes: map[string]*scope{}, now: time.Now}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(listsBucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			user, _, ok := strings.Cut(string(k), "\x00")
			var e listEntry
			if !ok || json.Unmarshal(v, &e) != nil {
				log.Warn("skipping a broken list entry", "key", fmt.Sprintf("%q", k))
				return nil
			}
			if e.Kind == kindIP {
				if e.net, err = config.ParseNet(e.Value); err != nil {
					log.Warn("skipping a broken list entry", "key", fmt.Sprintf("%q", k))
					return nil
				}
			}
			l.scope(user).put(&e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("loading the block and allow lists: %w", err)
	}
	return l, nil
}

// scope returns the scope of user, made if need be. l.mu is held for writing (or l is
// being opened).
func (l *senderLists) scope(user string) *scope {
	sc := l.scopes[user]
	if sc == nil {
		sc = &scope{entries: map[string]*listEntry{}}
		l.scopes[user] = sc
	}
	return sc
}

// messageLists is what the lists say about one message, read under one read lock: a
// check waits on the lists once whatever the number of recipients, and sees them as
// they were at one moment.
type messageLists struct {
	block []listMatch   // the administrator's block entries that match
	allow []listMatch   // the administrator's allow entries that match, genuine or not
	users []userMatches // the recipients who have lists of their own, in order
}

// userMatches is what one recipient's own lists say about a message.
type userMatches struct {
	rcpt  string      // as the request names the recipient
	block []listMatch // the block entries that match
	allow []listMatch // the allow entries that match when no block entry does
}

// read matches ids against the administrator's lists and the own lists of each of
// rcpts that has any.
func (l *senderLists) read(ids []identity, rcpts []string) messageLists {
	l.reads.Add(1)
	l.mu.RLock()
	defer l.mu.RUnlock()
	admin := l.scopes[""]
	ml := messageLists{block: admin.match(ids, control.SpamBlock), allow: admin.match(ids, control.SpamAllow)}
	for _, r := range rcpts {
		sc := l.scopes[strings.ToLower(r)]
		if sc == nil || len(sc.entries) == 0 {
			continue
		}
		um := userMatches{rcpt: r, block: sc.match(ids, control.SpamBlock)}
		if len(um.block) == 0 {
			// A block entry wins: the allow entries count only without one.
			um.allow = sc.match(ids, control.SpamAllow)
		}
		if ml.users == nil {
			ml.users = make([]userMatches, 0, len(rcpts))
		}
		ml.users = append(ml.users, um)
	}
	return ml
}

// allowsClient reports whether the administrator's allow list holds the client's
// address or network.
func (ml *messageLists) allowsClient() bool {
	for _, m := range ml.allow {
		if m.id.kind == "client" {
			return true
		}
	}
	return false
}

func dbKey(user string, e *listEntry) []byte { return []byte(user + "\x00" + e.key()) }

// userKey checks the user a request names: "" (the administrator's lists) or a mail
// address, which names the user's lists lower-cased.
func userKey(user string) (string, error) {
	if user == "" {
		return "", nil
	}
	e, err := parseEntry(user, false)
	if err != nil || e.Kind != kindAddress {
		return "", ipc.Errorf("invalid", "user %q is not a mail address", trimmed(user))
	}
	return e.Value, nil
}

// checkUser is userKey for a change of the lists: a user's address must be at one of
// our domains.
func (l *senderLists) checkUser(ctx context.Context, user string) (string, error) {
	u, err := userKey(user)
	if err != nil || u == "" || l.local == nil {
		return u, err
	}
	local, err := l.local.IsLocal(ctx, domainOf(u))
	if err != nil {
		return "", fmt.Errorf("asking authd about %s: %w", u, err)
	}
	if !local {
		return "", ipc.Errorf("invalid", "%s is not at one of our domains", u)
	}
	return u, nil
}

// add puts entries of action into user's lists.
func (l *senderLists) add(ctx context.Context, req control.SpamListAddRequest) (*control.SpamListsResult, error) {
	if req.Action != control.SpamBlock && req.Action != control.SpamAllow {
		return nil, ipc.Errorf("invalid", "action %q is neither block nor allow", trimmed(req.Action))
	}
	user, err := l.checkUser(ctx, req.User)
	if err != nil {
		return nil, err
	}
	if len(req.Entries) == 0 || len(req.Entries) > maxEntriesPerOp {
		return nil, ipc.Errorf("invalid", "%d entries: give 1 to %d", len(req.Entries), maxEntriesPerOp)
	}
	now := l.now().UTC().Truncate(time.Second)
	var add []*listEntry
	for _, s := range req.Entries {
		e, err := parseEntry(s, user == "")
		if err != nil {
			return nil, ipc.Errorf("invalid", "%v", err)
		}
		e.Action, e.Added = req.Action, now
		e.Subdomains = req.Subdomains && e.Kind == kindDomain
		add = append(add, &e)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := l.scope(user)
	limit := maxUserEntries
	if user == "" {
		limit = maxGlobalEntries
	}
	fresh := 0
	for _, e := range add {
		if sc.entries[e.key()] == nil {
			fresh++
		}
	}
	if len(sc.entries)+fresh > limit {
		return nil, ipc.Errorf("invalid", "the list would hold more than %d entries", limit)
	}
	err = l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(listsBucket)
		for _, e := range add {
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put(dbKey(user, e), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing list entries: %w", err)
	}
	res := &control.SpamListsResult{}
	for _, e := range add {
		sc.put(e)
		res.Entries = append(res.Entries, e.public(user))
	}
	return res, nil
}

// remove takes entries off user's lists.
func (l *senderLists) remove(ctx context.Context, req control.SpamListRemoveRequest) (*control.SpamListsResult, error) {
	user, err := l.checkUser(ctx, req.User)
	if err != nil {
		return nil, err
	}
	if len(req.Entries) == 0 || len(req.Entries) > maxEntriesPerOp {
		return nil, ipc.Errorf("invalid", "%d entries: give 1 to %d", len(req.Entries), maxEntriesPerOp)
	}
	var keys []listEntry
	for _, s := range req.Entries {
		e, err := parseEntry(s, user == "")
		if err != nil {
			return nil, ipc.Errorf("invalid", "%v", err)
		}
		keys = append(keys, e)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := l.scope(user)
	res := &control.SpamListsResult{}
	var gone []*listEntry
	for i := range keys {
		if e := sc.entries[keys[i].key()]; e != nil {
			gone = append(gone, e)
		} else {
			res.NotListed = append(res.NotListed, keys[i].Value)
		}
	}
	err = l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(listsBucket)
		for _, e := range gone {
			if err := b.Delete(dbKey(user, e)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("removing list entries: %w", err)
	}
	for _, e := range gone {
		sc.remove(e.key())
		res.Entries = append(res.Entries, e.public(user))
	}
	if len(sc.entries) == 0 && user != "" {
		delete(l.scopes, user)
	}
	return res, nil
}

// list returns the entries of user, or of everybody with all.
func (l *senderLists) list(req control.SpamListsRequest) (*control.SpamListsResult, error) {
	// Any address: the lists of a domain removed since still show.
	user, err := userKey(req.User)
	if err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	res := &control.SpamListsResult{}
	for u, sc := range l.scopes {
		if !req.All && u != user {
			continue
		}
		for _, e := range sc.entries {
			res.Entries = append(res.Entries, e.public(u))
		}
	}
	sort.Slice(res.Entries, func(i, j int) bool {
		a, b := res.Entries[i], res.Entries[j]
		if a.User != b.User {
			return a.User < b.User
		}
		if a.Action != b.Action {
			return a.Action > b.Action // block first
		}
		if a.Kind != b.Kind {
			return a.Kind > b.Kind
		}
		return a.Value < b.Value
	})
	return res, nil
}

func (e *listEntry) public(user string) control.SpamListEntry {
	return control.SpamListEntry{User: user, Action: e.Action, Kind: e.Kind, Value: e.Value, Subdomains: e.Subdomains, Added: e.Added}
}

// register adds the list ops to control/spamd: the administrator's, for every list.
func (l *senderLists) register(s *ipc.Server) { l.handle(s, nil, false) }

// registerAccount adds the list ops to private/spamd for the web account page: only the
// peers allow admits (httpd) may call them, and only for one user's own lists. httpd
// names the user it authenticated (with authd), as it acts as that user over IMAP.
func (l *senderLists) registerAccount(s *ipc.Server, allow func(ipc.Cred) bool) {
	l.handle(s, allow, true)
}

// handle registers the three ops; with own, each request must name a user and may not
// ask for every list.
func (l *senderLists) handle(s *ipc.Server, allow func(ipc.Cred) bool, own bool) {
	h := func(op string, serve func(context.Context, ipc.Cred, json.RawMessage) (any, error)) {
		f := func(ctx context.Context, peer ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
			ipc.CloseFiles(files)
			return serve(ctx, peer, body)
		}
		if allow != nil {
			f = ipc.Only(allow, f)
		}
		s.Handle(op, f)
	}
	decode := func(op string, body json.RawMessage, req any, user func() string) error {
		if err := json.Unmarshal(body, req); err != nil {
			return ipc.Errorf("invalid", "decoding %s: %v", op, err)
		}
		if own && user() == "" {
			return ipc.Errorf("invalid", "%s here is for a user's own lists: name the user", op)
		}
		return nil
	}
	h(control.SpamListAdd, func(ctx context.Context, peer ipc.Cred, body json.RawMessage) (any, error) {
		var req control.SpamListAddRequest
		if err := decode(control.SpamListAdd, body, &req, func() string { return req.User }); err != nil {
			return nil, err
		}
		res, err := l.add(ctx, req)
		if err == nil {
			l.log.Info("list entries added", "action", req.Action, "user", req.User, "n", len(res.Entries), "uid", peer.UID)
		}
		return res, err
	})
	h(control.SpamListRemove, func(ctx context.Context, peer ipc.Cred, body json.RawMessage) (any, error) {
		var req control.SpamListRemoveRequest
		if err := decode(control.SpamListRemove, body, &req, func() string { return req.User }); err != nil {
			return nil, err
		}
		res, err := l.remove(ctx, req)
		if err == nil {
			l.log.Info("list entries removed", "user", req.User, "n", len(res.Entries), "uid", peer.UID)
		}
		return res, err
	})
	h(control.SpamLists, func(_ context.Context, _ ipc.Cred, body json.RawMessage) (any, error) {
		var req control.SpamListsRequest
		if len(body) == 0 || string(body) == "null" {
			body = []byte("{}")
		}
		if err := decode(control.SpamLists, body, &req, func() string { return req.User }); err != nil {
			return nil, err
		}
		if own {
			req.All = false
		}
		return l.list(req)
	})
}

// senderIdentities returns the identities of a message the lists match: the client
// address first, then the MAIL FROM address, then the From: addresses.
func senderIdentities(ip net.IP, mailFrom string, from []string) []identity {
	ids := []identity{{kind: "client", ip: ip}}
	if mailFrom != "" {
		ids = append(ids, identity{kind: "mailfrom", address: strings.ToLower(mailFrom)})
	}
	for _, a := range from {
		ids = append(ids, identity{kind: "from", address: a})
	}
	return ids
}

// blockedText is the reply to a message the administrator's block list refuses.
func (m listMatch) blockedText() string {
	if m.id.kind == "client" {
		return fmt.Sprintf("Client address %s is on this server's block list", m.id.ip)
	}
	return fmt.Sprintf("Sender %s is on this server's block list", m.id.address)
}

// authFacts are what SPF, DKIM and DMARC established about a message.
type authFacts struct {
	spfPass   bool // for the MAIL FROM domain (not for HELO of a null sender)
	spfDomain string
	dkimPass  []string // the d= of the valid signatures
	dmarcFail bool
}

// genuine reports whether an identity is authenticated: the client address always;
// the MAIL FROM address when SPF passes for it; a From: address when SPF or a DKIM
// signature passes for a domain aligned with its domain (relaxed, RFC 7489 §3.1) and
// DMARC does not fail.
func (a authFacts) genuine(id identity) bool {
	switch id.kind {
	case "client":
		return true
	case "mailfrom":
		return a.spfPass && domainOf(id.address) == a.spfDomain
	}
	d := domainOf(id.address)
	if a.dmarcFail || d == "" {
		return false
	}
	if a.spfPass && dmarc.Aligned(a.spfDomain, d, false) {
		return true
	}
	for _, k := range a.dkimPass {
		if dmarc.Aligned(k, d, false) {
			return true
		}
	}
	return false
}

// authenticated keeps the matches of genuine identities.
func (a authFacts) authenticated(ms []listMatch) []listMatch {
	var out []listMatch
	for _, m := range ms {
		if a.genuine(m.id) {
			out = append(out, m)
		}
	}
	return out
}

// userLists applies the recipients' own lists, as read in ml: it returns the recipients
// whose block list matches the sender (their copy goes into Junk) and those whose allow
// list matches an authenticated identity (their copy stays out of Junk unless policy put
// it there). A block entry wins over an allow entry.
func userLists(ml *messageLists, auth authFacts, s *score) (junk, inbox []string) {
	for _, u := range ml.users {
		if len(u.block) > 0 {
			junk = append(junk, u.rcpt)
		} else if len(auth.authenticated(u.allow)) > 0 {
			inbox = append(inbox, u.rcpt)
		}
	}
	// The reasons do not name the users: every recipient sees X-Spam-Status.
	if len(junk) > 0 {
		s.reasons = append(s.reasons, "USER_BLOCKLIST")
	}
	if len(inbox) > 0 {
		s.reasons = append(s.reasons, "USER_ALLOWLIST")
	}
	return junk, inbox
}

// forgetUser deletes every entry of user's own lists (a deleted account's) and returns
// how many there were.
func (l *senderLists) forgetUser(user string) (int, error) {
	if user == "" {
		return 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	prefix := []byte(user + "\x00")
	err := l.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(listsBucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("deleting the lists of %s: %w", user, err)
	}
	delete(l.scopes, user)
	return n, nil
}

// users returns the users who have lists of their own.
func (l *senderLists) users() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []string
	for u, sc := range l.scopes {
		if u != "" && len(sc.entries) > 0 {
			out = append(out, u)
		}
	}
	return out
}

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"postern/pkg/dirsync"
	"postern/pkg/imap"
	"postern/pkg/maildir"
)

// Mailbox is one open folder of an account, shared by every session that uses it. Its
// message list mirrors the index; mu guards it. Changes are written to the index (one
// transaction per command), to the Maildir file names, and then announced to the
// sessions that have the folder selected.
type Mailbox struct {
	acct *Account
	name string // UTF-8, "INBOX" for the INBOX
	key  string // bucket and directory name: "INBOX" or ".Sent"
	dir  string // the folder's Maildir directory

	mu          sync.RWMutex
	uidValidity uint32
	uidNext     uint32
	modseq      uint64     // HIGHESTMODSEQ
	msgs        []*message // by UID
	// recentFrom is the first UID no session has seen as \Recent yet (RFC 3501 §2.3.2).
	recentFrom uint32
	// kwLetters are the Dovecot keyword letters (dovecot-keywords): index i is 'a'+i.
	kwLetters []string
	// keywords are every keyword of the folder: those of dovecot-keywords and those
	// set on a message since the folder was opened; it only grows.
	keywords []string
	// pending maps the base name of a message whose file name does not show its
	// flags yet to the name its file has on disk. STORE answers once the index has the
	// new flags; renameFiles brings the names in line afterwards (see store).
	pending map[string]string
	// renamed is not nil while renameFiles runs, and closed when it returns.
	renamed chan struct{}
	deleted bool // the folder was deleted or renamed away

	refs int // guarded by acct.mu

	smu      sync.Mutex
	sessions map[*Session]struct{}

	scanning atomic.Bool
	rescan   atomic.Bool
	watch    int // inotify watch descriptor of new/, guarded by the watcher
}

var errGone = errors.New("mailbox was deleted")

// errExpungeIssued reports that some messages of a COPY or MOVE had been expunged by
// another session (the index or the file had lost them) and were left out.
var errExpungeIssued = errors.New("some messages were expunged meanwhile")

// find returns the index of uid in msgs.
func (mb *Mailbox) find(uid uint32) (int, bool) {
	i := sort.Search(len(mb.msgs), func(i int) bool { return mb.msgs[i].uid >= uid })
	return i, i < len(mb.msgs) && mb.msgs[i].uid == uid
}

// lookup returns the message with uid, or nil.
func (mb *Mailbox) lookup(uid uint32) *message {
	if i, ok := mb.find(uid); ok {
		return mb.msgs[i]
	}
	return nil
}

// fileName returns the Maildir file name of m in cur/.
func (mb *Mailbox) fileName(m *message) string {
	return mb.fileNameWith(m.base, m.flags, m.keywords)
}

func (mb *Mailbox) fileNameWith(base string, flags flagBits, kws []string) string {
	b := make([]byte, 0, len(base)+12)
	b = append(b, base...)
	b = append(b, ":2,"...)
	for _, sf := range systemFlags {
		if flags&sf.bit != 0 {
			b = append(b, sf.letter)
		}
	}
	var letters []byte
	for _, k := range kws {
		for i, l := range mb.kwLetters {
			if strings.EqualFold(l, k) {
				letters = append(letters, byte('a'+i))
			}
		}
	}
	sort.Slice(letters, func(i, j int) bool { return letters[i] < letters[j] })
	return string(append(b, letters...))
}

// path returns the path of m's file, as it is on disk now.
func (mb *Mailbox) path(m *message) string {
	return filepath.Join(mb.dir, "cur", mb.curName(m))
}

// curName returns the name of m's file in cur/, as it is on disk now.
func (mb *Mailbox) curName(m *message) string {
	if n, ok := mb.pending[m.base]; ok {
		return n
	}
	return mb.fileName(m)
}

// open opens m's file for reading. A file renamed under us (a flag change by another
// program) is found by its base name (openFD).
// The caller must not hold mb.mu.
func (mb *Mailbox) open(m *message) (*os.File, error) { return mb.openIn(nil, m) }

// openName opens the file of the message with base name base, whose name in cur/ was
// name when the caller looked (curName), without taking mb.mu.
func (mb *Mailbox) openName(name, base string) (*os.File, error) {
	fd, p, err := mb.openNamed(nil, name, base)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

// findFile looks for the file of a message by its base name, in cur/ and new/: the
// slow way, for when its name changed between looking it up and using it.
func (mb *Mailbox) findFile(base string) (string, error) {
	return maildir.Find(mb.dir, base)
}

// parseFileName splits a Maildir file name into its base and its flags.
func (mb *Mailbox) parseFileName(name string) (base string, flags flagBits, kws []string) {
	base, info, ok := strings.Cut(name, ":")
	if !ok || !strings.HasPrefix(info, "2,") {
		return base, 0, nil
	}
	for _, c := range []byte(info[2:]) {
		switch {
		case c >= 'a' && c <= 'z':
			if i := int(c - 'a'); i < len(mb.kwLetters) && mb.kwLetters[i] != "" {
				kws = append(kws, mb.kwLetters[i])
			}
		default:
			for _, sf := range systemFlags {
				if sf.letter == c {
					flags |= sf.bit
				}
			}
		}
	}
	sort.Strings(kws)
	return base, flags, kws
}

// sizeFromName returns the RFC822.SIZE recorded in a file name: Dovecot's W= (the size
// with CRLF line ends), else S= (which local writes with CRLF line ends already).
func sizeFromName(base string) (int64, bool) {
	if i := strings.Index(base, ",W="); i >= 0 {
		s := base[i+3:]
		if j := strings.IndexAny(s, ",:"); j >= 0 {
			s = s[:j]
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, true
		}
	}
	return maildir.NameSize(base)
}

// load reads the folder's index and brings it in line with the Maildir: files that
// vanished are expunged, files that appeared (in cur/ or new/) get UIDs, flags changed
// in file names by another program are taken over. A folder without an index takes its
// UIDs from dovecot-uidlist when there is one.
func (mb *Mailbox) load() error {
	mb.readKeywords()
	st, err := os.Stat(filepath.Join(mb.dir, "cur"))
	if err != nil {
		return fmt.Errorf("opening folder %s: %w", mb.name, err)
	}
	ino := inode(st)
	db := mb.acct.db
	fresh := false
	// namesBehind: imapd stopped before the file names showed every flag change;
	// the index is right and the names are fixed.
	namesBehind := false
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(mb.key))
		if b == nil || getU64(b, keyInode) != ino {
			fresh = true
			return nil
		}
		namesBehind = b.Get(keyPending) != nil
		mb.uidValidity = getU32(b, keyUIDValidity)
		mb.uidNext = getU32(b, keyUIDNext)
		mb.modseq = getU64(b, keyModSeq)
		return b.Bucket(bucketMsgs).ForEach(func(k, v []byte) error {
			if len(k) != 4 {
				return nil
			}
			m, err := unmarshalMessage(beU32(k), v)
			if err != nil {
				mb.acct.log.Warn("skipping corrupt index record", "folder", mb.name, "uid", beU32(k))
				return nil
			}
			mb.msgs = append(mb.msgs, m)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("reading index of %s: %w", mb.name, err)
	}
	var imported map[string]uint32
	if fresh {
		mb.msgs = nil
		mb.modseq = 1
		if v, next, uids, ok := readUIDList(mb.dir); ok {
			mb.uidValidity, mb.uidNext, imported = v, next, uids
		} else {
			mb.uidNext = 1
		}
	}
	// What is on disk; kwFiles are the keywords files in new/ by stem.
	onDisk := map[string]diskFile{}
	kwFiles := map[string]string{}
	for _, sub := range []string{"cur", "new"} {
		names, err := readDirNames(filepath.Join(mb.dir, sub))
		if err != nil {
			return fmt.Errorf("reading folder %s: %w", mb.name, err)
		}
		for _, n := range names {
			if stem, ok := maildir.IsKeywordsFile(n); ok && sub == "new" {
				kwFiles[stem] = n
			}
			if strings.HasPrefix(n, ".") {
				continue
			}
			base, flags, kws := mb.parseFileName(n)
			onDisk[base] = diskFile{sub: sub, name: n, flags: flags, kws: kws}
		}
	}
	changed := fresh || namesBehind
	var dirty []*message
	cache := map[uint32]cacheRecord{} // of the files added that were parsed
	var expunged []uint32
	kept := mb.msgs[:0]
	for _, m := range mb.msgs {
		f, ok := onDisk[m.base]
		if !ok {
			expunged = append(expunged, m.uid)
			continue
		}
		delete(onDisk, m.base)
		if f.sub == "new" {
			os.Rename(filepath.Join(mb.dir, "new", f.name), mb.path(m))
		} else if namesBehind {
			if f.name != mb.fileName(m) {
				if err := os.Rename(filepath.Join(mb.dir, "cur", f.name), mb.path(m)); err != nil {
					// The index is right; the name stays pending (and the mark with
					// it) until a rename succeeds.
					mb.acct.log.Error("renaming message file", "folder", mb.name, "user", mb.acct.addr, "file", f.name, "err", err)
					if mb.pending == nil {
						mb.pending = map[string]string{}
					}
					mb.pending[m.base] = f.name
				}
			}
		} else if f.flags != m.flags&^flagCRLF || !slices.Equal(f.kws, m.keywords) {
			// Another program changed the flags in the name; the name wins, but
			// keywords Dovecot's letters cannot hold are kept.
			if !slices.Equal(f.kws, m.keywords) && len(m.keywords) > len(f.kws) && allLettered(mb, f.kws) && !allLettered(mb, m.keywords) {
				f.kws = m.keywords
			}
			m.flags, m.keywords = f.flags|m.flags&flagCRLF, f.kws
			mb.modseq++
			m.modseq = mb.modseq
			dirty = append(dirty, m)
			if f.name != mb.fileName(m) {
				os.Rename(filepath.Join(mb.dir, "cur", f.name), mb.path(m))
			}
		}
		kept = append(kept, m)
	}
	mb.msgs = kept
	if len(expunged) > 0 {
		mb.modseq++
		changed = true
	}
	// New files, in delivery order (their names start with the time), take the next
	// UIDs; those dovecot-uidlist names keep theirs.
	var bases []string
	var withKeywords []string
	for b := range onDisk {
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return lessName(bases[i], bases[j]) })
	var added []*message
	for _, b := range bases {
		f := onDisk[b]
		m := &message{base: b, flags: f.flags, keywords: f.kws}
		if uid, ok := imported[b]; ok && uid > 0 {
			m.uid = uid
		}
		if _, ok := kwFiles[maildir.Stem(b)]; ok && mb.deliveryKeywords(m, f.name) {
			withKeywords = append(withKeywords, f.name)
		}
		delete(kwFiles, maildir.Stem(b))
		added = append(added, m)
	}
	// The keywords files of messages indexed before (imapd stopped before it removed
	// them) are done with; those of messages not there yet are local's, in flight.
	for _, m := range mb.msgs {
		if n, ok := kwFiles[maildir.Stem(m.base)]; ok {
			os.Remove(filepath.Join(mb.dir, "new", n))
		}
	}
	if fresh && mb.uidValidity == 0 {
		v, err := mb.acct.newUIDValidity()
		if err != nil {
			return err
		}
		mb.uidValidity = v
	}
	// Imported UIDs first (in their order), then fresh ones.
	sort.SliceStable(added, func(i, j int) bool {
		a, b := added[i].uid, added[j].uid
		if a == 0 || b == 0 {
			return a != 0 && b == 0
		}
		return a < b
	})
	for _, m := range added {
		if m.uid == 0 || m.uid < mb.uidNext && !fresh {
			m.uid = mb.uidNext
		}
		if m.uid >= mb.uidNext {
			mb.uidNext = m.uid + 1
		}
		if err := mb.importFile(m, onDisk[m.base]); err != nil {
			mb.acct.log.Warn("skipping unreadable message file", "folder", mb.name, "file", m.base, "err", err)
			continue
		}
		if _, ok := sizeFromName(m.base); !ok {
			// No size in the name: the file's size is the RFC822.SIZE (and the octets
			// POP3 sends) only if its lines end in CRLF; parsing it tells, as takeNew
			// does for mail that comes later.
			if rec, err := cacheFile(mb.path(m)); err == nil {
				rec.apply(m)
				cache[m.uid] = rec
			}
		}
		mb.modseq++
		m.modseq = mb.modseq
		mb.msgs = append(mb.msgs, m)
		dirty = append(dirty, m)
	}
	sort.Slice(mb.msgs, func(i, j int) bool { return mb.msgs[i].uid < mb.msgs[j].uid })
	mb.noteKeywords(mb.kwLetters)
	for _, m := range mb.msgs {
		mb.noteKeywords(m.keywords)
	}
	// Mail that arrived in new/ while nobody looked is recent to the first session.
	mb.recentFrom = mb.uidNext
	for _, m := range added {
		if onDisk[m.base].sub == "new" && m.uid < mb.recentFrom {
			mb.recentFrom = m.uid
		}
	}
	if !changed && len(dirty) == 0 {
		return nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if fresh {
			tx.DeleteBucket([]byte(mb.key))
		}
		b, err := folderBucket(tx, mb.key, true)
		if err != nil {
			return err
		}
		if len(mb.pending) == 0 {
			b.Delete(keyPending)
		}
		mbk, cb, tb := b.Bucket(bucketMsgs), b.Bucket(bucketCache), b.Bucket(bucketText)
		for _, uid := range expunged {
			mbk.Delete(uidKey(uid))
			cb.Delete(uidKey(uid))
			tb.Delete(uidKey(uid))
		}
		// QRESYNC (RFC 7162 §3.2): what vanished is remembered; a folder indexed
		// afresh (not from dovecot-uidlist) has a complete, empty history.
		if fresh && imported == nil {
			if err := tombstonesStart(b); err != nil {
				return err
			}
		}
		if err := addTombstones(b, mb.modseq, expunged, mb.uidNext-1); err != nil {
			return err
		}
		for _, m := range dirty {
			if err := mbk.Put(uidKey(m.uid), m.marshal()); err != nil {
				return err
			}
		}
		for uid, r := range cache {
			if err := putCache(cb, tb, uid, r); err != nil {
				return err
			}
		}
		return mb.putMeta(b, ino)
	})
	if err != nil {
		return fmt.Errorf("writing index of %s: %w", mb.name, err)
	}
	if len(added) > 0 || len(expunged) > 0 || fresh {
		mb.writeUIDList()
	}
	mb.removeDeliveryKeywords(withKeywords)
	mb.mu.Lock()
	mb.startRenames() // those that failed above
	mb.mu.Unlock()
	return nil
}

type diskFile struct {
	sub, name string
	flags     flagBits
	kws       []string
}

func allLettered(mb *Mailbox, kws []string) bool {
	for _, k := range kws {
		if !hasFold(mb.kwLetters, k) {
			return false
		}
	}
	return true
}

// lessName orders Maildir names by their leading time, then as strings.
func lessName(a, b string) bool {
	ta, _, _ := strings.Cut(a, ".")
	tb, _, _ := strings.Cut(b, ".")
	na, ea := strconv.ParseInt(ta, 10, 64)
	nb, eb := strconv.ParseInt(tb, 10, 64)
	if ea == nil && eb == nil && na != nb {
		return na < nb
	}
	return a < b
}

func beU32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// importFile fills in a new message's size and internal date from its file and moves
// it from new/ to cur/ under its final name.
func (mb *Mailbox) importFile(m *message, f diskFile) error {
	p := filepath.Join(mb.dir, f.sub, f.name)
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	m.idate = st.ModTime().Unix()
	m.saved = time.Now().Unix() // SAVEDATE (RFC 8514): it enters the folder now
	if n, ok := sizeFromName(m.base); ok {
		m.size = n
	} else {
		m.size = st.Size()
	}
	if want := mb.fileName(m); f.sub != "cur" || f.name != want {
		if err := os.Rename(p, filepath.Join(mb.dir, "cur", want)); err != nil {
			return err
		}
	}
	return nil
}

func (mb *Mailbox) putMeta(b *bolt.Bucket, ino uint64) error {
	if err := putU32(b, keyUIDValidity, mb.uidValidity); err != nil {
		return err
	}
	if err := putU32(b, keyUIDNext, mb.uidNext); err != nil {
		return err
	}
	if ino != 0 {
		if err := putU64(b, keyInode, ino); err != nil {
			return err
		}
	}
	return putU64(b, keyModSeq, mb.modseq)
}

// scanNew takes the messages local delivered into new/: each gets the next UID and
// moves to cur/, the index records them in one transaction, and the sessions of the
// folder hear of them. Concurrent calls collapse into one.
func (mb *Mailbox) scanNew() {
	mb.rescan.Store(true)
	// A request that comes while another goroutine scans is taken by it; one that
	// comes just as it stops is seen by the check after it stopped.
	for mb.rescan.Load() {
		if !mb.scanning.CompareAndSwap(false, true) {
			return
		}
		for mb.rescan.Swap(false) {
			n, err := mb.takeNew()
			if err != nil {
				mb.acct.log.Error("taking new messages", "folder", mb.name, "user", mb.acct.addr, "err", err)
				break
			}
			if n > 0 {
				mb.changed(nil)
			}
		}
		mb.scanning.Store(false)
	}
}

func (mb *Mailbox) takeNew() (int, error) {
	names, err := readDirNames(filepath.Join(mb.dir, "new"))
	if err != nil || len(names) == 0 {
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		return 0, err
	}
	sort.Slice(names, func(i, j int) bool { return lessName(names[i], names[j]) })
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted {
		return 0, nil
	}
	var added []*message
	var withKeywords []string
	cache := map[uint32]cacheRecord{}
	for _, n := range names {
		if strings.HasPrefix(n, ".") {
			continue
		}
		base, flags, kws := mb.parseFileName(n)
		m := &message{base: base, flags: flags, keywords: kws, uid: mb.uidNext}
		if mb.deliveryKeywords(m, n) {
			withKeywords = append(withKeywords, n)
		}
		if err := mb.importFile(m, diskFile{sub: "new", name: n}); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				mb.acct.log.Warn("skipping new message", "folder", mb.name, "file", n, "err", err)
			}
			continue
		}
		mb.uidNext++
		mb.modseq++
		m.modseq = mb.modseq
		added = append(added, m)
		if rec, err := cacheFile(mb.path(m)); err == nil {
			cache[m.uid] = rec
			rec.apply(m)
		}
	}
	if len(added) == 0 {
		return 0, nil
	}
	if err := mb.commit(added, nil, cache); err != nil {
		return 0, err
	}
	mb.msgs = append(mb.msgs, added...)
	mb.appendUIDList(added)
	mb.removeDeliveryKeywords(withKeywords)
	return len(added), nil
}

// deliveryKeywords adds to m the keywords its delivery left beside its file, named
// name in new/ (see maildir.KeywordsPath: local writes them there, before the message,
// because dovecot-keywords is imapd's alone), and gives them letters; it reports
// whether there was such a file. Keywords that are not IMAP atoms are dropped. The
// caller holds mb.mu for writing and removes the file once the index has them.
func (mb *Mailbox) deliveryKeywords(m *message, name string) bool {
	kws, err := maildir.ReadKeywords(mb.dir, name)
	if err != nil {
		mb.acct.log.Warn("reading the keywords of a delivered message", "folder", mb.name, "file", name, "err", err)
		return false
	}
	if kws == nil {
		return false
	}
	var valid []string
	for _, k := range kws {
		if imap.ValidKeyword(k) && !hasFold(m.keywords, k) && !hasFold(valid, k) && len(m.keywords)+len(valid) < maxKeywords {
			valid = append(valid, k)
		}
	}
	if len(valid) > 0 {
		m.keywords = append(append([]string(nil), m.keywords...), valid...)
		sort.Strings(m.keywords)
		if err := mb.addKeywords(valid); err != nil {
			mb.acct.log.Warn("writing dovecot-keywords", "folder", mb.name, "err", err)
		}
	}
	return true
}

// removeDeliveryKeywords removes the keywords files of messages the index holds now.
func (mb *Mailbox) removeDeliveryKeywords(names []string) {
	for _, n := range names {
		if err := maildir.RemoveKeywords(mb.dir, n); err != nil {
			mb.acct.log.Warn("removing a keywords file", "folder", mb.name, "err", err)
		}
	}
}

// commit writes changed records and removes expunged ones in one transaction, with the
// folder's counters.
func (mb *Mailbox) commit(put []*message, del []uint32, cache ...map[uint32]cacheRecord) error {
	return mb.acct.db.Update(func(tx *bolt.Tx) error {
		b, err := folderBucket(tx, mb.key, true)
		if err != nil {
			return err
		}
		mbk, cb, tb := b.Bucket(bucketMsgs), b.Bucket(bucketCache), b.Bucket(bucketText)
		for _, uid := range del {
			if err := mbk.Delete(uidKey(uid)); err != nil {
				return err
			}
			cb.Delete(uidKey(uid))
			tb.Delete(uidKey(uid))
		}
		// Tombstones for QRESYNC (RFC 7162 §3.2); the expunge raised mb.modseq.
		if err := addTombstones(b, mb.modseq, del, mb.uidNext-1); err != nil {
			return err
		}
		for _, m := range put {
			if err := mbk.Put(uidKey(m.uid), m.marshal()); err != nil {
				return err
			}
		}
		for _, c := range cache {
			for uid, v := range c {
				if err := putCache(cb, tb, uid, v); err != nil {
					return err
				}
			}
		}
		return mb.putMeta(b, 0)
	})
}

// changed tells every session with the folder selected, except the one that made the
// change (it reports the change itself), that there is news.
func (mb *Mailbox) changed(except *Session) {
	mb.smu.Lock()
	var ss []*Session
	for s := range mb.sessions {
		if s != except {
			ss = append(ss, s)
		}
	}
	mb.smu.Unlock()
	for _, s := range ss {
		s.wake()
	}
	mb.acct.watchers.changed(mb, except)
}

func (mb *Mailbox) addSession(s *Session) {
	mb.smu.Lock()
	if mb.sessions == nil {
		mb.sessions = map[*Session]struct{}{}
	}
	mb.sessions[s] = struct{}{}
	mb.smu.Unlock()
}

func (mb *Mailbox) removeSession(s *Session) {
	mb.smu.Lock()
	delete(mb.sessions, s)
	mb.smu.Unlock()
}

// storeResult is the outcome of a STORE for one message.
type storeResult struct {
	changed  []*message // messages whose flags changed (copies as they now are)
	modified []uint32   // UIDs refused by UNCHANGEDSINCE (RFC 7162 §3.1.3)
	// before and after are HIGHESTMODSEQ around the change: a session that had seen
	// before has seen after too once it reported changed.
	before, after uint64
}

// store changes the flags of the messages with the given UIDs. unchangedSince, when
// not zero... (RFC 7162 §3.1.3: only messages whose mod-sequence is not above it).
// It renames the files, then writes the index once.
func (mb *Mailbox) store(uids []uint32, c *flagChange, unchangedSince uint64, checkUnchanged bool) (res storeResult, err error) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted {
		return res, errGone
	}
	res.before = mb.modseq
	defer func() { res.after = mb.modseq }()
	if err := mb.addKeywords(c.keywords); err != nil {
		mb.acct.log.Warn("writing dovecot-keywords", "folder", mb.name, "err", err)
	}
	var put []*message
	for _, uid := range uids {
		pos, ok := mb.find(uid)
		if !ok {
			continue
		}
		m := mb.msgs[pos]
		if checkUnchanged && m.modseq > unchangedSince {
			res.modified = append(res.modified, uid)
			continue
		}
		flags, kws, diff := c.apply(m)
		if !diff {
			if checkUnchanged {
				// RFC 7162 §3.1.3: a message that needed no change is still
				// reported, with its current mod-sequence.
				res.changed = append(res.changed, m)
			}
			continue
		}
		if _, ok := mb.pending[m.base]; !ok {
			if oldName := mb.fileName(m); oldName != mb.fileNameWith(m.base, flags, kws) {
				if mb.pending == nil {
					mb.pending = map[string]string{}
				}
				mb.pending[m.base] = oldName
			}
		}
		mb.modseq++
		// Records are never changed in place: FETCH and SEARCH work on snapshots.
		nm := *m
		nm.flags, nm.keywords, nm.modseq = flags, kws, mb.modseq
		mb.msgs[pos] = &nm
		put = append(put, &nm)
		res.changed = append(res.changed, &nm)
	}
	if len(put) == 0 {
		return res, nil
	}
	// The index records the flags (with a mark that file names lag behind) in one
	// transaction; the renames, one per message, happen after the answer.
	if err := mb.commitPending(put); err != nil {
		return res, err
	}
	mb.startRenames()
	return res, nil
}

// startRenames starts renameFiles unless it runs or nothing is pending. The caller
// holds mb.mu.
func (mb *Mailbox) startRenames() {
	if len(mb.pending) == 0 || mb.renamed != nil {
		return
	}
	mb.renamed = make(chan struct{})
	go mb.renameFiles()
}

// commitPending writes changed records and the mark that file names lag behind.
func (mb *Mailbox) commitPending(put []*message) error {
	return mb.acct.db.Update(func(tx *bolt.Tx) error {
		b, err := folderBucket(tx, mb.key, true)
		if err != nil {
			return err
		}
		mbk := b.Bucket(bucketMsgs)
		for _, m := range put {
			if err := mbk.Put(uidKey(m.uid), m.marshal()); err != nil {
				return err
			}
		}
		if len(mb.pending) > 0 {
			if err := b.Put(keyPending, []byte{1}); err != nil {
				return err
			}
		}
		return mb.putMeta(b, 0)
	})
}

// renameFiles gives the files whose flags changed their new names (":2,FRS..."), in
// the background, through the folder's cur/ descriptor; then it clears the mark.
//
// An entry leaves pending only once its file has the name the index gives it, or once
// no file of that message exists any more (another program deleted it: the next load
// expunges it). A rename that fails otherwise stays pending, and the mark in the index
// stays with it, so that the next STORE or the next load (after a restart) tries again.
func (mb *Mailbox) renameFiles() {
	type job struct{ base, from, to string }
	dir, err := os.Open(filepath.Join(mb.dir, "cur"))
	if err != nil {
		mb.acct.log.Error("renaming message files", "folder", mb.name, "user", mb.acct.addr, "err", err)
		mb.mu.Lock()
		mb.renamesDone()
		mb.mu.Unlock()
		return
	}
	defer dir.Close()
	dfd := int(dir.Fd())
	// The renames happen under the lock, in chunks, so that EXPUNGE, COPY and the
	// like always see a name that is on disk, and wait for one chunk at most.
	const chunk = 256
	failed := map[string]bool{} // bases whose rename failed in this run
	for {
		mb.mu.Lock()
		if len(mb.pending) == 0 || mb.deleted {
			mb.mu.Unlock()
			break
		}
		jobs := make([]job, 0, min(len(mb.pending), chunk))
		for _, m := range mb.msgs {
			if from, ok := mb.pending[m.base]; ok && !failed[m.base] {
				jobs = append(jobs, job{m.base, from, mb.fileName(m)})
				if len(jobs) == chunk {
					break
				}
			}
		}
		if len(jobs) == 0 {
			// What is left failed, or names no message: every path that drops a
			// message drops its entry too (expunge, remove), so that is a bug, and
			// such an entry names no file the index needs.
			for b := range mb.pending {
				if !failed[b] {
					mb.acct.log.Error("pending file rename of a message no longer in the folder", "folder", mb.name, "user", mb.acct.addr, "file", b)
					delete(mb.pending, b)
				}
			}
			mb.mu.Unlock()
			break
		}
		var disk *diskNames
		for _, j := range jobs {
			err := unix.Renameat(dfd, j.from, dfd, j.to)
			if errors.Is(err, unix.ENOENT) {
				// Not under the name we gave it: another program renamed it.
				if disk == nil {
					disk = &diskNames{dir: mb.dir}
				}
				p, ok := disk.find(j.base)
				if !ok {
					mb.acct.log.Warn("message file is gone", "folder", mb.name, "user", mb.acct.addr, "file", j.base)
					delete(mb.pending, j.base)
					continue
				}
				err = os.Rename(p, filepath.Join(mb.dir, "cur", j.to))
			}
			if err != nil {
				failed[j.base] = true
				mb.acct.log.Error("renaming message file", "folder", mb.name, "user", mb.acct.addr, "file", j.from, "err", err)
				continue
			}
			delete(mb.pending, j.base)
		}
		mb.mu.Unlock()
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if len(mb.pending) == 0 && !mb.deleted {
		mb.acct.db.Update(func(tx *bolt.Tx) error {
			if b := tx.Bucket([]byte(mb.key)); b != nil {
				return b.Delete(keyPending)
			}
			return nil
		})
	}
	mb.renamesDone()
}

// renamesDone tells those waiting for renameFiles that it returned. The caller holds
// mb.mu.
func (mb *Mailbox) renamesDone() {
	close(mb.renamed)
	mb.renamed = nil
}

// diskNames finds the files of messages by their base names, in cur/ and new/, when
// a file is not under the name the index expects (another program renamed it). It
// reads the directories once, on the first call.
type diskNames struct {
	dir   string
	names map[string]string // base name → path
}

func (d *diskNames) find(base string) (string, bool) {
	if d.names == nil {
		d.names = map[string]string{}
		for _, sub := range []string{"new", "cur"} { // cur/ wins
			names, _ := readDirNames(filepath.Join(d.dir, sub))
			for _, n := range names {
				if b, _, _ := strings.Cut(n, ":"); !strings.HasPrefix(n, ".") {
					d.names[b] = filepath.Join(d.dir, sub, n)
				}
			}
		}
	}
	p, ok := d.names[base]
	return p, ok
}

// expunge removes the messages with \Deleted among uids (all of them when uids is nil)
// and returns their UIDs; freed is the size they took.
func (mb *Mailbox) expunge(uids []uint32) (gone []uint32, freed int64, err error) {
	return mb.expungeMessages(uids, false)
}

// expungeUIDs removes the messages with the given UIDs, \Deleted or not: the messages
// a POP3 session deleted, removed when it enters the UPDATE state (RFC 1939 §6). UIDs
// expunged meanwhile are left out of gone.
func (mb *Mailbox) expungeUIDs(uids []uint32) (gone []uint32, freed int64, err error) {
	if len(uids) == 0 {
		return nil, 0, nil
	}
	return mb.expungeMessages(uids, true)
}

func (mb *Mailbox) expungeMessages(uids []uint32, anyFlags bool) (gone []uint32, freed int64, err error) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted {
		return nil, 0, errGone
	}
	want := func(uint32) bool { return true }
	if uids != nil {
		set := make(map[uint32]bool, len(uids))
		for _, u := range uids {
			set[u] = true
		}
		want = func(u uint32) bool { return set[u] }
	}
	kept := make([]*message, 0, len(mb.msgs))
	var disk *diskNames
	for _, m := range mb.msgs {
		if (m.flags&flagDeleted == 0 && !anyFlags) || !want(m.uid) {
			kept = append(kept, m)
			continue
		}
		err := os.Remove(mb.path(m))
		if errors.Is(err, fs.ErrNotExist) {
			// Not under the name the index gives it (another program renamed it):
			// a message is expunged only once no file of it is left, or its file
			// would come back as new mail at the next load.
			if disk == nil {
				disk = &diskNames{dir: mb.dir}
			}
			if p, ok := disk.find(m.base); ok {
				err = os.Remove(p)
			} else {
				err = nil
			}
		}
		if err != nil {
			kept = append(kept, m)
			mb.acct.log.Warn("expunging", "folder", mb.name, "user", mb.acct.addr, "file", m.base, "err", err)
			continue
		}
		delete(mb.pending, m.base)
		gone = append(gone, m.uid)
		freed += m.size
	}
	if len(gone) == 0 {
		return nil, 0, nil
	}
	mb.modseq++
	if err := mb.commit(nil, gone); err != nil {
		return nil, 0, err
	}
	mb.msgs = kept
	mb.writeUIDList()
	return gone, freed, nil
}

// sizeOf returns the total size of the messages with the given UIDs.
func (mb *Mailbox) sizeOf(uids []uint32) int64 {
	mb.mu.RLock()
	defer mb.mu.RUnlock()
	var n int64
	for _, u := range uids {
		if m := mb.lookup(u); m != nil {
			n += m.size
		}
	}
	return n
}

// remove drops messages whose files a MOVE took away.
func (mb *Mailbox) remove(uids []uint32) error {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	set := make(map[uint32]bool, len(uids))
	for _, u := range uids {
		set[u] = true
	}
	kept := mb.msgs[:0]
	for _, m := range mb.msgs {
		if !set[m.uid] {
			kept = append(kept, m)
		} else {
			delete(mb.pending, m.base)
		}
	}
	for i := len(kept); i < len(mb.msgs); i++ {
		mb.msgs[i] = nil
	}
	mb.msgs = kept
	mb.modseq++
	if err := mb.commit(nil, uids); err != nil {
		return err
	}
	mb.writeUIDList()
	return nil
}

// add records messages whose files were just put into cur/ under the names given by
// name(m) (APPEND, COPY, MOVE): each gets the next UID. recs, when not nil, holds the
// cache records of msgs (those of the originals of copies); a message without one has
// its file parsed. It returns the UIDs.
func (mb *Mailbox) add(msgs []*message, recs []cacheRecord, place func(m *message, final string) error) ([]uint32, error) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted {
		return nil, errGone
	}
	var kws []string
	for _, m := range msgs {
		kws = append(kws, m.keywords...)
	}
	mb.addKeywords(kws)
	var added []*message
	var uids []uint32
	var err error
	cache := map[uint32]cacheRecord{}
	now := time.Now().Unix()
	for i, m := range msgs {
		m.uid = mb.uidNext
		// SAVEDATE (RFC 8514): a copy or a moved message is saved here now.
		m.saved = now
		final := filepath.Join(mb.dir, "cur", mb.fileName(m))
		if err = place(m, final); errors.Is(err, errExpungeIssued) {
			err = nil
			continue // left out, without a UID
		} else if err != nil {
			break
		}
		if recs != nil && recs[i].fetch != nil {
			cache[m.uid] = recs[i]
		} else if rec, cerr := cacheFile(final); cerr == nil {
			cache[m.uid] = rec
			rec.apply(m)
		}
		mb.uidNext++
		mb.modseq++
		m.modseq = mb.modseq
		added = append(added, m)
		uids = append(uids, m.uid)
	}
	if len(added) == 0 {
		return nil, err
	}
	if cerr := mb.commit(added, nil, cache); cerr != nil {
		return nil, cerr
	}
	mb.msgs = append(mb.msgs, added...)
	mb.appendUIDList(added)
	return uids, err
}

// deliver writes an APPENDed message the Maildir way, but straight into cur/ with its
// flags: tmp/<unique> is written and fsynced, then renamed into cur/ and cur/ fsynced.
// (Going through new/ would race with the pickup of new mail.) binary is set for a
// message sent as a literal8, whose binary parts are stored in base64 (see
// encodeBinaryFile).
func (mb *Mailbox) deliver(r io.Reader, flags flagBits, kws []string, date time.Time, binary bool) (uint32, error) {
	name := maildir.UniqueName()
	tmp := filepath.Join(mb.dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("storing message: %w", err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	size, err := io.Copy(bw, r)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && binary {
		var n int64
		if n, err = encodeBinaryFile(tmp); n >= 0 {
			size = n
		}
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	if date.IsZero() {
		date = time.Now()
	}
	// Dovecot takes INTERNALDATE from the file's mtime.
	os.Chtimes(tmp, date, date)
	m := &message{base: name + ",S=" + strconv.FormatInt(size, 10), flags: flags, keywords: kws, size: size, idate: date.Unix()}
	uids, err := mb.add([]*message{m}, nil, func(m *message, final string) error {
		return os.Rename(tmp, final)
	})
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	dirsync.Sync(filepath.Join(mb.dir, "cur"))
	return uids[0], nil
}

// copyTo copies (or, with move, moves) the messages with the given UIDs into dst and
// returns the source UIDs and the UIDs they got in dst, in the same order (RFC 4315
// COPYUID). Copies are hard links, as Dovecot makes them; moves are renames.
func (mb *Mailbox) copyTo(dst *Mailbox, uids []uint32, move bool) (src, dstUIDs []uint32, err error) {
	mb.mu.RLock()
	var msgs []*message
	var paths []string
	var srcUIDs []uint32
	for _, u := range uids {
		if m := mb.lookup(u); m != nil {
			c := *m
			c.keywords = append([]string(nil), m.keywords...)
			msgs = append(msgs, &c)
			paths = append(paths, mb.path(m))
			srcUIDs = append(srcUIDs, u)
		}
	}
	mb.mu.RUnlock()
	// Messages expunged by another session since this one last heard (RFC 2180
	// §4.4.1): the others are copied, and the caller learns it.
	vanished := len(msgs) < len(uids)
	if len(msgs) == 0 {
		if vanished {
			return nil, nil, errExpungeIssued
		}
		return nil, nil, nil
	}
	// The copies are the same files: their cache records are those of the originals.
	recs := mb.loadRecords(msgs)
	srcBases := make([]string, len(msgs))
	for i, m := range msgs {
		srcBases[i] = m.base
		if !move {
			m.base = maildir.UniqueName() + sizeSuffix(m.base)
		}
	}
	i := 0
	dstUIDs, err = dst.add(msgs, recs, func(m *message, final string) error {
		p, base, u := paths[i], srcBases[i], srcUIDs[i]
		i++
		place := func(p string) error {
			if move {
				return os.Rename(p, final)
			}
			if err := os.Link(p, final); err == nil {
				return nil
			}
			return copyFile(p, final)
		}
		err := place(p)
		if errors.Is(err, fs.ErrNotExist) {
			// Renamed for a flag change meanwhile, or expunged.
			p, ferr := mb.findFile(base)
			if ferr != nil {
				vanished = true
				return errExpungeIssued
			}
			err = place(p)
		}
		if err == nil {
			src = append(src, u)
		}
		return err
	})
	if len(dstUIDs) > 0 {
		dirsync.Sync(filepath.Join(dst.dir, "cur"))
	}
	if move && len(src) > 0 {
		if rerr := mb.remove(src); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err == nil && vanished {
		err = errExpungeIssued
	}
	return src, dstUIDs, err
}

// sizeSuffix returns the ",S=..." (and ",W=") fields of a base name for its copy.
func sizeSuffix(base string) string {
	if i := strings.Index(base, ",S="); i >= 0 {
		return base[i:]
	}
	if i := strings.Index(base, ",W="); i >= 0 {
		return base[i:]
	}
	return ""
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := to + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, to)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// Dovecot's keyword letters: dovecot-keywords holds "<index> <keyword>" lines; letter
// 'a'+index in a file name's flags stands for the keyword.
func (mb *Mailbox) readKeywords() {
	data, err := os.ReadFile(filepath.Join(mb.dir, "dovecot-keywords"))
	if err != nil {
		return
	}
	mb.kwLetters = nil
	for _, line := range strings.Split(string(data), "\n") {
		n, kw, ok := strings.Cut(strings.TrimSpace(line), " ")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 0 || i >= 26 || kw == "" {
			continue
		}
		for len(mb.kwLetters) <= i {
			mb.kwLetters = append(mb.kwLetters, "")
		}
		mb.kwLetters[i] = kw
	}
}

// noteKeywords adds keywords to the folder's list, which FLAGS responses show to every
// session (RFC 3501 §7.2.6). The caller holds mb.mu for writing.
func (mb *Mailbox) noteKeywords(kws []string) {
	for _, k := range kws {
		if k != "" && !hasFold(mb.keywords, k) {
			mb.keywords = append(mb.keywords, k)
		}
	}
}

// addKeywords gives letters to keywords that have none while letters remain.
func (mb *Mailbox) addKeywords(kws []string) error {
	mb.noteKeywords(kws)
	added := false
	for _, k := range kws {
		if allLettered(mb, []string{k}) || len(mb.kwLetters) >= 26 {
			continue
		}
		mb.kwLetters = append(mb.kwLetters, k)
		added = true
	}
	if !added {
		return nil
	}
	var b bytes.Buffer
	for i, k := range mb.kwLetters {
		if k != "" {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
	}
	return writeFileAtomic(filepath.Join(mb.dir, "dovecot-keywords"), b.Bytes())
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".postern-tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeUIDList writes dovecot-uidlist (version 3: "3 V<uidvalidity> N<uidnext>" then
// "<uid> :<file name>"), so that Dovecot pointed at this Maildir keeps the UIDs.
func (mb *Mailbox) writeUIDList() {
	var b bytes.Buffer
	b.Grow(64 + 64*len(mb.msgs))
	fmt.Fprintf(&b, "3 V%d N%d\n", mb.uidValidity, mb.uidNext)
	for _, m := range mb.msgs {
		b.WriteString(strconv.FormatUint(uint64(m.uid), 10))
		b.WriteString(" :")
		b.WriteString(m.base)
		b.WriteByte('\n')
	}
	if err := writeFileAtomic(filepath.Join(mb.dir, "dovecot-uidlist"), b.Bytes()); err != nil {
		mb.acct.log.Warn("writing dovecot-uidlist", "folder", mb.name, "err", err)
	}
}

// appendUIDList adds the records of new messages to dovecot-uidlist, as Dovecot itself
// does between rewrites (its reader takes UIDs above the header's N as they come).
func (mb *Mailbox) appendUIDList(added []*message) {
	f, err := os.OpenFile(filepath.Join(mb.dir, "dovecot-uidlist"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		mb.writeUIDList()
		return
	}
	defer f.Close()
	var b bytes.Buffer
	for _, m := range added {
		b.WriteString(strconv.FormatUint(uint64(m.uid), 10))
		b.WriteString(" :")
		b.WriteString(m.base)
		b.WriteByte('\n')
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		mb.acct.log.Warn("writing dovecot-uidlist", "folder", mb.name, "err", err)
	}
}

// readUIDList reads a dovecot-uidlist (versions 1 and 3).
func readUIDList(dir string) (validity, next uint32, uids map[string]uint32, ok bool) {
	f, err := os.Open(filepath.Join(dir, "dovecot-uidlist"))
	if err != nil {
		return 0, 0, nil, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	if !sc.Scan() {
		return 0, 0, nil, false
	}
	head := strings.Fields(sc.Text())
	if len(head) == 0 {
		return 0, 0, nil, false
	}
	switch head[0] {
	case "1":
		if len(head) >= 3 {
			v, _ := strconv.ParseUint(head[1], 10, 32)
			n, _ := strconv.ParseUint(head[2], 10, 32)
			validity, next = uint32(v), uint32(n)
		}
	case "3":
		for _, h := range head[1:] {
			if len(h) < 2 {
				continue
			}
			n, _ := strconv.ParseUint(h[1:], 10, 32)
			switch h[0] {
			case 'V':
				validity = uint32(n)
			case 'N':
				next = uint32(n)
			}
		}
	default:
		return 0, 0, nil, false
	}
	if validity == 0 {
		return 0, 0, nil, false
	}
	uids = map[string]uint32{}
	for sc.Scan() {
		line := sc.Text()
		num, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		uid, err := strconv.ParseUint(num, 10, 32)
		if err != nil || uid == 0 {
			continue
		}
		name := rest
		if i := strings.LastIndex(rest, " :"); i >= 0 {
			name = rest[i+2:]
		} else if strings.HasPrefix(rest, ":") {
			name = rest[1:]
		} else if head[0] == "3" {
			// extension fields then the name
			fs := strings.Fields(rest)
			name = strings.TrimPrefix(fs[len(fs)-1], ":")
		}
		name, _, _ = strings.Cut(name, ":")
		uids[name] = uint32(uid)
		if uint32(uid) >= next {
			next = uint32(uid) + 1
		}
	}
	return validity, next, uids, true
}

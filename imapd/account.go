package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/dirsync"
	"postern/pkg/imap"
	"postern/pkg/maildir"
)

// Account is the mail store of one logged-in user: the Maildir at root and its index.
// Sessions of the same user share it; it is closed when the last one ends.
type Account struct {
	srv  *Server
	addr string
	root string
	db   *bolt.DB
	log  *slog.Logger

	// quota is the account's storage limit in bytes (0: none), as authd said at the
	// last login.
	quota atomic.Int64

	mu    sync.Mutex
	refs  int
	boxes map[string]*Mailbox // open folders by key
	// pop3 is set while a POP3 session has the maildrop: POP3 sessions have it one at
	// a time (RFC 1939 §8), IMAP sessions beside them as they like (see pop3.go).
	pop3 bool

	watchers notifyWatchers // sessions that asked for NOTIFY (RFC 5465)
}

// errOverQuota is an APPEND or COPY that would take the account past its quota.
var errOverQuota = errors.New("over quota")

// checkQuota tells whether adding bytes in count messages keeps the account within its
// Maildir++ quota, the one local checks deliveries against (maildirsize).
func (a *Account) checkQuota(bytes, count int64) error {
	limit := a.quota.Load()
	if limit <= 0 {
		return nil
	}
	q := maildir.Quota{Bytes: limit}
	used, n, err := maildir.Usage(a.root, q)
	if err != nil {
		return fmt.Errorf("reading the quota: %w", err)
	}
	if q.Exceeded(used+bytes, n+count) {
		return errOverQuota
	}
	return nil
}

// maxMailboxName bounds a mailbox name in bytes (Maildir++ keeps it in one directory
// name, at most 255 bytes with its dot and in modified UTF-7).
const maxMailboxName = 200

// errNoMailbox is a mailbox that does not exist.
var errNoMailbox = errors.New("no such mailbox")

// nameError is a mailbox name imapd refuses.
type nameError struct{ msg string }

func (e *nameError) Error() string { return e.msg }

// canonical validates a UTF-8 mailbox name and returns it with INBOX in upper case
// (RFC 3501 §5.1: INBOX is case-insensitive) and its folder key: "INBOX" or the
// Maildir++ directory name. Every name that reaches the disk passes here: it cannot
// contain a path separator of the disk, "." (so no ".." either), control characters,
// empty components, or be longer than maxMailboxName; the directory is a direct child
// of the account's root (maildir.FolderPath guarantees it).
func (a *Account) canonical(name string) (string, string, error) {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", "INBOX", nil
	}
	if len(name) > 5 && strings.EqualFold(name[:6], "INBOX/") {
		name = "INBOX" + name[5:]
	}
	if name == "" || len(name) > maxMailboxName || !utf8.ValidString(name) {
		return "", "", &nameError{"invalid mailbox name"}
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '*' || r == '%' || r == '\\' {
			return "", "", &nameError{"mailbox names must not contain control characters, *, % or \\"}
		}
	}
	disk := imap.EncodeUTF7(name)
	if len(disk)+1 > 255 {
		return "", "", &nameError{"mailbox name too long"}
	}
	p, err := maildir.FolderPath(a.root, disk)
	if err != nil {
		return "", "", &nameError{"invalid mailbox name (no \".\", no empty hierarchy level)"}
	}
	if filepath.Dir(p) != filepath.Clean(a.root) {
		return "", "", &nameError{"invalid mailbox name"}
	}
	return name, filepath.Base(p), nil
}

// dirOf returns the directory of a folder key.
func (a *Account) dirOf(key string) string {
	if key == "INBOX" {
		return a.root
	}
	return filepath.Join(a.root, key)
}

// nameOf returns the UTF-8 mailbox name of a Maildir++ directory name (".A.B" → "A/B").
func nameOf(dir string) string {
	disk := strings.ReplaceAll(strings.TrimPrefix(dir, "."), ".", "/")
	if n, err := imap.DecodeUTF7(disk); err == nil {
		return n
	}
	return disk
}

// exists reports whether the folder with key is a Maildir.
func (a *Account) exists(key string) bool {
	st, err := os.Stat(filepath.Join(a.dirOf(key), "cur"))
	return err == nil && st.IsDir()
}

// folders lists the account's folders: INBOX and every Maildir++ subfolder.
func (a *Account) folders() ([]string, error) {
	names := []string{"INBOX"}
	ents, err := os.ReadDir(a.root)
	if err != nil {
		return nil, fmt.Errorf("listing folders: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if len(n) < 2 || n[0] != '.' || n == ".." || !e.IsDir() {
			continue
		}
		if !a.exists(n) {
			continue
		}
		names = append(names, nameOf(n))
	}
	sort.Strings(names[1:])
	return names, nil
}

// openMailbox returns the open folder name (canonical), loading it if needed. The
// caller releases it.
func (a *Account) openMailbox(name string) (*Mailbox, error) {
	name, key, err := a.canonical(name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if mb := a.boxes[key]; mb != nil {
		mb.refs++
		return mb, nil
	}
	if !a.exists(key) {
		return nil, errNoMailbox
	}
	mb := &Mailbox{acct: a, name: name, key: key, dir: a.dirOf(key), watch: -1}
	if err := mb.load(); err != nil {
		return nil, err
	}
	mb.refs = 1
	a.boxes[key] = mb
	a.srv.watcher.add(mb)
	return mb, nil
}

// release gives back a folder opened with openMailbox. The folder stays loaded (and
// watched) while the account is open, so that a client that APPENDs or asks STATUS
// again and again does not make imapd read the index and the directory every time.
func (a *Account) release(mb *Mailbox) {
	a.mu.Lock()
	defer a.mu.Unlock()
	mb.refs--
}

// renaming reports whether a folder of the account is renaming files (renameFiles).
func (a *Account) renaming() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, mb := range a.boxes {
		mb.mu.RLock()
		r := mb.renamed != nil
		mb.mu.RUnlock()
		if r {
			return true
		}
	}
	return false
}

// waitRenames waits until no folder of the account is renaming files.
func (a *Account) waitRenames() {
	a.mu.Lock()
	boxes := make([]*Mailbox, 0, len(a.boxes))
	for _, mb := range a.boxes {
		boxes = append(boxes, mb)
	}
	a.mu.Unlock()
	for _, mb := range boxes {
		mb.mu.RLock()
		done := mb.renamed
		mb.mu.RUnlock()
		if done != nil {
			<-done
		}
	}
}

// closeBoxes stops watching the account's folders and forgets them; the account's last
// session has ended.
func (a *Account) closeBoxes() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, mb := range a.boxes {
		a.srv.watcher.remove(mb)
		delete(a.boxes, key)
	}
}

// create makes a new folder and, as RFC 3501 §6.3.3 asks, its missing superiors
// ("a/b/c" creates "a" and "a/b" too).
func (a *Account) create(name string) error {
	name, key, err := a.canonical(name)
	if err != nil {
		return err
	}
	if key == "INBOX" || a.exists(key) {
		return fs.ErrExist
	}
	var folders []string
	for i := 0; i < len(name); i++ {
		if name[i] == '/' && name[:i] != "INBOX" {
			folders = append(folders, imap.EncodeUTF7(name[:i]))
		}
	}
	folders = append(folders, imap.EncodeUTF7(name))
	return maildir.Create(a.root, folders)
}

// deleteFolder removes a folder with its messages (RFC 3501 §6.3.4). INBOX cannot be
// deleted; sessions that have it selected are told BYE at their next command.
func (a *Account) deleteFolder(name string) error {
	name, key, err := a.canonical(name)
	if err != nil {
		return err
	}
	if key == "INBOX" {
		return &nameError{"INBOX cannot be deleted"}
	}
	if !a.exists(key) {
		return errNoMailbox
	}
	a.mu.Lock()
	if mb := a.boxes[key]; mb != nil {
		mb.mu.Lock()
		mb.deleted = true
		mb.mu.Unlock()
		mb.changed(nil)
		delete(a.boxes, key)
		a.srv.watcher.remove(mb)
	}
	a.mu.Unlock()
	// Rename first, so that the folder disappears at once and a crash leaves no
	// half-deleted folder behind under its name.
	trash := filepath.Join(a.root, fmt.Sprintf(".postern-deleted-%d", time.Now().UnixNano()))
	if err := os.Rename(a.dirOf(key), trash); err != nil {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	dirsync.Sync(a.root)
	err = os.RemoveAll(trash)
	a.db.Update(func(tx *bolt.Tx) error {
		tx.DeleteBucket([]byte(key))
		return nil
	})
	return err
}

// rename renames a folder and its subfolders (RFC 3501 §6.3.5). Renaming INBOX moves
// its messages into the new folder and leaves INBOX empty.
func (a *Account) rename(from, to string) error {
	from, fkey, err := a.canonical(from)
	if err != nil {
		return err
	}
	to, tkey, err := a.canonical(to)
	if err != nil {
		return err
	}
	if !a.exists(fkey) {
		return errNoMailbox
	}
	if tkey == "INBOX" || a.exists(tkey) {
		return fs.ErrExist
	}
	if fkey == "INBOX" {
		if err := a.create(to); err != nil {
			return err
		}
		src, err := a.openMailbox("INBOX")
		if err != nil {
			return err
		}
		defer a.release(src)
		dst, err := a.openMailbox(to)
		if err != nil {
			return err
		}
		defer a.release(dst)
		src.mu.RLock()
		uids := make([]uint32, len(src.msgs))
		for i, m := range src.msgs {
			uids[i] = m.uid
		}
		src.mu.RUnlock()
		_, _, err = src.copyTo(dst, uids, true)
		src.changed(nil)
		if errors.Is(err, errExpungeIssued) {
			err = nil // nothing left behind to move
		}
		return err
	}
	// The folder and every folder below it: ".A" and ".A.*".
	ents, err := os.ReadDir(a.root)
	if err != nil {
		return err
	}
	type move struct{ from, to string }
	var moves []move
	for _, e := range ents {
		n := e.Name()
		if n == fkey || strings.HasPrefix(n, fkey+".") {
			moves = append(moves, move{n, tkey + n[len(fkey):]})
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range moves {
		if mb := a.boxes[m.from]; mb != nil {
			mb.mu.Lock()
			mb.deleted = true
			mb.mu.Unlock()
			mb.changed(nil)
			delete(a.boxes, m.from)
			a.srv.watcher.remove(mb)
		}
		if len(m.to) > 255 {
			return &nameError{"new name too long for a subfolder"}
		}
		if err := os.Rename(filepath.Join(a.root, m.from), filepath.Join(a.root, m.to)); err != nil {
			return fmt.Errorf("renaming %s: %w", m.from, err)
		}
		// The index moves with the folder: UIDVALIDITY and UIDs stay (RFC 3501
		// §6.3.5 allows either).
		err := a.db.Update(func(tx *bolt.Tx) error {
			old := tx.Bucket([]byte(m.from))
			if old == nil {
				return nil
			}
			tx.DeleteBucket([]byte(m.to))
			nb, err := tx.CreateBucket([]byte(m.to))
			if err != nil {
				return err
			}
			if err := copyBucket(old, nb); err != nil {
				return err
			}
			return tx.DeleteBucket([]byte(m.from))
		})
		if err != nil {
			return fmt.Errorf("renaming the index of %s: %w", m.from, err)
		}
	}
	dirsync.Sync(a.root)
	a.renameSubscriptions(from, to)
	return nil
}

func copyBucket(from, to *bolt.Bucket) error {
	return from.ForEach(func(k, v []byte) error {
		if v == nil {
			sub, err := to.CreateBucket(k)
			if err != nil {
				return err
			}
			return copyBucket(from.Bucket(k), sub)
		}
		return to.Put(k, v)
	})
}

// newUIDValidity returns a UIDVALIDITY never given before in this account: the current
// time, as Dovecot does, but always above the last one.
func (a *Account) newUIDValidity() (uint32, error) {
	var v uint32
	err := a.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAccount)
		if err != nil {
			return err
		}
		v = uint32(time.Now().Unix())
		if last := getU32(b, keyLastValidity); v <= last {
			v = last + 1
		}
		return putU32(b, keyLastValidity, v)
	})
	return v, err
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// Subscriptions live in <root>/subscriptions, one mailbox name (as stored on disk, in
// modified UTF-7) per line: the file Courier and Dovecot's Maildir++ layout read.
func (a *Account) subscriptions() map[string]bool {
	subs := map[string]bool{}
	f, err := os.Open(filepath.Join(a.root, "subscriptions"))
	if err != nil {
		return subs
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "V\t") {
			continue
		}
		line = strings.ReplaceAll(line, "\t", "/")
		if n, err := imap.DecodeUTF7(line); err == nil {
			line = n
		}
		subs[line] = true
	}
	return subs
}

func (a *Account) writeSubscriptions(subs map[string]bool) error {
	var names []string
	for n := range subs {
		names = append(names, imap.EncodeUTF7(n))
	}
	sort.Strings(names)
	data := strings.Join(names, "\n")
	if data != "" {
		data += "\n"
	}
	return writeFileAtomic(filepath.Join(a.root, "subscriptions"), []byte(data))
}

// subscribeDefaults subscribes a new account (one without a subscriptions file) to
// INBOX and the special-use folders, as Dovecot's autosubscribe does, so that clients
// that show subscribed folders only show them. A user's later UNSUBSCRIBE stays.
func (a *Account) subscribeDefaults() {
	if _, err := os.Stat(filepath.Join(a.root, "subscriptions")); !errors.Is(err, fs.ErrNotExist) {
		return
	}
	subs := map[string]bool{"INBOX": true}
	for _, f := range maildir.DefaultFolders {
		subs[f] = true
	}
	if err := a.writeSubscriptions(subs); err != nil {
		a.log.Warn("writing subscriptions", "err", err)
	}
}

// subscribe adds or removes a name. RFC 3501 §6.3.6 lets a client subscribe to a name
// that does not exist (yet).
func (a *Account) subscribe(name string, on bool) error {
	name, _, err := a.canonical(name)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	subs := a.subscriptions()
	if subs[name] == on {
		return nil
	}
	if on {
		subs[name] = true
	} else {
		delete(subs, name)
	}
	return a.writeSubscriptions(subs)
}

func (a *Account) renameSubscriptions(from, to string) {
	subs := a.subscriptions()
	changed := false
	for n := range subs {
		if n == from || strings.HasPrefix(n, from+"/") {
			delete(subs, n)
			subs[to+n[len(from):]] = true
			changed = true
		}
	}
	if changed {
		a.writeSubscriptions(subs)
	}
}

package queue

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Queue directories, in the order a message passes through them.
const (
	Incoming = "incoming"
	Active   = "active"
	Deferred = "deferred"
	Hold     = "hold"
	Corrupt  = "corrupt"
)

// Dirs lists every queue directory.
var Dirs = []string{Incoming, Active, Deferred, Hold, Corrupt}

// Spool is a queue rooted at one spool directory.
type Spool struct {
	Root string
}

// Dir returns the path of a queue directory.
func (s Spool) Dir(state string) string { return filepath.Join(s.Root, state) }

// Path returns the path the message id has in state.
func (s Spool) Path(state, id string) string { return filepath.Join(s.Root, state, id) }

// Move renames the message from one queue directory to another and fsyncs the target
// directory. A crash between the rename and the fsync leaves the file in one of the two,
// which is why readers of the queue look in both.
func (s Spool) Move(id, from, to string) error {
	if err := s.rename(id, from, to); err != nil {
		return err
	}
	return SyncDir(s.Dir(to))
}

// rename moves the message between queue directories, nothing more: rename(2) itself,
// without the lstat(2) of the target os.Rename makes first.
func (s Spool) rename(id, from, to string) error {
	old, dst := s.Path(from, id), s.Path(to, id)
	if err := unix.Rename(old, dst); err != nil {
		return fmt.Errorf("moving %s from %s to %s: %w", id, from, to, &os.LinkError{Op: "rename", Old: old, New: dst, Err: err})
	}
	return nil
}

// Activate moves the message from incoming/ or deferred/ into active/ for delivery. Unlike
// Move it does not fsync active/: rename(2) is atomic, so a crash that forgets the rename
// leaves the file where it was, and qmgr takes it from there again at start-up. Saving
// this fsync on every message is what lets a busy queue keep up.
func (s Spool) Activate(id, from string) error { return s.rename(id, from, Active) }

// Remove deletes a finished message, wherever it is.
func (s Spool) Remove(state, id string) error {
	if err := os.Remove(s.Path(state, id)); err != nil {
		return fmt.Errorf("removing %s from %s: %w", id, state, err)
	}
	return nil
}

// List returns the IDs in a queue directory, oldest first. Names that are not queue IDs
// (editor droppings, half-written temporary files) are skipped.
func (s Spool) List(state string) ([]string, error) {
	d, err := os.Open(s.Dir(state))
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", state, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", state, err)
	}
	ids := names[:0]
	for _, n := range names {
		if ValidID(n) {
			ids = append(ids, n)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Find returns the queue directory that holds id.
func (s Spool) Find(id string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("%q is not a queue ID", id)
	}
	for _, st := range Dirs {
		if _, err := os.Lstat(s.Path(st, id)); err == nil {
			return st, nil
		}
	}
	return "", fmt.Errorf("%s: %w", id, os.ErrNotExist)
}

// Create makes the queue directories that do not exist yet.
func (s Spool) Create(perm os.FileMode) error {
	for _, d := range Dirs {
		if err := os.MkdirAll(s.Dir(d), perm); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating queue directory: %w", err)
		}
	}
	return nil
}

// Queue IDs are 16 characters of Crockford's base32: 11 for the arrival time in
// microseconds since the Unix epoch, then 5 that make the ID unique (a per-process
// counter mixed with random bits chosen at start). The alphabet is in ASCII order, so IDs
// sort by arrival, and it has no I, L, O or U, so they read aloud without confusion.
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDLen is the length of a queue ID.
const IDLen = 16

var idState struct {
	sync.Mutex
	last    int64
	counter uint32
	salt    uint32
}

func init() {
	var b [4]byte
	rand.Read(b[:])
	idState.salt = uint32(b[0])<<17 | uint32(b[1])<<9 | uint32(b[2])<<1 | uint32(b[3])>>7
}

// NewID returns a fresh queue ID.
func NewID() string {
	idState.Lock()
	now := time.Now().UnixMicro()
	if now <= idState.last {
		now = idState.last
		idState.counter++
	} else {
		idState.last = now
		idState.counter = 0
	}
	// 25 bits: 10 of counter (1024 IDs per microsecond per process) and 15 of salt.
	uniq := (idState.counter&0x3ff)<<15 | idState.salt&0x7fff
	if idState.counter >= 0x3ff {
		// Counter exhausted within one microsecond: borrow the next microsecond.
		idState.last++
		idState.counter = 0
	}
	idState.Unlock()
	var b [IDLen]byte
	for i := 10; i >= 0; i-- {
		b[i] = alphabet[now&31]
		now >>= 5
	}
	for i := 15; i >= 11; i-- {
		b[i] = alphabet[uniq&31]
		uniq >>= 5
	}
	return string(b[:])
}

// ValidID reports whether s has the form of a queue ID.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(alphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

// IDTime returns the arrival time encoded in a queue ID.
func IDTime(id string) time.Time {
	var v int64
	for i := 0; i < 11 && i < len(id); i++ {
		v = v<<5 | int64(strings.IndexByte(alphabet, id[i]))
	}
	return time.UnixMicro(v)
}

// OpWakeup is the operation of qmgr's private socket by which cleanup says that a new
// file is complete in incoming/. qmgr also scans incoming/ on its own, so a lost wakeup
// only delays a message.
const OpWakeup = "wakeup"

// Wakeup is the body of OpWakeup.
type Wakeup struct {
	ID string `json:"id"`
}

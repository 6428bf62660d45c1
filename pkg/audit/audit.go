// Package audit keeps the audit log of administrative changes: who (the Unix user at the
// other end of a control socket, from SO_PEERCRED, or the web administrator named in the
// request), what, when and from which IP address. The log is append-only: entries live
// in a bbolt bucket of the daemon that applied the changes (authd's in users.db, qmgr's
// in its own state database), keyed by a sequence number; this package offers appending
// and reading, and nothing that deletes or rewrites an entry.
package audit

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os/user"
	"sort"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Entry is one administrative change.
type Entry struct {
	// Seq numbers the daemon's entries from 1, in the order they were made.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Daemon is the daemon that applied the change (authd, qmgr).
	Daemon string `json:"daemon"`
	// UID is the peer's uid, and User its name when the system knows it.
	UID  int    `json:"uid"`
	User string `json:"user,omitempty"`
	// Web is the account of the web administrator on whose behalf the peer (httpd)
	// asked, when it named one.
	Web string `json:"web,omitempty"`
	// IP is the address the request came from, when the peer gave it (httpd does).
	IP string `json:"ip,omitempty"`
	// Op is the control operation, such as user.add; Target what it changed (an
	// address, a domain, queue IDs); Detail more, in words.
	Op     string `json:"op"`
	Target string `json:"target,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Who describes the actor: the web administrator if any, else the Unix user.
func (e Entry) Who() string {
	u := e.User
	if u == "" {
		u = "uid " + strconv.Itoa(e.UID)
	}
	if e.Web != "" {
		return e.Web + " (web, via " + u + ")"
	}
	return u
}

// UserName is the name of the Unix user uid, or "" when the system does not know it.
func UserName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return ""
}

// maxField bounds the Web and IP that By takes from a peer.
const maxField = 320

// By begins the entry of a change that daemon applies for the peer uid, on behalf of the
// web administrator actor from ip when the peer named them (both clipped, for a peer
// gives them): Daemon, UID, User, Web and IP set.
func By(daemon string, uid int, actor, ip string) Entry {
	clip := func(s string) string { return s[:min(len(s), maxField)] }
	return Entry{Daemon: daemon, UID: uid, User: UserName(uid), Web: clip(actor), IP: clip(ip)}
}

// MaxRead bounds the entries Read returns at once.
const MaxRead = 10000

// Append adds e to the log in bucket b, numbering it; the time is now unless set. The
// entry is durable when the transaction commits.
func Append(b *bolt.Bucket, e Entry) (Entry, error) {
	seq, err := b.NextSequence()
	if err != nil {
		return e, fmt.Errorf("numbering an audit entry: %w", err)
	}
	e.Seq = seq
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC().Truncate(time.Millisecond)
	data, err := json.Marshal(e)
	if err != nil {
		return e, fmt.Errorf("encoding an audit entry: %w", err)
	}
	if err := b.Put(key(seq), data); err != nil {
		return e, fmt.Errorf("storing an audit entry: %w", err)
	}
	return e, nil
}

// Read returns the last n entries of the log in bucket b (all when n <= 0, at most
// MaxRead), oldest first.
func Read(b *bolt.Bucket, n int) ([]Entry, error) {
	if n <= 0 || n > MaxRead {
		n = MaxRead
	}
	out := []Entry{}
	if b == nil {
		return out, nil
	}
	c := b.Cursor()
	for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("audit entry %x: damaged: %w", k, err)
		}
		out = append(out, e)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Merge orders the entries of several daemons' logs by time (then daemon and number),
// and keeps the last n (all when n <= 0).
func Merge(n int, logs ...[]Entry) []Entry {
	var out []Entry
	for _, l := range logs {
		out = append(out, l...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.Daemon != b.Daemon {
			return a.Daemon < b.Daemon
		}
		return a.Seq < b.Seq
	})
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func key(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

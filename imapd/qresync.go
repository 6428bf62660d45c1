package main

import (
	"encoding/binary"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/imap"
)

// QRESYNC (RFC 7162 §3.2) needs the UIDs expunged since a mod-sequence. Each folder
// keeps them as tombstones under the key "x" of its bucket: a list of entries, each the
// mod-sequence of one expunge and the UIDs it removed as ranges (uvarint modseq,
// uvarint count, then per range uvarint first and uvarint length-1). The list is
// bounded: beyond maxTombstones entries the oldest half is merged into the first
// entry, which takes the highest mod-sequence of those merged, and a first entry of
// more than maxFloorRanges ranges becomes the one range 1:<its highest UID>. Both
// make old expunges look newer or UIDs that still exist look expunged; as UIDs are
// never reused, the live ones are taken out when the tombstones are read (vanished),
// and reporting an old expunge again is allowed (§3.2.5.2, §3.2.10: a client ignores
// UIDs it does not know).
var keyTombstones = []byte("x")

const (
	maxTombstones  = 256
	maxFloorRanges = 1024
)

// uidRange is a range of UIDs, lo <= hi.
type uidRange struct{ lo, hi uint32 }

type tombstone struct {
	modseq uint64
	ranges []uidRange
}

// toRanges turns ascending UIDs into ranges.
func toRanges(uids []uint32) []uidRange {
	var rs []uidRange
	for _, u := range uids {
		if n := len(rs); n > 0 && rs[n-1].hi+1 == u {
			rs[n-1].hi = u
			continue
		}
		rs = append(rs, uidRange{u, u})
	}
	return rs
}

// unionRanges merges ranges into ascending, disjoint, non-adjacent ones.
func unionRanges(rs []uidRange) []uidRange {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b uidRange) int {
		if a.lo != b.lo {
			return int(int64(a.lo) - int64(b.lo))
		}
		return int(int64(a.hi) - int64(b.hi))
	})
	var out []uidRange
	for _, r := range rs {
		if n := len(out); n > 0 && uint64(r.lo) <= uint64(out[n-1].hi)+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

func marshalTombstones(ts []tombstone) []byte {
	var b []byte
	for _, t := range ts {
		b = binary.AppendUvarint(b, t.modseq)
		b = binary.AppendUvarint(b, uint64(len(t.ranges)))
		for _, r := range t.ranges {
			b = binary.AppendUvarint(b, uint64(r.lo))
			b = binary.AppendUvarint(b, uint64(r.hi-r.lo))
		}
	}
	return b
}

// unmarshalTombstones reads the list; ok is false when there is none (a folder indexed
// before tombstones were kept) or it is damaged: the history is then unknown.
func unmarshalTombstones(b []byte) (ts []tombstone, ok bool) {
	if b == nil {
		return nil, false
	}
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	for len(b) > 0 {
		var t tombstone
		var n uint64
		var ok1, ok2 bool
		t.modseq, ok1 = uv()
		n, ok2 = uv()
		if !ok1 || !ok2 || n > uint64(len(b)) {
			return ts, false
		}
		for i := uint64(0); i < n; i++ {
			lo, ok1 := uv()
			l, ok2 := uv()
			if !ok1 || !ok2 || lo+l > 1<<32-1 {
				return ts, false
			}
			t.ranges = append(t.ranges, uidRange{uint32(lo), uint32(lo + l)})
		}
		ts = append(ts, t)
	}
	return ts, true
}

// tombstonesStart marks the tombstones of a folder indexed from scratch as complete:
// an entry without UIDs.
func tombstonesStart(b *bolt.Bucket) error {
	return b.Put(keyTombstones, marshalTombstones([]tombstone{{}}))
}

// addTombstones records, in the folder's bucket b, that uids were expunged at modseq;
// top is the highest UID given before. A folder without tombstones (or with damaged
// ones) starts them with an entry that counts every UID up to top as expunged just
// before: what a client synchronized before that saw, it need not hear again, and what
// it did not see it hears (the live UIDs are taken out when reading).
func addTombstones(b *bolt.Bucket, modseq uint64, uids []uint32, top uint32) error {
	if len(uids) == 0 {
		return nil
	}
	uids = slices.Clone(uids)
	slices.Sort(uids)
	ts, ok := unmarshalTombstones(b.Get(keyTombstones))
	if !ok {
		ts = []tombstone{{modseq: modseq - 1, ranges: []uidRange{{1, max(top, 1)}}}}
	}
	ts = append(ts, tombstone{modseq, toRanges(uids)})
	if len(ts) > maxTombstones {
		k := len(ts) / 2
		floor := tombstone{}
		var all []uidRange
		for _, t := range ts[:k+1] {
			floor.modseq = max(floor.modseq, t.modseq)
			all = append(all, t.ranges...)
		}
		floor.ranges = unionRanges(all)
		if n := len(floor.ranges); n > maxFloorRanges {
			floor.ranges = []uidRange{{1, floor.ranges[n-1].hi}}
		}
		ts = append([]tombstone{floor}, ts[k+1:]...)
	}
	return b.Put(keyTombstones, marshalTombstones(ts))
}

// vanished returns the UIDs expunged after modseq (RFC 7162 §3.2.5.2, §3.2.6), as
// ascending ranges, limited to known (nil: any UID below UIDNEXT). A folder whose
// history is unknown (see unmarshalTombstones) reports every UID below UIDNEXT that is
// gone, which is conservative and allowed.
func (mb *Mailbox) vanished(modseq uint64, known imap.SeqSet) []uidRange {
	var ts []tombstone
	complete := true
	mb.acct.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(mb.key)); b != nil {
			ts, complete = unmarshalTombstones(b.Get(keyTombstones))
		}
		return nil
	})
	mb.mu.RLock()
	defer mb.mu.RUnlock()
	if mb.uidNext <= 1 {
		return nil
	}
	top := mb.uidNext - 1
	var gone []uidRange
	if !complete {
		gone = []uidRange{{1, top}}
	}
	for _, t := range ts {
		if t.modseq > modseq {
			gone = append(gone, t.ranges...)
		}
	}
	gone = unionRanges(gone)
	if known != nil && !known.IsSearchRes() {
		var kr []uidRange
		for _, r := range known {
			lo, hi := r.Bounds(top)
			if lo > top {
				continue
			}
			kr = append(kr, uidRange{lo, min(hi, top)})
		}
		gone = intersectRanges(gone, unionRanges(kr))
	}
	// Take out the UIDs that exist.
	var out []uidRange
	for _, r := range gone {
		i, _ := mb.find(r.lo)
		lo := r.lo
		for ; i < len(mb.msgs) && mb.msgs[i].uid <= r.hi; i++ {
			if u := mb.msgs[i].uid; u > lo {
				out = append(out, uidRange{lo, u - 1})
			}
			lo = mb.msgs[i].uid + 1
		}
		if lo <= r.hi && lo != 0 {
			out = append(out, uidRange{lo, r.hi})
		}
	}
	return out
}

// intersectRanges intersects two ascending, disjoint range lists.
func intersectRanges(a, b []uidRange) []uidRange {
	var out []uidRange
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := max(a[i].lo, b[j].lo), min(a[i].hi, b[j].hi)
		if lo <= hi {
			out = append(out, uidRange{lo, hi})
		}
		if a[i].hi < b[j].hi {
			i++
		} else {
			j++
		}
	}
	return out
}

// appendRanges appends ranges as a sequence set ("1:3,7").
func appendRanges(b []byte, rs []uidRange) []byte {
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(r.lo), 10)
		if r.hi != r.lo {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(r.hi), 10)
		}
	}
	return b
}

// writeVanished writes "* VANISHED (EARLIER) <uids>" (RFC 7162 §3.2.10) when there are
// any, in lines of at most a few thousand ranges.
func (s *Session) writeVanished(earlier bool, rs []uidRange) {
	const perLine = 4096
	for len(rs) > 0 {
		n := min(len(rs), perLine)
		b := append(s.buf[:0], "* VANISHED "...)
		if earlier {
			b = append(b, "(EARLIER) "...)
		}
		b = appendRanges(b, rs[:n])
		s.buf = append(b, "\r\n"...)
		s.w.Write(s.buf)
		rs = rs[n:]
	}
}

// qresyncSelect answers the QRESYNC parameter of SELECT/EXAMINE (RFC 7162 §3.2.5.2):
// when the client's UIDVALIDITY is still the mailbox's, the UIDs expunged since its
// mod-sequence (VANISHED (EARLIER)), then the flags of the messages changed since,
// limited to the UIDs it says it knows.
func (s *Session) qresyncSelect(q *imap.QResync, validity uint32) {
	if q.UIDValidity != validity {
		return
	}
	s.writeVanished(true, s.mb.vanished(q.ModSeq, q.KnownUIDs))
	var top uint32
	if len(s.view) > 0 {
		top = s.view[len(s.view)-1]
	}
	mb := s.mb
	mb.mu.RLock()
	defer mb.mu.RUnlock()
	for i, uid := range s.view {
		m := mb.lookup(uid)
		if m == nil || m.modseq <= q.ModSeq {
			continue
		}
		if q.KnownUIDs != nil && !q.KnownUIDs.Contains(uid, top) {
			continue
		}
		s.writeFlags(i+1, m)
	}
}

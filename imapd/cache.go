package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/mail"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/imap"
	"postern/pkg/imapsort"
	"postern/pkg/mime"
)

// The cache keeps what FETCH ENVELOPE, BODY and BODYSTRUCTURE and SEARCH SENT* need
// from a message, computed once when the message arrives (or on first use for mail
// imported from elsewhere), so that those commands never parse a message twice.
//
// A record is: version 2 (uvarint), the Date header as Unix seconds (varint, 0 when
// missing or unreadable), the zone offset it was written in, in seconds east of UTC
// (varint), then ENVELOPE, BODY and BODYSTRUCTURE in IMAP syntax, each length-prefixed
// (uvarint), then the SORT and THREAD keys (imapsort.Keys, in its AppendBinary form).
// The keys came later: records written before end without them, and get them when
// SORT or THREAD first needs them (cacheOf). Records of version 1, which lacked the
// zone, are computed again.
type cached struct {
	sent                          int64
	sentZone                      int64
	envelope, body, bodystructure []byte
	keys                          *imapsort.Keys // nil in a record without them
}

const cacheVersion = 2

// sentDate returns the date of the Date header as written, in its own zone: SENTON and
// the like disregard time and zone (RFC 3501 §6.4.4, RFC 9051 §6.4.4), so a message
// written at 00:30 +0200 was sent on that day, not on the day before as in UTC.
func (c *cached) sentDate() time.Time {
	return day(time.Unix(c.sent, 0).In(time.FixedZone("", int(c.sentZone))))
}

func (c *cached) marshal() []byte {
	b := make([]byte, 0, 64+len(c.envelope)+len(c.body)+len(c.bodystructure))
	b = binary.AppendUvarint(b, cacheVersion)
	b = binary.AppendVarint(b, c.sent)
	b = binary.AppendVarint(b, c.sentZone)
	for _, s := range [][]byte{c.envelope, c.body, c.bodystructure} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if c.keys != nil {
		b = c.keys.AppendBinary(b)
	}
	return b
}

// What unmarshalCached decodes besides the date: the FETCH data, the SORT/THREAD keys.
const (
	withFetch = 1 << iota
	withKeys
)

// unmarshalCached reads a record, the parts that want asks for. Without withFetch, b
// may be memory of a read transaction: nothing of it is kept. FETCH does not decode
// the keys (withKeys), so their strings cost it nothing.
func unmarshalCached(b []byte, want int) (*cached, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 || v != cacheVersion {
		return nil, false
	}
	b = b[n:]
	c := &cached{}
	c.sent, n = binary.Varint(b)
	if n <= 0 {
		return nil, false
	}
	b = b[n:]
	c.sentZone, n = binary.Varint(b)
	if n <= 0 {
		return nil, false
	}
	b = b[n:]
	for _, dst := range []*[]byte{&c.envelope, &c.body, &c.bodystructure} {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, false
		}
		*dst = b[n : n+int(l)]
		b = b[n+int(l):]
	}
	if want&withFetch == 0 {
		c.envelope, c.body, c.bodystructure = nil, nil, nil
	}
	if len(b) == 0 || want&withKeys == 0 {
		return c, true
	}
	k, _, ok := imapsort.DecodeKeys(b)
	if !ok {
		return nil, false
	}
	c.keys = k
	return c, true
}

// parseFile parses a message file with pkg/mime; the caller closes f.
func parseFile(f *os.File) (*mime.Message, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return mime.Parse(f, st.Size())
}

// newCached renders the cached data of a parsed message.
func newCached(msg *mime.Message) *cached {
	env := msg.Root.Envelope()
	c := &cached{
		envelope:      imap.AppendEnvelope(nil, env),
		body:          imap.AppendBodyStructure(nil, msg.Root, false),
		bodystructure: imap.AppendBodyStructure(nil, msg.Root, true),
	}
	if env.Date != nil {
		if t, err := mail.ParseDate(strings.TrimSpace(*env.Date)); err == nil {
			c.sent = t.Unix()
			_, off := t.Zone()
			c.sentZone = int64(off)
		}
	}
	refs, _ := msg.Root.Header.Get("References")
	c.keys = imapsort.NewKeys(env, refs)
	return c
}

// maxText bounds the searchable text kept per message; longer texts are searched in
// the file.
const maxText = 1 << 20

// cacheRecord is what the cache keeps of a message: the FETCH data and the search text.
type cacheRecord struct {
	fetch []byte
	text  []byte // nil when not extracted
	// size is the RFC822.SIZE; crlf is set when the file has no bare LF, so that its
	// bytes are what BODY[] sends.
	size int64
	crlf bool
}

// apply records what parsing learnt in the message's index record.
func (r cacheRecord) apply(m *message) {
	m.size = r.size
	if r.crlf {
		m.flags |= flagCRLF
	}
}

// cacheFile computes the cache records of the message file at path.
func cacheFile(path string) (cacheRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return cacheRecord{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return cacheRecord{}, err
	}
	msg, err := mime.Parse(f, st.Size())
	if err != nil {
		return cacheRecord{}, fmt.Errorf("parsing %s: %w", path, err)
	}
	return cacheRecord{fetch: newCached(msg).marshal(), text: textRecord(msg), size: msg.Size, crlf: msg.Size == st.Size()}, nil
}

// textRecord extracts the searchable text of msg: uvarint length of the folded header
// text, the header text, then the folded body text. A text cut by maxText is not kept.
func textRecord(msg *mime.Message) []byte {
	t, err := msg.ExtractText(maxText)
	if err != nil || t.Truncated {
		return nil
	}
	b := make([]byte, 0, 4+len(t.Header)+len(t.Body))
	b = binary.AppendUvarint(b, uint64(len(t.Header)))
	b = append(b, t.Header...)
	return append(b, t.Body...)
}

// splitText splits a text record into header and body text.
func splitText(b []byte) (header, body []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

func putCache(cb, tb *bolt.Bucket, uid uint32, r cacheRecord) error {
	if r.fetch != nil {
		if err := cb.Put(uidKey(uid), r.fetch); err != nil {
			return err
		}
	}
	if r.text != nil {
		return tb.Put(uidKey(uid), r.text)
	}
	return nil
}

// loadCache reads the cache records of uids in one transaction; missing ones are
// absent from the map.
func (mb *Mailbox) loadCache(uids []uint32) map[uint32]*cached {
	return mb.readCached(uids, func(v []byte) (*cached, bool) {
		return unmarshalCached(append([]byte(nil), v...), withFetch)
	})
}

// loadKeys reads the sent dates and SORT/THREAD keys of uids in one transaction,
// without copying the rest of the records; missing records and records without keys
// are absent from the map.
func (mb *Mailbox) loadKeys(uids []uint32) map[uint32]*cached {
	return mb.readCached(uids, func(v []byte) (*cached, bool) {
		c, ok := unmarshalCached(v, withKeys)
		return c, ok && c.keys != nil
	})
}

// readCached decodes the cache records of uids with decode, in one read transaction
// (decode must copy what it keeps of v); those it refuses are absent from the map.
func (mb *Mailbox) readCached(uids []uint32, decode func(v []byte) (*cached, bool)) map[uint32]*cached {
	out := make(map[uint32]*cached, len(uids))
	mb.acct.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(mb.key))
		if b == nil {
			return nil
		}
		cb := b.Bucket(bucketCache)
		if cb == nil {
			return nil
		}
		cur := cb.Cursor()
		var k, v []byte
		for _, u := range uids {
			want := uidKey(u)
			// uids mostly come in mailbox order, which is the order of the keys: the
			// record after the last one read is then the one wanted, and Next finds it
			// without the descent from the root that Seek (or Get) makes.
			if k != nil && bytes.Compare(k, want) < 0 {
				k, v = cur.Next()
			}
			if k == nil || !bytes.Equal(k, want) {
				k, v = cur.Seek(want)
			}
			if k == nil || !bytes.Equal(k, want) {
				continue
			}
			if c, ok := decode(v); ok {
				out[u] = c
			}
		}
		return nil
	})
	return out
}

// loadRecords returns the stored cache records of msgs (FETCH data and search text),
// in the same order, with the size and CRLF state of their index records, so that a
// copy of a message need not parse its file again. A message without FETCH data gets
// an empty record.
func (mb *Mailbox) loadRecords(msgs []*message) []cacheRecord {
	recs := make([]cacheRecord, len(msgs))
	mb.acct.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(mb.key))
		if b == nil {
			return nil
		}
		cb, tb := b.Bucket(bucketCache), b.Bucket(bucketText)
		if cb == nil || tb == nil {
			return nil
		}
		for i, m := range msgs {
			k := uidKey(m.uid)
			if v := cb.Get(k); v != nil {
				recs[i] = cacheRecord{fetch: bytes.Clone(v), size: m.size, crlf: m.flags&flagCRLF != 0}
				if t := tb.Get(k); t != nil {
					recs[i].text = bytes.Clone(t)
				}
			}
		}
		return nil
	})
	return recs
}

// saveCache writes cache records in one transaction.
func (mb *Mailbox) saveCache(recs map[uint32]cacheRecord) {
	if len(recs) == 0 {
		return
	}
	err := mb.acct.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(mb.key))
		if b == nil {
			return nil
		}
		cb, tb := b.Bucket(bucketCache), b.Bucket(bucketText)
		for u, v := range recs {
			if err := putCache(cb, tb, u, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		mb.acct.log.Warn("writing the message cache", "folder", mb.name, "err", err)
	}
}

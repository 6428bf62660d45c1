package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/maildir"
)

// The index: one bbolt database per account, <maildir>/postern-imap.db, written by
// imapd alone. Each folder has a bucket named by its Maildir++ directory ("INBOX" for
// the root, ".Sent" ...) holding
//
//	v  UIDVALIDITY (uint32)      n  UIDNEXT (uint32)
//	h  HIGHESTMODSEQ (uint64)    i  inode of the folder's directory (uint64)
//	m/ uid → message record      c/ uid → cached ENVELOPE and BODYSTRUCTURE
//	t/ uid → the folded text SEARCH BODY and TEXT look in (cache.go)
//	x  UIDs expunged, with their mod-sequences, for QRESYNC (qresync.go)
//
// The flags live in the record and, for Dovecot, in the Maildir file names (":2,FRS");
// the UID ↔ file name map is also written to dovecot-uidlist in each folder.
const indexFile = "postern-imap.db"

var (
	keyUIDValidity = []byte("v")
	keyUIDNext     = []byte("n")
	keyModSeq      = []byte("h")
	keyInode       = []byte("i")
	// keyPending marks a folder whose file names may not show all flag changes yet.
	keyPending  = []byte("p")
	bucketMsgs  = []byte("m")
	bucketCache = []byte("c")
	bucketText  = []byte("t")
	// keyLastValidity, in the root bucket "account", is the last UIDVALIDITY given,
	// so that a folder deleted and created again in the same second gets a new one.
	bucketAccount   = []byte("account")
	keyLastValidity = []byte("lastuidvalidity")
)

// flagBits are the system flags of a message.
type flagBits uint8

const (
	flagSeen flagBits = 1 << iota
	flagAnswered
	flagFlagged
	flagDeleted
	flagDraft
	// flagPassed is Maildir's "P" (forwarded); it is no IMAP flag but is kept in the
	// file name.
	flagPassed
	// flagCRLF is no flag at all: it records that the file's lines all end in CRLF,
	// so that BODY[] can be sent straight from the file. It is not in file names.
	flagCRLF
)

// systemFlags are the flags of pkg/maildir's table (maildir.SystemFlags: the IMAP
// system flags and Maildir's P, with their letters, in the letters' ASCII order, the
// order a file name lists them in), each with its bit in the index.
var systemFlags = indexFlags()

// indexFlag is one of the flags a Maildir file name carries, with its bit.
type indexFlag struct {
	name   string // the IMAP flag; "" for P
	bit    flagBits
	letter byte
}

// indexFlags gives each flag of maildir.SystemFlags its bit. The bits are stored in
// the index (message.marshal): a flag keeps its bit for ever.
func indexFlags() []indexFlag {
	bits := map[string]flagBits{
		`\Seen`: flagSeen, `\Answered`: flagAnswered, `\Flagged`: flagFlagged,
		`\Deleted`: flagDeleted, `\Draft`: flagDraft,
		"": flagPassed, // P, which no IMAP flag stands for
	}
	var out []indexFlag
	for _, f := range maildir.SystemFlags {
		bit, ok := bits[f.IMAP]
		if !ok {
			panic(fmt.Sprintf("imapd: the index has no bit for the Maildir flag %c (%s)", f.Letter, f.IMAP))
		}
		out = append(out, indexFlag{f.IMAP, bit, f.Letter})
	}
	return out
}

// message is what the index knows of one message.
type message struct {
	uid    uint32
	modseq uint64
	flags  flagBits
	// keywords are sorted; their case is as first given.
	keywords []string
	size     int64
	idate    int64 // internal date, Unix seconds
	// base is the Maildir file name without its ":2,..." info.
	base string
	// saved is when the message entered this folder (SAVEDATE, RFC 8514), Unix
	// seconds; 0 when unknown (records written before it was kept).
	saved int64
}

func uidKey(uid uint32) []byte {
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], uid)
	return k[:]
}

func (m *message) marshal() []byte {
	b := make([]byte, 0, 32+len(m.base))
	b = binary.AppendUvarint(b, m.modseq)
	b = append(b, byte(m.flags))
	b = binary.AppendVarint(b, m.idate)
	b = binary.AppendUvarint(b, uint64(m.size))
	b = binary.AppendUvarint(b, uint64(len(m.base)))
	b = append(b, m.base...)
	b = binary.AppendUvarint(b, uint64(len(m.keywords)))
	for _, k := range m.keywords {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	// Added later, at the end: older records end before it.
	return binary.AppendVarint(b, m.saved)
}

var errCorrupt = errors.New("corrupt index record")

func unmarshalMessage(uid uint32, b []byte) (*message, error) {
	m := &message{uid: uid}
	var n int
	uv := func() uint64 {
		if n < 0 {
			return 0
		}
		v, k := binary.Uvarint(b)
		if k <= 0 {
			n = -1
			return 0
		}
		b = b[k:]
		return v
	}
	str := func() string {
		l := uv()
		if n < 0 || l > uint64(len(b)) {
			n = -1
			return ""
		}
		s := string(b[:l])
		b = b[l:]
		return s
	}
	m.modseq = uv()
	if len(b) < 1 {
		return nil, errCorrupt
	}
	m.flags = flagBits(b[0])
	b = b[1:]
	v, k := binary.Varint(b)
	if k <= 0 {
		return nil, errCorrupt
	}
	m.idate = v
	b = b[k:]
	m.size = int64(uv())
	m.base = str()
	nk := uv()
	if nk > 1000 {
		return nil, errCorrupt
	}
	for i := uint64(0); i < nk && n >= 0; i++ {
		m.keywords = append(m.keywords, str())
	}
	if n < 0 {
		return nil, errCorrupt
	}
	if len(b) > 0 {
		if v, k := binary.Varint(b); k > 0 {
			m.saved = v
		}
	}
	return m, nil
}

func getU32(b *bolt.Bucket, k []byte) uint32 {
	if v := b.Get(k); len(v) == 4 {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func putU32(b *bolt.Bucket, k []byte, v uint32) error {
	return b.Put(k, binary.BigEndian.AppendUint32(nil, v))
}

func putU64(b *bolt.Bucket, k []byte, v uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, v))
}

// hasFlag reports whether m carries the IMAP flag or keyword f (case-insensitively,
// RFC 3501 §2.3.2).
func (m *message) hasFlag(f string) bool {
	if bit := flagBit(f); bit != 0 {
		return m.flags&bit != 0
	}
	return hasFold(m.keywords, f)
}

// flagBit returns the bit of a system flag, 0 for a keyword.
func flagBit(f string) flagBits {
	if len(f) == 0 || f[0] != '\\' {
		return 0
	}
	for _, sf := range systemFlags {
		if sf.name != "" && strings.EqualFold(sf.name, f) {
			return sf.bit
		}
	}
	return 0
}

// appendFlags appends the message's flags as a parenthesized list. recent adds \Recent
// (IMAP4rev1 only).
func (m *message) appendFlags(b []byte, recent bool) []byte {
	b = append(b, '(')
	n := 0
	for _, sf := range systemFlags {
		if sf.name != "" && m.flags&sf.bit != 0 {
			if n > 0 {
				b = append(b, ' ')
			}
			b = append(b, sf.name...)
			n++
		}
	}
	for _, k := range m.keywords {
		if n > 0 {
			b = append(b, ' ')
		}
		b = append(b, k...)
		n++
	}
	if recent {
		if n > 0 {
			b = append(b, ' ')
		}
		b = append(b, `\Recent`...)
	}
	return append(b, ')')
}

// flagChange is the effect of a STORE on one message's flags.
type flagChange struct {
	mode     int // imap.StoreReplace, StoreAdd, StoreRemove
	bits     flagBits
	keywords []string
}

// apply returns the flags and keywords m has after the change, and whether they differ.
func (c *flagChange) apply(m *message) (flagBits, []string, bool) {
	flags, kws := m.flags, m.keywords
	switch c.mode {
	case 0:
		flags = c.bits | m.flags&(flagPassed|flagCRLF)
		kws = c.keywords
	case 1:
		flags |= c.bits
		for _, k := range c.keywords {
			if !m.hasFlag(k) {
				kws = append(append([]string(nil), kws...), k)
			}
		}
	case -1:
		flags &^= c.bits
		if len(c.keywords) > 0 {
			var keep []string
			for _, k := range kws {
				if !hasFold(c.keywords, k) {
					keep = append(keep, k)
				}
			}
			kws = keep
		}
	}
	sort.Strings(kws)
	return flags, kws, flags != m.flags || !slices.Equal(kws, m.keywords)
}

// folderBucket returns the bucket of a folder, creating it if create is set.
func folderBucket(tx *bolt.Tx, key string, create bool) (*bolt.Bucket, error) {
	if create {
		b, err := tx.CreateBucketIfNotExists([]byte(key))
		if err != nil {
			return nil, fmt.Errorf("creating index of %s: %w", key, err)
		}
		if _, err := b.CreateBucketIfNotExists(bucketMsgs); err != nil {
			return nil, err
		}
		if _, err := b.CreateBucketIfNotExists(bucketCache); err != nil {
			return nil, err
		}
		if _, err := b.CreateBucketIfNotExists(bucketText); err != nil {
			return nil, err
		}
		return b, nil
	}
	return tx.Bucket([]byte(key)), nil
}

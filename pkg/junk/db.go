package junk

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The file holds one bucket per corpus: "global", and "users" with a bucket per user
// name. A corpus bucket holds
//
//	"n" → nspam, nham (two big-endian uint32): the messages learned
//	"t" → bucket: token hash (8 octets, FNV-1a 64) → spam, ham counts (two uint32);
//	      in a user's corpus: the hash's first octet → the sorted entries of the
//	      tokens whose hash starts with it (see shard.go)
//	"s" → bucket: message digest (16 octets) → 's' or 'h', how it was learned
//
// Tokens are stored as hashes: 8-octet keys whatever the token, and a database that does
// not keep the words of anyone's mail in clear. A user's bucket is created when the
// user's first message is learned; small buckets live inline in their parent's page, so
// a user who trained a few messages costs a few hundred octets. A user's tokens are
// packed 15 octets each into 256 values instead of a bbolt key each (32 octets plus page
// slack): a thousand users who learned 20 messages each take about a third of the space.
// The global corpus keeps a key per token, so that learning one message rewrites the
// pages of its tokens only, not the whole corpus.
var (
	bucketGlobal = []byte("global")
	bucketUsers  = []byte("users")
	keyCounts    = []byte("n")
	bucketTokens = []byte("t")
	bucketSeen   = []byte("s")
)

// Default minimums of trained messages before Classify gives an opinion.
const (
	DefaultMinSpam = 50
	DefaultMinHam  = 50
)

// Options tune a DB; the zero value is the defaults.
type Options struct {
	// MinSpam and MinHam are the spam and ham messages that must have been learned (in
	// the global corpus and the user's together) before Classify gives an opinion;
	// 0 means DefaultMinSpam and DefaultMinHam.
	MinSpam, MinHam int
	// NoSync skips the fsync after each learned message, for bulk training; call Sync
	// at the end. A crash may then lose what was learned since the last Sync (never
	// corrupt the file).
	NoSync bool
}

// DB is a classifier's database: the global corpus and the per-user corpora in one
// bbolt file. It is safe for concurrent use; only one process may open the file.
type DB struct {
	bolt    *bolt.DB
	minSpam int
	minHam  int
}

// Open opens (or creates, mode 0600) the database file at path. A second process that
// opens the same file waits for the first to close it, up to 10 seconds, then fails.
func Open(path string, opts *Options) (*DB, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MinSpam <= 0 {
		o.MinSpam = DefaultMinSpam
	}
	if o.MinHam <= 0 {
		o.MinHam = DefaultMinHam
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second, NoSync: o.NoSync})
	if err != nil {
		return nil, fmt.Errorf("junk: opening %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketGlobal, bucketUsers} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("junk: creating the buckets of %s: %w", path, err)
	}
	return &DB{bolt: b, minSpam: o.MinSpam, minHam: o.MinHam}, nil
}

// Minimums returns the spam and ham that must have been learned before Classify gives an
// opinion (Options.MinSpam and MinHam, defaults applied).
func (db *DB) Minimums() (spam, ham int) { return db.minSpam, db.minHam }

// Close closes the database file.
func (db *DB) Close() error { return db.bolt.Close() }

// Sync flushes what was learned to disk (for Options.NoSync).
func (db *DB) Sync() error { return db.bolt.Sync() }

// ErrUser is returned, wrapped, for a user name that cannot name a corpus (longer than
// 1,000 octets).
var ErrUser = errors.New("junk: invalid user name")

// corpus returns the bucket of user's corpus ("" is the global one), nil when it does not
// exist and create is false.
func corpus(tx *bolt.Tx, user string, create bool) (*bolt.Bucket, error) {
	if user == "" {
		return tx.Bucket(bucketGlobal), nil
	}
	if len(user) > 1000 {
		return nil, ErrUser
	}
	users := tx.Bucket(bucketUsers)
	if !create {
		return users.Bucket([]byte(user)), nil
	}
	return users.CreateBucketIfNotExists([]byte(user))
}

// corpora returns the global corpus and user's (nil for user "" or a user with none).
func corpora(tx *bolt.Tx, user string) (g, u *bolt.Bucket, err error) {
	if g, err = corpus(tx, "", false); err != nil || user == "" {
		return g, nil, err
	}
	u, err = corpus(tx, user, false)
	return g, u, err
}

// corpusCounts returns the spam and ham learned in the global corpus and user's together.
func corpusCounts(tx *bolt.Tx, user string) (nspam, nham int, err error) {
	g, u, err := corpora(tx, user)
	if err != nil {
		return 0, 0, err
	}
	gs, gh := readCounts(g)
	us, uh := readCounts(u)
	return gs + us, gh + uh, nil
}

// readCounts returns the messages learned in corpus b (nil: none).
func readCounts(b *bolt.Bucket) (nspam, nham int) {
	if b == nil {
		return 0, 0
	}
	v := b.Get(keyCounts)
	if len(v) != 8 {
		return 0, 0
	}
	return int(binary.BigEndian.Uint32(v)), int(binary.BigEndian.Uint32(v[4:]))
}

func tokenKey(tok string) [8]byte {
	h := fnv.New64a()
	io.WriteString(h, tok)
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], h.Sum64())
	return k
}

func readToken(b *bolt.Bucket, k []byte) counts {
	if b == nil {
		return counts{}
	}
	v := b.Get(k)
	if len(v) != 8 {
		return counts{}
	}
	return counts{binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:])}
}

// digest identifies a message by its set of tokens, so that the copy of a message in a
// Maildir, with the headers our own filter added (X-Spam-*, ignored by Tokenize), is
// the message that was classified.
func digest(toks Tokens) []byte {
	s := slices.Clone([]string(toks))
	slices.Sort(s)
	h := sha256.New()
	for _, t := range s {
		io.WriteString(h, t)
		h.Write([]byte{0})
	}
	return h.Sum(nil)[:16]
}

// Learn adds the message of size octets in r to user's corpus ("" is the global one) as
// spam or as ham. A message already learned the same way is not counted twice; one
// learned the other way is moved (what a message moved out of Junk needs: Learn it as
// ham). changed says whether the corpus changed.
func (db *DB) Learn(user string, r io.ReaderAt, size int64, spam bool) (changed bool, err error) {
	toks, err := Tokenize(r, size)
	if err != nil {
		return false, err
	}
	return db.LearnTokens(user, toks, spam)
}

// LearnTokens is Learn for a message already tokenized.
func (db *DB) LearnTokens(user string, toks Tokens, spam bool) (changed bool, err error) {
	class := byte('h')
	if spam {
		class = 's'
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := corpus(tx, user, true)
		if err != nil {
			return err
		}
		seen, err := b.CreateBucketIfNotExists(bucketSeen)
		if err != nil {
			return err
		}
		d := digest(toks)
		switch prev := seen.Get(d); {
		case len(prev) == 1 && prev[0] == class:
			return nil
		case len(prev) == 1:
			if err := update(b, toks, prev[0] == 's', -1, user != ""); err != nil {
				return err
			}
		}
		if err := update(b, toks, spam, +1, user != ""); err != nil {
			return err
		}
		changed = true
		return seen.Put(d, []byte{class})
	})
	if err != nil {
		return false, fmt.Errorf("junk: learning a message for %q: %w", user, err)
	}
	return changed, nil
}

// OnErrorMargin is how sure of the right answer the corpus must be for LearnOnError to
// leave a message out: it learns a spam message unless its verdict is at least
// 0.5 + OnErrorMargin (0.95), a ham message unless at most 0.5 - OnErrorMargin (0.05).
// Chosen by cross-validation on the training half of bench/spam (see bench/README.md).
const OnErrorMargin = 0.45

// LearnOnError is Learn for training on error: it learns the message only when user's
// corpora (the global one and the user's own, as Classify uses them) do not yet give an
// opinion, or give one that is wrong or not sure enough (OnErrorMargin). A message learned
// the other way before is moved whatever the verdict. Trained this way, over the mail
// given again until nothing more is learned, the corpus holds the messages that were
// hard to tell rather than every ordinary one: on the SpamAssassin corpus it holds about a
// third of the messages and tells spam from ham better (bench/README.md). changed says
// whether the corpus changed.
func (db *DB) LearnOnError(user string, r io.ReaderAt, size int64, spam bool) (changed bool, err error) {
	toks, err := Tokenize(r, size)
	if err != nil {
		return false, err
	}
	v, err := db.ClassifyTokens(user, toks)
	if err != nil {
		return false, err
	}
	sure := v.OK && (spam && v.Prob >= 0.5+OnErrorMargin || !spam && v.Prob <= 0.5-OnErrorMargin)
	if sure {
		other := byte('s')
		if spam {
			other = 'h'
		}
		err := db.bolt.View(func(tx *bolt.Tx) error {
			b, err := corpus(tx, user, false)
			if err != nil || b == nil {
				return err
			}
			if seen := b.Bucket(bucketSeen); seen != nil {
				if prev := seen.Get(digest(toks)); len(prev) == 1 && prev[0] == other {
					sure = false
				}
			}
			return nil
		})
		if err != nil {
			return false, fmt.Errorf("junk: learning a message for %q: %w", user, err)
		}
		if sure {
			return false, nil
		}
	}
	return db.LearnTokens(user, toks, spam)
}

// Unlearn removes the message of size octets in r from user's corpus, as whatever it was
// learned as. changed is false when it had not been learned.
func (db *DB) Unlearn(user string, r io.ReaderAt, size int64) (changed bool, err error) {
	toks, err := Tokenize(r, size)
	if err != nil {
		return false, err
	}
	return db.UnlearnTokens(user, toks)
}

// UnlearnTokens is Unlearn for a message already tokenized.
func (db *DB) UnlearnTokens(user string, toks Tokens) (changed bool, err error) {
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := corpus(tx, user, false)
		if err != nil || b == nil {
			return err
		}
		seen := b.Bucket(bucketSeen)
		if seen == nil {
			return nil
		}
		d := digest(toks)
		prev := seen.Get(d)
		if len(prev) != 1 {
			return nil
		}
		if err := update(b, toks, prev[0] == 's', -1, user != ""); err != nil {
			return err
		}
		changed = true
		return seen.Delete(d)
	})
	if err != nil {
		return false, fmt.Errorf("junk: unlearning a message for %q: %w", user, err)
	}
	return changed, nil
}

// update adds delta (+1 or -1) to the message count of corpus b and to the count of each
// token, as spam or ham. Counts stop at 0; a token counted in neither is deleted.
func update(b *bolt.Bucket, toks Tokens, spam bool, delta int, sharded bool) error {
	add := func(v uint32) uint32 {
		if delta < 0 {
			if v == 0 {
				return 0
			}
			return v - 1
		}
		if v == ^uint32(0) {
			return v
		}
		return v + 1
	}
	nspam, nham := readCounts(b)
	c := counts{uint32(nspam), uint32(nham)}
	if spam {
		c.spam = add(c.spam)
	} else {
		c.ham = add(c.ham)
	}
	var v [8]byte
	binary.BigEndian.PutUint32(v[:], c.spam)
	binary.BigEndian.PutUint32(v[4:], c.ham)
	if err := b.Put(keyCounts, v[:]); err != nil {
		return err
	}
	tb, err := b.CreateBucketIfNotExists(bucketTokens)
	if err != nil {
		return err
	}
	// Sorted keys: bbolt writes sequential keys into fewer, fuller pages.
	keys := make([][8]byte, len(toks))
	for i, t := range toks {
		keys[i] = tokenKey(t)
	}
	slices.SortFunc(keys, func(a, b [8]byte) int { return slices.Compare(a[:], b[:]) })
	if sharded {
		return updateShards(tb, keys, func(c *counts) {
			if spam {
				c.spam = add(c.spam)
			} else {
				c.ham = add(c.ham)
			}
		})
	}
	for _, k := range keys {
		c := readToken(tb, k[:])
		if spam {
			c.spam = add(c.spam)
		} else {
			c.ham = add(c.ham)
		}
		if c.spam == 0 && c.ham == 0 {
			if err := tb.Delete(k[:]); err != nil {
				return err
			}
			continue
		}
		var v [8]byte
		binary.BigEndian.PutUint32(v[:], c.spam)
		binary.BigEndian.PutUint32(v[4:], c.ham)
		if err := tb.Put(k[:], v[:]); err != nil {
			return err
		}
	}
	return nil
}

// Verdict is what Classify says of a message.
type Verdict struct {
	// OK is false when the corpus is too small for an opinion (fewer than the minimum
	// spam or ham messages learned): Prob is then 0.5 and means nothing.
	OK bool
	// Prob is the spam indicator, from 0 (ham) to 1 (spam); SpamBayes calls a message
	// ham below 0.20 and spam above 0.90, and unsure between.
	Prob float64
	// Clues are the tokens that decided, strongest first.
	Clues []Clue
	// Spam and Ham are the messages learned in the corpora that were used.
	Spam, Ham int
}

// Classify returns the verdict on the message of size octets in r for user: the global
// corpus and the user's own taken together (their counts added). user "" uses the global
// corpus alone.
func (db *DB) Classify(user string, r io.ReaderAt, size int64) (Verdict, error) {
	// Until enough mail is learned there is no opinion whatever the tokens: the
	// message is not read and tokenized for nothing (every message of a fresh install).
	var v Verdict
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		v.Spam, v.Ham, err = corpusCounts(tx, user)
		return err
	})
	if err != nil {
		return Verdict{}, fmt.Errorf("junk: classifying a message for %q: %w", user, err)
	}
	if v.Spam < db.minSpam || v.Ham < db.minHam {
		v.Prob = 0.5
		return v, nil
	}
	toks, err := Tokenize(r, size)
	if err != nil {
		return Verdict{}, err
	}
	return db.ClassifyTokens(user, toks)
}

// ClassifyTokens is Classify for a message already tokenized.
func (db *DB) ClassifyTokens(user string, toks Tokens) (Verdict, error) {
	var v Verdict
	var clues []Clue
	err := db.bolt.View(func(tx *bolt.Tx) error {
		g, u, err := corpora(tx, user)
		if err != nil {
			return err
		}
		gs, gh := readCounts(g)
		us, uh := readCounts(u)
		v.Spam, v.Ham = gs+us, gh+uh
		if v.Spam < db.minSpam || v.Ham < db.minHam {
			return nil
		}
		v.OK = true
		gt := g.Bucket(bucketTokens)
		var ut *bolt.Bucket
		if u != nil {
			ut = u.Bucket(bucketTokens)
		}
		clues = make([]Clue, 0, len(toks))
		for _, t := range toks {
			k := tokenKey(t)
			c := readToken(gt, k[:])
			if ut != nil {
				uc := readShard(ut, k)
				c.spam += uc.spam
				c.ham += uc.ham
			}
			clues = append(clues, Clue{Token: t, Prob: tokenProb(c, v.Spam, v.Ham), Spam: int(c.spam), Ham: int(c.ham)})
		}
		return nil
	})
	if err != nil {
		return Verdict{}, fmt.Errorf("junk: classifying a message for %q: %w", user, err)
	}
	if !v.OK {
		v.Prob = 0.5
		return v, nil
	}
	v.Prob, v.Clues = combine(clues)
	return v, nil
}

// Stats are the size of a corpus.
type Stats struct {
	Spam, Ham int // messages learned
	Tokens    int // distinct tokens
}

// Stats returns the size of user's corpus ("" is the global one); a user who learned
// nothing has zero Stats.
func (db *DB) Stats(user string) (Stats, error) {
	var s Stats
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b, err := corpus(tx, user, false)
		if err != nil || b == nil {
			return err
		}
		s.Spam, s.Ham = readCounts(b)
		if tb := b.Bucket(bucketTokens); tb != nil && user == "" {
			s.Tokens = tb.Stats().KeyN
		} else if tb != nil {
			tb.ForEach(func(_, v []byte) error {
				s.Tokens += len(v) / entrySize
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("junk: reading the statistics of %q: %w", user, err)
	}
	return s, nil
}

// Users returns the names of the users who have a corpus of their own, sorted.
func (db *DB) Users() ([]string, error) {
	var names []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, _ []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("junk: listing users: %w", err)
	}
	return names, nil
}

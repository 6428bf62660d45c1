package junk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The file holds one bucket per corpus: "global", and "users" with a bucket per user
// name. A corpus bucket holds
//
//	"n" → nspam, nham (two big-endian uint32): the messages learned; then the corpus's
//	      bias (a big-endian IEEE 754 float32)
//	"t" → bucket: feature hash (8 octets, FNV-1a 64) → its weight (float32);
//	      in a user's corpus: the hash's first octet → the sorted entries of the
//	      features whose hash starts with it (see shard.go)
//	"s" → bucket: message digest (16 octets) → 's' or 'h', how it was learned
//
// and the root bucket "format" → "weights": files written by the Bayesian classifier
// that came before (token counts in "t") have none, and Open empties them.
//
// Features are stored as hashes: 8-octet keys whatever the token, and a database that
// does not keep the words of anyone's mail in clear. A user's bucket is created when the
// user's first message is learned; small buckets live inline in their parent's page, so
// a user who trained a few messages costs a few hundred octets. A user's features are
// packed 11 octets each into 256 values instead of a bbolt key each (32 octets plus page
// slack): a thousand users who learned 20 messages each take about a third of the space.
// The global corpus keeps a key per feature, so that learning one message rewrites the
// pages of its features only, not the whole corpus.
var (
	bucketGlobal = []byte("global")
	bucketUsers  = []byte("users")
	bucketFormat = []byte("format")
	keyCounts    = []byte("n")
	bucketTokens = []byte("t")
	bucketSeen   = []byte("s")
	formatName   = []byte("weights")
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
	emptied bool

	// global holds the weights of the global corpus, as in the file: every verdict
	// reads a thousand or more of them, a map lookup each instead of a search of
	// bbolt's B+tree, where most of a verdict's time went (bench/README.md).
	// Learning into the global corpus holds mu for writing from its transaction to
	// the update of the map, so that a verdict never reads weights the file does not
	// hold; learning into a user's corpus and verdicts hold it for reading.
	mu     sync.RWMutex
	global map[uint64]float32
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
	emptied := false
	err = b.Update(func(tx *bolt.Tx) error {
		if f := tx.Bucket(bucketFormat); f == nil || !bytes.Equal(f.Get(bucketFormat), formatName) {
			// A new file, or one of the Bayesian classifier: its counts cannot become
			// weights, so it starts empty.
			if g := tx.Bucket(bucketGlobal); g != nil {
				n, h := readCounts(g)
				emptied = n+h > 0
			}
			if u := tx.Bucket(bucketUsers); u != nil {
				if k, _ := u.Cursor().First(); k != nil {
					emptied = true
				}
			}
			for _, name := range [][]byte{bucketGlobal, bucketUsers, bucketFormat} {
				if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
					return err
				}
			}
			f, err := tx.CreateBucket(bucketFormat)
			if err != nil {
				return err
			}
			if err := f.Put(bucketFormat, formatName); err != nil {
				return err
			}
		}
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
	db := &DB{bolt: b, minSpam: o.MinSpam, minHam: o.MinHam, emptied: emptied, global: make(map[uint64]float32)}
	err = b.View(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bucketGlobal).Bucket(bucketTokens)
		if tb == nil {
			return nil
		}
		db.global = make(map[uint64]float32, tb.Stats().KeyN)
		return tb.ForEach(func(k, v []byte) error {
			if len(k) == 8 && len(v) == 4 {
				db.global[binary.BigEndian.Uint64(k)] = math.Float32frombits(binary.BigEndian.Uint32(v))
			}
			return nil
		})
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("junk: reading the global weights of %s: %w", path, err)
	}
	return db, nil
}

// Emptied reports whether Open found a database of the Bayesian classifier that came
// before and emptied it: what it had learned must be learned again (mailctl spam train).
func (db *DB) Emptied() bool { return db.emptied }

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
	nspam, nham = sumCounts(g, u)
	return nspam, nham, nil
}

// sumCounts returns the messages learned in the global corpus g and the user's u (nil:
// none) together, the counts that decide whether the corpora give an opinion.
func sumCounts(g, u *bolt.Bucket) (nspam, nham int) {
	gs, gh := readCounts(g)
	us, uh := readCounts(u)
	return gs + us, gh + uh
}

// readCounts returns the messages learned in corpus b (nil: none).
func readCounts(b *bolt.Bucket) (nspam, nham int) {
	if b == nil {
		return 0, 0
	}
	v := b.Get(keyCounts)
	if len(v) < 8 {
		return 0, 0
	}
	return int(binary.BigEndian.Uint32(v)), int(binary.BigEndian.Uint32(v[4:]))
}

// readBias returns the bias of corpus b (nil: none).
func readBias(b *bolt.Bucket) float64 {
	if b == nil {
		return 0
	}
	v := b.Get(keyCounts)
	if len(v) != 12 {
		return 0
	}
	return float64(math.Float32frombits(binary.BigEndian.Uint32(v[8:])))
}

// writeCounts stores the message counts and the bias of corpus b.
func writeCounts(b *bolt.Bucket, nspam, nham int, bias float64) error {
	var v [12]byte
	binary.BigEndian.PutUint32(v[:], uint32(max(nspam, 0)))
	binary.BigEndian.PutUint32(v[4:], uint32(max(nham, 0)))
	binary.BigEndian.PutUint32(v[8:], math.Float32bits(float32(bias)))
	return b.Put(keyCounts, v[:])
}

// FNV-1a 64 (hash/fnv's), written out so that hashing a message's thousand features
// allocates nothing.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// tokenKey is the key of a token's feature: its FNV-1a 64 hash, big-endian.
func tokenKey(tok string) [8]byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], fnvString(fnvOffset64, tok))
	return k
}

// pairKey is the key of the feature "a then b"; the NUL keeps it apart from any token's.
func pairKey(a, b string) [8]byte {
	h := fnvString(fnvOffset64, a)
	h ^= 0
	h *= fnvPrime64
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], fnvString(h, b))
	return k
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

// readModel reads what a verdict on the features keys needs: the global corpus g's
// bias and its weights (from db.global, under db.mu), and the user's u (nil: none).
func (db *DB) readModel(g, u *bolt.Bucket, keys [][8]byte) *model {
	m := &model{bias: readBias(g) + readBias(u), weights: make([]float64, len(keys)), scale: scale(len(keys))}
	var ut *bolt.Bucket
	if u != nil {
		ut = u.Bucket(bucketTokens)
	}
	for i, k := range keys {
		m.weights[i] = float64(db.global[binary.BigEndian.Uint64(k[:])]) + readShard(ut, k)
	}
	return m
}

// Learn teaches user's corpus ("" is the global one) the message of size octets in r as
// spam or as ham: one step of the model towards the right verdict on it (see
// DB.LearnTokens). changed says whether the message was new to the corpus or moved from
// the other class.
func (db *DB) Learn(user string, r io.ReaderAt, size int64, spam bool) (changed bool, err error) {
	toks, err := Tokenize(r, size)
	if err != nil {
		return false, err
	}
	return db.LearnTokens(user, toks, spam)
}

// LearnTokens is Learn for a message already tokenized.
//
// The model is a logistic regression over the message's features, learned online: each
// call takes one step of stochastic gradient descent, in proportion to how wrong the
// verdict on the message is, so that learning a message again (the passes of a training
// run) moves the model less as it gets the message right. A user's corpus learns on top
// of the global one: the step is computed from the verdict that the user's mail gets
// (both corpora) and changes the user's weights alone. The counts of messages, which
// decide when the corpora give an opinion (Options.MinSpam), count a message once: a
// message learned the same way before is not counted again, one learned the other way
// moves (what a message moved out of Junk needs: Learn it as ham).
func (db *DB) LearnTokens(user string, toks Tokens, spam bool) (changed bool, err error) {
	return db.learn(user, toks, spam, false)
}

// learn is LearnTokens, and with onError LearnOnError.
func (db *DB) learn(user string, toks Tokens, spam, onError bool) (changed bool, err error) {
	var global map[uint64]float32 // the global weights written, for db.global
	if user == "" {
		db.mu.Lock()
		defer db.mu.Unlock()
		global = make(map[uint64]float32)
	} else {
		db.mu.RLock()
		defer db.mu.RUnlock()
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		changed, err = db.learnTx(tx, user, toks, spam, onError, global)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("junk: learning a message for %q: %w", user, err)
	}
	for k, w := range global { // committed
		db.global[k] = w
	}
	return changed, nil
}

// learnTx learns a message in tx (LearnTokens). With onError it leaves the message out,
// and reports false, when the corpora are sure of the right verdict already
// (OnErrorMargin) and did not learn it the other way before. The global weights it
// writes go into written as well, for db.global once tx is committed.
func (db *DB) learnTx(tx *bolt.Tx, user string, toks Tokens, spam, onError bool, written map[uint64]float32) (changed bool, err error) {
	class, other := byte('h'), byte('s')
	if spam {
		class, other = 's', 'h'
	}
	b, err := corpus(tx, user, true)
	if err != nil {
		return false, err
	}
	seen, err := b.CreateBucketIfNotExists(bucketSeen)
	if err != nil {
		return false, err
	}
	g, u, err := corpora(tx, user)
	if err != nil {
		return false, err
	}
	d := digest(toks)
	prev := seen.Get(d)
	keys := features(toks)
	m := db.readModel(g, u, keys)
	if onError && !(len(prev) == 1 && prev[0] == other) {
		nspam, nham := sumCounts(g, u)
		p := logistic(m.logit())
		opinion := nspam >= db.minSpam && nham >= db.minHam
		if opinion && (spam && p >= 0.5+OnErrorMargin || !spam && p <= 0.5-OnErrorMargin) {
			return false, nil
		}
	}

	nspam, nham := readCounts(b)
	if len(prev) != 1 || prev[0] != class {
		if len(prev) == 1 { // learned the other way: moved
			if spam {
				nham--
			} else {
				nspam--
			}
		}
		if spam {
			nspam++
		} else {
			nham++
		}
		if err := seen.Put(d, []byte{class}); err != nil {
			return false, err
		}
		changed = true
	}
	dbias, dw := m.step(spam)
	if err := writeCounts(b, nspam, nham, readBias(b)+dbias); err != nil {
		return false, err
	}
	tb, err := b.CreateBucketIfNotExists(bucketTokens)
	if err != nil {
		return false, err
	}
	// Sorted keys: bbolt writes sequential keys into fewer, fuller pages.
	slices.SortFunc(keys, func(a, b [8]byte) int { return slices.Compare(a[:], b[:]) })
	if user != "" {
		return onError || changed, updateShards(tb, keys, dw)
	}
	for i, k := range keys {
		if i > 0 && k == keys[i-1] {
			continue
		}
		h := binary.BigEndian.Uint64(k[:])
		w := float32(float64(db.global[h]) + dw)
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], math.Float32bits(w))
		if err := tb.Put(k[:], v[:]); err != nil {
			return false, err
		}
		written[h] = w
	}
	return onError || changed, nil
}

// OnErrorMargin is how sure of the right answer the corpora must be for LearnOnError to
// leave a message out: it learns a spam message unless the model gives it at least
// 0.5 + OnErrorMargin (0.95), a ham message unless at most 0.5 - OnErrorMargin (0.05).
const OnErrorMargin = 0.45

// LearnOnError is Learn for training on error: it takes a step only when user's corpora
// (the global one and the user's own, as Classify uses them) do not yet give an opinion
// (Options.MinSpam), get the message wrong or are not sure enough of it (OnErrorMargin),
// or learned it the other way before.
// changed says whether it took a step.
func (db *DB) LearnOnError(user string, r io.ReaderAt, size int64, spam bool) (changed bool, err error) {
	toks, err := Tokenize(r, size)
	if err != nil {
		return false, err
	}
	return db.learn(user, toks, spam, true)
}

// Verdict is what Classify says of a message.
type Verdict struct {
	// OK is false when the corpus is too small for an opinion (fewer than the minimum
	// spam or ham messages learned): Prob is then 0.5 and means nothing.
	OK bool
	// Prob is the probability that the message is spam, from 0 (ham) to 1, for mail
	// that is as often spam as ham: the model's own probability with the proportion of
	// spam in the corpora taken out (their log-odds, log(Spam/Ham), subtracted), so that
	// a corpus of mostly ham, as most are, does not pull every verdict towards ham.
	Prob float64
	// Clues are the features that moved the verdict most, strongest first.
	Clues []Clue
	// Spam and Ham are the messages learned in the corpora that were used.
	Spam, Ham int
}

// Classify returns the verdict on the message of size octets in r for user: the global
// corpus and the user's own taken together (their biases and weights added). user ""
// uses the global corpus alone.
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
	var m *model
	db.mu.RLock()
	defer db.mu.RUnlock()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		g, u, err := corpora(tx, user)
		if err != nil {
			return err
		}
		v.Spam, v.Ham = sumCounts(g, u)
		if v.Spam < db.minSpam || v.Ham < db.minHam {
			return nil
		}
		v.OK = true
		m = db.readModel(g, u, features(toks))
		return nil
	})
	if err != nil {
		return Verdict{}, fmt.Errorf("junk: classifying a message for %q: %w", user, err)
	}
	if !v.OK {
		v.Prob = 0.5
		return v, nil
	}
	v.Prob = logistic(m.logit() - math.Log(float64(v.Spam)/float64(v.Ham)))
	v.Clues = m.clues(toks)
	return v, nil
}

// Stats are the size of a corpus.
type Stats struct {
	Spam, Ham int // messages learned
	Tokens    int // distinct features (tokens and pairs of tokens) with a weight
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

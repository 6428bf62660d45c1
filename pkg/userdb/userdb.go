// Package userdb is the account database of a Postern instance, <data>/users.db: mail
// domains, accounts (argon2id password hashes, quotas), aliases and catch-alls, kept in a
// bbolt file. authd is its one owner; mailctl opens it only offline (init), when authd
// is not running.
//
// Addresses are case-insensitive: the database keeps and returns them in lower case.
// Recipient lookup (Resolve) also understands plus-addressing and expands aliases.
//
// Layout of the file (version 1), every value JSON:
//
//	meta                      "version" → "1"
//	domains                   <domain> → {created}
//	users/<domain>/           <local@domain> → {hash, quota, created, admin}
//	aliases/<domain>/         <local@domain> or "@<domain>" (catch-all) → {targets, created}
//	logins/<local@domain>/    <site> → {at}: where the account last logged in successfully
//	                          (authd's throttling; the bucket came later, version 1 still)
//	rates                     <local@domain> → submission counts of the last hour (authd's
//	                          per-account limits, pkg/ratelimit.Counts; came later too)
//	apppasswords/<local@domain>/  <name> → {hash, created}: the account's app passwords,
//	                          one per device, usable in place of its password (later too)
//	audit                     <sequence, 8 bytes big-endian> → pkg/audit.Entry: the
//	                          append-only log of administrative changes (later too)
//	imagesenders/<local@domain>/  <sender address> → {added}: the senders whose remote
//	                          images the account's webmail shows without asking (later too)
package userdb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Errors that callers may test for with errors.Is; returned errors wrap them with the
// details.
var (
	// ErrNotFound: no such domain, account or alias.
	ErrNotFound = errors.New("not found")
	// ErrExists: the domain, account or alias exists already.
	ErrExists = errors.New("already exists")
	// ErrNotEmpty: a domain that still has accounts or aliases cannot be deleted
	// without force.
	ErrNotEmpty = errors.New("domain is not empty")
	// ErrInvalid: a malformed address, domain, password or alias.
	ErrInvalid = errors.New("invalid")
	// ErrInUse: another process holds users.db open.
	ErrInUse = errors.New("users.db is in use — is authd running?")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// schemaVersion is the layout this package reads and writes.
const schemaVersion = 1

var (
	bucketMeta    = []byte("meta")
	bucketDomains = []byte("domains")
	bucketUsers   = []byte("users")
	bucketAliases = []byte("aliases")
	keyVersion    = []byte("version")
)

// Options adjust Open.
type Options struct {
	// Hash are the argon2id costs for new password hashes; zero means DefaultHashParams.
	// Existing hashes keep the costs they were made with.
	Hash HashParams
	// Timeout is how long Open waits for the file lock; zero means one second.
	Timeout time.Duration
}

// DB is an open users.db. It is safe for concurrent use.
type DB struct {
	bolt   *bolt.DB
	params HashParams
	// dummy is a hash of a random password, verified against when an account does not
	// exist so that the answer takes as long as for one that does.
	dummy string
	// hashing bounds concurrent argon2id computations: each takes Memory KiB.
	hashing chan struct{}
}

// Open opens (creating if needed) the database at path with default options.
func Open(path string) (*DB, error) { return OpenWith(path, Options{}) }

// OpenWith opens (creating if needed, mode 0600) the database at path. If another
// process has it open, OpenWith fails after opts.Timeout with an error wrapping ErrInUse.
func OpenWith(path string, opts Options) (*DB, error) {
	if opts.Hash == (HashParams{}) {
		opts.Hash = DefaultHashParams
	}
	if err := opts.Hash.validate(); err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: %w", path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db := &DB{bolt: b, params: opts.Hash, hashing: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))}
	if err := b.Update(initSchema); err != nil {
		b.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	dummy, err := hashPassword(strconv.FormatInt(time.Now().UnixNano(), 36), db.params)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db.dummy = dummy
	return db, nil
}

func initSchema(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if v := meta.Get(keyVersion); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 {
			return fmt.Errorf("users.db has a damaged schema version %q", v)
		}
		if n > schemaVersion {
			return fmt.Errorf("users.db has schema version %d, newer than this program's %d", n, schemaVersion)
		}
	} else if err := meta.Put(keyVersion, []byte(strconv.Itoa(schemaVersion))); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketDomains, bucketUsers, bucketAliases, bucketLogins, bucketRates, bucketAppPasswords, bucketAudit, bucketImageSenders} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the database and releases its lock.
func (db *DB) Close() error { return db.bolt.Close() }

// Path is the file the database lives in.
func (db *DB) Path() string { return db.bolt.Path() }

// Domain is a mail domain of this instance.
type Domain struct {
	Name    string
	Created time.Time
	// Users and Aliases count the domain's accounts and aliases (the catch-all included).
	Users   int
	Aliases int
}

type domainRecord struct {
	Created time.Time `json:"created"`
}

// AddDomain adds a mail domain.
func (db *DB) AddDomain(name string) (Domain, error) {
	d, err := CanonicalDomain(name)
	if err != nil {
		return Domain{}, err
	}
	rec := domainRecord{Created: time.Now().UTC().Truncate(time.Second)}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDomains)
		if b.Get([]byte(d)) != nil {
			return fmt.Errorf("domain %s: %w", d, ErrExists)
		}
		return putJSON(b, d, rec)
	})
	if err != nil {
		return Domain{}, err
	}
	return Domain{Name: d, Created: rec.Created}, nil
}

// DelDomain deletes a mail domain. A domain that still has accounts or aliases is
// refused with ErrNotEmpty unless force is set, in which case they go too. Mail on disk
// is never touched; aliases elsewhere that point into the domain stay.
func (db *DB) DelDomain(name string, force bool) error {
	d, err := CanonicalDomain(name)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketDomains).Get([]byte(d)) == nil {
			return fmt.Errorf("domain %s: %w", d, ErrNotFound)
		}
		users := countKeys(tx.Bucket(bucketUsers).Bucket([]byte(d)))
		aliases := countKeys(tx.Bucket(bucketAliases).Bucket([]byte(d)))
		if (users > 0 || aliases > 0) && !force {
			return fmt.Errorf("domain %s has %d accounts and %d aliases: %w", d, users, aliases, ErrNotEmpty)
		}
		for _, top := range [][]byte{bucketUsers, bucketAliases} {
			if tx.Bucket(top).Bucket([]byte(d)) != nil {
				if err := tx.Bucket(top).DeleteBucket([]byte(d)); err != nil {
					return err
				}
			}
		}
		inDomain := func(account string) bool { return strings.HasSuffix(account, "@"+d) }
		if err := forgetLoginsOf(tx, inDomain); err != nil {
			return err
		}
		if err := forgetAppPasswordsOf(tx, inDomain); err != nil {
			return err
		}
		if err := forgetImageSendersOf(tx, inDomain); err != nil {
			return err
		}
		return tx.Bucket(bucketDomains).Delete([]byte(d))
	})
}

// Domains lists the mail domains in name order, with their counts.
func (db *DB) Domains() ([]Domain, error) {
	var out []Domain
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDomains).ForEach(func(k, v []byte) error {
			var rec domainRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("domain %s: damaged record: %w", k, err)
			}
			out = append(out, Domain{
				Name:    string(k),
				Created: rec.Created,
				Users:   countKeys(tx.Bucket(bucketUsers).Bucket(k)),
				Aliases: countKeys(tx.Bucket(bucketAliases).Bucket(k)),
			})
			return nil
		})
	})
	return out, err
}

// HasDomain reports whether name is one of the mail domains. A malformed name is simply
// not one of them.
func (db *DB) HasDomain(name string) (bool, error) {
	d, err := CanonicalDomain(name)
	if err != nil {
		return false, nil
	}
	var ok bool
	err = db.bolt.View(func(tx *bolt.Tx) error {
		ok = hasDomain(tx, d)
		return nil
	})
	return ok, err
}

func hasDomain(tx *bolt.Tx, d string) bool {
	return tx.Bucket(bucketDomains).Get([]byte(d)) != nil
}

// domainNames lists the given domain (which must exist) or, for "", every domain.
func domainNames(tx *bolt.Tx, domain string) ([]string, error) {
	if domain != "" {
		d, err := CanonicalDomain(domain)
		if err != nil {
			return nil, err
		}
		if !hasDomain(tx, d) {
			return nil, fmt.Errorf("domain %s: %w", d, ErrNotFound)
		}
		return []string{d}, nil
	}
	var out []string
	err := tx.Bucket(bucketDomains).ForEach(func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out, err
}

func countKeys(b *bolt.Bucket) int {
	if b == nil {
		return 0
	}
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// Backup writes a consistent copy of the whole database to w while it stays in use
// (bbolt's online backup: one read transaction's view of every page). It returns the
// octets written.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backing up the users database: %w", err)
	}
	return n, nil
}

package userdb

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// App passwords: an account may have a few generated passwords, one per device or
// program, each with a name, usable wherever its password is (IMAP, POP3, SMTP AUTH) and
// revocable one by one. They are stored as argon2id hashes like the password, and shown
// only once, when generated.

var bucketAppPasswords = []byte("apppasswords")

const (
	// MaxAppPasswords bounds the app passwords of one account: a failed login may try
	// each of them, so their number bounds its cost.
	MaxAppPasswords = 20
	// MaxAppPasswordName is the longest name of an app password, in bytes.
	MaxAppPasswordName = 64

	// appGroups groups of appGroupLen letters make an app password: 16 letters from 26,
	// 75 bits, typed easily on a phone.
	appGroups   = 4
	appGroupLen = 4
)

// AppPassword is one app password of an account (never its clear text, which only
// AddAppPassword returns).
type AppPassword struct {
	Name    string
	Created time.Time
	// LastUsed is the day of the last successful login with it (zero: never used).
	LastUsed time.Time
}

type appPasswordRecord struct {
	Hash     string    `json:"hash"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// checkAppPasswordName checks the name of an app password: printable, not empty, at
// most MaxAppPasswordName bytes.
func checkAppPasswordName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > MaxAppPasswordName || !utf8.ValidString(name) {
		return "", invalid("app password name %q: want 1 to %d printable characters", clip(name), MaxAppPasswordName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return "", invalid("app password name %q has a control character", clip(name))
		}
	}
	return name, nil
}

// generateAppPassword makes a new app password: appGroups groups of lower-case letters
// joined by dashes, like "abcd-efgh-ijkl-mnop".
func generateAppPassword() (string, error) {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	buf := make([]byte, 0, appGroups*(appGroupLen+1))
	for g := range appGroups {
		if g > 0 {
			buf = append(buf, '-')
		}
		for range appGroupLen {
			// Rejection sampling keeps the letters uniform: 256 is not a multiple of 26.
			var b [1]byte
			for {
				if _, err := rand.Read(b[:]); err != nil {
					return "", fmt.Errorf("reading random bytes: %w", err)
				}
				if b[0] < 26*9 {
					break
				}
			}
			buf = append(buf, letters[b[0]%26])
		}
	}
	return string(buf), nil
}

// normalizeAppPassword returns the letters of pw when it has the shape of an app
// password (the dashes, or spaces, where a person may type or leave them out; any
// case), and ok false when it cannot be one.
func normalizeAppPassword(pw string) (letters string, ok bool) {
	if len(pw) > 2*appGroups*appGroupLen {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(pw); i++ {
		c := pw[i]
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c - 'A' + 'a')
		case c == '-' || c == ' ':
		default:
			return "", false
		}
	}
	if b.Len() != appGroups*appGroupLen {
		return "", false
	}
	return b.String(), true
}

// AddAppPassword generates an app password named name for the account addr, stores its
// hash, and returns it in clear text: the only time it is ever shown. A name already
// taken is ErrExists; more than MaxAppPasswords is ErrInvalid.
func (db *DB) AddAppPassword(addr, name string) (string, AppPassword, error) {
	a, d, err := accountAddress(addr)
	if err != nil {
		return "", AppPassword{}, err
	}
	if name, err = checkAppPasswordName(name); err != nil {
		return "", AppPassword{}, err
	}
	pw, err := generateAppPassword()
	if err != nil {
		return "", AppPassword{}, err
	}
	letters, _ := normalizeAppPassword(pw)
	hash, err := db.hash(letters)
	if err != nil {
		return "", AppPassword{}, err
	}
	rec := appPasswordRecord{Hash: hash, Created: time.Now().UTC().Truncate(time.Second)}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if _, err := getUser(tx.Bucket(bucketUsers).Bucket([]byte(d)), a); err != nil {
			return err
		}
		b, err := tx.Bucket(bucketAppPasswords).CreateBucketIfNotExists([]byte(a))
		if err != nil {
			return err
		}
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("app password %q of %s: %w", name, a, ErrExists)
		}
		if countKeys(b) >= MaxAppPasswords {
			return invalid("%s has %d app passwords already, the most an account may have", a, MaxAppPasswords)
		}
		return putJSON(b, name, rec)
	})
	if err != nil {
		return "", AppPassword{}, err
	}
	return pw, AppPassword{Name: name, Created: rec.Created}, nil
}

// AppPasswords lists the app passwords of the account addr by name.
func (db *DB) AppPasswords(addr string) ([]AppPassword, error) {
	a, d, err := accountAddress(addr)
	if err != nil {
		return nil, err
	}
	out := []AppPassword{}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		if _, err := getUser(tx.Bucket(bucketUsers).Bucket([]byte(d)), a); err != nil {
			return err
		}
		b := tx.Bucket(bucketAppPasswords).Bucket([]byte(a))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rec appPasswordRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("app password %q of %s: damaged record: %w", k, a, err)
			}
			out = append(out, AppPassword{Name: string(k), Created: rec.Created, LastUsed: rec.LastUsed})
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// RevokeAppPassword deletes the app password name of the account addr: it no longer
// logs in from the next login on.
func (db *DB) RevokeAppPassword(addr, name string) error {
	a, _, err := accountAddress(addr)
	if err != nil {
		return err
	}
	name = strings.TrimSpace(name)
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAppPasswords).Bucket([]byte(a))
		if b == nil || b.Get([]byte(name)) == nil {
			return fmt.Errorf("app password %q of %s: %w", clip(name), a, ErrNotFound)
		}
		return b.Delete([]byte(name))
	})
}

// appRecords returns the app passwords of account a, by name.
func appRecords(tx *bolt.Tx, a string) (map[string]appPasswordRecord, error) {
	b := tx.Bucket(bucketAppPasswords).Bucket([]byte(a))
	if b == nil {
		return nil, nil
	}
	out := map[string]appPasswordRecord{}
	err := b.ForEach(func(k, v []byte) error {
		var rec appPasswordRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("app password %q of %s: damaged record: %w", k, a, err)
		}
		out[string(k)] = rec
		return nil
	})
	return out, err
}

// markAppPasswordUsed notes day as the last day app password name of a logged in.
func (db *DB) markAppPasswordUsed(a, name string, day time.Time) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAppPasswords).Bucket([]byte(a))
		if b == nil || b.Get([]byte(name)) == nil {
			return nil // revoked meanwhile
		}
		var rec appPasswordRecord
		if err := json.Unmarshal(b.Get([]byte(name)), &rec); err != nil {
			return fmt.Errorf("app password %q of %s: damaged record: %w", name, a, err)
		}
		rec.LastUsed = day
		return putJSON(b, name, rec)
	})
}

// Verified is the outcome of Authenticate.
type Verified struct {
	// OK is true when the password, or one of the account's app passwords, is right.
	OK bool
	// Address is the account's canonical address, when OK.
	Address string
	// AppPassword names the app password that was used; "" for the account's password.
	AppPassword string
}

// Authenticate checks a login as VerifyPassword does, and when the password is not the
// account's, tries the account's app passwords, if the password has their shape. A
// wrong password of that shape costs one argon2id computation per app password more.
// A disabled account logs in with neither.
func (db *DB) Authenticate(addr, password string) (Verified, error) {
	ok, canon, err := db.VerifyPassword(addr, password)
	if err != nil || ok {
		return Verified{OK: ok, Address: canon}, err
	}
	letters, shaped := normalizeAppPassword(password)
	if !shaped {
		return Verified{}, nil
	}
	a, d, err := accountAddress(addr)
	if err != nil {
		return Verified{}, nil
	}
	var recs map[string]appPasswordRecord
	err = db.bolt.View(func(tx *bolt.Tx) error {
		u, err := getUser(tx.Bucket(bucketUsers).Bucket([]byte(d)), a)
		if err != nil || u.Disabled {
			return nil // no such account, or disabled: no app password logs in
		}
		recs, err = appRecords(tx, a)
		return err
	})
	if err != nil {
		return Verified{}, err
	}
	names := make([]string, 0, len(recs))
	for n := range recs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		match, err := db.check(recs[n].Hash, letters)
		if err != nil {
			return Verified{}, fmt.Errorf("app password %q of %s: %w", n, a, err)
		}
		if !match {
			continue
		}
		day := time.Now().UTC().Truncate(24 * time.Hour)
		if !recs[n].LastUsed.Equal(day) { // once a day at most: a login need not write
			if err := db.markAppPasswordUsed(a, n, day); err != nil {
				return Verified{}, err
			}
		}
		return Verified{OK: true, Address: a, AppPassword: n}, nil
	}
	return Verified{}, nil
}

// forgetAppPasswordsOf deletes the app passwords of the accounts that match.
func forgetAppPasswordsOf(tx *bolt.Tx, match func(account string) bool) error {
	return deleteAccountBuckets(tx.Bucket(bucketAppPasswords), match)
}

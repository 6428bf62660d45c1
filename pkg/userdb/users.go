package userdb

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// User is an account.
type User struct {
	// Address is the account's canonical address, local@domain in lower case.
	Address string
	// Quota is the storage limit in bytes; 0 means unlimited.
	Quota   int64
	Created time.Time
	// Admin marks an administrator: the web admin panel is open to the account.
	Admin bool
	// Disabled marks an account that may not log in (its mail is still delivered).
	Disabled bool
}

type userRecord struct {
	// Hash is the argon2id PHC string of the password.
	Hash    string    `json:"hash"`
	Quota   int64     `json:"quota,omitempty"`
	Created time.Time `json:"created"`
	Admin   bool      `json:"admin,omitempty"`
	// Disabled refuses every login (password and app passwords).
	Disabled bool `json:"disabled,omitempty"`
}

// accountAddress checks addr as the address of an account and returns it canonical,
// with its domain.
func accountAddress(addr string) (canonical, domain string, err error) {
	local, domain, err := ParseAddress(addr)
	if err != nil {
		return "", "", err
	}
	if err := checkMailboxLocal(local); err != nil {
		return "", "", fmt.Errorf("address %q: %w", clip(addr), err)
	}
	return local + "@" + domain, domain, nil
}

// hash hashes a password with the database's costs, at most GOMAXPROCS at a time.
func (db *DB) hash(pw string) (string, error) {
	db.hashing <- struct{}{}
	defer func() { <-db.hashing }()
	return hashPassword(pw, db.params)
}

// check verifies a password against a stored hash, at most GOMAXPROCS at a time.
func (db *DB) check(stored, pw string) (bool, error) {
	db.hashing <- struct{}{}
	defer func() { <-db.hashing }()
	return checkHash(stored, pw)
}

// AddUser creates an account in an existing domain. quota is in bytes, 0 for unlimited.
// The local part must be usable as a directory name (see Maildir). An address that is
// already an alias cannot become an account. The Maildir is not created here: that is
// local's job (authd asks it to).
func (db *DB) AddUser(addr, password string, quota int64) (User, error) {
	a, d, err := accountAddress(addr)
	if err != nil {
		return User{}, err
	}
	if err := checkPassword(password); err != nil {
		return User{}, err
	}
	if quota < 0 {
		return User{}, invalid("negative quota %d", quota)
	}
	hash, err := db.hash(password)
	if err != nil {
		return User{}, err
	}
	rec := userRecord{Hash: hash, Quota: quota, Created: time.Now().UTC().Truncate(time.Second)}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if !hasDomain(tx, d) {
			return fmt.Errorf("domain %s: %w", d, ErrNotFound)
		}
		if getAlias(tx, d, a) != nil {
			return fmt.Errorf("%s is an alias: %w", a, ErrExists)
		}
		b, err := tx.Bucket(bucketUsers).CreateBucketIfNotExists([]byte(d))
		if err != nil {
			return err
		}
		if b.Get([]byte(a)) != nil {
			return fmt.Errorf("account %s: %w", a, ErrExists)
		}
		return putJSON(b, a, rec)
	})
	if err != nil {
		return User{}, err
	}
	return User{Address: a, Quota: quota, Created: rec.Created}, nil
}

// DelUser deletes an account. Its mail on disk stays, and so do aliases pointing to it.
func (db *DB) DelUser(addr string) error {
	a, d, err := accountAddress(addr)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers).Bucket([]byte(d))
		if b == nil || b.Get([]byte(a)) == nil {
			return fmt.Errorf("account %s: %w", a, ErrNotFound)
		}
		isA := func(account string) bool { return account == a }
		if err := forgetLoginsOf(tx, isA); err != nil {
			return err
		}
		if err := forgetAppPasswordsOf(tx, isA); err != nil {
			return err
		}
		if err := forgetImageSendersOf(tx, isA); err != nil {
			return err
		}
		return b.Delete([]byte(a))
	})
}

// SetPassword changes an account's password.
func (db *DB) SetPassword(addr, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	if _, _, err := accountAddress(addr); err != nil {
		return err
	}
	hash, err := db.hash(password)
	if err != nil {
		return err
	}
	return db.updateUser(addr, func(r *userRecord) { r.Hash = hash })
}

// SetAdmin makes the account an administrator, or (admin false) no longer one.
func (db *DB) SetAdmin(addr string, admin bool) error {
	return db.updateUser(addr, func(r *userRecord) { r.Admin = admin })
}

// SetDisabled disables the account (no login, with its password or an app password;
// mail for it is still delivered), or enables it again.
func (db *DB) SetDisabled(addr string, disabled bool) error {
	return db.updateUser(addr, func(r *userRecord) { r.Disabled = disabled })
}

// SetQuota changes an account's quota (bytes, 0 for unlimited).
func (db *DB) SetQuota(addr string, quota int64) error {
	if quota < 0 {
		return invalid("negative quota %d", quota)
	}
	return db.updateUser(addr, func(r *userRecord) { r.Quota = quota })
}

func (db *DB) updateUser(addr string, change func(*userRecord)) error {
	a, d, err := accountAddress(addr)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers).Bucket([]byte(d))
		rec, err := getUser(b, a)
		if err != nil {
			return err
		}
		change(&rec)
		return putJSON(b, a, rec)
	})
}

func getUser(b *bolt.Bucket, a string) (userRecord, error) {
	var rec userRecord
	var v []byte
	if b != nil {
		v = b.Get([]byte(a))
	}
	if v == nil {
		return rec, fmt.Errorf("account %s: %w", a, ErrNotFound)
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, fmt.Errorf("account %s: damaged record: %w", a, err)
	}
	return rec, nil
}

// User returns the account addr (in any case; no plus-addressing or aliases).
func (db *DB) User(addr string) (User, error) {
	a, d, err := accountAddress(addr)
	if err != nil {
		return User{}, err
	}
	var u User
	err = db.bolt.View(func(tx *bolt.Tx) error {
		rec, err := getUser(tx.Bucket(bucketUsers).Bucket([]byte(d)), a)
		u = User{Address: a, Quota: rec.Quota, Created: rec.Created, Admin: rec.Admin, Disabled: rec.Disabled}
		return err
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// Users lists the accounts of a domain, or of every domain when domain is "", sorted by
// domain and then address.
func (db *DB) Users(domain string) ([]User, error) {
	var out []User
	err := db.bolt.View(func(tx *bolt.Tx) error {
		names, err := domainNames(tx, domain)
		if err != nil {
			return err
		}
		for _, d := range names {
			b := tx.Bucket(bucketUsers).Bucket([]byte(d))
			if b == nil {
				continue
			}
			err := b.ForEach(func(k, v []byte) error {
				var rec userRecord
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("account %s: damaged record: %w", k, err)
				}
				out = append(out, User{Address: string(k), Quota: rec.Quota, Created: rec.Created, Admin: rec.Admin, Disabled: rec.Disabled})
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// VerifyPassword checks a login: the account addr (any case; no plus-addressing or
// aliases) and its password. It answers ok and the account's canonical address when the
// password is right. The comparison is constant-time, and when the account does not
// exist the password is checked against a dummy hash, so the time taken does not tell
// whether an account exists. A disabled account is refused the same way, after the
// hash. err reports only a database failure or a damaged hash.
func (db *DB) VerifyPassword(addr, password string) (ok bool, canonical string, err error) {
	if password == "" || len(password) > MaxPasswordLen {
		return false, "", nil
	}
	stored, exists := db.dummy, false
	a, d, aerr := accountAddress(addr)
	if aerr == nil {
		err = db.bolt.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketUsers).Bucket([]byte(d))
			if b == nil || b.Get([]byte(a)) == nil {
				return nil
			}
			rec, err := getUser(b, a)
			if err != nil {
				return err
			}
			stored, exists = rec.Hash, !rec.Disabled
			return nil
		})
		if err != nil {
			return false, "", err
		}
	}
	match, err := db.check(stored, password)
	if err != nil {
		return false, "", fmt.Errorf("account %s: %w", a, err)
	}
	if !match || !exists {
		return false, "", nil
	}
	return true, a, nil
}

package userdb

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Remembered logins: where each account logged in successfully, so that authd's
// failed-login throttling never locks an account's known clients out (see authd(8)).
// A site is what authd names it (an IPv4 address or an IPv6 /64); this package only
// stores it.

var bucketLogins = []byte("logins")

// Login is a remembered successful login.
type Login struct {
	Account string
	Site    string
	At      time.Time
}

type loginRecord struct {
	At time.Time `json:"at"`
}

// RememberLogin records that account logged in successfully from site at at.
func (db *DB) RememberLogin(account, site string, at time.Time) error {
	if account == "" || site == "" || len(site) > 100 {
		return invalid("remembered login: account %q, site %q", clip(account), clip(site))
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketLogins).CreateBucketIfNotExists([]byte(account))
		if err != nil {
			return err
		}
		return putJSON(b, site, loginRecord{At: at.UTC().Truncate(time.Second)})
	})
	if err != nil {
		return fmt.Errorf("remembering a login of %s: %w", account, err)
	}
	return nil
}

// Logins returns the logins remembered since since, newest first.
func (db *DB) Logins(since time.Time) ([]Login, error) {
	var out []Login
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLogins).ForEachBucket(func(account []byte) error {
			return tx.Bucket(bucketLogins).Bucket(account).ForEach(func(site, v []byte) error {
				var rec loginRecord
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("remembered login of %s from %s: damaged record: %w", account, site, err)
				}
				if !rec.At.Before(since) {
					out = append(out, Login{Account: string(account), Site: string(site), At: rec.At})
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading the remembered logins: %w", err)
	}
	sortLogins(out)
	return out, nil
}

// ForgetLogins deletes the logins remembered before before and returns how many.
func (db *DB) ForgetLogins(before time.Time) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketLogins)
		var empty [][]byte
		err := top.ForEachBucket(func(account []byte) error {
			b := top.Bucket(account)
			var old [][]byte
			err := b.ForEach(func(site, v []byte) error {
				var rec loginRecord
				if json.Unmarshal(v, &rec) != nil || rec.At.Before(before) {
					old = append(old, site)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, site := range old {
				if err := b.Delete(site); err != nil {
					return err
				}
				n++
			}
			if countKeys(b) == 0 {
				empty = append(empty, account)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, account := range empty {
			if err := top.DeleteBucket(account); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("forgetting old logins: %w", err)
	}
	return n, nil
}

// forgetLoginsOf deletes the remembered logins of the accounts that match.
func forgetLoginsOf(tx *bolt.Tx, match func(account string) bool) error {
	return deleteAccountBuckets(tx.Bucket(bucketLogins), match)
}

// deleteAccountBuckets deletes the sub-buckets of top, one per account, of the accounts
// that match.
func deleteAccountBuckets(top *bolt.Bucket, match func(account string) bool) error {
	var gone [][]byte
	err := top.ForEachBucket(func(account []byte) error {
		if match(string(account)) {
			gone = append(gone, account)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, account := range gone {
		if err := top.DeleteBucket(account); err != nil {
			return err
		}
	}
	return nil
}

// sortLogins orders logins newest first.
func sortLogins(ls []Login) {
	sort.Slice(ls, func(i, j int) bool { return ls[i].At.After(ls[j].At) })
}

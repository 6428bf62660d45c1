package userdb

import (
	"encoding/json"
	"fmt"

	"postern/pkg/ratelimit"

	bolt "go.etcd.io/bbolt"
)

// Submission counts: how many messages and recipients each account submitted in the
// last hour, kept for authd's per-account limits so that a restart does not reset
// them. This package only stores them.

var bucketRates = []byte("rates")

// SaveRates stores the counts of the accounts in m, in one transaction; a nil entry
// deletes the account's counts.
func (db *DB) SaveRates(m map[string]*ratelimit.Counts) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRates)
		for account, c := range m {
			if account == "" || len(account) > 320 {
				continue
			}
			if c == nil {
				if err := b.Delete([]byte(account)); err != nil {
					return err
				}
				continue
			}
			if err := putJSON(b, account, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing the submission counts: %w", err)
	}
	return nil
}

// Rates returns the stored submission counts by account. A damaged record is skipped:
// the account then starts from zero.
func (db *DB) Rates() (map[string]ratelimit.Counts, error) {
	out := map[string]ratelimit.Counts{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRates).ForEach(func(k, v []byte) error {
			var c ratelimit.Counts
			if json.Unmarshal(v, &c) == nil {
				out[string(k)] = c
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading the submission counts: %w", err)
	}
	return out, nil
}

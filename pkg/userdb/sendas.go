package userdb

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// SendAs returns the addresses the account addr may send as: its own address first, then
// every alias of our domains whose expansion includes the account (through other aliases
// too), sorted by domain and address. Catch-alls ("@domain") are not included: receiving
// a domain's stray mail does not make one the whole domain. Plus-addresses
// (local+tag@domain) of each address are implied; the caller applies that rule.
func (db *DB) SendAs(addr string) ([]string, error) {
	account, d, err := accountAddress(addr)
	if err != nil {
		return nil, err
	}
	var out []string
	err = db.bolt.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketUsers).Bucket([]byte(d))
		if ub == nil || ub.Get([]byte(account)) == nil {
			return fmt.Errorf("account %s: %w", account, ErrNotFound)
		}
		out = append(out, account)
		return tx.Bucket(bucketAliases).ForEachBucket(func(domain []byte) error {
			return tx.Bucket(bucketAliases).Bucket(domain).ForEach(func(k, v []byte) error {
				key := string(k)
				if IsCatchAll(key) {
					return nil
				}
				a, err := decodeAlias(key, v)
				if err != nil {
					return err
				}
				r := resolver{tx: tx, seen: map[string]bool{}}
				r.expandAlias(key, a.Targets)
				if r.err != nil {
					return r.err
				}
				if r.seen[account] {
					out = append(out, key)
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

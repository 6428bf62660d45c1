package junk

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Forget deletes user's own corpus (a deleted account's) and reports whether there was
// one. The global corpus keeps what it learned from the user's messages.
func (db *DB) Forget(user string) (bool, error) {
	if user == "" {
		return false, fmt.Errorf("junk: forgetting the global corpus: %w", ErrUser)
	}
	found := false
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		if users.Bucket([]byte(user)) == nil {
			return nil
		}
		found = true
		return users.DeleteBucket([]byte(user))
	})
	if err != nil {
		return false, fmt.Errorf("junk: forgetting the corpus of %q: %w", user, err)
	}
	return found, nil
}

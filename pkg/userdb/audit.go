package userdb

import (
	"postern/pkg/audit"

	bolt "go.etcd.io/bbolt"
)

// authd's audit log lives in users.db, beside what it records (pkg/audit): an entry
// committed with the change's own fsync. Nothing deletes or rewrites entries.

var bucketAudit = []byte("audit")

// AppendAudit records an administrative change in the audit log, and returns the entry
// as stored (numbered, timed).
func (db *DB) AppendAudit(e audit.Entry) (audit.Entry, error) {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		var err error
		e, err = audit.Append(tx.Bucket(bucketAudit), e)
		return err
	})
	return e, err
}

// Audit returns the last n entries of the audit log (all when n <= 0, up to
// audit.MaxRead), oldest first.
func (db *DB) Audit(n int) ([]audit.Entry, error) {
	var out []audit.Entry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		out, err = audit.Read(tx.Bucket(bucketAudit), n)
		return err
	})
	return out, err
}

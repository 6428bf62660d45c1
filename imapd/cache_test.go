package main

import (
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestLoadKeys: the keys of the records asked for, whatever the order of the UIDs, with
// records missing in the middle and UIDs past the last one left out.
func TestLoadKeys(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	for i := 1; i <= 8; i++ {
		c.appendMsg("INBOX", "", msg(fmt.Sprintf("Subject%d", i), "body\r\n"))
	}
	c.ok("SELECT INBOX")
	c.ok("UID SORT (SUBJECT) UTF-8 ALL") // computes and stores the keys
	a := e.srv.accounts["a@example.test"]
	mb, err := a.openMailbox("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer a.release(mb)
	err = a.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("INBOX")).Bucket(bucketCache).Delete(uidKey(4))
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, uids := range [][]uint32{
		{1, 2, 3, 4, 5, 6, 7, 8, 9},
		{8, 7, 6, 5, 4, 3, 2, 1},
		{3, 5, 4, 99, 1, 1, 8, 2},
		{9, 6},
	} {
		got := mb.loadKeys(uids)
		for _, u := range uids {
			k := got[u]
			switch {
			case u == 4 || u > 8:
				if k != nil {
					t.Errorf("loadKeys(%v): a record for UID %d, which has none", uids, u)
				}
			case k == nil || k.keys == nil:
				t.Errorf("loadKeys(%v): no keys for UID %d", uids, u)
			case k.keys.Subject != fmt.Sprintf("SUBJECT%d", u):
				t.Errorf("loadKeys(%v): UID %d has the keys of %q", uids, u, k.keys.Subject)
			}
		}
	}
}

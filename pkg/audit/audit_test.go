package audit

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestAppendRead(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "a.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := []byte("audit")
	// Read of a missing bucket is empty, not an error.
	if err := db.View(func(tx *bolt.Tx) error {
		es, err := Read(tx.Bucket(name), 10)
		if err != nil || len(es) != 0 {
			t.Errorf("Read(nil) = %v, %v", es, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, op := range []string{"domain.add", "user.add", "user.admin"} {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			e, err := Append(b, Entry{Daemon: "authd", UID: 1000, Op: op, Target: "x"})
			if err == nil && e.Seq != uint64(i+1) {
				t.Errorf("entry %d numbered %d", i, e.Seq)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	db.View(func(tx *bolt.Tx) error {
		es, err := Read(tx.Bucket(name), 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 2 || es[0].Op != "user.add" || es[1].Op != "user.admin" || es[1].Seq != 3 || es[1].Time.IsZero() {
			t.Errorf("Read(2) = %+v", es)
		}
		all, _ := Read(tx.Bucket(name), 0)
		if len(all) != 3 || all[0].Op != "domain.add" {
			t.Errorf("Read(0) = %+v", all)
		}
		return nil
	})
}

func TestMergeAndWho(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	a := []Entry{{Seq: 1, Time: t0, Daemon: "authd", Op: "a1"}, {Seq: 2, Time: t0.Add(2 * time.Second), Daemon: "authd", Op: "a2"}}
	q := []Entry{{Seq: 1, Time: t0.Add(time.Second), Daemon: "qmgr", Op: "q1"}}
	m := Merge(0, a, q)
	if len(m) != 3 || m[0].Op != "a1" || m[1].Op != "q1" || m[2].Op != "a2" {
		t.Errorf("Merge = %+v", m)
	}
	if m := Merge(2, a, q); len(m) != 2 || m[0].Op != "q1" {
		t.Errorf("Merge(2) = %+v", m)
	}
	if w := (Entry{UID: 0, User: "root"}).Who(); w != "root" {
		t.Errorf("Who = %q", w)
	}
	long := strings.Repeat("x", 400)
	if e := By("qmgr", 998, long, "192.0.2.1"); e.Daemon != "qmgr" || e.UID != 998 || len(e.Web) != maxField || e.IP != "192.0.2.1" {
		t.Errorf("By = %+v", e)
	}
	if w := (Entry{UID: 998, Web: "admin@example.org"}).Who(); w != "admin@example.org (web, via uid 998)" {
		t.Errorf("Who = %q", w)
	}
}

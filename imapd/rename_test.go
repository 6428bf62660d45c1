package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/maildir"
)

// manyMessages puts n messages into a's INBOX the way local does (into new/), and
// returns the INBOX's directory.
func manyMessages(t *testing.T, e *testEnv, n int) string {
	t.Helper()
	root := e.maildir("a")
	if err := maildir.Create(root, maildir.DefaultFolders); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		body := msg(fmt.Sprint("m", i), "x\r\n")
		name := fmt.Sprintf("%d.M%dP1.host,S=%d", 1700000000+i, i, len(body))
		if err := os.WriteFile(filepath.Join(root, "new", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// storeMany puts n messages into a's INBOX, sets flags on all of them in one STORE,
// and waits until every file name carries the flag letter. It returns the test
// environment and the INBOX's directory.
func storeMany(t *testing.T, n int, flags string, letter byte) (*testEnv, string) {
	t.Helper()
	e := newTestEnv(t)
	root := manyMessages(t, e, n)
	c := e.login("a")
	c.ok("SELECT INBOX")
	c.ok("STORE 1:* +FLAGS.SILENT (" + flags + ")")
	c.ok("LOGOUT")
	waitNames(t, root, n, letter)
	return e, root
}

// diskFlags returns the flag letters of every message file in root's cur/ and new/,
// by base name. It must not run while imapd renames files: a directory read during
// renames may list a file twice, or not at all.
func diskFlags(t *testing.T, root string) map[string]string {
	t.Helper()
	files, dups := readFlags(t, root)
	for _, d := range dups {
		t.Errorf("two files of %s", d)
	}
	return files
}

func readFlags(t *testing.T, root string) (files map[string]string, dups []string) {
	t.Helper()
	files = map[string]string{}
	for _, sub := range []string{"cur", "new"} {
		names, err := readDirNames(filepath.Join(root, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			base, info, _ := strings.Cut(n, ":")
			if _, dup := files[base]; dup {
				dups = append(dups, base)
			}
			files[base] = strings.TrimPrefix(info, "2,")
		}
	}
	return files, dups
}

// waitNames waits until every file name in root shows the flag letter want (or, with
// want 0, until there are no files), and fails after a generous deadline.
func waitNames(t *testing.T, root string, n int, want byte) map[string]string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		files, dups := readFlags(t, root)
		ok := len(files) == n && len(dups) == 0
		for _, f := range files {
			ok = ok && strings.IndexByte(f, want) >= 0
		}
		if ok {
			return diskFlags(t, root) // once more, now that the renames are done
		}
		if time.Now().After(deadline) {
			lacking := 0
			for _, f := range files {
				if strings.IndexByte(f, want) < 0 {
					lacking++
				}
			}
			t.Fatalf("%d files on disk (want %d), %d without %q in their names", len(files), n, lacking, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countFlag returns how many messages FETCH 1:* FLAGS shows with flag, in a new session.
func countFlag(t *testing.T, e *testEnv, n int, flag string) {
	t.Helper()
	c := e.login("a")
	u := c.ok("SELECT INBOX")
	if !hasLine(u, fmt.Sprintf(`^\* %d EXISTS`, n)) {
		t.Fatalf("SELECT in a new session: want %d EXISTS: %q", n, u[:min(len(u), 5)])
	}
	if n == 0 {
		return
	}
	got := 0
	for _, l := range c.ok("FETCH 1:* FLAGS") {
		if strings.Contains(l, flag) {
			got++
		}
	}
	if got != n {
		t.Errorf("a new session sees %s on %d of %d messages", flag, got, n)
	}
	c.ok("LOGOUT")
}

// A flag change and an EXPUNGE of far more messages than one batch of renames takes:
// every file gets its new name, and every expunged file is gone, seen from a new
// session, from a restarted imapd and on disk. (Before, all but the first 256 files
// kept their names and came back as new mail after EXPUNGE.)
func TestStoreAndExpungeManyMessages(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	e, root := storeMany(t, n, `\Flagged`, 'F')
	countFlag(t, e, n, `\Flagged`)

	c := e.login("a")
	c.ok("SELECT INBOX")
	c.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
	u := c.ok("EXPUNGE")
	if len(u) != n {
		t.Errorf("EXPUNGE: %d untagged responses, want %d", len(u), n)
	}
	c.ok("LOGOUT")
	if files := diskFlags(t, root); len(files) != 0 {
		t.Fatalf("%d files left on disk after EXPUNGE", len(files))
	}
	countFlag(t, e, 0, "")
	e.stop()
	e.start()
	countFlag(t, e, 0, "")
}

// A STORE whose renames were cut short by a crash (the index has the flags and the mark
// that names lag behind; the files have their old names) is completed when imapd loads
// the folder again: the index wins over the old names, and EXPUNGE then removes every
// file.
func TestRenamesAfterCrash(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 500
	}
	e, root := storeMany(t, n, `\Seen \Deleted`, 'T')
	e.stop()
	// The state a kill -9 leaves between STORE's answer and the renames.
	cur := filepath.Join(root, "cur")
	names, _ := readDirNames(cur)
	for _, name := range names {
		base, _, _ := strings.Cut(name, ":")
		if err := os.Rename(filepath.Join(cur, name), filepath.Join(cur, base+":2,")); err != nil {
			t.Fatal(err)
		}
	}
	db, err := bolt.Open(filepath.Join(root, indexFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("INBOX")).Put(keyPending, []byte{1}) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	e.start()
	countFlag(t, e, n, `\Deleted`)
	for base, f := range diskFlags(t, root) {
		if f != "ST" {
			t.Fatalf("after restart, %s has flags %q on disk, want ST", base, f)
		}
	}
	c := e.login("a")
	c.ok("SELECT INBOX")
	c.ok("EXPUNGE")
	c.ok("LOGOUT")
	if files := diskFlags(t, root); len(files) != 0 {
		t.Fatalf("%d files left on disk after EXPUNGE", len(files))
	}
}

// A file renamed by another program between STORE and the renames (its name no longer
// the one the index knows) is found by its base name, both by the renames and by
// EXPUNGE: nothing is left behind to come back as new mail.
func TestExpungeFindsRenamedFile(t *testing.T) {
	e := newTestEnv(t)
	root := manyMessages(t, e, 3)
	c := e.login("a")
	c.ok("SELECT INBOX")
	c.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
	waitNames(t, root, 3, 'T')
	names, _ := readDirNames(filepath.Join(root, "cur"))
	for _, name := range names {
		base, _, _ := strings.Cut(name, ":")
		os.Rename(filepath.Join(root, "cur", name), filepath.Join(root, "cur", base+":2,TS"))
	}
	c.ok("EXPUNGE")
	c.ok("LOGOUT")
	if files := diskFlags(t, root); len(files) != 0 {
		t.Fatalf("files left on disk after EXPUNGE: %v", files)
	}
	e.stop()
	e.start()
	countFlag(t, e, 0, "")
}

// Sessions that come and go while an account's files are being renamed: the last
// session's logout waits for the renames in the background (closeIdle), while new
// sessions start new ones. (A sync.WaitGroup there panicked: "WaitGroup is reused
// before previous Wait has returned", found by imaptest's stress run.)
func TestSessionsComeAndGoDuringRenames(t *testing.T) {
	e := newTestEnv(t)
	const n = 300
	root := manyMessages(t, e, n)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				c := e.login("a")
				c.ok("SELECT INBOX")
				op := "+"
				if (w+i)%2 == 1 {
					op = "-"
				}
				c.ok("STORE 1:* " + op + "FLAGS.SILENT (\\Flagged)")
				c.ok("LOGOUT")
				c.c.Close()
			}
		}()
	}
	wg.Wait()
	c := e.login("a")
	c.ok("SELECT INBOX")
	c.ok("STORE 1:* -FLAGS.SILENT (\\Flagged)")
	c.ok("STORE 1:* +FLAGS.SILENT (\\Answered)")
	waitNames(t, root, n, 'R')
	for base, f := range diskFlags(t, root) {
		if f != "R" {
			t.Fatalf("%s has flags %q on disk, want R", base, f)
		}
	}
}

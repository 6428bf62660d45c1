package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// sortMsg is a message with the fields SORT and THREAD look at.
func sortMsg(from, to, cc, subject, date, id, refs string) string {
	h := "From: " + from + "\r\nTo: " + to + "\r\n"
	if cc != "" {
		h += "Cc: " + cc + "\r\n"
	}
	h += "Subject: " + subject + "\r\n"
	if date != "" {
		h += "Date: " + date + "\r\n"
	}
	if id != "" {
		h += "Message-ID: " + id + "\r\n"
	}
	if refs != "" {
		h += "References: " + refs + "\r\n"
	}
	return h + "\r\nbody\r\n"
}

func sortFixture(t *testing.T) (*testEnv, *client) {
	e := newTestEnv(t)
	c := e.login("a")
	for _, m := range []string{
		// 1
		sortMsg("Zed <zed@x.test>", "bob@x.test", "", "Re: Lunch", "Tue, 03 Jan 2006 10:00:00 +0000", "<2@x>", "<1@x>"),
		// 2: the thread's start, and the earliest date (in UTC: 08:00 +0200 is 06:00).
		sortMsg("=?UTF-8?Q?=C3=81da?= <ada@x.test>", "Carl <carl@x.test>", "dora@x.test", "Lunch", "Tue, 03 Jan 2006 08:00:00 +0200", "<1@x>", ""),
		// 3: no Date: its arrival time counts for DATE, and that is late.
		sortMsg("bob@x.test", "alice@x.test", "cy@x.test", "[list] Agenda", "", "<3@x>", ""),
		// 4
		sortMsg("carl@x.test", "Ada <ada@x.test>", "", "Fwd: Re: LUNCH", "Wed, 04 Jan 2006 09:00:00 +0000", "<4@x>", "<1@x> <2@x>"),
	} {
		c.appendMsg("INBOX", "", m)
	}
	c.ok("SELECT INBOX")
	return e, c
}

func TestSortCommand(t *testing.T) {
	_, c := sortFixture(t)
	if u := c.ok("CAPABILITY"); !hasLine(u, ` SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES`) {
		t.Errorf("CAPABILITY: %q", u)
	}
	for _, tt := range []struct{ cmd, want string }{
		{"SORT (DATE) UTF-8 ALL", "* SORT 2 1 4 3"},
		{"SORT (REVERSE DATE) UTF-8 ALL", "* SORT 3 4 1 2"},
		{"SORT (ARRIVAL) US-ASCII ALL", "* SORT 1 2 3 4"},
		// Base subjects: lunch, lunch, agenda, lunch; ties in mailbox order.
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 3 1 2 4"},
		{"SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "* SORT 3 4 1 2"},
		// addr-mailbox of the first From: zed, ada, bob, carl.
		{"SORT (FROM) UTF-8 ALL", "* SORT 2 3 4 1"},
		// To: bob, carl, alice, ada.
		{"SORT (TO) UTF-8 ALL", "* SORT 4 3 1 2"},
		// Cc: "", dora, cy, "": empty first.
		{"SORT (CC) UTF-8 ALL", "* SORT 1 4 3 2"},
		// RFC 5957: display names decoded (Ada), else the address.
		{"SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 2 3 4 1"},
		{"SORT (DISPLAYTO) UTF-8 ALL", "* SORT 4 3 1 2"},
		// Sizes 145, 164, 102, 157 octets.
		{"SORT (SIZE) UTF-8 ALL", "* SORT 3 1 4 2"},
		{"SORT (DATE) UTF-8 FROM carl", "* SORT 4"},
		{"SORT (DATE) UTF-8 SUBJECT nothing", "* SORT"},
		{"UID SORT (REVERSE SUBJECT) UTF-8 2:4", "* SORT 2 4 3"},
		// ESORT (RFC 5267 §3.1): MIN and MAX are the first and last in sort order.
		{"SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL", `* ESEARCH (TAG "t%d") MIN 2 MAX 3 COUNT 4`},
		{"UID SORT RETURN (ALL) (REVERSE DATE) UTF-8 ALL", `* ESEARCH (TAG "t%d") UID ALL 3:4,1:2`},
		{"SORT RETURN () (DATE) UTF-8 1:2", `* ESEARCH (TAG "t%d") ALL 2,1`},
	} {
		u := c.ok(tt.cmd)
		want := tt.want
		if strings.Contains(want, "%d") {
			want = fmt.Sprintf(want, c.n)
		}
		if len(u) != 1 || u[0] != want {
			t.Errorf("%s: %q, want %q", tt.cmd, u, want)
		}
	}
	for _, bad := range []string{"SORT (DATE) ALL", "SORT (NAME) UTF-8 ALL", "SORT () UTF-8 ALL"} {
		if st := c.no(bad); !strings.HasPrefix(st, "BAD") {
			t.Errorf("%s: %s, want BAD", bad, st)
		}
	}
	if st := c.no("SORT (DATE) KOI8-R ALL"); !strings.Contains(st, "BADCHARSET") {
		t.Errorf("unknown charset: %s", st)
	}
	// SAVE keeps the result for "$".
	c.ok("SORT RETURN (SAVE) (DATE) UTF-8 FROM zed")
	if u := c.ok("FETCH $ (UID)"); len(u) != 1 || !strings.HasPrefix(u[0], "* 1 FETCH") {
		t.Errorf("FETCH $ after SORT RETURN (SAVE): %q", u)
	}
	// MODSEQ in the criteria adds the highest mod-sequence (RFC 7162 §3.1.5).
	if u := c.ok("SORT (DATE) UTF-8 MODSEQ 1"); len(u) < 1 || !hasLine(u, `^\* SORT 2 1 4 3 \(MODSEQ \d+\)$`) {
		t.Errorf("SORT with MODSEQ: %q", u)
	}
}

func TestThreadCommand(t *testing.T) {
	_, c := sortFixture(t)
	for _, tt := range []struct{ cmd, want string }{
		// 2 started it, 1 replied, 4 replied to 1; 3 is alone.
		{"THREAD REFERENCES UTF-8 ALL", "* THREAD (2 1 4)(3)"},
		{"UID THREAD REFERENCES UTF-8 ALL", "* THREAD (2 1 4)(3)"},
		// Without 1, 4 still hangs below 2 through its References.
		{"THREAD REFERENCES UTF-8 NOT 1", "* THREAD (2 4)(3)"},
		// ORDEREDSUBJECT: grouped by base subject under the earliest.
		{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (2 (1)(4))(3)"},
		{"THREAD REFERENCES UTF-8 SUBJECT nothing", "* THREAD"},
	} {
		if u := c.ok(tt.cmd); len(u) != 1 || u[0] != tt.want {
			t.Errorf("%s: %q, want %q", tt.cmd, u, tt.want)
		}
	}
	if st := c.no("THREAD XREFS UTF-8 ALL"); !strings.HasPrefix(st, "BAD") {
		t.Errorf("unknown algorithm: %s", st)
	}
}

// TestSortFromCache: SORT and THREAD take their keys from the cache, without opening
// message files, and records written before the keys existed get them on first use.
func TestSortFromCache(t *testing.T) {
	e, c := sortFixture(t)
	// Make every record one without keys, as they were written before.
	a := e.srv.accounts["a@example.test"]
	err := a.db.Update(func(tx *bolt.Tx) error {
		cb := tx.Bucket([]byte("INBOX")).Bucket(bucketCache)
		var recs [][2][]byte
		cb.ForEach(func(k, v []byte) error {
			rec, ok := unmarshalCached(v, withFetch|withKeys)
			if !ok || rec.keys == nil {
				t.Errorf("record %x has no keys", k)
			}
			rec.keys = nil
			recs = append(recs, [2][]byte{append([]byte(nil), k...), rec.marshal()})
			return nil
		})
		for _, r := range recs {
			if err := cb.Put(r[0], r[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if u := c.ok("FETCH 1 ENVELOPE"); len(u) != 1 || !strings.Contains(u[0], `"Re: Lunch"`) {
		t.Errorf("FETCH ENVELOPE from a record without keys: %q", u)
	}
	if u := c.ok("SORT (SUBJECT) UTF-8 ALL"); len(u) != 1 || u[0] != "* SORT 3 1 2 4" {
		t.Errorf("SORT over records without keys: %q", u)
	}
	a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("INBOX")).Bucket(bucketCache).ForEach(func(k, v []byte) error {
			if rec, ok := unmarshalCached(v, withKeys); !ok || rec.keys == nil {
				t.Errorf("record %x without keys after SORT", k)
			}
			return nil
		})
	})
	// With the keys cached, the files are not needed: remove them all and sort.
	cur := filepath.Join(e.maildir("a"), "cur")
	names, _ := os.ReadDir(cur)
	for _, n := range names {
		os.Remove(filepath.Join(cur, n.Name()))
	}
	if u := c.ok("SORT (DISPLAYFROM) UTF-8 ALL"); len(u) != 1 || u[0] != "* SORT 2 3 4 1" {
		t.Errorf("SORT without the files: %q", u)
	}
	if u := c.ok("THREAD REFERENCES UTF-8 ALL"); len(u) != 1 || u[0] != "* THREAD (2 1 4)(3)" {
		t.Errorf("THREAD without the files: %q", u)
	}
}

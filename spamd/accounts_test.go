package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/auth"
	"postern/pkg/control"
	"postern/pkg/junk"
)

// TestAccountSweeper: a deletion authd reports drops the account's lists and corpus at
// once, and a sweep drops those of accounts deleted while nobody listened; the others'
// and the administrator's stay, also when authd cannot answer.
func TestAccountSweeper(t *testing.T) {
	dir := t.TempDir()
	l, _, db := listsServer(t, filepath.Join(dir, "spamd.db"))
	jdb, err := junk.Open(filepath.Join(dir, "junk.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer jdb.Close()
	ctx := context.Background()
	msg := "Subject: hi\r\n\r\nhello there\r\n"
	for _, u := range []string{"", "gone@example.test", "stays@example.test", "later@example.test", "unsure@example.test"} {
		if _, err := l.add(ctx, control.SpamListAddRequest{User: u, Action: control.SpamBlock, Entries: []string{"spam.test", "x@spam.test"}}); err != nil {
			t.Fatal(err)
		}
		if u != "" {
			if _, err := jdb.Learn(u, strings.NewReader(msg), int64(len(msg)), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	accounts := map[string]bool{"stays@example.test": true}
	w := &accountSweeper{lists: l, junk: jdb, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		exists: func(_ context.Context, addr string) (bool, error) {
			if addr == "unsure@example.test" {
				return false, context.DeadlineExceeded
			}
			return accounts[addr], nil
		}}
	// authd names the account as it stores it; spamd keys are lower-cased.
	w.Changed(auth.AccountEvent{Address: "Gone@example.test", Change: auth.ChangeDeleted})
	w.Changed(auth.AccountEvent{Address: "stays@example.test", Change: auth.ChangeDisabled})
	check := func(want []string) {
		t.Helper()
		got := l.users()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("users with lists: %q, want %q", got, want)
		}
		if got, _ := jdb.Users(); !slices.Equal(got, want) {
			t.Errorf("users with a corpus: %q, want %q", got, want)
		}
		var stored []string
		db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(listsBucket).ForEach(func(k, _ []byte) error {
				u, _, _ := strings.Cut(string(k), "\x00")
				if u != "" && !slices.Contains(stored, u) {
					stored = append(stored, u)
				}
				return nil
			})
		})
		if !slices.Equal(stored, want) {
			t.Errorf("users with lists in spamd.db: %q, want %q", stored, want)
		}
	}
	check([]string{"later@example.test", "stays@example.test", "unsure@example.test"})
	w.sweep()
	check([]string{"stays@example.test", "unsure@example.test"})
	if res, err := l.list(control.SpamListsRequest{}); err != nil || len(res.Entries) != 2 {
		t.Errorf("the administrator's lists after the sweep: %+v, %v", res, err)
	}
}

package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func readQuotaFile(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, quotaFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeQuotaFile(t *testing.T, root, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, quotaFile), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func checkUsage(t *testing.T, root string, q Quota, wantBytes, wantCount int64) {
	t.Helper()
	b, c, err := Usage(root, q)
	if err != nil {
		t.Fatal(err)
	}
	if b != wantBytes || c != wantCount {
		t.Errorf("Usage = %d bytes, %d messages; want %d, %d", b, c, wantBytes, wantCount)
	}
}

func deliver(t *testing.T, dir, msg string) int64 {
	t.Helper()
	_, size, err := Deliver(dir, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return size
}

func TestQuotaString(t *testing.T) {
	tests := []struct {
		q    Quota
		want string
	}{
		{Quota{}, "0S"},
		{Quota{Bytes: -1}, "0S"},
		{Quota{Bytes: 1000}, "1000S"},
		{Quota{Count: 5}, "5C"},
		{Quota{Bytes: 1000, Count: 5}, "1000S,5C"},
	}
	for _, tt := range tests {
		if got := tt.q.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.q, got, tt.want)
		}
		if back, ok := parseQuota(tt.q.String()); !ok || back != tt.q.norm() {
			t.Errorf("parseQuota(%q) = %+v, %v", tt.q.String(), back, ok)
		}
	}
}

func TestQuotaExceeded(t *testing.T) {
	q := Quota{Bytes: 100, Count: 2}
	for _, tt := range []struct {
		b, c int64
		want bool
	}{{100, 2, false}, {101, 1, true}, {1, 3, true}, {0, 0, false}} {
		if got := q.Exceeded(tt.b, tt.c); got != tt.want {
			t.Errorf("Exceeded(%d, %d) = %v", tt.b, tt.c, got)
		}
	}
	if (Quota{}).Exceeded(1<<62, 1<<62) {
		t.Error("no quota is exceeded")
	}
}

func TestUsageAndAddUsage(t *testing.T) {
	root := newMaildir(t)
	q := Quota{Bytes: 1 << 20}

	// No maildirsize: AddUsage does nothing, Usage recalculates and writes it.
	if err := AddUsage(root, 10, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, quotaFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("AddUsage created maildirsize: %v", err)
	}
	checkUsage(t, root, q, 0, 0)
	if got := readQuotaFile(t, root); got != "1048576S\n0 0\n" {
		t.Errorf("maildirsize = %q", got)
	}

	var total int64
	for i, dir := range []string{root, root + "/.Junk", root + "/.Archive"} {
		size := deliver(t, dir, fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", i*100)))
		total += size
		if err := AddUsage(root, size, 1); err != nil {
			t.Fatal(err)
		}
	}
	checkUsage(t, root, q, total, 3)
	if lines := strings.Count(readQuotaFile(t, root), "\n"); lines != 5 {
		t.Errorf("maildirsize has %d lines, want 5", lines)
	}

	// An expunge.
	if err := AddUsage(root, -total, -3); err != nil {
		t.Fatal(err)
	}
	checkUsage(t, root, q, 0, 0)
}

func TestRecalculate(t *testing.T) {
	root := newMaildir(t)
	var total int64
	total += deliver(t, root, "a\r\n")
	total += deliver(t, filepath.Join(root, ".Trash"), "bb\r\n")
	total += deliver(t, filepath.Join(root, ".Archive"), "ccc\r\n")
	// imapd's files in cur/: with S= and flags, and without S= (stat is used).
	os.WriteFile(filepath.Join(root, "cur", "1.M2P3.host,S=10:2,S"), make([]byte, 10), 0o600)
	os.WriteFile(filepath.Join(root, ".Junk", "cur", "1.M2P4.host:2,"), make([]byte, 7), 0o600)
	total += 17
	// Not counted: tmp/, files outside a folder, a dot-file in root.
	os.WriteFile(filepath.Join(root, "tmp", "1.M2P5.host"), make([]byte, 1000), 0o600)
	os.WriteFile(filepath.Join(root, "dovecot-uidlist"), make([]byte, 1000), 0o600)
	os.WriteFile(filepath.Join(root, ".stray"), make([]byte, 1000), 0o600)

	b, c, err := Recalculate(root, Quota{Bytes: 5000, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if b != total || c != 5 {
		t.Errorf("Recalculate = %d, %d; want %d, 5", b, c, total)
	}
	want := fmt.Sprintf("5000S,10C\n%d 5\n", total)
	if got := readQuotaFile(t, root); got != want {
		t.Errorf("maildirsize = %q, want %q", got, want)
	}
	fi, _ := os.Stat(filepath.Join(root, quotaFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("maildirsize mode %v", fi.Mode())
	}
	if n := dirNames(t, filepath.Join(root, "tmp")); len(n) != 1 {
		t.Errorf("tmp/ holds %v", n)
	}
}

func TestUsageRecalculates(t *testing.T) {
	root := newMaildir(t)
	size := deliver(t, root, "hello\r\n")
	q := Quota{Bytes: 1000}
	tests := []struct {
		name, content string
	}{
		{"other quota", "2000S\n0 0\n"},
		{"bad header", "lots\n0 0\n"},
		{"no usage line", "1000S\n"},
		{"empty", ""},
		{"bad line", "1000S\n0 0\nx y\n"},
		{"NUL", "1000S\n0 0\x00\n"},
		{"negative", "1000S\n-5 -1\n"},
		{"overflow", "1000S\n9223372036854775807 0\n1 0\n"},
		{"too big", "1000S\n0 0\n" + strings.Repeat("0 0\n", maxQuotaFileSize/4)},
		{"over quota, several lines", "1000S\n900 1\n900 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeQuotaFile(t, root, tt.content)
			checkUsage(t, root, q, size, 1)
			if got, want := readQuotaFile(t, root), fmt.Sprintf("1000S\n%d 1\n", size); got != want {
				t.Errorf("maildirsize = %q, want %q", got, want)
			}
		})
	}

	// Trusted as is: a torn last line is ignored; an over-quota single fresh line stands.
	writeQuotaFile(t, root, "1000S\n5 1\n3 1\n7")
	checkUsage(t, root, q, 8, 2)
	writeQuotaFile(t, root, "1000S\n2000 1\n")
	checkUsage(t, root, q, 2000, 1)
	// ... but not once it is older than 15 minutes.
	old := time.Now().Add(-staleAge - time.Minute)
	os.Chtimes(filepath.Join(root, quotaFile), old, old)
	checkUsage(t, root, q, size, 1)
}

func TestAddUsageConcurrent(t *testing.T) {
	root := newMaildir(t)
	q := Quota{}
	checkUsage(t, root, q, 0, 0)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := AddUsage(root, int64(i), 1); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	checkUsage(t, root, q, n*(n-1)/2, n)
}

func TestUsageMissingMailbox(t *testing.T) {
	if _, _, err := Usage(filepath.Join(t.TempDir(), "nope"), Quota{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
}

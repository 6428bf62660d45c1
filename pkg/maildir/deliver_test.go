package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var nameRE = regexp.MustCompile(`^[0-9]+\.M[0-9]+P[0-9]+Q[0-9]+R[0-9a-f]{16}\.[^/:,]+,S=([0-9]+)$`)

func newMaildir(t testing.TB) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "m")
	if err := Create(root, DefaultFolders); err != nil {
		t.Fatal(err)
	}
	return root
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	names, err := readDirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestDeliver(t *testing.T) {
	root := newMaildir(t)
	big := make([]byte, 3*bufSize+17)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	tests := []struct {
		name    string
		prefix  []byte
		message []byte
	}{
		{"small", nil, []byte("Subject: hi\r\n\r\nbody\r\n")},
		{"prefix", []byte("Delivered-To: a@example.org\r\n"), []byte("Subject: hi\r\n\r\nbody\r\n")},
		{"empty", nil, nil},
		{"big", []byte("Return-Path: <b@example.net>\r\n"), big},
		{"exact buffer", nil, big[:bufSize]},
		{"huge prefix", big[:bufSize+3], []byte("x")},
		{"bare LF kept", nil, []byte("a\nb\r\nc")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A reader that returns short reads exercises the buffer filling.
			r := io.MultiReader(bytes.NewReader(tt.message[:len(tt.message)/2]),
				bytes.NewReader(tt.message[len(tt.message)/2:]))
			path, size, err := DeliverWithPrefix(root, tt.prefix, r)
			if err != nil {
				t.Fatal(err)
			}
			want := append(append([]byte{}, tt.prefix...), tt.message...)
			if size != int64(len(want)) {
				t.Errorf("size %d, want %d", size, len(want))
			}
			if filepath.Dir(path) != filepath.Join(root, "new") {
				t.Errorf("delivered to %s, not new/", path)
			}
			m := nameRE.FindStringSubmatch(filepath.Base(path))
			if m == nil || m[1] != fmt.Sprint(len(want)) {
				t.Errorf("name %q does not match %v with S=%d", filepath.Base(path), nameRE, len(want))
			}
			if s, ok := NameSize(path); !ok || s != size {
				t.Errorf("NameSize = %d, %v", s, ok)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("content differs: got %d bytes, want %d", len(got), len(want))
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode())
			}
			if n := dirNames(t, filepath.Join(root, "tmp")); len(n) != 0 {
				t.Errorf("tmp/ not empty: %v", n)
			}
		})
	}
}

func TestDeliverFolder(t *testing.T) {
	root := newMaildir(t)
	junk, err := FolderPath(root, "Junk")
	if err != nil {
		t.Fatal(err)
	}
	path, _, err := Deliver(junk, strings.NewReader("spam\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != filepath.Join(root, ".Junk", "new") {
		t.Errorf("delivered to %s", path)
	}
}

type failingReader struct{ n int }

var errBoom = errors.New("boom")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errBoom
	}
	n := min(r.n, len(p))
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.n -= n
	return n, nil
}

func TestDeliverErrors(t *testing.T) {
	root := newMaildir(t)
	_, _, err := DeliverWithPrefix(root, []byte("X: y\r\n"), &failingReader{n: 3 * bufSize})
	if !errors.Is(err, errBoom) {
		t.Errorf("reader error: got %v", err)
	}
	if n := dirNames(t, filepath.Join(root, "tmp")); len(n) != 0 {
		t.Errorf("tmp/ not cleaned: %v", n)
	}
	if n := dirNames(t, filepath.Join(root, "new")); len(n) != 0 {
		t.Errorf("new/ got a file: %v", n)
	}

	_, _, err = Deliver(filepath.Join(root, ".Nope"), strings.NewReader("x"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing folder: got %v, want fs.ErrNotExist", err)
	}

	// new/ missing: the rename fails and tmp/ is cleaned.
	os.Remove(filepath.Join(root, ".Trash", "new"))
	_, _, err = Deliver(filepath.Join(root, ".Trash"), strings.NewReader("x"))
	if err == nil {
		t.Error("delivery without new/ succeeded")
	}
	if n := dirNames(t, filepath.Join(root, ".Trash", "tmp")); len(n) != 0 {
		t.Errorf("tmp/ not cleaned after failed rename: %v", n)
	}
}

func TestDeliverConcurrent(t *testing.T) {
	root := newMaildir(t)
	n := 1000 // fsync-bound: about 10 s on a slow virtual disk
	if testing.Short() {
		n = 100
	}
	var wg sync.WaitGroup
	paths := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			msg := fmt.Sprintf("Message-ID: <%d@test>\r\n\r\nbody %d\r\n", i, i)
			paths[i], _, errs[i] = Deliver(root, strings.NewReader(msg))
		})
	}
	wg.Wait()
	seen := make(map[string]bool)
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[paths[i]] {
			t.Fatalf("duplicate name %s", paths[i])
		}
		seen[paths[i]] = true
		got, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("Message-ID: <%d@test>\r\n\r\nbody %d\r\n", i, i); string(got) != want {
			t.Fatalf("file %d holds %q", i, got)
		}
	}
	if got := len(dirNames(t, filepath.Join(root, "new"))); got != n {
		t.Errorf("new/ holds %d files, want %d", got, n)
	}
	if got := len(dirNames(t, filepath.Join(root, "tmp"))); got != 0 {
		t.Errorf("tmp/ holds %d files", got)
	}
}

func TestUniqueName(t *testing.T) {
	a, b := UniqueName(), UniqueName()
	if a == b {
		t.Fatal("two equal names")
	}
	if !nameRE.MatchString(a + ",S=0") {
		t.Errorf("name %q has the wrong form", a)
	}
	if strings.ContainsAny(hostname(), "/:,") {
		t.Errorf("hostname part %q not escaped", hostname())
	}
}

func TestNameSize(t *testing.T) {
	tests := []struct {
		name string
		size int64
		ok   bool
	}{
		{"1.M1P1.host,S=1234", 1234, true},
		{"cur/1.M1P1.host,S=1234:2,S", 1234, true},
		{"1.M1P1.host,S=1234,W=1260:2,", 1234, true},
		{"1.M1P1.host,W=1260,S=7", 7, true},
		{"1.M1P1.host", 0, false},
		{"1.M1P1.host,S=", 0, false},
		{"1.M1P1.host,S=12x", 0, false},
		{"1.M1P1.host,S=-1", 0, false},
		{"1.M1P1.host,S=99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		size, ok := NameSize(tt.name)
		if size != tt.size || ok != tt.ok {
			t.Errorf("NameSize(%q) = %d, %v; want %d, %v", tt.name, size, ok, tt.size, tt.ok)
		}
	}
}

func BenchmarkDeliver4K(b *testing.B) {
	root := newMaildir(b)
	msg := make([]byte, 4096)
	for i := range msg {
		msg[i] = byte(' ' + rand.IntN(90))
	}
	prefix := []byte("Delivered-To: alice@example.org\r\n")
	r := bytes.NewReader(msg)
	b.SetBytes(int64(len(prefix) + len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(msg)
		if _, _, err := DeliverWithPrefix(root, prefix, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliver4KParallel shows the throughput of concurrent deliveries, whose fsyncs
// the filesystem can commit together.
func BenchmarkDeliver4KParallel(b *testing.B) {
	root := newMaildir(b)
	msg := bytes.Repeat([]byte("0123456789abcde\n"), 256)
	b.SetBytes(int64(len(msg)))
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		r := bytes.NewReader(msg)
		for pb.Next() {
			r.Reset(msg)
			if _, _, err := Deliver(root, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestDeliverNamedFind checks what makes a repeated delivery idempotent: the file in new/
// carries the stable base name, Find finds it there and in cur/ under the name a reader
// gives it (flags added), a second DeliverNamed with the same name replaces the file in
// new/ rather than adding one, and another base name is not mistaken for it.
func TestDeliverNamedFind(t *testing.T) {
	root := newMaildir(t)
	base := StableName(time.Unix(1765000000, 0), "Q1K17NESWZBW003TPR0")
	if !strings.HasPrefix(base, "1765000000.Q1K17NESWZBW003TPR0.") {
		t.Fatalf("StableName = %q", base)
	}
	if _, err := Find(root, base); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Find in an empty Maildir: %v, want ErrNotExist", err)
	}
	msg := "Subject: once\r\n\r\nbody\r\n"
	p, n, err := DeliverNamed(root, base, []byte("Delivered-To: a@example.org\r\n"), strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "new", fmt.Sprintf("%s,S=%d", base, n)); p != want {
		t.Fatalf("delivered to %s, want %s", p, want)
	}
	if got, err := Find(root, base); err != nil || got != p {
		t.Fatalf("Find = %q, %v; want %s", got, err, p)
	}
	// The same delivery again (a crash left it unrecorded): still one file in new/.
	if _, _, err := DeliverNamed(root, base, []byte("Delivered-To: a@example.org\r\n"), strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, filepath.Join(root, "new")); len(names) != 1 {
		t.Fatalf("new/ holds %v after the repeated delivery, want one file", names)
	}
	if names := dirNames(t, filepath.Join(root, "tmp")); len(names) != 0 {
		t.Fatalf("tmp/ holds %v", names)
	}
	// imapd moves it to cur/ keeping the base name and adding the flags.
	inCur := filepath.Join(root, "cur", filepath.Base(p)+":2,S")
	if err := os.Rename(p, inCur); err != nil {
		t.Fatal(err)
	}
	if got, err := Find(root, base); err != nil || got != inCur {
		t.Fatalf("Find after the move to cur/ = %q, %v; want %s", got, err, inCur)
	}
	// A name that merely starts like it is another message.
	other := StableName(time.Unix(1765000000, 0), "Q1K17NESWZBW003TPR1")
	if _, err := Find(root, other); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Find(%s) = %v, want ErrNotExist", other, err)
	}
	if _, err := Find(root, strings.TrimSuffix(base, hostname())+"x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Find of a prefix of the name: %v, want ErrNotExist", err)
	}
	for _, bad := range []string{"", "a/b", "a:2,S", ".hidden", "x,S=3"} {
		if _, _, err := DeliverNamed(root, bad, nil, strings.NewReader(msg)); err == nil {
			t.Errorf("DeliverNamed accepted the base name %q", bad)
		}
	}
}

// Import names the file in new/ with its flags and gives it the date as its time.
func TestImportFlagsAndDate(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	when := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	p, n, err := Import(dir, strings.NewReader("Subject: x\r\n\r\nbody\r\n"), "FS", when)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(p, ",S=20:2,FS") || n != 20 || filepath.Base(filepath.Dir(p)) != "new" {
		t.Errorf("imported as %s (%d octets)", p, n)
	}
	if fi, err := os.Stat(p); err != nil || !fi.ModTime().Equal(when) {
		t.Errorf("time %v, want %v (%v)", fi.ModTime(), when, err)
	}
	if _, _, err := Import(dir, strings.NewReader("x"), "Fx", time.Time{}); err == nil {
		t.Error("a keyword letter was accepted as a flag")
	}
}

// DeliverNamedKeywords puts the keywords file in new/ beside the message; the quota
// does not count it.
func TestDeliverNamedKeywords(t *testing.T) {
	dir := t.TempDir()
	if err := Create(dir, nil); err != nil {
		t.Fatal(err)
	}
	p, _, err := DeliverNamedKeywords(dir, "1.Qx.h", "F", []string{"$Work", "$Label1"}, nil, strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "1.Qx.h,S=3:2,F" {
		t.Errorf("name %s", filepath.Base(p))
	}
	if kp := KeywordsPath(dir, filepath.Base(p)); filepath.Base(kp) != ".1.Qx.h.keywords" {
		t.Errorf("keywords file %s", kp)
	}
	kws, err := ReadKeywords(dir, filepath.Base(p))
	if err != nil || len(kws) != 2 || kws[0] != "$Work" || kws[1] != "$Label1" {
		t.Errorf("ReadKeywords = %q, %v", kws, err)
	}
	if stem, ok := IsKeywordsFile(".1.Qx.h.keywords"); !ok || stem != "1.Qx.h" {
		t.Errorf("IsKeywordsFile = %q %v", stem, ok)
	}
	if _, n, err := Usage(dir, Quota{}); err != nil || n != 1 {
		t.Errorf("Usage counts %d files, %v; want the message only", n, err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ keeps %v", tmp)
	}
	if err := RemoveKeywords(dir, filepath.Base(p)); err != nil {
		t.Fatal(err)
	}
	if kws, err := ReadKeywords(dir, filepath.Base(p)); kws != nil || err != nil {
		t.Errorf("after RemoveKeywords: %q, %v", kws, err)
	}
	for _, bad := range []string{"a b", "", "\\Seen", "x\ny"} {
		if _, _, err := DeliverNamedKeywords(dir, "2.Qx.h", "", []string{bad}, nil, strings.NewReader("x")); err == nil {
			t.Errorf("keyword %q accepted", bad)
		}
	}
	if names, _ := os.ReadDir(filepath.Join(dir, "new")); len(names) != 1 {
		t.Errorf("new/ holds %d entries after the refused deliveries, want 1", len(names))
	}
}

func TestDeliverNamedFlags(t *testing.T) {
	dir := t.TempDir()
	if err := Create(dir, nil); err != nil {
		t.Fatal(err)
	}
	p, _, err := DeliverNamedKeywords(dir, "1.Qx.h", "FS", nil, nil, strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "1.Qx.h,S=3:2,FS" {
		t.Errorf("name %s", filepath.Base(p))
	}
	if f, err := Find(dir, "1.Qx.h"); err != nil || f != p {
		t.Errorf("Find = %s, %v", f, err)
	}
	for _, bad := range []string{"SF", "x", "SS", "a/b"} {
		if _, _, err := DeliverNamedKeywords(dir, "2.Qx.h", bad, nil, nil, strings.NewReader("x")); err == nil {
			t.Errorf("flags %q accepted", bad)
		}
	}
}

package mbox

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// normal is what a message becomes in an mbox: LF line endings, ending with a newline.
func normal(m []byte) []byte {
	m = bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n"))
	if len(m) > 0 && m[len(m)-1] != '\n' {
		m = append(m, '\n')
	}
	return m
}

func roundTrip(t *testing.T, msgs ...string) []Entry {
	t.Helper()
	var b bytes.Buffer
	w := NewWriter(&b)
	date := time.Date(2026, 12, 7, 20, 16, 48, 0, time.UTC)
	for _, m := range msgs {
		// One byte at a time, so that every prefix and CRLF straddles a read.
		if err := w.WriteMessage("bounce@example.test", date, iotest.OneByteReader(strings.NewReader(m))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := Read(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("reading back %q: %v", b.String(), err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("%d messages written, %d read back from %q", len(msgs), len(got), b.String())
	}
	for i, m := range msgs {
		if want := normal([]byte(m)); !bytes.Equal(got[i].Body, want) {
			t.Errorf("message %d: read back %q, want %q (mbox %q)", i, got[i].Body, want, b.String())
		}
	}
	return got
}

func TestQuoting(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.WriteMessage("", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), strings.NewReader(
		"Subject: x\r\n\r\nFrom here\r\n>From there\r\n>>From far\r\nFromage\r\n> From no\r\nlast"))
	w.Flush()
	want := "From MAILER-DAEMON Fri Jan  2 03:04:05 2026\n" +
		"Subject: x\n\n>From here\n>>From there\n>>>From far\nFromage\n> From no\nlast\n\n"
	if b.String() != want {
		t.Errorf("mbox:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestRoundTrip(t *testing.T) {
	got := roundTrip(t,
		"Subject: one\r\n\r\nFrom the start\r\n>From quoted\r\n",
		"",
		"Subject: two\n\nno final newline",
		"From \nFrom\n>>>>\n>Fro\nbare\rCR\r",
		"Subject: three\r\n\r\n\r\n\r\n")
	if got[0].Separator != "From bounce@example.test Mon Dec  7 20:16:48 2026" {
		t.Errorf("separator %q", got[0].Separator)
	}
}

// FuzzRoundTrip: any message read back from the mbox is the message written.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "From x\n", ">From x\r\n", "a\r", "\r\r\n>>From \n", "Subject: a\n\nbody\n\n\nFrom "} {
		f.Add(s, "second")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		roundTrip(t, a, b)
	})
}

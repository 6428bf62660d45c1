package mbox

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

const sample = "From alice@example.test Mon Dec  7 10:00:00 2026\n" +
	"Status: RO\nX-Status: AF\nSubject: one\n\nbody one\n>From the start\n>>From deeper\n\n" +
	"From bob@example.test Tue Dec  8 11:30:00 2026\n" +
	"Subject: two\n\nfirst\nFrom inside a paragraph, not after an empty line\nlast line\n\n" +
	"From carol Wed Dec  9 12:00:00 2026\r\nSubject: three\r\n\r\nno final newline"

func scanAll(t *testing.T, data string) []Message {
	t.Helper()
	s := NewScanner(iotest.OneByteReader(strings.NewReader(data)))
	var out []Message
	for {
		m, err := s.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

func TestScanner(t *testing.T) {
	ms := scanAll(t, sample)
	if len(ms) != 3 {
		t.Fatalf("%d messages, want 3: %+v", len(ms), ms)
	}
	want := []struct {
		text, flags string
		line        int
		date        time.Time
	}{
		{"Status: RO\nX-Status: AF\nSubject: one\n\nbody one\n>From the start\n>>From deeper\n", "FRS", 1, time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)},
		{"Subject: two\n\nfirst\nFrom inside a paragraph, not after an empty line\nlast line\n", "", 10, time.Date(2026, 12, 8, 11, 30, 0, 0, time.UTC)},
		{"Subject: three\r\n\r\nno final newline", "", 17, time.Date(2026, 12, 9, 12, 0, 0, 0, time.UTC)},
	}
	for i, m := range ms {
		got := sample[m.Offset : m.Offset+m.Size]
		if got != want[i].text || m.Flags != want[i].flags || m.Line != want[i].line || !m.Date.Equal(want[i].date) {
			t.Errorf("message %d: %q flags %q line %d date %v\nwant %q flags %q line %d date %v", i, got, m.Flags, m.Line, m.Date, want[i].text, want[i].flags, want[i].line, want[i].date)
		}
	}
}

func TestNotMbox(t *testing.T) {
	_, err := NewScanner(strings.NewReader("Subject: x\n\nbody\n")).Next()
	if !errors.Is(err, ErrNotMbox) {
		t.Errorf("got %v", err)
	}
	if _, err := NewScanner(strings.NewReader("")).Next(); err != io.EOF {
		t.Errorf("empty file: %v", err)
	}
}

// TestScannerFlags checks each letter of Status and X-Status that stands for a flag,
// and that the fields count in the header section only, per message.
func TestScannerFlags(t *testing.T) {
	for header, want := range map[string]string{
		"Status: RO":                        "S",
		"Status: O":                         "",
		"X-Status: A":                       "R",
		"X-Status: F":                       "F",
		"X-Status: D":                       "T",
		"X-Status: T":                       "D",
		"STATUS: R\nx-status: TDFA":         "DFRST",
		"X-Status: af\nStatus: r":           "",
		"Subject: x\n\nX-Status: F":         "", // in the body
		"Status: R\nX-Status: R\nStatus: A": "S",
	} {
		data := "From a@b.test Mon Dec  7 10:00:00 2026\n" + header + "\n\nbody\n\nFrom c@d.test Mon Dec  7 11:00:00 2026\nSubject: next\n\nx\n"
		s := NewScanner(strings.NewReader(data))
		m, err := s.Next()
		if err != nil || m.Flags != want {
			t.Errorf("%q: flags %q %v, want %q", header, m.Flags, err, want)
		}
		if m, err := s.Next(); err != nil || m.Flags != "" {
			t.Errorf("%q: the next message has flags %q %v", header, m.Flags, err)
		}
	}
}

// TestStatusFields checks the Status and X-Status of Maildir letters, and that Scanner
// reads every combination back as the same letters.
func TestStatusFields(t *testing.T) {
	for info, want := range map[string][2]string{
		"": {"O", ""}, "S": {"RO", ""}, "FS": {"RO", "F"}, "DFPRST": {"RO", "TFAD"}, "Pab": {"O", ""},
	} {
		if st, x := StatusFields(info); st != want[0] || x != want[1] {
			t.Errorf("%q: %q %q, want %q %q", info, st, x, want[0], want[1])
		}
	}
	const letters = "DFRST"
	for set := range 1 << len(letters) {
		var info []byte
		for i := range len(letters) {
			if set&(1<<i) != 0 {
				info = append(info, letters[i])
			}
		}
		st, x := StatusFields(string(info))
		data := "From a@b.test Mon Dec  7 10:00:00 2026\nStatus: " + st + "\nX-Status: " + x + "\n\nbody\n"
		if m, err := NewScanner(strings.NewReader(data)).Next(); err != nil || m.Flags != string(info) {
			t.Errorf("%q: Status %q X-Status %q read back as %q %v", info, st, x, m.Flags, err)
		}
	}
}

func TestContent(t *testing.T) {
	in := "Subject: one\n\nbody\r\n>From the start\n>>From deeper\n>Fromage\nlast"
	b, err := io.ReadAll(Content(iotest.OneByteReader(strings.NewReader(in)), true))
	if err != nil {
		t.Fatal(err)
	}
	want := "Subject: one\r\n\r\nbody\r\nFrom the start\r\n>From deeper\r\n>Fromage\r\nlast"
	if string(b) != want {
		t.Errorf("got %q\nwant %q", b, want)
	}
	// A line longer than the buffer is passed through in parts, its ending fixed once.
	long := strings.Repeat("x", 100<<10)
	b, _ = io.ReadAll(Content(strings.NewReader(long+"\n>From x\n"), true))
	if string(b) != long+"\r\nFrom x\r\n" {
		t.Errorf("long line: %d octets", len(b))
	}
}

// FuzzScanner: any input gives messages that lie inside the data, in order, or an
// error; never a panic.
func FuzzScanner(f *testing.F) {
	f.Add(sample)
	f.Add("From x\n\nFrom y\n")
	f.Add("From \r\n\r\n\r\nFrom ")
	f.Fuzz(func(t *testing.T, data string) {
		s := NewScanner(strings.NewReader(data))
		var end int64
		for i := 0; ; i++ {
			m, err := s.Next()
			if err != nil {
				break
			}
			if m.Offset < end || m.Size < 0 || m.Offset+m.Size > int64(len(data)) {
				t.Fatalf("message %d at %d+%d outside the data (%d) or before %d", i, m.Offset, m.Size, len(data), end)
			}
			end = m.Offset + m.Size
			io.ReadAll(Content(strings.NewReader(data[m.Offset:end]), true))
		}
	})
}

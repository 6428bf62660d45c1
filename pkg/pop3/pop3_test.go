package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	good := []struct {
		line string
		want Command
	}{
		{"capa", Command{Name: "CAPA"}},
		{"USER demo@example.test", Command{Name: "USER", Arg: "demo@example.test"}},
		{"PASS two words ", Command{Name: "PASS", Arg: "two words "}},
		{"AUTH", Command{Name: "AUTH"}},
		{"auth plain", Command{Name: "AUTH", Arg: "PLAIN"}},
		{"AUTH PLAIN AGEAYg==", Command{Name: "AUTH", Arg: "PLAIN", Initial: "AGEAYg==", HasInitial: true}},
		{"AUTH PLAIN =", Command{Name: "AUTH", Arg: "PLAIN", Initial: "=", HasInitial: true}},
		{"STLS", Command{Name: "STLS"}},
		{"STAT", Command{Name: "STAT"}},
		{"LIST", Command{Name: "LIST"}},
		{"LIST ", Command{Name: "LIST"}},
		{"list 2", Command{Name: "LIST", Msg: 2}},
		{"UIDL 17", Command{Name: "UIDL", Msg: 17}},
		{"RETR 1", Command{Name: "RETR", Msg: 1}},
		{"DELE 3", Command{Name: "DELE", Msg: 3}},
		{"TOP 1 0", Command{Name: "TOP", Msg: 1, Lines: 0}},
		{"top 4 10", Command{Name: "TOP", Msg: 4, Lines: 10}},
		{"NOOP", Command{Name: "NOOP"}},
		{"RSET", Command{Name: "RSET"}},
		{"QUIT", Command{Name: "QUIT"}},
	}
	for _, g := range good {
		c, err := ParseCommand(g.line)
		if err != nil || c != g.want {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v", g.line, c, err, g.want)
		}
	}
	bad := []string{
		"", "XY", "FETCH 1", "APOP a b", "RETR", "RETR 0", "RETR -1", "RETR x", "RETR 1 2",
		"DELE 99999999999999999999", "TOP 1", "TOP 1 -2", "LIST 1 2", "USER", "USER a b",
		"PASS", "PASS ", "STAT 1", "QUIT now", "LIST  1", "AUTH PLAIN a b", "RETR +1",
		"USER a\x00b", "CAPA\r",
	}
	for _, l := range bad {
		c, err := ParseCommand(l)
		var se *SyntaxError
		if !errors.As(err, &se) || se.Msg == "" {
			t.Errorf("ParseCommand(%q) = %+v, %v; want a SyntaxError", l, c, err)
		}
	}
}

func TestReaderLimit(t *testing.T) {
	in := "CAPA\r\n" + strings.Repeat("x", 100) + "\r\nNOOP\nQUIT\r\n" + strings.Repeat("y", 5000) + "\r\nSTAT\r\npartial"
	r := NewReader(bufio.NewReaderSize(strings.NewReader(in), 64), 64)
	want := []struct {
		line string
		err  error
	}{
		{"CAPA", nil}, {"", ErrLineTooLong}, {"NOOP", nil}, {"QUIT", nil}, {"", ErrLineTooLong},
		{"STAT", nil}, {"", io.ErrUnexpectedEOF},
	}
	for i, w := range want {
		l, err := r.ReadLine()
		if l != w.line || !errors.Is(err, w.err) {
			t.Errorf("line %d: %q, %v; want %q, %v", i, l, err, w.line, w.err)
		}
	}
	if _, err := r.ReadLine(); err != io.EOF {
		t.Errorf("at the end: %v; want EOF", err)
	}
}

func TestWriteMessage(t *testing.T) {
	msg := "Subject: x\n.hidden: header\r\n\r\nline 1\n.line 2\r\n..line 3\nline 4"
	cases := []struct {
		lines int
		want  string
	}{
		{-1, "Subject: x\r\n..hidden: header\r\n\r\nline 1\r\n..line 2\r\n...line 3\r\nline 4\r\n.\r\n"},
		{0, "Subject: x\r\n..hidden: header\r\n\r\n.\r\n"},
		{2, "Subject: x\r\n..hidden: header\r\n\r\nline 1\r\n..line 2\r\n.\r\n"},
		{10, "Subject: x\r\n..hidden: header\r\n\r\nline 1\r\n..line 2\r\n...line 3\r\nline 4\r\n.\r\n"},
	}
	for _, c := range cases {
		var b bytes.Buffer
		if err := WriteMessage(&b, strings.NewReader(msg), c.lines); err != nil {
			t.Fatal(err)
		}
		if b.String() != c.want {
			t.Errorf("lines %d:\n got %q\nwant %q", c.lines, b.String(), c.want)
		}
	}
	// A header with no body, and a body line longer than the read buffer.
	var b bytes.Buffer
	long := strings.Repeat("z", 10000)
	WriteMessage(&b, strings.NewReader("A: b\n\n"+long+"\nnext\n"), 1)
	if want := "A: b\r\n\r\n" + long + "\r\n.\r\n"; b.String() != want {
		t.Errorf("long line: got %d octets, want %d", b.Len(), len(want))
	}
	b.Reset()
	WriteMessage(&b, strings.NewReader("A: b"), 3)
	if b.String() != "A: b\r\n.\r\n" {
		t.Errorf("header only: %q", b.String())
	}
}

// FuzzParseCommand checks that no line makes the parser panic, and that what it accepts
// is a known command whose message number is valid.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"CAPA", "USER demo@example.test", "PASS secret with spaces", "AUTH PLAIN AGEAYg==",
		"AUTH", "STLS", "STAT", "LIST", "LIST 1", "UIDL 2", "RETR 3", "DELE 4", "TOP 5 10",
		"NOOP", "RSET", "QUIT", "RETR 0", "TOP 1 99999999999", "list  1", "\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCommand(line)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error of another type: %T %v", err, err)
			}
			return
		}
		if _, ok := argCount[c.Name]; !ok {
			t.Fatalf("accepted unknown command %q", c.Name)
		}
		switch c.Name {
		case "RETR", "DELE", "TOP":
			if c.Msg < 1 {
				t.Fatalf("%q: message number %d", line, c.Msg)
			}
		}
		if c.Msg < 0 || c.Lines < 0 {
			t.Fatalf("%q: negative number", line)
		}
	})
}

// FuzzWriteMessage checks the multi-line encoding of any message: the response ends in
// CRLF "." CRLF, has no line "." before that, no bare CR or LF, and read back (the dots
// taken off) gives the message with its line endings made CRLF.
func FuzzWriteMessage(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\n.body\r\n"), -1)
	f.Add([]byte("A: b\n\n.\n..\nx"), 1)
	f.Fuzz(func(t *testing.T, msg []byte, lines int) {
		var b bytes.Buffer
		if err := WriteMessage(&b, bytes.NewReader(msg), lines); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if !strings.HasSuffix(out, ".\r\n") || (len(out) > 3 && !strings.HasSuffix(out, "\r\n.\r\n")) {
			t.Fatalf("no terminator: %q", out)
		}
		body := strings.TrimSuffix(out, ".\r\n")
		for _, l := range strings.SplitAfter(body, "\r\n") {
			if l == ".\r\n" {
				t.Fatalf("a lone dot inside: %q", out)
			}
			if strings.ContainsAny(strings.TrimSuffix(l, "\r\n"), "\r\n") {
				t.Fatalf("bare CR or LF: %q", out)
			}
		}
	})
}

package smtp

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line string
		want Command
		err  error
	}{
		{"EHLO client.example.com", Command{"EHLO", "client.example.com"}, nil},
		{"ehlo client.example.com", Command{"EHLO", "client.example.com"}, nil},
		{"MaIl FROM:<a@example.com> SIZE=10", Command{"MAIL", "FROM:<a@example.com> SIZE=10"}, nil},
		{"DATA", Command{"DATA", ""}, nil},
		{"QUIT ", Command{"QUIT", ""}, nil},
		{"NOOP  a  b \t", Command{"NOOP", " a  b"}, nil},
		{"AUTH PLAIN AGFsaWNlAHNlY3JldA==", Command{"AUTH", "PLAIN AGFsaWNlAHNlY3JldA=="}, nil},
		{"X-FOO bar", Command{"X-FOO", "bar"}, nil},
		{"HELO a\tb", Command{"HELO", "a\tb"}, nil},
		{"", Command{}, ErrSyntax},
		{" MAIL FROM:<>", Command{}, ErrSyntax},
		{"MA?L FROM:<>", Command{}, ErrSyntax},
		{"MAIL FROM:<a\x00@b>", Command{}, ErrSyntax},
		{"MAIL FROM:<a@b>\rRCPT TO:<c@d>", Command{}, ErrSyntax},
		{"NOOP \n", Command{}, ErrSyntax},
		{"NOOP \x1b[31m", Command{}, ErrSyntax},
		{"NOOP \x7f", Command{}, ErrSyntax},
		{"NOOP " + strings.Repeat("x", MaxCommandLine-2-5), Command{"NOOP", strings.Repeat("x", MaxCommandLine-7)}, nil},
		{"NOOP " + strings.Repeat("x", MaxCommandLine-2-4), Command{}, ErrLineTooLong},
		{"RCPT TO:<a@b> ORCPT=" + strings.Repeat("x", 600), Command{"RCPT", "TO:<a@b> ORCPT=" + strings.Repeat("x", 600)}, nil},
		{"RCPT " + strings.Repeat("x", MaxExtendedCommandLine), Command{}, ErrLineTooLong},
	}
	for _, tt := range tests {
		got, err := ParseCommand([]byte(tt.line))
		if !errors.Is(err, tt.err) || (tt.err != nil) != (err != nil) {
			t.Errorf("ParseCommand(%q) error = %v, want %v", tt.line, err, tt.err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseCommand(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestReadLine(t *testing.T) {
	in := "HELO a\r\nMAIL b\nRCPT c\r\r\n" + strings.Repeat("x", 20) + "\r\nQUIT\r\n" + strings.Repeat("y", 10) + "\r\nlast"
	for _, oneByte := range []bool{false, true} {
		var src io.Reader = strings.NewReader(in)
		if oneByte {
			src = iotest.OneByteReader(src)
		}
		r := bufio.NewReaderSize(src, 16)
		type result struct {
			line string
			err  error
		}
		want := []result{
			{"HELO a", nil},
			{"MAIL b", nil},
			{"RCPT c\r", nil},
			{"", ErrLineTooLong},
			{"QUIT", nil},
			{strings.Repeat("y", 10), nil},
			{"", io.ErrUnexpectedEOF},
			{"", io.EOF},
		}
		for i, w := range want {
			line, err := ReadLine(r, 10)
			if string(line) != w.line || !errors.Is(err, w.err) || (w.err == nil) != (err == nil) {
				t.Errorf("oneByte=%v line %d: got %q, %v; want %q, %v", oneByte, i, line, err, w.line, w.err)
			}
		}
	}
}

func TestReadLineLimitEdge(t *testing.T) {
	// max octets of content are accepted whatever the line ending; one more is not.
	for _, tt := range []struct {
		in  string
		err error
	}{
		{"12345\r\n", nil},
		{"12345\n", nil},
		{"123456\n", ErrLineTooLong},
		{"123456\r\n", ErrLineTooLong},
		{"12345\r\r\n", ErrLineTooLong},
	} {
		_, err := ReadLine(bufio.NewReaderSize(strings.NewReader(tt.in+"next\r\n"), 16), 5)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ReadLine(%q) error = %v, want %v", tt.in, err, tt.err)
		}
	}
}

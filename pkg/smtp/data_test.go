package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readConfig is one way of feeding a DataReader: the size of the bufio.Reader, whether
// the source gives one octet per Read, and the size of the caller's buffer.
type readConfig struct {
	bufSize int
	oneByte bool
	chunk   int
}

var readConfigs = []readConfig{
	{4096, false, 32 * 1024},
	{16, false, 32 * 1024},
	{16, true, 1},
	{16, false, 2},
	{17, true, 3},
	{64, false, 5},
}

// readData runs a DataReader over in and returns its output, its final error, what is
// left in the bufio.Reader after it, and its Size.
func readData(t testing.TB, in []byte, opts DataOptions, cfg readConfig) (out []byte, err error, rest []byte, size int64) {
	t.Helper()
	var src io.Reader = bytes.NewReader(in)
	if cfg.oneByte {
		src = iotest.OneByteReader(src)
	}
	br := bufio.NewReaderSize(src, cfg.bufSize)
	dr := NewDataReader(br, opts)
	buf := make([]byte, cfg.chunk)
	for i := 0; ; i++ {
		if i > 10*len(in)+10 {
			t.Fatalf("DataReader does not progress on %q", in)
		}
		n, e := dr.Read(buf)
		if n < 0 || n > len(buf) {
			t.Fatalf("Read returned n=%d for a buffer of %d", n, len(buf))
		}
		out = append(out, buf[:n]...)
		if e != nil {
			err = e
			break
		}
	}
	// The error is sticky.
	if n, e := dr.Read(buf); n != 0 || e != err {
		t.Fatalf("Read after the end = %d, %v; want 0, %v", n, e, err)
	}
	rest, _ = io.ReadAll(br)
	return out, err, rest, dr.Size()
}

func TestDataReader(t *testing.T) {
	const next = "QUIT\r\n"
	tests := []struct {
		name string
		in   string
		out  string
		err  error // nil means io.EOF, with next left over
	}{
		{"empty message", ".\r\n", "", nil},
		{"one empty line", "\r\n.\r\n", "\r\n", nil},
		{"simple", "Subject: hi\r\n\r\nHello\r\n.\r\n", "Subject: hi\r\n\r\nHello\r\n", nil},
		{"stuffed dot", "..x\r\n.\r\n", ".x\r\n", nil},
		{"stuffed lone dot", "..\r\n.\r\n", ".\r\n", nil},
		{"unstuffed leading dot", ".x\r\n.\r\n", "x\r\n", nil},
		{"three dots", "...\r\n.\r\n", "..\r\n", nil},
		{"dot not at line start", "a.\r\na..\r\n.\r\n", "a.\r\na..\r\n", nil},
		{"dot after dot line", "..\r\n..\r\n.\r\n", ".\r\n.\r\n", nil},
		{"bare LF", "a\nb\n\r\n.\r\n", "a\r\nb\r\n\r\n", nil},
		{"bare CR", "a\rb\r\r\n.\r\n", "a\r\nb\r\n\r\n", nil},
		{"CR CR LF", "a\r\r\n.\r\n", "a\r\n\r\n", nil},
		{"LF CR", "a\n\rb\r\n.\r\n", "a\r\n\r\nb\r\n", nil},
		{"stuffed after bare LF", "a\n..b\r\n.\r\n", "a\r\n.b\r\n", nil},
		{"NUL and 8-bit kept", "a\x00b\xff\r\n.\r\n", "a\x00b\xff\r\n", nil},
		{"dot line first with bare LF", ".\n\r\n.\r\n", ".\r\n\r\n", nil},
		// Lone "." lines that are not CRLF "." CRLF are content, never the end.
		{"LF dot LF", "x\n.\ny\r\n.\r\n", "x\r\n.\r\ny\r\n", nil},
		{"CR dot CR", "x\r.\ry\r\n.\r\n", "x\r\n.\r\ny\r\n", nil},
		{"CRLF dot LF", "x\r\n.\ny\r\n.\r\n", "x\r\n.\r\ny\r\n", nil},
		{"LF dot CRLF", "x\n.\r\ny\r\n.\r\n", "x\r\n.\r\ny\r\n", nil},
		{"CRLF dot CR", "x\r\n.\ry\r\n.\r\n", "x\r\n.\r\ny\r\n", nil},
		{"CR dot CRLF", "x\r.\r\ny\r\n.\r\n", "x\r\n.\r\ny\r\n", nil},
		{"CRLF dot CR CR LF", "x\r\n.\r\r\n.\r\n", "x\r\n.\r\n\r\n", nil},
		{"dot CR at start", ".\ry\r\n.\r\n", ".\r\ny\r\n", nil},
		{"LF dot LF at end", "x\n.\n", "x\r\n.\r\n", io.ErrUnexpectedEOF},
		// Truncated input.
		{"no input", "", "", io.ErrUnexpectedEOF},
		{"no end", "x\r\n", "x\r\n", io.ErrUnexpectedEOF},
		{"dot only", "x\r\n.", "x\r\n", io.ErrUnexpectedEOF},
		{"dot CR only", "x\r\n.\r", "x\r\n", io.ErrUnexpectedEOF},
		{"no line end", "x", "x", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		in := tt.in
		if tt.err == nil {
			in += next
		}
		for _, cfg := range readConfigs {
			out, err, rest, size := readData(t, []byte(in), DataOptions{}, cfg)
			wantErr, wantRest := tt.err, ""
			if wantErr == nil {
				wantErr, wantRest = io.EOF, next
			}
			if err != wantErr {
				t.Errorf("%s %+v: error %v, want %v", tt.name, cfg, err, wantErr)
			}
			if wantErr == io.EOF && (string(out) != tt.out || size != int64(len(tt.out))) {
				t.Errorf("%s %+v: output %q (size %d), want %q", tt.name, cfg, out, size, tt.out)
			}
			if wantErr != io.EOF && !strings.HasPrefix(tt.out, string(out)) {
				t.Errorf("%s %+v: output %q, want a prefix of %q", tt.name, cfg, out, tt.out)
			}
			if string(rest) != wantRest {
				t.Errorf("%s %+v: left %q, want %q", tt.name, cfg, rest, wantRest)
			}
		}
	}
}

// TestDataReaderSmuggling feeds the usual SMTP smuggling payloads: a fake end of data
// followed by a second transaction. Each must give one message holding the fake
// commands as text, and leave the input in step after the real end of data.
func TestDataReaderSmuggling(t *testing.T) {
	const smuggled = "MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nFrom: admin@example.com\r\n\r\nevil\r\n.\r\n"
	const after = "QUIT\r\n"
	for _, fake := range []string{"\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", "\r\n.\r", "\r.\r\n", "\n.\r", "\r.\n", "\r\n\x00.\r\n", "\r\n .\r\n"} {
		in := "From: a@example.com\r\n\r\nhello" + fake + smuggled + after
		for _, cfg := range readConfigs {
			out, err, rest, _ := readData(t, []byte(in), DataOptions{}, cfg)
			if err != io.EOF {
				t.Errorf("fake end %q %+v: error %v", fake, cfg, err)
			}
			if !bytes.Contains(out, []byte("\r\nMAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n")) ||
				!bytes.HasSuffix(out, []byte("\r\nevil\r\n")) {
				t.Errorf("fake end %q %+v: the smuggled commands are not in the content: %q", fake, cfg, out)
			}
			if string(rest) != after {
				t.Errorf("fake end %q %+v: left %q, want %q", fake, cfg, rest, after)
			}
			if i := indexBareLineEnding(out); i >= 0 {
				t.Errorf("fake end %q %+v: bare CR or LF at %d in %q", fake, cfg, i, out)
			}
		}
	}
}

func TestDataReaderLimits(t *testing.T) {
	const after = "RSET\r\n"
	body := strings.Repeat("0123456789\r\n", 10) // 120 octets, lines of 10
	tests := []struct {
		name string
		in   string
		opts DataOptions
		err  error
		size int64
	}{
		{"size exact", body + ".\r\n", DataOptions{MaxSize: 120}, io.EOF, 120},
		{"size over", body + ".\r\n", DataOptions{MaxSize: 119}, ErrMessageTooLarge, 120},
		{"size over by far", body + body + "x\n.\n" + body + ".\r\n", DataOptions{MaxSize: 10}, ErrMessageTooLarge, 366},
		{"line exact", body + ".\r\n", DataOptions{MaxLineLength: 10}, io.EOF, 120},
		{"line over", "12345678901\r\n" + body + ".\r\n", DataOptions{MaxLineLength: 10}, ErrLineTooLong, 133},
		{"line over at end", body + "12345678901\r\n.\r\n", DataOptions{MaxLineLength: 10}, ErrLineTooLong, 133},
		{"line over with bare LF", body + "1234567890\n12345678901\r\n.\r\n", DataOptions{MaxLineLength: 10}, ErrLineTooLong, 145},
		{"stuffed dot not counted", "..23456789\r\n.\r\n", DataOptions{MaxLineLength: 9}, io.EOF, 11},
		{"lone dot counted", "\n.\n\r\n.\r\n", DataOptions{MaxSize: 4}, ErrMessageTooLarge, 7},
		{"line first", strings.Repeat("x", 50) + "\r\n.\r\n", DataOptions{MaxLineLength: 10, MaxSize: 20}, ErrLineTooLong, 52},
		{"smuggling while too large", body + "\n.\nMAIL FROM:<a@example.com>\r\n.\r\n", DataOptions{MaxSize: 10}, ErrMessageTooLarge, 152},
	}
	for _, tt := range tests {
		for _, cfg := range readConfigs {
			out, err, rest, size := readData(t, []byte(tt.in+after), tt.opts, cfg)
			if !errors.Is(err, tt.err) {
				t.Errorf("%s %+v: error %v, want %v", tt.name, cfg, err, tt.err)
			}
			if string(rest) != after {
				t.Errorf("%s %+v: left %q, want %q: out of step", tt.name, cfg, rest, after)
			}
			if size != tt.size {
				t.Errorf("%s %+v: size %d, want %d", tt.name, cfg, size, tt.size)
			}
			if tt.opts.MaxSize > 0 && int64(len(out)) > tt.opts.MaxSize {
				t.Errorf("%s %+v: %d octets of output over a limit of %d", tt.name, cfg, len(out), tt.opts.MaxSize)
			}
		}
	}
}

// TestDataReaderCopy checks the intended use: io.Copy, then the error.
func TestDataReaderCopy(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("Subject: x\r\n\r\n" + strings.Repeat("y", 2000) + "\r\n.\r\nQUIT\r\n"))
	var dst bytes.Buffer
	n, err := io.Copy(&dst, NewDataReader(br, DataOptions{MaxLineLength: MaxTextLineLength}))
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("io.Copy error = %v, want ErrLineTooLong", err)
	}
	if n > 2000 {
		t.Errorf("io.Copy copied %d octets", n)
	}
	if line, err := ReadLine(br, MaxCommandLine); err != nil || string(line) != "QUIT" {
		t.Errorf("next command: %q, %v", line, err)
	}
}

func TestDataWriter(t *testing.T) {
	tests := []struct {
		writes []string
		want   string
	}{
		{nil, ".\r\n"},
		{[]string{""}, ".\r\n"},
		{[]string{"a\r\n"}, "a\r\n.\r\n"},
		{[]string{"a"}, "a\r\n.\r\n"},
		{[]string{"a\nb"}, "a\r\nb\r\n.\r\n"},
		{[]string{"a\rb\r"}, "a\r\nb\r\n.\r\n"},
		{[]string{"a\r", "\nb"}, "a\r\nb\r\n.\r\n"},
		{[]string{"a\r", "b"}, "a\r\nb\r\n.\r\n"},
		{[]string{"a\r", "\r\n"}, "a\r\n\r\n.\r\n"},
		{[]string{".x\n"}, "..x\r\n.\r\n"},
		{[]string{"."}, "..\r\n.\r\n"},
		{[]string{"\r\n.\r\n"}, "\r\n..\r\n.\r\n"},
		{[]string{"a\n.\n..\r.b\r\n"}, "a\r\n..\r\n...\r\n..b\r\n.\r\n"},
		{[]string{"a\r\n", ".", "b"}, "a\r\n..b\r\n.\r\n"},
		{[]string{"a\r", ".b"}, "a\r\n..b\r\n.\r\n"},
		{[]string{"a.b\r\nc.\r\n"}, "a.b\r\nc.\r\n.\r\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := NewDataWriter(&buf)
		for _, s := range tt.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Errorf("%q: Write = %d, %v", tt.writes, n, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Errorf("%q: Close: %v", tt.writes, err)
		}
		if buf.String() != tt.want {
			t.Errorf("%q: wrote %q, want %q", tt.writes, buf.String(), tt.want)
		}
		if err := w.Close(); err != nil || buf.String() != tt.want {
			t.Errorf("%q: second Close: %v, wrote %q", tt.writes, err, buf.String())
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
			t.Errorf("%q: Write after Close: %v", tt.writes, err)
		}
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	dw := NewDataWriter(&failWriter{})
	if _, err := dw.Write([]byte("a\n")); err == nil {
		t.Error("DataWriter.Write hid a write error")
	}
	if err := dw.Close(); err == nil {
		t.Error("DataWriter.Close hid a write error")
	}
	ln := NewLineNormalizer(&failWriter{}, DataOptions{})
	if _, err := ln.Write([]byte("a\n")); err == nil {
		t.Error("LineNormalizer.Write hid a write error")
	}
	if _, err := ln.Write([]byte("b")); err == nil {
		t.Error("LineNormalizer.Write error is not sticky")
	}
	if err := ln.Close(); err == nil {
		t.Error("LineNormalizer.Close hid a write error")
	}
}

func TestRoundTrip(t *testing.T) {
	contents := []string{
		"",
		"\r\n",
		".",
		".\r\n",
		"..\r\n",
		"Subject: test\r\n\r\nbody\r\n.\r\n..\r\n.x\r\nend",
		"a\nb\rc\r\nd\n\n.\n\r.\r",
		"\n.\nMAIL FROM:<a@b>\r\n.\r\n",
		strings.Repeat("line of text\r\n.leading dot\n", 1000),
		strings.Repeat("x", 10000),
	}
	for _, c := range contents {
		for _, cfg := range readConfigs {
			for _, split := range []int{1, 3, 1 << 20} {
				var wire bytes.Buffer
				w := NewDataWriter(&wire)
				for i := 0; i < len(c); i += split {
					w.Write([]byte(c[i:min(i+split, len(c))]))
				}
				w.Close()
				wire.WriteString("QUIT\r\n")
				out, err, rest, _ := readData(t, wire.Bytes(), DataOptions{}, cfg)
				want := normalizeLineEndings(c)
				if want != "" && !strings.HasSuffix(want, "\r\n") {
					want += "\r\n"
				}
				if err != io.EOF || string(out) != want || string(rest) != "QUIT\r\n" {
					t.Errorf("round trip of %.40q (split %d, %+v): %.60q, %v, left %q", c, split, cfg, out, err, rest)
				}
			}
		}
	}
}

func TestLineNormalizer(t *testing.T) {
	tests := []struct {
		chunks []string
		want   string
	}{
		{nil, ""},
		{[]string{"a\r\nb\r\n"}, "a\r\nb\r\n"},
		{[]string{"a\nb\rc"}, "a\r\nb\r\nc"},
		{[]string{"a\r", "\nb"}, "a\r\nb"},
		{[]string{"a\r", "", "\nb"}, "a\r\nb"},
		{[]string{"a\r", "b"}, "a\r\nb"},
		{[]string{"a\r", "\r", "\n"}, "a\r\n\r\n"},
		{[]string{"a\r"}, "a\r\n"},
		{[]string{"\n"}, "\r\n"},
		{[]string{".\r\n..x\r\n"}, ".\r\n..x\r\n"}, // BDAT has no dot-stuffing
		{[]string{"\r\r\n\n\r"}, "\r\n\r\n\r\n\r\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		n := NewLineNormalizer(&buf, DataOptions{})
		for _, c := range tt.chunks {
			if m, err := n.Write([]byte(c)); m != len(c) || err != nil {
				t.Errorf("%q: Write = %d, %v", tt.chunks, m, err)
			}
		}
		if err := n.Close(); err != nil {
			t.Errorf("%q: Close: %v", tt.chunks, err)
		}
		if buf.String() != tt.want || n.Size() != int64(len(tt.want)) || n.Err() != nil {
			t.Errorf("%q: wrote %q (size %d, err %v), want %q", tt.chunks, buf.String(), n.Size(), n.Err(), tt.want)
		}
	}
}

func TestLineNormalizerLimits(t *testing.T) {
	tests := []struct {
		chunks []string
		opts   DataOptions
		err    error
		size   int64
	}{
		{[]string{"12345\r\n", "123"}, DataOptions{MaxSize: 10}, nil, 10},
		{[]string{"12345\r\n", "1234"}, DataOptions{MaxSize: 10}, ErrMessageTooLarge, 11},
		{[]string{"12345\n", "123456"}, DataOptions{MaxSize: 10}, ErrMessageTooLarge, 13},
		{[]string{"12345\r", "\n12345"}, DataOptions{MaxLineLength: 5}, nil, 12},
		{[]string{"123", "456\r\n"}, DataOptions{MaxLineLength: 5}, ErrLineTooLong, 8},
		{[]string{"12345\r\n1", "23456"}, DataOptions{MaxLineLength: 5}, ErrLineTooLong, 13},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		n := NewLineNormalizer(&buf, tt.opts)
		for _, c := range tt.chunks {
			if m, err := n.Write([]byte(c)); m != len(c) || err != nil {
				t.Errorf("%q: Write = %d, %v", tt.chunks, m, err)
			}
		}
		n.Close()
		if !errors.Is(n.Err(), tt.err) || (tt.err == nil) != (n.Err() == nil) || n.Size() != tt.size {
			t.Errorf("%q %+v: Err %v, Size %d; want %v, %d", tt.chunks, tt.opts, n.Err(), n.Size(), tt.err, tt.size)
		}
		if tt.opts.MaxSize > 0 && int64(buf.Len()) > tt.opts.MaxSize {
			t.Errorf("%q: wrote %d octets over a limit of %d", tt.chunks, buf.Len(), tt.opts.MaxSize)
		}
	}
}

// normalizeLineEndings makes every CRLF, bare CR and bare LF of s a CRLF.
func normalizeLineEndings(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			b.WriteString("\r\n")
		case '\n':
			b.WriteString("\r\n")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// indexBareLineEnding returns the index of the first CR or LF of b that is not part
// of a CRLF, or -1.
func indexBareLineEnding(b []byte) int {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 == len(b) || b[i+1] != '\n' {
				return i
			}
			i++
		case '\n':
			return i
		}
	}
	return -1
}

// benchMessage is a typical message: 76-character lines, a few dots at line starts.
func benchMessage(size int, ending string) []byte {
	var b bytes.Buffer
	line := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 3)[:76]
	for i := 0; b.Len() < size; i++ {
		if i%50 == 0 {
			b.WriteString("..")
		}
		b.WriteString(line)
		b.WriteString(ending)
	}
	if ending != "\r\n" {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

func BenchmarkDataReader(b *testing.B) {
	for _, bc := range []struct {
		name    string
		ending  string
		bufSize int
	}{
		{"CRLF/4K", "\r\n", 4096},
		{"CRLF/64K", "\r\n", 64 * 1024},
		{"LF/4K", "\n", 4096},
		{"baseline/4K", "\r\n", 4096}, // bufio alone, no parsing: the ceiling
	} {
		b.Run(bc.name, func(b *testing.B) {
			msg := benchMessage(4<<20, bc.ending)
			b.SetBytes(int64(len(msg)))
			src := bytes.NewReader(msg)
			br := bufio.NewReaderSize(src, bc.bufSize)
			buf := make([]byte, 32*1024)
			for b.Loop() {
				src.Reset(msg)
				br.Reset(src)
				var r io.Reader = NewDataReader(br, DataOptions{MaxSize: 1 << 30, MaxLineLength: MaxTextLineLength})
				if strings.HasPrefix(bc.name, "baseline") {
					r = br
				}
				if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDataWriter(b *testing.B) {
	msg := benchMessage(4<<20, "\r\n")
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		w := NewDataWriter(io.Discard)
		if _, err := w.Write(msg); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
}

func BenchmarkLineNormalizer(b *testing.B) {
	msg := benchMessage(4<<20, "\r\n")
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		n := NewLineNormalizer(io.Discard, DataOptions{MaxLineLength: MaxTextLineLength})
		for i := 0; i < len(msg); i += 64 * 1024 {
			n.Write(msg[i:min(i+64*1024, len(msg))])
		}
		n.Close()
	}
}

func ExampleDataReader() {
	// What smtpd reads after "354": a message with a smuggling attempt, then the
	// next command.
	conn := bufio.NewReader(strings.NewReader("Subject: hi\r\n\r\nhello\n.\nMAIL FROM:<x@example.com>\r\n.\r\nQUIT\r\n"))
	var msg bytes.Buffer
	_, err := io.Copy(&msg, NewDataReader(conn, DataOptions{MaxSize: 10 << 20, MaxLineLength: MaxTextLineLength}))
	fmt.Printf("%q %v\n", msg.String(), err)
	next, _ := ReadLine(conn, MaxCommandLine)
	fmt.Printf("%s\n", next)
	// Output:
	// "Subject: hi\r\n\r\nhello\r\n.\r\nMAIL FROM:<x@example.com>\r\n" <nil>
	// QUIT
}

package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"EHLO client.example.com", "MAIL FROM:<a@example.com> SIZE=10", "RCPT TO:<postmaster>",
		"DATA", "QUIT ", "noop  x ", "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "", " ", "MAIL\x00", "A\rB",
		"BDAT 100 LAST", strings.Repeat("x", 600), "X-Y\tz",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, err := ParseCommand(line)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(line) > MaxExtendedCommandLine-2 {
			t.Fatalf("accepted a line of %d octets", len(line))
		}
		if cmd.Verb == "" || cmd.Verb != strings.ToUpper(cmd.Verb) || strings.ContainsAny(cmd.Verb, " \t") {
			t.Fatalf("bad verb %q", cmd.Verb)
		}
		for _, c := range []byte(cmd.Arg) {
			if c < ' ' && c != '\t' || c == 0x7f {
				t.Fatalf("control character in argument %q", cmd.Arg)
			}
		}
		if strings.HasSuffix(cmd.Arg, " ") || strings.HasSuffix(cmd.Arg, "\t") {
			t.Fatalf("argument %q not trimmed", cmd.Arg)
		}
	})
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"<user@example.com>", "<>", "<> SIZE=100 BODY=8BITMIME", " <User@Example.COM> SMTPUTF8",
		"<postmaster>", "<PostMaster>", "<@a.example,@b.example:user@example.com>",
		"<@[192.0.2.1]:u@[IPv6:2001:DB8::1]>", `<"john \"doe\""@example.com> RET=HDRS`,
		`<"user@foreign.test"@example.test>`, "<user%foreign.test@example.test>",
		"<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8", "<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b",
		"<a@b> X=", "<a@[1.2.3.4]>", "<a@xn--bcher-kva.example>", "<\"\"@x>", "<a@b\xff>",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, smtputf8 bool) {
		for _, verb := range []string{"FROM:", "TO:"} {
			parse := ParseMailFrom
			if verb == "TO:" {
				parse = ParseRcptTo
			}
			addr, params, err := parse(verb+s, smtputf8)
			if err != nil {
				if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrPathTooLong) &&
					!errors.Is(err, ErrNonASCII) && !errors.Is(err, ErrParam) {
					t.Fatalf("%s%q: untyped error %v", verb, s, err)
				}
				continue
			}
			checkAddress(t, addr, smtputf8)
			// What we parsed, formatted again, parses to the same.
			again := verb + "<" + addr.String() + ">"
			if len(params) > 0 {
				again += " " + params.String()
			}
			addr2, params2, err := parse(again, smtputf8)
			if errors.Is(err, ErrPathTooLong) {
				continue // canonical forms may be a little longer
			}
			if err != nil || addr2 != addr || !reflect.DeepEqual(params2, params) {
				t.Fatalf("%s%q: parsed as %+v %v; %q parses as %+v %v, %v", verb, s, addr, params, again, addr2, params2, err)
			}
			if addr.Domain != "" {
				addr3, err := ParseAddress(addr.String(), true)
				if err != nil || addr3 != addr {
					t.Fatalf("ParseAddress(%q) = %+v, %v; want %+v", addr.String(), addr3, err, addr)
				}
			}
		}
	})
}

func checkAddress(t *testing.T, a Address, smtputf8 bool) {
	t.Helper()
	if !smtputf8 && !a.IsASCII() {
		t.Fatalf("non-ASCII address %+v without SMTPUTF8", a)
	}
	if !utf8.ValidString(a.Local) || !utf8.ValidString(a.Domain) {
		t.Fatalf("invalid UTF-8 in %+v", a)
	}
	if a.Domain != strings.ToLower(a.Domain) && !strings.HasPrefix(a.Domain, "[IPv6:") {
		t.Fatalf("domain %q not lower-cased", a.Domain)
	}
	if len(a.Domain) > MaxDomain || strings.ContainsAny(a.Local+a.Domain, "\x00\r\n") {
		t.Fatalf("bad address %+v", a)
	}
	if a.Domain == "" && a.Local != "" && a.Local != "postmaster" {
		t.Fatalf("address %+v without domain", a)
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 OK\r\n", "250-mail.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
		"550 5.1.1 No such user\r\n", "550-5.1.1 a\r\n550 5.7.1 b\r\n", "250\r\n", "250-\n250 \n",
		"220 mx.example.com ESMTP\r\n", "421 4.4.2 timeout", "250-a\r\n251 b\r\n", "2",
		"354 End data with <CR><LF>.<CR><LF>\r\n", "250 2.0.0\r\n250 2.0.0 second reply\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		rep, err := ReadReply(br)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrLineTooLong) &&
				err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if rep.Code < 200 || rep.Code > 559 || len(rep.Lines) == 0 || len(rep.Lines) > maxReplyLines {
			t.Fatalf("bad reply %#v", rep)
		}
		s := rep.String()
		if strings.Count(s, "\n") != len(rep.Lines) || strings.Count(s, "\r") != len(rep.Lines) {
			t.Fatalf("%#v formats as %q", rep, s)
		}
		rep2, err := ReadReply(bufio.NewReader(strings.NewReader(s)))
		if errors.Is(err, ErrLineTooLong) {
			return // the enhanced code added to every line can make one too long
		}
		if err != nil || !reflect.DeepEqual(rep, rep2) {
			t.Fatalf("%#v formats as %q, which reads as %#v, %v", rep, s, rep2, err)
		}
	})
}

// refData is a plain model of DataReader over a whole input: it returns the content,
// the input after the end of data, and whether the end of data was found. When it was
// not, out ends with what DataReader yields of an unfinished last line.
func refData(in []byte) (out, rest []byte, ok bool) {
	unstuff := func(line []byte) []byte {
		if len(line) > 0 && line[0] == '.' {
			return line[1:] // RFC 5321 §4.5.2; a lone "." is the caller's business
		}
		return line
	}
	crlfBefore := true
	for pos := 0; pos < len(in); {
		k := bytes.IndexAny(in[pos:], "\r\n")
		if k < 0 || in[pos+k] == '\r' && pos+k+1 == len(in) {
			// An unfinished line, or one ended by a CR whose fate is unknown.
			if k < 0 {
				k = len(in) - pos
			}
			return append(out, unstuff(in[pos:pos+k])...), nil, false
		}
		k += pos
		line := in[pos:k]
		crlf := false
		next := k + 1
		if in[k] == '\r' && in[k+1] == '\n' {
			crlf, next = true, k+2
		}
		if string(line) == "." {
			if crlf && crlfBefore {
				return out, in[next:], true
			}
		} else {
			line = unstuff(line)
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
		crlfBefore, pos = crlf, next
	}
	return out, nil, false
}

func FuzzDataReader(f *testing.F) {
	for _, s := range []string{
		".\r\n", "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n", "..x\r\n.\r\n", "a\nb\rc\r\n.\r\n",
		"x\n.\nMAIL FROM:<a@b>\r\n.\r\nQUIT\r\n", "x\r.\ry\r\n.\r\n", "x\r\n.\ny\r\n.\r\n",
		"x\n.\r\ny\r\n.\r\n", "x\r\n.\ry\r\n.\r\n", "x\r\n.\r", "x", "", "\r\r\n.\r\n",
		strings.Repeat("0123456789", 30) + "\r\n.\r\nRSET\r\n",
	} {
		f.Add([]byte(s), byte(0), uint16(0), uint8(0))
		f.Add([]byte(s), byte(0xb3), uint16(20), uint8(5))
	}
	chunks := [8]int{1, 2, 3, 7, 64, 4096, 5, 32 * 1024}
	f.Fuzz(func(t *testing.T, data []byte, cfgBits byte, maxSize uint16, maxLine uint8) {
		cfg := readConfig{
			bufSize: 16 + int(cfgBits&0x0f)*7,
			chunk:   chunks[(cfgBits>>4)&7],
			oneByte: cfgBits&0x80 != 0,
		}
		opts := DataOptions{MaxSize: int64(maxSize), MaxLineLength: int(maxLine)}
		out, err, rest, size := readData(t, data, opts, cfg)
		refOut, refRest, ok := refData(data)
		if !bytes.HasPrefix(refOut, out) {
			t.Fatalf("output %q is not a prefix of %q", out, refOut)
		}
		if !ok {
			if err != io.ErrUnexpectedEOF || len(rest) != 0 {
				t.Fatalf("truncated input: error %v, left %q", err, rest)
			}
		} else {
			if !bytes.Equal(rest, refRest) {
				t.Fatalf("left %q, want %q", rest, refRest)
			}
			if size != int64(len(refOut)) {
				t.Fatalf("size %d, want %d", size, len(refOut))
			}
			maxLen := 0
			for line := range bytes.SplitSeq(refOut, []byte("\r\n")) {
				maxLen = max(maxLen, len(line))
			}
			tooLarge := opts.MaxSize > 0 && int64(len(refOut)) > opts.MaxSize
			tooLong := opts.MaxLineLength > 0 && maxLen > opts.MaxLineLength
			switch {
			case !tooLarge && !tooLong:
				if err != io.EOF || !bytes.Equal(out, refOut) {
					t.Fatalf("error %v, output %q, want %q", err, out, refOut)
				}
				if i := indexBareLineEnding(out); i >= 0 {
					t.Fatalf("bare CR or LF at %d in %q", i, out)
				}
			case errors.Is(err, ErrMessageTooLarge) && tooLarge, errors.Is(err, ErrLineTooLong) && tooLong:
			default:
				t.Fatalf("error %v; too large %v, too long %v", err, tooLarge, tooLong)
			}
		}
		if opts.MaxSize > 0 && int64(len(out)) > opts.MaxSize {
			t.Fatalf("%d octets of output over a limit of %d", len(out), opts.MaxSize)
		}

		// Round trip: anything written with DataWriter reads back with only its
		// line endings normalized.
		var wire bytes.Buffer
		w := NewDataWriter(&wire)
		step := 1 + int(maxLine)%17
		for i := 0; i < len(data); i += step {
			w.Write(data[i:min(i+step, len(data))])
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		wire.WriteString("NEXT")
		out, err, rest, _ = readData(t, wire.Bytes(), DataOptions{}, cfg)
		want := normalizeLineEndings(string(data))
		if want != "" && !strings.HasSuffix(want, "\r\n") {
			want += "\r\n"
		}
		if err != io.EOF || string(out) != want || string(rest) != "NEXT" {
			t.Fatalf("round trip of %q: %q, %v, left %q; want %q", data, out, err, rest, want)
		}
	})
}

func FuzzLineNormalizer(f *testing.F) {
	for _, s := range []string{"a\r\nb", "a\rb\nc\r", "\r\r\n\n", ".\r\n..", strings.Repeat("x", 5000) + "\r"} {
		f.Add([]byte(s), uint8(1), uint16(0), uint8(0))
		f.Add([]byte(s), uint8(3), uint16(10), uint8(4))
	}
	f.Fuzz(func(t *testing.T, data []byte, step uint8, maxSize uint16, maxLine uint8) {
		opts := DataOptions{MaxSize: int64(maxSize), MaxLineLength: int(maxLine)}
		var buf bytes.Buffer
		n := NewLineNormalizer(&buf, opts)
		s := 1 + int(step)
		for i := 0; i < len(data); i += s {
			if m, err := n.Write(data[i:min(i+s, len(data))]); err != nil || m != min(s, len(data)-i) {
				t.Fatalf("Write = %d, %v", m, err)
			}
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		want := normalizeLineEndings(string(data))
		if n.Size() != int64(len(want)) {
			t.Fatalf("size %d, want %d", n.Size(), len(want))
		}
		maxLen := 0
		for line := range strings.SplitSeq(want, "\r\n") {
			maxLen = max(maxLen, len(line))
		}
		tooLarge := opts.MaxSize > 0 && int64(len(want)) > opts.MaxSize
		tooLong := opts.MaxLineLength > 0 && maxLen > opts.MaxLineLength
		switch err := n.Err(); {
		case !tooLarge && !tooLong:
			if err != nil || buf.String() != want {
				t.Fatalf("wrote %q, %v; want %q", buf.String(), err, want)
			}
		case errors.Is(err, ErrMessageTooLarge) && tooLarge, errors.Is(err, ErrLineTooLong) && tooLong:
			if !strings.HasPrefix(want, buf.String()) {
				t.Fatalf("wrote %q, not a prefix of %q", buf.String(), want)
			}
		default:
			t.Fatalf("error %v; too large %v, too long %v", err, tooLarge, tooLong)
		}
	})
}

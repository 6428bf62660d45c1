package mime

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// toCRLF converts bare LFs to CRLF, as every reader of this package must.
func toCRLF(b []byte) []byte {
	var out []byte
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "\n", "\r\n\r\n", "Subject: x", "Content-Type: multipart/mixed; boundary=a\n\n--a\n--a\n\n--a--\n",
		"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n",
		"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\nx",
		"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a--\r\n--a--",
		"Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: base64\r\n\r\n8NLJ18XU\r\n",
		"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=\r\n=4=\n= \r",
		"a\rb\r\n\rc: d\r\n \r\n\r\n\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(checkMessage)
}

// Lines whose CR, LF or end fall at the edges of the read buffer keep every invariant.
func TestLongLinesAtBufferEdges(t *testing.T) {
	for _, eol := range []string{"\r\n", "\n"} {
		for n := bufSize - 4; n <= bufSize+4; n++ {
			long := strings.Repeat("x", n)
			for _, msg := range []string{
				"X-Long: " + long[8:] + eol + "Content-Type: multipart/mixed; boundary=q" + eol + eol + "--q" + eol + eol + long + eol + "--q--" + eol,
				"Content-Type: multipart/mixed; boundary=q" + eol + eol + "--q" + eol + eol + long[:n-6] + eol + "--q" + eol + eol + "y" + eol + "--q--",
				"Subject: s" + eol + eol + long + eol + long + eol,
			} {
				checkMessage(t, []byte(msg))
			}
		}
	}
}

// checkMessage parses b and checks what must hold for any input: ranges inside the file
// with sizes of their CRLF form, every section readable and equal to its range, the
// searches in agreement.
func checkMessage(t *testing.T, b []byte) {
	{
		m, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		crlf := toCRLF(b)
		if m.Size != int64(len(crlf)) {
			t.Fatalf("Size %d, CRLF form %d", m.Size, len(crlf))
		}
		var check func(p *Part, path []int, isMsg bool)
		check = func(p *Part, path []int, isMsg bool) {
			for _, rg := range []Range{p.HeaderRange, p.BodyRange} {
				if rg.Offset < 0 || rg.Len < 0 || rg.Offset+rg.Len > int64(len(b)) || rg.Size < rg.Len {
					t.Fatalf("part %v: range %+v outside %d octets", path, rg, len(b))
				}
				if want := int64(len(toCRLF(b[rg.Offset : rg.Offset+rg.Len]))); rg.Size != want {
					t.Fatalf("part %v: range %+v, CRLF size %d", path, rg, want)
				}
			}
			if p.HeaderRange.Offset+p.HeaderRange.Len > p.BodyRange.Offset {
				t.Fatalf("part %v: header %+v overlaps body %+v", path, p.HeaderRange, p.BodyRange)
			}
			// A body that ends at a boundary gives the whole line break before it
			// (CRLF or LF) to the boundary (RFC 2046 §5.1.1).
			if end := p.BodyRange.Offset + p.BodyRange.Len; end > p.BodyRange.Offset && end < int64(len(b)) && b[end] == '\n' && b[end-1] == '\r' {
				t.Fatalf("part %v: the body keeps the CR of the CRLF before its boundary", path)
			}
			if p.Lines != int64(bytes.Count(b[p.BodyRange.Offset:p.BodyRange.Offset+p.BodyRange.Len], []byte("\n"))) {
				t.Fatalf("part %v: %d lines", path, p.Lines)
			}
			for _, q := range p.Params {
				if !utf8.ValidString(q.Value) && !strings.EqualFold(q.Name, "boundary") {
					t.Fatalf("part %v: parameter %q not UTF-8", path, q.Value)
				}
			}
			if len(path) > 0 {
				// A part: BODY[path] and BODY[path.MIME]; the message of a
				// message/rfc822 part: BODY[path.TEXT] and BODY[path.HEADER].
				body, head := "", "MIME"
				if isMsg {
					body, head = "TEXT", "HEADER"
				}
				for _, sec := range []struct {
					spec string
					rg   Range
				}{{body, p.BodyRange}, {head, p.HeaderRange}} {
					r, err := m.Section(Section{Path: path, Specifier: sec.spec})
					if err != nil {
						t.Fatalf("BODY[%v.%s]: %v", path, sec.spec, err)
					}
					got, err := io.ReadAll(r)
					if err != nil || int64(len(got)) != r.Size() {
						t.Fatalf("BODY[%v.%s]: %d octets of %d, %v", path, sec.spec, len(got), r.Size(), err)
					}
					if want := toCRLF(b[sec.rg.Offset : sec.rg.Offset+sec.rg.Len]); !bytes.Equal(got, want) {
						t.Fatalf("BODY[%v.%s] = %q, want %q", path, sec.spec, got, want)
					}
				}
				if !isMsg {
					if _, err := m.BinarySize(path); err != nil && !errors.Is(err, ErrUnknownEncoding) {
						t.Fatalf("BINARY[%v]: %v", path, err)
					}
				}
			}
			if p.Message != nil {
				// The message of a message/rfc822 body part has that part's number;
				// when a message is itself a message/rfc822, its body (the
				// encapsulated message) is its part 1.
				mp := path
				if isMsg {
					mp = append(path[:len(path):len(path)], 1)
				}
				check(p.Message, mp, true)
				return
			}
			for i, c := range p.Parts {
				check(c, append(path[:len(path):len(path)], i+1), false)
			}
			if !p.IsMultipart() && isMsg {
				// Part 1 of a message that is not multipart is its body.
				if _, err := m.Part(append(path[:len(path):len(path)], 1)); err != nil {
					t.Fatalf("part %v.1: %v", path, err)
				}
			}
		}
		check(m.Root, nil, true)
		for _, spec := range []string{"HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT"} {
			r, err := m.Section(Section{Specifier: spec, Fields: []string{"Subject", "content-type"}})
			if err != nil {
				t.Fatalf("BODY[%s]: %v", spec, err)
			}
			got, err := io.ReadAll(r)
			if err != nil || int64(len(got)) != r.Size() {
				t.Fatalf("BODY[%s]: %d octets of %d, %v", spec, len(got), r.Size(), err)
			}
			if bytes.Contains(toCRLF(got), []byte("\r\r\n")) == bytes.Contains(got, []byte("\r\r\n")) && !bytes.Equal(toCRLF(got), got) {
				t.Fatalf("BODY[%s] has bare LFs: %q", spec, got)
			}
		}
		for _, needle := range []string{"a", "ü", "Content"} {
			mt := NewMatcher(needle)
			for _, text := range []bool{false, true} {
				ok, err := m.Contains(mt, text)
				if err != nil {
					t.Fatal(err)
				}
				tx, err := m.ExtractText(0)
				if err != nil {
					t.Fatal(err)
				}
				// The extracted text has the same words; it only differs from the
				// raw search on needles that span line breaks, which these do not.
				if tx.Contains(mt, text) != ok {
					t.Fatalf("Contains(%q, %v) = %v, ExtractText disagrees", needle, text, ok)
				}
			}
		}
		m.HeaderContains("subject", NewMatcher("x"))
		m.HeaderContains("from", NewMatcher("a@b"))
	}
}

func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{
		`"Joe Q. Public" <john.q.public@example.com>`, "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
		"Undisclosed recipients:;", "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
		"<@route1,@route2:someone@example.com>", "a@[1.2.3.4", "\"unterminated <a@b>", "((((", "<<<>>>", "a@b.(c).d",
		"=?utf-8?q?J=C3=B6rg?= <j@x>", "g: a@b, (c) d@e ;, f@g", ":;,@<>\"\\",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		as := ParseAddressList(s)
		depth := 0
		for _, a := range as {
			if a.Group {
				if a.Mailbox == "" {
					depth--
				} else {
					depth++
				}
				if depth < 0 || depth > 1 {
					t.Fatalf("group markers out of order in %+v", as)
				}
				if a.Host != "" || a.Name != "" {
					t.Fatalf("group marker with a host or name: %+v", a)
				}
			}
		}
		if depth != 0 {
			t.Fatalf("unclosed group in %+v", as)
		}
		if len(as) > len(s) {
			t.Fatalf("%d addresses from %d octets", len(as), len(s))
		}
	})
}

func FuzzDecodeHeader(f *testing.F) {
	for _, s := range []string{
		"=?ISO-8859-1?Q?Andr=E9?= Pirard", "=?utf-8?b?w6k=?= =?utf-8?b?w6A=?=", "=?=?=?", "=?utf-8?q?=?=",
		"=?utf-8?b?====?=", "caf\xe9", "=?x?q??= =?x?b??=", "=?gb2312?b?xOO6ww==?=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d := DecodeHeader(s); !utf8.ValidString(d) {
			t.Fatalf("DecodeHeader(%q) = %q, not UTF-8", s, d)
		}
		ParseAddressList(s)
		parseContentType([]byte(s))
	})
}

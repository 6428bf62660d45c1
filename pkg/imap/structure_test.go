package imap

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"postern/pkg/mime"
)

func parseFile(t testing.TB, name string) *mime.Message {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "mime", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return parseMessage(t, b)
}

func parseMessage(t testing.TB, b []byte) *mime.Message {
	t.Helper()
	m, err := mime.Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The message of the example in RFC 3501 §7.4.2, built to the sizes it shows, gives the
// BODY of the example octet for octet.
func TestBodyStructureRFC3501Example(t *testing.T) {
	// Part 1: 1152 octets in 23 lines (23 CRLFs; the CRLF before the boundary is not
	// the part's). Part 2: 4554 octets in 73 lines.
	lines := func(total, n int) string {
		text := total - 2*n
		var b strings.Builder
		for i := 0; i <= n; i++ {
			l := text / (n + 1)
			if i == n {
				l = text - n*(text/(n+1))
			}
			b.WriteString(strings.Repeat("a", l))
			if i < n {
				b.WriteString("\r\n")
			}
		}
		return b.String()
	}
	msg := "From: Terry Gray <gray@cac.washington.edu>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: MULTIPART/MIXED; BOUNDARY=\"xyz\"\r\n\r\n" +
		"--xyz\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\nContent-Transfer-Encoding: 7BIT\r\n\r\n" +
		lines(1152, 23) + "\r\n" +
		"--xyz\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n" +
		"Content-ID: <960723163407.20117h@cac.washington.edu>\r\n" +
		"Content-Description: Compiler diff\r\nContent-Transfer-Encoding: BASE64\r\n\r\n" +
		lines(4554, 73) + "\r\n--xyz--\r\n"
	m := parseMessage(t, []byte(msg))
	want := `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)` +
		`("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) "MIXED")`
	if got := string(AppendBodyStructure(nil, m.Root, false)); got != want {
		t.Errorf("BODY\n got %s\nwant %s", got, want)
	}
	want = `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23 NIL NIL NIL NIL)` +
		`("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "xyz") NIL NIL NIL)`
	if got := string(AppendBodyStructure(nil, m.Root, true)); got != want {
		t.Errorf("BODYSTRUCTURE\n got %s\nwant %s", got, want)
	}
}

// The expected strings are what Dovecot 2.3 sends for the same files, except where noted.
func TestBodyStructure(t *testing.T) {
	for _, tc := range []struct{ file, bodystructure, body string }{
		{"simple.eml",
			`("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "8bit" 83 4 NIL NIL NIL NIL)`,
			`("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "8bit" 83 4)`},
		{"alternative.eml",
			`(("text" "plain" ("charset" "ISO-8859-1") NIL NIL "quoted-printable" 98 2 NIL NIL NIL NIL)("text" "html" ("charset" "ISO-8859-1") NIL NIL "quoted-printable" 83 1 NIL NIL NIL NIL) "alternative" ("boundary" "----=_Part_0_1234.5678") NIL NIL NIL)`,
			`(("text" "plain" ("charset" "ISO-8859-1") NIL NIL "quoted-printable" 98 2)("text" "html" ("charset" "ISO-8859-1") NIL NIL "quoted-printable" 83 1) "alternative")`},
		// Dovecot lists "size" before "filename*": it writes RFC 2231 parameters last.
		{"mixed-attach.eml",
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 31 1 NIL NIL NIL NIL)("application" "pdf" ("name*" "utf-8''Quartals%C3%BCbersicht.pdf") "<part2.report@example.net>" "The report" "base64" 1050 NIL ("attachment" ("filename*" "utf-8''Quartals%C3%BCbersicht.pdf" "size" "768")) ("de") NIL) "mixed" ("boundary" "frontier") NIL NIL NIL)`,
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 31 1)("application" "pdf" ("name*" "utf-8''Quartals%C3%BCbersicht.pdf") "<part2.report@example.net>" "The report" "base64" 1050) "mixed")`},
		{"nested.eml",
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 32 0 NIL NIL NIL NIL)("message" "rfc822" NIL NIL NIL "7bit" 408 ("Wed, 4 Mar 2026 17:00:00 +0100" "Meeting notes" (("Heidi" NIL "heidi" "example.org")) (("Heidi" NIL "heidi" "example.org")) (("Heidi" NIL "heidi" "example.org")) (("Frank" NIL "frank" "example.com")) NIL NIL NIL "<notes-1@example.org>") (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 23 0 NIL NIL NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "7bit" 30 0 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL) 17 NIL ("inline" NIL) NIL NIL) "mixed" ("boundary" "outer") NIL NIL NIL)`,
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 32 0)("message" "rfc822" NIL NIL NIL "7bit" 408 ("Wed, 4 Mar 2026 17:00:00 +0100" "Meeting notes" (("Heidi" NIL "heidi" "example.org")) (("Heidi" NIL "heidi" "example.org")) (("Heidi" NIL "heidi" "example.org")) (("Frank" NIL "frank" "example.com")) NIL NIL NIL "<notes-1@example.org>") (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 23 0)("text" "html" ("charset" "utf-8") NIL NIL "7bit" 30 0) "alternative") 17) "mixed")`},
		{"encwords.eml",
			`("text" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 26 1 NIL NIL NIL NIL)`,
			`("text" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 26 1)`},
		{"missing-boundary.eml",
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 40 1 NIL NIL NIL NIL) "mixed" ("boundary" "b1") NIL NIL NIL)`,
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 40 1) "mixed")`},
		// LF-only file: sizes of the CRLF form.
		{"lf.eml",
			`(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 18 1 NIL NIL NIL NIL)("text" "plain" ("charset" "utf-8" "name" "x.txt") NIL NIL "7bit" 15 0 NIL ("attachment" ("filename" "x.txt")) NIL NIL) "mixed" ("boundary" "sep") NIL NIL NIL)`,
			`(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 18 1)("text" "plain" ("charset" "utf-8" "name" "x.txt") NIL NIL "7bit" 15 0) "mixed")`},
		// multipart/digest: a part without Content-Type is a message/rfc822.
		{"digest.eml",
			`(("message" "rfc822" NIL NIL NIL "7bit" 42 (NIL "one" ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 0 NIL NIL NIL NIL) "digest" ("boundary" "d") NIL NIL NIL)`,
			`(("message" "rfc822" NIL NIL NIL "7bit" 42 (NIL "one" ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0) 3)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 0) "digest")`},
	} {
		m := parseFile(t, tc.file)
		if got := string(AppendBodyStructure(nil, m.Root, true)); got != tc.bodystructure {
			t.Errorf("%s BODYSTRUCTURE\n got %s\nwant %s", tc.file, got, tc.bodystructure)
		}
		if got := string(AppendBodyStructure(nil, m.Root, false)); got != tc.body {
			t.Errorf("%s BODY\n got %s\nwant %s", tc.file, got, tc.body)
		}
	}
}

func TestBodyStructureOddities(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		// No header at all, no Content-Type: text/plain; charset=us-ascii (RFC 2045 §5.2).
		{"\r\nhi\r\n", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1 NIL NIL NIL NIL)`},
		{"", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`},
		// An invalid Content-Type is text/plain (Dovecot sends ("garbage" "" ...)).
		{"Content-Type: garbage\r\n\r\nhello\r\n", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1 NIL NIL NIL NIL)`},
		// A multipart without boundary gets one empty part, as in Dovecot.
		{"Content-Type: multipart/alternative\r\n\r\nno boundary\r\n",
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "alternative" NIL NIL NIL NIL)`},
		{"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n",
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)`},
		// A base64 message/rfc822 is not parsed: an empty envelope and body, as Dovecot.
		{"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogaQoKYm9keQo=\r\n",
			`("message" "rfc822" NIL NIL NIL "base64" 26 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) 1 NIL NIL NIL NIL)`},
		// message/rfc822 is written in lower case, as Dovecot does.
		{"Content-Type: MESSAGE/RFC822\r\n\r\nSubject: x\r\n\r\ny",
			`("message" "rfc822" NIL NIL NIL "7bit" 15 (NIL "x" NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL)`},
		// message/global is a basic body (RFC 3501 media-message is RFC822 only), as
		// Dovecot sends it.
		{"Content-Type: message/global\r\n\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nHallo\r\n",
			`("message" "global" NIL NIL NIL "7bit" 27 NIL NIL NIL NIL)`},
		// Extension fields; a Content-Language list; MD5 and location.
		{"Content-Type: image/png\r\nContent-Disposition: INLINE; filename=\"a b.png\"\r\nContent-Language: en, fr\r\nContent-MD5: Q2hlY2s=\r\nContent-Location: http://x.test/a\r\n\r\nxx\r\n",
			`("image" "png" NIL NIL NIL "7bit" 4 "Q2hlY2s=" ("INLINE" ("filename" "a b.png")) ("en" "fr") "http://x.test/a")`},
		// Parameters outside printable ASCII go out in RFC 2231 form; 8-bit header
		// values as literals.
		{"Content-Type: text/plain; name=\"r\xe9sum\xe9.txt\"\r\nContent-Description: caf\xc3\xa9\r\n\r\n",
			"(\"text\" \"plain\" (\"name*\" \"utf-8''r%C3%A9sum%C3%A9.txt\" \"charset\" \"us-ascii\") NIL {5}\r\ncaf\xc3\xa9 \"7bit\" 0 0 NIL NIL NIL NIL)"},
		// A quote or backslash is escaped in a quoted string.
		{"Content-Type: text/plain; x=\"a\\\"b\\\\c\"\r\n\r\n",
			`("text" "plain" ("x" "a\"b\\c" "charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`},
	} {
		m := parseMessage(t, []byte(tc.msg))
		if got := string(AppendBodyStructure(nil, m.Root, true)); got != tc.want {
			t.Errorf("%q\n got %s\nwant %s", tc.msg, got, tc.want)
		}
	}
}

func TestEnvelope(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"groups.eml", `("Thu, 13 Feb 1969 23:32:54 -0330" "" (("Joe Q. Public" NIL "john.q.public" "example.com")) ((NIL "@route1,@route2" "someone" "example.com")) (("Pete" NIL "pete" "silly.test")) (("Mary Smith" NIL "mary" "x.test")(NIL NIL "jdoe" "example.org")("Who?" NIL "one" "y.test")) ((NIL NIL "boss" "nil.test")("Giant; \"Big\" Box" NIL "sysservices" "example.net")) ((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL)(NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) NIL "<5678.21-Nov-1997@example.com>")`},
		{"encwords.eml", `("Fri, 6 Mar 2026 10:00:00 +0000" "=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=" (("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be")) (("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be")) (("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be")) (("=?UTF-8?B?SsO2cmc=?=" NIL "joerg" "example.de")("Keld =?ISO-8859-1?Q?J=F8rn?= Simonsen" NIL "keld" "dkuug.dk")) NIL NIL NIL NIL)`},
		{"alternative.eml", `("Tue, 3 Mar 2026 08:00:00 -0500" "Your weekly offers" (("Shop, Inc." NIL "news" "shop.example")) (("Shop, Inc." NIL "news" "shop.example")) (("Shop, Inc." NIL "news" "shop.example")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL "<offers.42@shop.example>")`},
		{"mixed-attach.eml", `("Wed, 4 Mar 2026 12:00:00 +0000" "Report attached" (("Carol" NIL "carol" "example.net")) (("Carol" NIL "carol" "example.net")) (("Carol" NIL "carol" "example.net")) (("Dave" NIL "dave" "example.com")("Erin" NIL "erin" "example.com")) ((NIL NIL "team" "example.com")) NIL "<question-7@example.com>" "<report-1@example.net>")`},
		{"missing-boundary.eml", `(NIL "no final boundary" ((NIL NIL "broken" "example.com")) ((NIL NIL "broken" "example.com")) ((NIL NIL "broken" "example.com")) NIL NIL NIL NIL NIL)`},
	} {
		m := parseFile(t, tc.file)
		if got := string(AppendEnvelope(nil, m.Root.Envelope())); got != tc.want {
			t.Errorf("%s ENVELOPE\n got %s\nwant %s", tc.file, got, tc.want)
		}
	}
	for _, tc := range []struct{ msg, want string }{
		{"", `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`},
		// Addresses without mailbox or domain, a display name alone (as Dovecot).
		{"From: John Doe\r\nTo: bare, <>, @b\r\n\r\n",
			`(NIL NIL (("John Doe" NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) (("John Doe" NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) (("John Doe" NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) ((NIL NIL "bare" "MISSING_DOMAIN")(NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")(NIL NIL "MISSING_MAILBOX" "b")) NIL NIL NIL NIL)`},
		// 8-bit values go as literals; folding is undone; an empty Sender means From.
		{"Subject: caf\xe9\r\n\tau lait\r\nFrom: J\xc3\xb6rg <j@x>\r\nSender:\r\n\r\n",
			"(NIL {12}\r\ncaf\xe9\tau lait (({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x\")) (({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x\")) (({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x\")) NIL NIL NIL NIL NIL)"},
	} {
		m := parseMessage(t, []byte(tc.msg))
		if got := string(AppendEnvelope(nil, m.Root.Envelope())); got != tc.want {
			t.Errorf("%q ENVELOPE\n got %q\nwant %q", tc.msg, got, tc.want)
		}
	}
}

// checkSyntax verifies that b is a parenthesized list of IMAP atoms, numbers, NIL, quoted
// strings and literals with the right lengths, balanced.
func checkSyntax(b []byte) error {
	depth := 0
	var last byte // the previous token: '(', ')', ' ' or 'v' for a value
	for i := 0; i < len(b); {
		c := b[i]
		prev := last
		last = tokenKind(c)
		switch {
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			if depth < 0 {
				return fmt.Errorf("unbalanced ) at %d", i)
			}
			i++
			if depth == 0 && i != len(b) {
				return fmt.Errorf("data after the end at %d", i)
			}
		case c == ' ':
			if prev == 0 || prev == ' ' || prev == '(' {
				return fmt.Errorf("misplaced space at %d", i)
			}
			i++
		case c == '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				if i < len(b) && (b[i] == '\r' || b[i] == '\n' || b[i] == 0 || b[i] >= 0x80) {
					return fmt.Errorf("bad octet %q in a quoted string at %d", b[i], i)
				}
				i++
			}
			if i >= len(b) {
				return fmt.Errorf("unterminated quoted string")
			}
			i++
		case c == '{':
			end := bytes.Index(b[i:], []byte("}\r\n"))
			if end < 0 {
				return fmt.Errorf("bad literal at %d", i)
			}
			n, err := strconv.Atoi(string(b[i+1 : i+end]))
			if err != nil || i+end+3+n > len(b) {
				return fmt.Errorf("bad literal length at %d", i)
			}
			if bytes.IndexByte(b[i+end+3:i+end+3+n], 0) >= 0 {
				return fmt.Errorf("NUL in a literal at %d", i)
			}
			i += end + 3 + n
		case c >= '0' && c <= '9':
			for i < len(b) && b[i] >= '0' && b[i] <= '9' {
				i++
			}
		case bytes.HasPrefix(b[i:], []byte("NIL")):
			i += 3
		default:
			return fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	if depth != 0 {
		return fmt.Errorf("unbalanced parentheses")
	}
	return nil
}

// tokenKind returns the kind of the token that starts with c, for checkSyntax.
func tokenKind(c byte) byte {
	switch c {
	case '(', ')', ' ':
		return c
	}
	return 'v'
}

func FuzzStructure(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "mime", "testdata", "*.eml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\n\r\nFrom: \"x\\\" <\x00@\xff>\r\n\r\n--a--"))
	f.Add([]byte("To: g:;, :;, \"\r\nContent-Type: text/plain; a*0*=''%; a*1=\"\x80\"\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := mime.Parse(bytes.NewReader(msg), int64(len(msg)))
		if err != nil {
			t.Fatal(err)
		}
		for _, ext := range []bool{false, true} {
			bs := AppendBodyStructure(nil, m.Root, ext)
			if err := checkSyntax(bs); err != nil {
				t.Fatalf("BODYSTRUCTURE %q: %v", bs, err)
			}
		}
		env := AppendEnvelope(nil, m.Root.Envelope())
		if err := checkSyntax(env); err != nil {
			t.Fatalf("ENVELOPE %q: %v", env, err)
		}
	})
}

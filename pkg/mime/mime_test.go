package mime

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// open parses testdata/name.
func open(t testing.TB, name string) (*Message, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return parseBytes(t, b), b
}

func parseBytes(t testing.TB, b []byte) *Message {
	t.Helper()
	m, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// shape renders a MIME tree compactly: type/subtype size/lines [children] {message}.
func shape(p *Part) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s %d/%d", strings.ToLower(p.Type), strings.ToLower(p.Subtype), p.BodyRange.Size, p.Lines)
	if len(p.Parts) > 0 {
		b.WriteString(" [")
		for i, c := range p.Parts {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(shape(c))
		}
		b.WriteString("]")
	}
	if p.Message != nil {
		b.WriteString(" {" + shape(p.Message) + "}")
	}
	return b.String()
}

// The sizes and line counts below are those Dovecot 2.3 reports for the same files
// (BODYSTRUCTURE, and BODY[TEXT] for the roots; checked by hand with
// /usr/lib/dovecot/imap on a Maildir). Dovecot does not report lines of non-text parts.
func TestParseShapes(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"simple.eml", "text/plain 83/4"},
		{"alternative.eml", "multipart/alternative 498/16 [text/plain 98/2, text/html 83/1]"},
		{"mixed-attach.eml", "multipart/mixed 1456/28 [text/plain 31/1, application/pdf 1050/13]"},
		{"nested.eml", "multipart/mixed 580/27 [text/plain 32/0, message/rfc822 408/17 {multipart/alternative 171/9 [text/plain 23/0, text/html 30/0]}]"},
		{"encwords.eml", "text/plain 26/1"},
		{"missing-boundary.eml", "multipart/mixed 120/8 [text/plain 10/0, text/plain 40/1]"},
		{"lf.eml", "multipart/mixed 211/11 [text/plain 18/1, text/plain 15/0]"},
		{"digest.eml", "multipart/digest 106/11 [message/rfc822 42/3 {text/plain 5/0}, text/plain 13/0]"},
		{"groups.eml", "text/plain 6/1"},
	} {
		m, _ := open(t, tc.file)
		if got := shape(m.Root); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.file, got, tc.want)
		}
	}
}

func TestParseFields(t *testing.T) {
	m, _ := open(t, "mixed-attach.eml")
	att := m.Root.Parts[1]
	if att.Param("name") != "Quartalsübersicht.pdf" {
		t.Errorf("RFC 2231 name = %q", att.Param("name"))
	}
	if att.Disposition != "attachment" || paramValue(att.DispositionParams, "filename") != "Quartalsübersicht.pdf" ||
		paramValue(att.DispositionParams, "size") != "768" {
		t.Errorf("disposition %q %+v", att.Disposition, att.DispositionParams)
	}
	if att.Encoding != "base64" || att.ID != "<part2.report@example.net>" || att.Description != "The report" ||
		!reflect.DeepEqual(att.Language, []string{"de"}) {
		t.Errorf("fields %+v", att)
	}
	if m.Root.Param("boundary") != "frontier" || m.Root.Charset() != "us-ascii" {
		t.Errorf("root params %+v", m.Root.Params)
	}
	if v, ok := m.Root.Header.Get("subject"); !ok || v != "Report attached" {
		t.Errorf("Get(subject) = %q %v", v, ok)
	}
	if _, ok := m.Root.Header.Get("X-None"); ok {
		t.Error("Get of an absent field succeeded")
	}

	m, _ = open(t, "encwords.eml")
	// Folded fields are unfolded: the CRLF goes, the white space stays.
	if v, _ := m.Root.Header.Get("Subject"); v != "=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=" {
		t.Errorf("unfolded subject %q", v)
	}

	// Of repeated Content-* fields the first counts.
	m = parseBytes(t, []byte("Content-Type: text/html\r\nContent-ID: <a>\r\nContent-Type: image/png\r\n"+
		"content-transfer-encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\nContent-ID: <b>\r\n\r\nx\r\n"))
	if p := m.Root; p.Type != "text" || p.Subtype != "html" || p.Encoding != "base64" || p.ID != "<a>" {
		t.Errorf("repeated Content-* fields: %s/%s %q %q", p.Type, p.Subtype, p.Encoding, p.ID)
	}
}

func TestParams(t *testing.T) {
	for _, tc := range []struct {
		in   string
		typ  string
		want []Param
	}{
		{`text/plain; charset="us-ascii"`, "text/plain", []Param{{"charset", "us-ascii"}}},
		{`TEXT/PLAIN ; CHARSET=US-ASCII (Plain text)`, "TEXT/PLAIN", []Param{{"CHARSET", "US-ASCII"}}},
		{`multipart/mixed; boundary=----=_NextPart_000_0001_01D0`, "multipart/mixed", []Param{{"boundary", "----=_NextPart_000_0001_01D0"}}},
		{`application/x-stuff; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A`, "application/x-stuff", []Param{{"title", "This is ***fun***"}}},
		// RFC 2231 §3 continuations, out of order, mixed encoded and plain.
		{`message/external-body; access-type=URL; URL*1="cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar"; URL*0="ftp://"`,
			"message/external-body", []Param{{"access-type", "URL"}, {"URL", "ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar"}}},
		{`application/octet-stream; name*0*=iso-8859-1''caf%E9; name*1=".txt"`, "application/octet-stream", []Param{{"name", "café.txt"}}},
		// Encoded-words in file names, as Outlook writes them.
		{`application/pdf; name="=?utf-8?q?R=C3=A9sum=C3=A9?=.pdf"`, "application/pdf", []Param{{"name", "Résumé.pdf"}}},
		{`text/plain; charset=utf-8 format=flowed`, "text/plain", []Param{{"charset", "utf-8 format=flowed"}}},
		{`text/plain;; ;charset=utf-8;novalue;x="a;b"`, "text/plain", []Param{{"charset", "utf-8"}, {"x", "a;b"}}},
		{`image/png; name="unterminated`, "image/png", []Param{{"name", "unterminated"}}},
	} {
		typ, sub, ps, ok := parseContentType([]byte(tc.in))
		if !ok || typ+"/"+sub != tc.typ || !reflect.DeepEqual(ps, tc.want) {
			t.Errorf("%s:\n got %s/%s %q %v\nwant %s %q", tc.in, typ, sub, ps, ok, tc.typ, tc.want)
		}
	}
	for _, bad := range []string{"", "text", "text/", "/plain", "garbage", "; charset=x"} {
		if _, _, _, ok := parseContentType([]byte(bad)); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDecodeHeader(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain ascii", "plain ascii"},
		{"=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"},
		{"=?UTF-8?B?SsO2cmc=?=", "Jörg"},
		// RFC 2047 §8 examples: white space between adjacent encoded-words goes.
		{"(=?ISO-8859-1?Q?a?=)", "(a)"},
		{"(=?ISO-8859-1?Q?a?= b)", "(a b)"},
		{"(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)"},
		{"(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)", "(ab)"},
		{"(=?ISO-8859-1?Q?a_b?=)", "(a b)"},
		{"(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)"},
		{"=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
			"If you can read this you understand the example."},
		// A character split across two words of the same charset.
		{"=?utf-8?b?w6k=?= =?utf-8?b?w6A=?=", "éà"},
		{"=?utf-8?b?w6nD?= =?utf-8?b?oA==?=", "éà"},
		{"=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Grüße aus Köln"},
		{"=?utf-8*en?q?hello?=", "hello"},
		{"=?koi8-r?b?8NLJ18XU?=", "Привет"},
		{"=?windows-1252?q?=80?=", "€"},
		// Not encoded-words: left alone.
		{"=?utf-8?x?abc?=", "=?utf-8?x?abc?="},
		{"=?utf-8?q?no end", "=?utf-8?q?no end"},
		{"a =? b ?= c", "a =? b ?= c"},
		// Inside a word, and unknown charsets (taken as UTF-8).
		{"foo=?utf-8?q?bar?=", "foobar"},
		{"=?x-unknown?q?caf=C3=A9?=", "café"},
		// Raw 8-bit: UTF-8 kept, anything else read as ISO-8859-1.
		{"caf\xc3\xa9", "café"},
		{"caf\xe9", "café"},
	} {
		if got := DecodeHeader(tc.in); got != tc.want {
			t.Errorf("DecodeHeader(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseAddressList(t *testing.T) {
	A := func(name, route, mbox, host string) Address { return Address{name, route, mbox, host, false} }
	G := func(name string) Address { return Address{Mailbox: name, Group: true} }
	for _, tc := range []struct {
		in   string
		want []Address
	}{
		{"alice@example.org", []Address{A("", "", "alice", "example.org")}},
		{`"Joe Q. Public" <john.q.public@example.com>`, []Address{A("Joe Q. Public", "", "john.q.public", "example.com")}},
		{"Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
			[]Address{A("Mary Smith", "", "mary", "x.test"), A("", "", "jdoe", "example.org"), A("Who?", "", "one", "y.test")}},
		{`<boss@nil.test>, "Giant; \"Big\" Box" <sysservices@example.net>`,
			[]Address{A("", "", "boss", "nil.test"), A(`Giant; "Big" Box`, "", "sysservices", "example.net")}},
		{"A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
			[]Address{G("A Group"), A("Ed Jones", "", "c", "a.test"), A("", "", "joe", "where.test"), A("John", "", "jdoe", "one.test"), G("")}},
		{"Undisclosed recipients:;", []Address{G("Undisclosed recipients"), G("")}},
		{"undisclosed-recipients:", []Address{G("undisclosed-recipients"), G("")}},
		{"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", []Address{A("Pete", "", "pete", "silly.test")}},
		{"<@route1,@route2:someone@example.com>", []Address{A("", "@route1,@route2", "someone", "example.com")}},
		{"john@example.com (John Doe)", []Address{A("John Doe", "", "john", "example.com")}},
		{"=?utf-8?q?J=C3=B6rg?= <j@x>", []Address{A("=?utf-8?q?J=C3=B6rg?=", "", "j", "x")}},
		{`"john doe"@example.com`, []Address{A("", "", `"john doe"`, "example.com")}},
		{"user@[192.0.2.1]", []Address{A("", "", "user", "[192.0.2.1]")}},
		{"bare", []Address{A("", "", "bare", "")}},
		{"John Doe", []Address{A("John Doe", "", "", "")}},
		{"Name <missing@bracket", []Address{A("Name", "", "missing", "bracket")}},
		{"a@b, , ,c@d,", []Address{A("", "", "a", "b"), A("", "", "c", "d")}},
		{"<>", []Address{A("", "", "", "")}},
		{"", nil},
		{">>;;::", nil},
	} {
		if got := ParseAddressList(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseAddressList(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

func TestEnvelope(t *testing.T) {
	m, _ := open(t, "groups.eml")
	e := m.Root.Envelope()
	if e.Subject == nil || *e.Subject != "" {
		t.Errorf("empty Subject: %v", e.Subject)
	}
	if e.InReplyTo != nil || e.Date == nil || *e.Date != "Thu, 13 Feb 1969 23:32:54 -0330" {
		t.Errorf("In-Reply-To %v Date %v", e.InReplyTo, e.Date)
	}
	if len(e.Sender) != 1 || e.Sender[0].Route != "@route1,@route2" || len(e.Bcc) != 7 {
		t.Errorf("Sender %+v Bcc %+v", e.Sender, e.Bcc)
	}
	m, _ = open(t, "simple.eml")
	e = m.Root.Envelope()
	if !reflect.DeepEqual(e.Sender, e.From) || !reflect.DeepEqual(e.ReplyTo, e.From) || len(e.From) != 1 {
		t.Errorf("Sender/Reply-To do not default to From: %+v", e)
	}
	if *e.MessageID != "<20260302095958.1234@example.org>" || e.Cc != nil {
		t.Errorf("Message-ID %q Cc %v", *e.MessageID, e.Cc)
	}
	// Repeated address fields add up; other repeated fields: the first counts.
	m = parseBytes(t, []byte("Cc: a@x\r\nCC: b@x, c@x\r\ncc:\r\nSubject: one\r\nSubject: two\r\n\r\n"))
	e = m.Root.Envelope()
	if len(e.Cc) != 3 || e.Cc[2].Mailbox != "c" || *e.Subject != "one" {
		t.Errorf("repeated fields: Cc %+v Subject %q", e.Cc, *e.Subject)
	}
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func section(t *testing.T, m *Message, s Section) string {
	t.Helper()
	r, err := m.Section(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	got := readAll(t, r)
	if int64(len(got)) != r.Size() {
		t.Errorf("%s: read %d octets, Size %d", s, len(got), r.Size())
	}
	return got
}

func TestSections(t *testing.T) {
	m, raw := open(t, "nested.eml")
	text := string(raw)
	inner := text[strings.Index(text, "From: Heidi"):strings.Index(text, "\r\n--outer--")]
	innerBody := inner[strings.Index(inner, "\r\n\r\n")+4:]
	for _, tc := range []struct {
		s    Section
		want string
	}{
		{Section{}, text},
		{Section{Specifier: "HEADER"}, text[:strings.Index(text, "\r\n\r\n")+4]},
		{Section{Specifier: "TEXT"}, text[strings.Index(text, "\r\n\r\n")+4:]},
		{Section{Path: []int{1}}, "See the forwarded message below."},
		{Section{Path: []int{1}, Specifier: "MIME"}, "Content-Type: text/plain; charset=us-ascii\r\n\r\n"},
		{Section{Path: []int{2}}, inner},
		{Section{Path: []int{2}, Specifier: "MIME"}, "Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"},
		{Section{Path: []int{2}, Specifier: "HEADER"}, inner[:strings.Index(inner, "\r\n\r\n")+4]},
		{Section{Path: []int{2}, Specifier: "TEXT"}, innerBody},
		{Section{Path: []int{2, 1}}, "Notes: budget approved."},
		{Section{Path: []int{2, 2}}, "<p>Notes: budget approved.</p>"},
		{Section{Path: []int{2, 2}, Specifier: "MIME"}, "Content-Type: text/html; charset=utf-8\r\n\r\n"},
		// N.1 of a part that is neither multipart nor message is the part (as Dovecot).
		{Section{Path: []int{2, 2, 1}}, "<p>Notes: budget approved.</p>"},
		{Section{Path: []int{1, 1}, Specifier: "MIME"}, "Content-Type: text/plain; charset=us-ascii\r\n\r\n"},
		{Section{Specifier: "HEADER.FIELDS", Fields: []string{"SUBJECT", "from", "X-Absent"}},
			"From: Frank <frank@example.com>\r\nSubject: Fwd: Meeting notes\r\n\r\n"},
		{Section{Path: []int{2}, Specifier: "HEADER.FIELDS.NOT", Fields: []string{"From", "To", "Date", "Message-ID", "MIME-Version"}},
			"Subject: Meeting notes\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"},
	} {
		if got := section(t, m, tc.s); got != tc.want {
			t.Errorf("BODY[%s]\n got %q\nwant %q", tc.s, got, tc.want)
		}
	}
	for _, bad := range []Section{
		{Path: []int{3}}, {Path: []int{1, 2}}, {Path: []int{1}, Specifier: "HEADER"}, {Specifier: "MIME"},
		{Path: []int{2, 3}}, {Path: []int{0}}, {Specifier: "BOGUS"},
	} {
		if _, err := m.Section(bad); !errors.Is(err, ErrNoSection) {
			t.Errorf("BODY[%s]: err %v, want ErrNoSection", bad, err)
		}
	}

	// Lines of a header that are not fields go with HEADER.FIELDS.NOT only.
	m = parseBytes(t, []byte("Subject: x\nnot a field\n\tcontinued\nTo: y\n\nbody"))
	if got := section(t, m, Section{Specifier: "HEADER.FIELDS.NOT", Fields: []string{"to"}}); got != "Subject: x\r\nnot a field\r\n\tcontinued\r\n\r\n" {
		t.Errorf("HEADER.FIELDS.NOT = %q", got)
	}
	if got := section(t, m, Section{Specifier: "HEADER.FIELDS", Fields: []string{"to", "subject"}}); got != "Subject: x\r\nTo: y\r\n\r\n" {
		t.Errorf("HEADER.FIELDS = %q", got)
	}

	// A message that is not multipart: its body is part 1, and 1.MIME its header.
	m, raw = open(t, "simple.eml")
	text = string(raw)
	if got := section(t, m, Section{Path: []int{1}}); got != text[strings.Index(text, "\r\n\r\n")+4:] {
		t.Errorf("BODY[1] of a single part message: %q", got)
	}
	if got := section(t, m, Section{Path: []int{1}, Specifier: "MIME"}); got != text[:strings.Index(text, "\r\n\r\n")+4] {
		t.Errorf("BODY[1.MIME] of a single part message: %q", got)
	}
	if got := (Section{Path: []int{1, 2}, Specifier: "HEADER.FIELDS", Fields: []string{"From", "X y"}}).String(); got != `1.2.HEADER.FIELDS (From "X y")` {
		t.Errorf("Section.String() = %s", got)
	}
}

// A file with bare LF line endings reads as CRLF, with the sizes of BODYSTRUCTURE.
func TestSectionsLF(t *testing.T) {
	m, raw := open(t, "lf.eml")
	crlf := strings.ReplaceAll(string(raw), "\n", "\r\n")
	if m.Size != int64(len(crlf)) {
		t.Errorf("Size %d, want %d", m.Size, len(crlf))
	}
	if got := section(t, m, Section{}); got != crlf {
		t.Errorf("BODY[] = %q", got)
	}
	if got := section(t, m, Section{Path: []int{1}}); got != "line one\r\nline two" {
		t.Errorf("BODY[1] = %q", got)
	}
	for _, p := range []*Part{m.Root, m.Root.Parts[0], m.Root.Parts[1]} {
		if p.BodyRange.Size != p.BodyRange.Len+p.Lines-countInRange(raw, p.BodyRange, "\r\n") {
			t.Errorf("range %+v lines %d", p.BodyRange, p.Lines)
		}
	}
	// Partial reads at every offset agree with the whole.
	r, _ := m.Section(Section{Specifier: "TEXT"})
	whole := readAll(t, io.NewSectionReader(r, 0, r.Size()))
	for off := int64(0); off <= r.Size()+2; off += 7 {
		got := readAll(t, Partial(r, off, 10))
		want := whole[min(off, int64(len(whole))):min(off+10, int64(len(whole)))]
		if got != want {
			t.Fatalf("<%d.10> = %q, want %q", off, got, want)
		}
	}
}

func countInRange(b []byte, rg Range, s string) int64 {
	return int64(bytes.Count(b[rg.Offset:rg.Offset+rg.Len], []byte(s)))
}

func TestBinary(t *testing.T) {
	m, _ := open(t, "mixed-attach.eml")
	r, err := m.Binary([]int{2})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat(string(func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}()), 3)
	if got := readAll(t, r); got != want {
		t.Errorf("BINARY[2]: %d octets, want the %d of the attachment", len(got), len(want))
	}
	if n, err := m.BinarySize([]int{2}); err != nil || n != 768 {
		t.Errorf("BINARY.SIZE[2] = %d, %v", n, err)
	}
	m, _ = open(t, "alternative.eml")
	r, _ = m.Binary([]int{1})
	if got := readAll(t, r); got != "Save 20% on cr\xe8me br\xfbl\xe9e this week. This line is long enough to need a soft line break.\r\n" {
		t.Errorf("BINARY[1] (quoted-printable) = %q", got)
	}
	// The whole message: every part decoded, its header saying so (as Dovecot).
	r, _ = m.Binary(nil)
	whole := readAll(t, r)
	if strings.Count(whole, "Content-Transfer-Encoding: binary\r\n") != 2 || strings.Contains(whole, "quoted-printable") ||
		!strings.Contains(whole, "\r\n\r\nSave 20% on cr\xe8me br\xfbl\xe9e this week. This line is long enough to need a soft line break.\r\n\r\n------=_Part_0_1234.5678\r\n") ||
		!strings.HasSuffix(whole, "</p></body></html>\r\n\r\n------=_Part_0_1234.5678--\r\n") {
		t.Errorf("BINARY[] = %q", whole)
	}
	if n, err := m.BinarySize(nil); err != nil || n != int64(len(whole)) {
		t.Errorf("BINARY.SIZE[] = %d, %v; want %d", n, err, len(whole))
	}
	bad := parseBytes(t, []byte("Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n"))
	if _, err := bad.Binary([]int{1}); !errors.Is(err, ErrUnknownEncoding) {
		t.Errorf("unknown CTE: %v", err)
	}
	if _, err := bad.Binary(nil); !errors.Is(err, ErrUnknownEncoding) {
		t.Errorf("unknown CTE, whole message: %v", err)
	}
}

func TestDecoders(t *testing.T) {
	for _, tc := range []struct{ enc, in, want string }{
		{"base64", "aGVsbG8g\r\nd29ybGQ=\r\n", "hello world"},
		{"BASE64", "aGVs bG8=aGk=", "hellohi"},
		{"base64", "aGVsbG8", "hello"},
		{"base64", "!!aGVs\x00bG8=", "hello"},
		{"quoted-printable", "a=3Db=\r\nc  \r\nd=3d\r\n", "a=bc\r\nd=\r\n"},
		{"quoted-printable", "soft=  \r\nbreak and =ZZ bad and = end=", "softbreak and =ZZ bad and = end="},
		{"quoted-printable", "x=4", "x=4"},
		{"quoted-printable", "lf=\nonly\n", "lfonly\n"},
		{"7bit", "as is=3D", "as is=3D"},
		{"", "as is", "as is"},
	} {
		d, err := NewDecoder(strings.NewReader(tc.in), tc.enc)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, iotestOneByte(d)); got != tc.want {
			t.Errorf("%s %q = %q, want %q", tc.enc, tc.in, got, tc.want)
		}
	}
	if _, err := NewDecoder(strings.NewReader(""), "x-gzip"); !errors.Is(err, ErrUnknownEncoding) {
		t.Errorf("x-gzip: %v", err)
	}
}

// iotestOneByte reads one octet at a time, to exercise the decoders' state across reads.
func iotestOneByte(r io.Reader) io.Reader { return oneByte{r} }

type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestContains(t *testing.T) {
	for _, tc := range []struct {
		file, needle string
		body, text   bool // expected for SEARCH BODY and SEARCH TEXT
	}{
		{"simple.eml", "lunch", true, true},
		{"simple.eml", "LUNCH ON FRIDAY?", false, true}, // only in Subject
		{"simple.eml", "café du MARCHÉ", true, true},
		{"simple.eml", "GRÜSSE", false, false},
		{"simple.eml", "grüße", true, true},
		{"simple.eml", "GRÜẞE", true, true}, // capital sharp s folds to ß
		{"simple.eml", "bob@example", false, true},
		{"simple.eml", "SUBJECT: lunch on", false, true}, // header fields as "name: value"
		{"alternative.eml", "crème brûlée", true, true},  // quoted-printable ISO-8859-1
		{"alternative.eml", "need a soft line", true, true},
		{"alternative.eml", "<b>CRÈME", true, true},
		{"alternative.eml", "multi-part message", false, false}, // the preamble is not text
		{"alternative.eml", "Part_0", false, true},              // MIME headers are in TEXT only
		{"mixed-attach.eml", "quarterly REPORT", true, true},
		{"mixed-attach.eml", "Quartalsübersicht", false, true}, // RFC 2231 file name, in TEXT
		{"nested.eml", "budget approved", true, true},
		{"nested.eml", "heidi@example", false, true}, // the forwarded message's header: TEXT only, as Dovecot
		{"encwords.eml", "naïve café = fine", true, true},
		{"encwords.eml", "understand the example", false, true},
		{"encwords.eml", "grüße aus köln", false, true},
		{"encwords.eml", "éà", false, true},
		{"lf.eml", "attachment text", true, true},
		{"missing-boundary.eml", "just ends", true, true},
		{"simple.eml", "", true, true},
		{"simple.eml", "no such words", false, false},
	} {
		m, _ := open(t, tc.file)
		mt := NewMatcher(tc.needle)
		for _, text := range []bool{false, true} {
			want := tc.body
			if text {
				want = tc.text
			}
			got, err := m.Contains(mt, text)
			if err != nil || got != want {
				t.Errorf("%s: Contains(%q, text=%v) = %v, %v; want %v", tc.file, tc.needle, text, got, err, want)
			}
			tx, err := m.ExtractText(0)
			if err != nil {
				t.Fatal(err)
			}
			if got := tx.Contains(mt, text); got != want {
				t.Errorf("%s: ExtractText().Contains(%q, text=%v) = %v; want %v", tc.file, tc.needle, text, got, want)
			}
		}
	}
}

// What BODY and TEXT search, part by part, as Dovecot 2.3 answers on the same message.
func TestContainsScope(t *testing.T) {
	m := parseBytes(t, []byte("Subject: a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"+
		"Content-Type: application/octet-stream\r\n\r\nsecretword one\r\n--b\r\n"+
		"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\nc2VjcmV0d29yZCB0d28=\r\n--b\r\n"+
		"Content-Type: message/rfc822\r\n\r\nSubject: innersubject\r\nX-Foo: innerheader\r\n\r\ninnerbody\r\n--b\r\n"+
		"Content-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--\r\n"))
	for _, tc := range []struct {
		needle     string
		body, text bool
	}{
		{"secretword one", false, false}, {"secretword two", false, false}, {"c2VjcmV0", false, false},
		{"innersubject", false, true}, {"innerheader", false, true}, {"innerbody", true, true},
		{"octet-stream", false, true}, {"Status: 5.1.1", true, true},
	} {
		for _, text := range []bool{false, true} {
			want := tc.body
			if text {
				want = tc.text
			}
			if got, err := m.Contains(NewMatcher(tc.needle), text); got != want || err != nil {
				t.Errorf("Contains(%q, text=%v) = %v, %v", tc.needle, text, got, err)
			}
			tx, _ := m.ExtractText(0)
			if got := tx.Contains(NewMatcher(tc.needle), text); got != want {
				t.Errorf("ExtractText().Contains(%q, text=%v) = %v", tc.needle, text, got)
			}
		}
	}
}

// A multipart whose boundary never comes still has its text searched.
func TestContainsWrongBoundary(t *testing.T) {
	m := parseBytes(t, []byte("Content-Type: multipart/mixed; boundary=nothere\r\n\r\n--other\r\n\r\nhidden words\r\n--other--\r\n"))
	if ok, err := m.Contains(NewMatcher("HIDDEN words"), false); !ok || err != nil {
		t.Errorf("Contains = %v, %v", ok, err)
	}
}

func TestHeaderContains(t *testing.T) {
	m, _ := open(t, "encwords.eml")
	for _, tc := range []struct {
		field, needle string
		want          bool
	}{
		{"From", "andré", true},
		{"from", "PIRARD@VM1", true},
		{"To", "jörg", true},
		{"To", "keld jørn", true},
		{"Subject", "read this you", true},
		{"Subject", "Jörg", false},
		{"Cc", "", false},
		{"Subject", "", true},
		{"X-Subject-UTF8", "KÖLN", true},
	} {
		if got := m.HeaderContains(tc.field, NewMatcher(tc.needle)); got != tc.want {
			t.Errorf("HeaderContains(%s, %q) = %v", tc.field, tc.needle, got)
		}
	}
}

// An address field is searched in its addresses too, as ENVELOPE has them: comments
// and folding inside an address do not hide it from SEARCH FROM user@domain (imaptest's
// search-addresses group), and a comment after an address is its name.
func TestHeaderContainsAddress(t *testing.T) {
	m := parseBytes(t, []byte("From: <user-from (comment)@ (comment) domain.org>\r\n"+
		"To: user-to@domain.org (RealTo), =?utf-8?q?J=C3=B6rg?= <joerg@\r\n domain.org>\r\n"+
		"Cc: group: a@b.example, c@d.example;\r\nSubject: <x@y.example>\r\n\r\nbody\r\n"))
	for _, tc := range []struct {
		field, needle string
		want          bool
	}{
		{"From", "user-from@domain.org", true},
		{"From", "comment", true},
		{"To", "realto <user-to@domain.org>", true},
		{"To", "jörg <joerg@domain.org>", true},
		{"Cc", "c@d.example", true},
		{"Cc", "a@b.example, c@d", true}, // the raw value
		{"From", "user-to@domain.org", false},
		{"Subject", "x@y.example", true},
	} {
		if got := m.HeaderContains(tc.field, NewMatcher(tc.needle)); got != tc.want {
			t.Errorf("HeaderContains(%s, %q) = %v", tc.field, tc.needle, got)
		}
	}
}

func TestMatcher(t *testing.T) {
	for _, tc := range []struct {
		hay, needle string
		want        bool
	}{
		{"Hello World", "WORLD", true},
		{"Hello World", "o w", true},
		{"Hello World", "worlds", false},
		{"Hello World", "Hello World!", false},
		{"aaaaaaaaab", "AAB", true},
		{"zzzqzzzQZ", "qz", true},
		{"x", "", true},
		{"", "x", false},
		{"ΣΊΣΥΦΟΣ", "σίσυφος", true},
		{"Straße", "STRASSE", false},
		{"Straße", "STRAẞE", true},
		{"1234-5678", "4-5", true},
	} {
		m := NewMatcher(tc.needle)
		if got := m.Match([]byte(tc.hay)); got != tc.want {
			t.Errorf("Match(%q in %q) = %v", tc.needle, tc.hay, got)
		}
		if got := m.MatchFolded(Fold(nil, []byte(tc.hay))); got != tc.want {
			t.Errorf("MatchFolded(%q in %q) = %v", tc.needle, tc.hay, got)
		}
	}
}

// A match across the chunks of a large body is found.
func TestContainsAcrossChunks(t *testing.T) {
	for _, enc := range []string{"7bit", "quoted-printable", "base64"} {
		body := strings.Repeat("filler text line\r\n", 5000)
		needle := "Needle Across The Chunk Boundary"
		at := bufSize - 10
		body = body[:at] + needle + body[at:]
		switch enc {
		case "base64":
			var b bytes.Buffer
			w := b64Encode(&b)
			w.Write([]byte(body))
			w.Close()
			body = b.String()
		}
		msg := "Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: " + enc + "\r\n\r\n" + body
		m := parseBytes(t, []byte(msg))
		if ok, err := m.Contains(NewMatcher("needle across the chunk"), false); !ok || err != nil {
			t.Errorf("%s: not found across chunks (%v)", enc, err)
		}
		tx, _ := m.ExtractText(0)
		if !tx.Contains(NewMatcher("needle across the chunk"), false) {
			t.Errorf("%s: ExtractText lost the needle", enc)
		}
		tx, _ = m.ExtractText(1000)
		if !tx.Truncated || len(tx.Header)+len(tx.Body) > 1000 {
			t.Errorf("%s: limit not applied: %d+%d truncated=%v", enc, len(tx.Header), len(tx.Body), tx.Truncated)
		}
	}
}

// Hostile structures stay bounded.
func TestParseLimits(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("\r\nleaf\r\n")
	m := parseBytes(t, []byte(b.String()))
	depth := 0
	for p := m.Root; len(p.Parts) > 0; p = p.Parts[0] {
		depth++
	}
	if depth != MaxDepth {
		t.Errorf("depth %d, want %d", depth, MaxDepth)
	}

	b.Reset()
	b.WriteString("Content-Type: message/rfc822\r\n\r\n")
	for i := 0; i < 1000; i++ {
		b.WriteString("Content-Type: message/rfc822\r\n\r\n")
	}
	m = parseBytes(t, []byte(b.String()))
	depth = 0
	for p := m.Root; p.Message != nil; p = p.Message {
		depth++
	}
	if depth != MaxDepth {
		t.Errorf("message depth %d, want %d", depth, MaxDepth)
	}

	b.Reset()
	b.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n")
	for i := 0; i < MaxParts+50; i++ {
		b.WriteString("--x\r\n\r\np\r\n")
	}
	m = parseBytes(t, []byte(b.String()))
	if n := len(m.Root.Parts); n != MaxParts-1 {
		t.Errorf("%d parts, want %d", n, MaxParts-1)
	}

	// One line longer than the read buffer, in a header and in a body, with a boundary
	// right after.
	long := strings.Repeat("x", 3*bufSize+5)
	msg := "X-Long: " + long + "\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\n" + long + "\r\n--q\r\n\r\nend\r\n--q--\r\n"
	m = parseBytes(t, []byte(msg))
	if got := shape(m.Root); got != fmt.Sprintf("multipart/mixed %d/7 [text/plain %d/0, text/plain 3/0]", len(msg)-len(msg[:strings.Index(msg, "\r\n\r\n")+4]), len(long)) {
		t.Errorf("long lines: %s", got)
	}
	if v, _ := m.Root.Header.Get("x-long"); v != long {
		t.Errorf("long header value of %d octets", len(v))
	}
}

// A file shorter than the size given is read up to its end, and the sizes stay within it.
func TestParseShortFile(t *testing.T) {
	b := []byte("Subject: x\r\n\r\nbody\r\n")
	m, err := Parse(bytes.NewReader(b), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != int64(len(b)) || m.Root.BodyRange.Len != 6 {
		t.Errorf("Size %d body %+v", m.Size, m.Root.BodyRange)
	}
}

func TestIncompleteRune(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{{"abc", 0}, {"ab\xc3", 1}, {"ab\xc3\xa9", 0}, {"\xe2\x82", 2}, {"\xe2\x82\xac", 0}, {"\xf0\x9f\x98", 3}} {
		if got := incompleteRune([]byte(tc.in)); got != tc.want {
			t.Errorf("incompleteRune(%q) = %d", tc.in, got)
		}
	}
	if !utf8.ValidString(DecodeHeader("=?utf-8?b?/w==?= \xff")) {
		t.Error("DecodeHeader returned invalid UTF-8")
	}
}

func b64Encode(w io.Writer) io.WriteCloser { return base64.NewEncoder(base64.StdEncoding, w) }

package test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// multipartMsg is a message with an alternative text/HTML part and a base64 attachment.
var multipartAttachment = bytes.Repeat([]byte("%PDF-1.4 binary \x00\x01\x02\xff attachment "), 20)

var multipartMsg = "From: \"Alice Example\" <alice@other.test>\r\n" +
	"Sender: list@other.test\r\n" +
	"Reply-To: replies@other.test\r\n" +
	"To: Demo User <demo@example.test>, bob@example.test\r\n" +
	"Cc: carol@other.test\r\n" +
	"Subject: =?UTF-8?Q?Caf=C3=A9_report?=\r\n" +
	"Date: Tue, 03 Jan 2006 10:00:00 +0100\r\n" +
	"Message-ID: <multi-1@other.test>\r\n" +
	"In-Reply-To: <earlier@other.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"\r\n" +
	"This is a multi-part message in MIME format.\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"Plain text with a café.\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"<p>HTML with a caf=C3=A9.</p>\r\n" +
	"--inner--\r\n" +
	"--outer\r\n" +
	"Content-Type: application/pdf; name=\"report.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"report.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	wrap76(base64.StdEncoding.EncodeToString(multipartAttachment)) +
	"--outer--\r\n"

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return b.String() + s + "\r\n"
}

// selectBox selects a mailbox and fails the test if it cannot.
func selectBox(t *testing.T, c *imapclient.Client, name string, opts *imap.SelectOptions) *imap.SelectData {
	t.Helper()
	data, err := c.Select(name, opts).Wait()
	if err != nil {
		t.Fatalf("SELECT %s: %v", name, err)
	}
	return data
}

func fetchOne(t *testing.T, c *imapclient.Client, set imap.NumSet, opts *imap.FetchOptions) *imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(set, opts).Collect()
	if err != nil {
		t.Fatalf("FETCH %v: %v", set, err)
	}
	if len(msgs) != 1 {
		t.Fatalf("FETCH %v: %d messages, want 1", set, len(msgs))
	}
	return msgs[0]
}

// flagsOf fetches the flags of one message, without \Recent (which IMAP4rev1 servers may
// report, RFC 3501 §2.3.2, and which no client can set).
func flagsOf(t *testing.T, c *imapclient.Client, set imap.NumSet) []imap.Flag {
	t.Helper()
	return noRecent(fetchOne(t, c, set, &imap.FetchOptions{Flags: true}).Flags)
}

func noRecent(flags []imap.Flag) []imap.Flag {
	return slices.DeleteFunc(slices.Clone(flags), func(f imap.Flag) bool { return strings.EqualFold(string(f), `\Recent`) })
}

// flagString is flags without \Recent, sorted and joined by spaces: a form to compare.
func flagString(flags []imap.Flag) string {
	var f []string
	for _, x := range noRecent(flags) {
		f = append(f, string(x))
	}
	slices.Sort(f)
	return strings.Join(f, " ")
}

// statusOf asks STATUS from a new session, since STATUS of the mailbox a session has
// selected may be stale (RFC 9051 §6.3.11).
func (tg *imapTarget) statusOf(t *testing.T, mailbox string, opts *imap.StatusOptions) *imap.StatusData {
	t.Helper()
	c := tg.login(t)
	defer func() { c.Logout().Wait() }()
	st, err := c.Status(mailbox, opts).Wait()
	if err != nil {
		t.Fatalf("STATUS %s: %v", mailbox, err)
	}
	return st
}

// countOf returns STATUS MESSAGES of a mailbox, from a new session.
func (tg *imapTarget) countOf(t *testing.T, mailbox string) uint32 {
	t.Helper()
	st := tg.statusOf(t, mailbox, &imap.StatusOptions{NumMessages: true})
	if st.NumMessages == nil {
		t.Fatalf("STATUS %s (MESSAGES) has no MESSAGES", mailbox)
	}
	return *st.NumMessages
}

// expunged applies untagged EXPUNGE responses to the sequence 1..n and returns the
// original numbers of the removed messages (RFC 9051 §7.5.1: each renumbers the rest).
func expunged(t *testing.T, n int, lines []string) []int {
	t.Helper()
	seq := make([]int, n)
	for i := range seq {
		seq[i] = i + 1
	}
	var out []int
	for _, l := range lines {
		var k int
		if _, err := fmt.Sscanf(l, "* %d EXPUNGE", &k); err != nil {
			continue
		}
		if k < 1 || k > len(seq) {
			t.Errorf("%q: no message %d among %d", l, k, len(seq))
			continue
		}
		out = append(out, seq[k-1])
		seq = slices.Delete(seq, k-1, k)
	}
	slices.Sort(out)
	return out
}

// TestIMAPAppendSelectExamine covers APPEND with flags and date, APPENDUID (RFC 4315),
// LITERAL+ (RFC 7888), SELECT and EXAMINE (RFC 9051 §6.3.2, §6.3.3).
func TestIMAPAppendSelectExamine(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	date := time.Date(2020, 5, 17, 8, 30, 0, 0, time.FixedZone("", -7*3600))
	msg := testMessage("Appended", "8-bit body: naïve café\r\nsecond line\r\n")
	uid1 := appendMsg(t, c, "INBOX", msg, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagFlagged, "$Label1"}, Time: date})
	uid2 := appendMsg(t, c, "INBOX", testMessage("Second", "two\r\n"), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
	uid3 := appendMsg(t, c, "INBOX", testMessage("Third", "three\r\n"), nil)
	if uid1 == 0 || !(uid1 < uid2 && uid2 < uid3) {
		t.Errorf("APPENDUID UIDs %d %d %d, want strictly ascending", uid1, uid2, uid3)
	}
	_, err := tryAppend(c, "No such mailbox", msg, nil)
	// RFC 9051 §6.3.12: APPEND to a missing mailbox is NO with TRYCREATE.
	if imapType(err) != imap.StatusResponseTypeNo || imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("APPEND to a missing mailbox: %v, want NO [TRYCREATE]", err)
	}

	sel := selectBox(t, c, "INBOX", nil)
	if sel.NumMessages != 3 {
		t.Errorf("SELECT: EXISTS %d, want 3", sel.NumMessages)
	}
	if sel.UIDValidity == 0 || sel.UIDNext <= uid3 {
		t.Errorf("SELECT: UIDVALIDITY %d UIDNEXT %d, want a UIDVALIDITY and UIDNEXT above %d", sel.UIDValidity, sel.UIDNext, uid3)
	}
	for _, f := range []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft} {
		if !slices.Contains(sel.Flags, f) {
			t.Errorf("SELECT: FLAGS %v lacks %s", sel.Flags, f)
		}
		if !slices.Contains(sel.PermanentFlags, f) {
			t.Errorf("SELECT: PERMANENTFLAGS %v lacks %s", sel.PermanentFlags, f)
		}
	}
	if !slices.Contains(sel.PermanentFlags, imap.FlagWildcard) {
		t.Errorf("SELECT: PERMANENTFLAGS %v lacks \\*: keywords cannot be created", sel.PermanentFlags)
	}
	if !slices.Contains(sel.Flags, "$Label1") {
		t.Errorf("SELECT: FLAGS %v lacks the keyword $Label1 set by APPEND", sel.Flags)
	}

	m := fetchOne(t, c, imap.UIDSetNum(uid1), &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if !slices.Contains(m.Flags, imap.FlagFlagged) || !slices.Contains(m.Flags, "$Label1") {
		t.Errorf("flags of the appended message: %v, want \\Flagged $Label1", m.Flags)
	}
	if !m.InternalDate.Equal(date) {
		t.Errorf("INTERNALDATE %v, want the APPEND date %v", m.InternalDate, date)
	}
	if m.RFC822Size != int64(len(msg)) {
		t.Errorf("RFC822.SIZE %d, want %d", m.RFC822Size, len(msg))
	}
	if got := m.FindBodySection(&imap.FetchItemBodySection{}); string(got) != msg {
		t.Errorf("BODY[] of the appended message differs:\n got %q\nwant %q", got, msg)
	}

	// Raw: the tagged OK of SELECT says READ-WRITE; the synchronizing literal gets a
	// continuation; LITERAL+ needs none; a selected session sees its own APPEND's EXISTS.
	r := tg.rawLogin(t)
	u, st := r.Cmd("SELECT INBOX")
	if !strings.HasPrefix(st, "OK [READ-WRITE]") {
		t.Errorf("SELECT: %q, want OK [READ-WRITE]", st)
	}
	// RFC 3501 §6.3.1 (rev1): EXISTS, RECENT, FLAGS, UIDVALIDITY, UIDNEXT, PERMANENTFLAGS.
	for _, re := range []string{`^\* 3 EXISTS$`, `^\* \d+ RECENT$`, `^\* FLAGS \(`, `^\* OK \[UIDVALIDITY \d+\]`, `^\* OK \[UIDNEXT \d+\]`, `^\* OK \[PERMANENTFLAGS \(`} {
		if !hasLine(u, re) {
			t.Errorf("IMAP4rev1 SELECT lacks %s: %q", re, u)
		}
	}
	// RFC 3501 §6.3.1: UNSEEN gives the first unseen message (rev1 only): message 1.
	if !hasLine(u, `^\* OK \[UNSEEN 1\]`) {
		t.Errorf("IMAP4rev1 SELECT lacks [UNSEEN 1]: %q", u)
	}
	lit := testMessage("Literal", "sync\r\n")
	tag := r.Tag()
	r.Send(fmt.Sprintf("%s APPEND INBOX (\\Draft) {%d}\r\n", tag, len(lit)))
	if l, err := r.Response(); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND with a synchronizing literal: %q %v, want a continuation", l, err)
	}
	r.Send(lit + "\r\n")
	u, st = r.ReadTo(tag)
	if !regexp.MustCompile(`^OK \[APPENDUID \d+ \d+\]`).MatchString(st) {
		t.Errorf("APPEND: %q, want OK [APPENDUID v u]", st)
	}
	if !hasLine(u, `^\* 4 EXISTS$`) {
		t.Errorf("APPEND to the selected mailbox: %q, want * 4 EXISTS", u)
	}
	lit = testMessage("Literal plus", "nonsync\r\n")
	u, st = r.Cmd(fmt.Sprintf("APPEND INBOX (\\Seen) \"17-May-2020 08:30:00 -0700\" {%d+}\r\n%s", len(lit), lit))
	if !regexp.MustCompile(`^OK \[APPENDUID \d+ \d+\]`).MatchString(st) {
		t.Errorf("APPEND with LITERAL+: %q, want OK [APPENDUID v u]", st)
	}
	for _, l := range u {
		if strings.HasPrefix(l, "+") {
			t.Errorf("APPEND with LITERAL+ got a continuation request: %q", l)
		}
	}
	// MULTIAPPEND is not promised; an APPEND with a bad date is BAD.
	r.Expect("BAD", fmt.Sprintf("APPEND INBOX \"31-Foo-2020 99:00:00 +0000\" {%d+}\r\n%s", len(lit), lit))
	r.Alive()

	// EXAMINE is read-only (§6.3.3): no STORE, no implicit \Seen.
	ex := tg.rawLogin(t)
	_, st = ex.Cmd("EXAMINE INBOX")
	if !strings.HasPrefix(st, "OK [READ-ONLY]") {
		t.Errorf("EXAMINE: %q, want OK [READ-ONLY]", st)
	}
	// A STORE may be NO or an OK that changed nothing; either way the flags stay.
	ex.Cmd(`STORE 2 -FLAGS (\Seen)`)
	ex.OK("FETCH 3 BODY[]")
	u = ex.OK("FETCH 2:3 FLAGS")
	if hasLine(u, `^\* 3 FETCH .*\\Seen`) || !hasLine(u, `^\* 2 FETCH .*\\Seen`) {
		t.Errorf("in an EXAMINEd mailbox FETCH BODY[] set \\Seen or STORE -FLAGS cleared it: %q", u)
	}
	// EXPUNGE removes nothing from a read-only mailbox, even a message another session
	// marked \Deleted.
	if err := c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatalf("STORE 3 +FLAGS (\\Deleted): %v", err)
	}
	ex.Cmd("EXPUNGE")
	if n := tg.countOf(t, "INBOX"); n != 5 {
		t.Errorf("EXPUNGE in an EXAMINEd mailbox: %d messages left, want 5", n)
	}
	c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()

	// A failed SELECT leaves no mailbox selected (§6.3.2).
	c2 := tg.login(t)
	selectBox(t, c2, "INBOX", nil)
	if _, err := c2.Select("No such mailbox", nil).Wait(); imapType(err) != imap.StatusResponseTypeNo {
		t.Errorf("SELECT of a missing mailbox: %v, want NO", err)
	}
	r2 := tg.rawLogin(t)
	r2.OK("SELECT INBOX")
	r2.Expect("NO", `SELECT "No such mailbox"`)
	if _, st := r2.Cmd("FETCH 1 FLAGS"); strings.HasPrefix(st, "OK") {
		t.Errorf("FETCH after a failed SELECT: %q, want BAD: no mailbox is selected", st)
	}

	// UIDVALIDITY and UIDs are the same in a new session.
	c3 := tg.login(t)
	sel3 := selectBox(t, c3, "INBOX", nil)
	if sel3.UIDValidity != sel.UIDValidity {
		t.Errorf("UIDVALIDITY changed between sessions: %d then %d", sel.UIDValidity, sel3.UIDValidity)
	}
	if got := fetchOne(t, c3, imap.SeqSetNum(1), &imap.FetchOptions{UID: true}).UID; got != uid1 {
		t.Errorf("UID of message 1 in a new session: %d, want %d", got, uid1)
	}
}

// TestIMAPFetch covers the FETCH data items (RFC 9051 §6.4.5, RFC 3501 §6.4.5, BINARY of
// RFC 3516).
func TestIMAPFetch(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	date := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	uid := appendMsg(t, c, "INBOX", multipartMsg, &imap.AppendOptions{Time: date})
	simple := testMessage("Simple", "just text\r\n")
	appendMsg(t, c, "INBOX", simple, nil)
	selectBox(t, c, "INBOX", nil)

	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true,
		Envelope: true, UID: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}})
	if m.UID != uid {
		t.Errorf("UID %d, want %d", m.UID, uid)
	}
	if f := noRecent(m.Flags); len(f) != 0 {
		t.Errorf("FLAGS %v, want none", f)
	}
	if !m.InternalDate.Equal(date) {
		t.Errorf("INTERNALDATE %v, want %v", m.InternalDate, date)
	}
	if m.RFC822Size != int64(len(multipartMsg)) {
		t.Errorf("RFC822.SIZE %d, want %d", m.RFC822Size, len(multipartMsg))
	}
	env := m.Envelope
	if env == nil {
		t.Fatal("no ENVELOPE")
	}
	if env.Subject != "Café report" {
		t.Errorf("ENVELOPE subject %q, want %q", env.Subject, "Café report")
	}
	if !env.Date.Equal(time.Date(2006, 1, 3, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("ENVELOPE date %v", env.Date)
	}
	addr := func(a []imap.Address) string {
		var s []string
		for _, x := range a {
			s = append(s, x.Name+" <"+x.Addr()+">")
		}
		return strings.Join(s, ", ")
	}
	for _, c := range []struct{ what, got, want string }{
		{"from", addr(env.From), "Alice Example <alice@other.test>"},
		{"sender", addr(env.Sender), " <list@other.test>"},
		{"reply-to", addr(env.ReplyTo), " <replies@other.test>"},
		{"to", addr(env.To), "Demo User <demo@example.test>,  <bob@example.test>"},
		{"cc", addr(env.Cc), " <carol@other.test>"},
		{"bcc", addr(env.Bcc), ""},
		{"message-id", env.MessageID, "multi-1@other.test"},
		{"in-reply-to", strings.Join(env.InReplyTo, " "), "earlier@other.test"},
	} {
		if c.got != c.want {
			t.Errorf("ENVELOPE %s %q, want %q", c.what, c.got, c.want)
		}
	}
	// BODYSTRUCTURE: multipart/mixed (multipart/alternative (text/plain text/html)
	// application/pdf).
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || !strings.EqualFold(mp.Subtype, "mixed") || len(mp.Children) != 2 {
		t.Fatalf("BODYSTRUCTURE %#v, want multipart/mixed with 2 parts", m.BodyStructure)
	}
	if mp.Extended == nil || mp.Extended.Params["boundary"] != "outer" {
		t.Errorf("BODYSTRUCTURE of multipart/mixed lacks boundary=outer: %+v", mp.Extended)
	}
	alt, ok := mp.Children[0].(*imap.BodyStructureMultiPart)
	if !ok || !strings.EqualFold(alt.Subtype, "alternative") || len(alt.Children) != 2 {
		t.Fatalf("part 1 %#v, want multipart/alternative with 2 parts", mp.Children[0])
	}
	plain, _ := alt.Children[0].(*imap.BodyStructureSinglePart)
	plainBody := "Plain text with a café." // the CRLF before the boundary is not the part's (RFC 2046 §5.1.1)
	if plain == nil || plain.MediaType() != "text/plain" || !strings.EqualFold(plain.Params["charset"], "utf-8") ||
		!strings.EqualFold(plain.Encoding, "8bit") || plain.Size != uint32(len(plainBody)) || plain.Text == nil {
		t.Errorf("part 1.1 %+v, want text/plain charset=utf-8 8bit size %d", plain, len(plainBody))
	}
	html, _ := alt.Children[1].(*imap.BodyStructureSinglePart)
	if html == nil || html.MediaType() != "text/html" || !strings.EqualFold(html.Encoding, "quoted-printable") {
		t.Errorf("part 1.2 %+v, want text/html quoted-printable", html)
	}
	pdf, _ := mp.Children[1].(*imap.BodyStructureSinglePart)
	if pdf == nil || pdf.MediaType() != "application/pdf" || !strings.EqualFold(pdf.Encoding, "base64") || pdf.Filename() != "report.pdf" {
		t.Errorf("part 2 %+v, want application/pdf base64 report.pdf", pdf)
	} else if d := pdf.Disposition(); d == nil || !strings.EqualFold(d.Value, "attachment") {
		t.Errorf("part 2 disposition %+v, want attachment", d)
	}
	// BODY (the non-extensible form) of a single-part message.
	m2 := fetchOne(t, c, imap.SeqSetNum(2), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{}})
	if sp, ok := m2.BodyStructure.(*imap.BodyStructureSinglePart); !ok || sp.MediaType() != "text/plain" || sp.Size != uint32(len("just text\r\n")) ||
		sp.Text == nil || sp.Text.NumLines != 1 {
		t.Errorf("BODY of the simple message %#v, want text/plain of %d bytes, 1 line", m2.BodyStructure, len("just text\r\n"))
	}

	// Sections.
	hdrEnd := strings.Index(multipartMsg, "\r\n\r\n") + 4
	sections := []struct {
		item *imap.FetchItemBodySection
		want string
	}{
		{&imap.FetchItemBodySection{Peek: true}, multipartMsg},
		{&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}, multipartMsg[:hdrEnd]},
		{&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true}, multipartMsg[hdrEnd:]},
		{&imap.FetchItemBodySection{Part: []int{1, 1}, Peek: true}, "Plain text with a café."},
		{&imap.FetchItemBodySection{Part: []int{1, 2}, Peek: true}, "<p>HTML with a caf=C3=A9.</p>"},
		{&imap.FetchItemBodySection{Part: []int{1, 1}, Specifier: imap.PartSpecifierMIME, Peek: true},
			"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"},
		{&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "cc"}, Peek: true},
			"Cc: carol@other.test\r\nSubject: =?UTF-8?Q?Caf=C3=A9_report?=\r\n\r\n"},
		{&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"X-Absent"}, Peek: true}, "\r\n"},
		{&imap.FetchItemBodySection{Partial: &imap.SectionPartial{Offset: 6, Size: 15}, Peek: true}, multipartMsg[6:21]},
		{&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Partial: &imap.SectionPartial{Offset: 10, Size: 4}, Peek: true}, multipartMsg[hdrEnd+10 : hdrEnd+14]},
		{&imap.FetchItemBodySection{Partial: &imap.SectionPartial{Offset: int64(len(multipartMsg)) + 5, Size: 10}, Peek: true}, ""},
	}
	for _, s := range sections {
		m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{s.item}})
		got := string(m.FindBodySection(s.item))
		// Part 1.1 and 1.2 end before the CRLF that precedes the boundary (RFC 2046 §5.1.1).
		if got != s.want {
			t.Errorf("BODY.PEEK[%s %v %v]<%v>: got %q, want %q", s.item.Specifier, s.item.Part, s.item.HeaderFields, s.item.Partial, got, s.want)
		}
	}
	hdrNot := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Subject", "Cc", "To", "From", "Sender", "Reply-To", "Date", "In-Reply-To", "MIME-Version"}, Peek: true}
	got := string(fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{hdrNot}}).FindBodySection(hdrNot))
	if want := "Message-ID: <multi-1@other.test>\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"; got != want {
		t.Errorf("BODY.PEEK[HEADER.FIELDS.NOT (...)]: got %q, want %q", got, want)
	}

	// BINARY decodes the transfer encoding (RFC 3516 §4.2, RFC 9051 §6.4.5).
	bin := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	mb := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{bin},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}}})
	if got := mb.FindBinarySection(bin); !bytes.Equal(got, multipartAttachment) {
		t.Errorf("BINARY.PEEK[2]: %d bytes %.40q, want the decoded attachment (%d bytes)", len(got), got, len(multipartAttachment))
	}
	if n, ok := mb.FindBinarySectionSize([]int{2}); !ok || n != uint32(len(multipartAttachment)) {
		t.Errorf("BINARY.SIZE[2] %d %v, want %d", n, ok, len(multipartAttachment))
	}
	qp := &imap.FetchItemBinarySection{Part: []int{1, 2}, Peek: true}
	if got := string(fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{qp}}).FindBinarySection(qp)); got != "<p>HTML with a café.</p>" {
		t.Errorf("BINARY.PEEK[1.2] of quoted-printable: %q", got)
	}

	// BODY.PEEK does not set \Seen; BODY[] does, and says so in the same FETCH response
	// (§6.4.5). Message 2.
	fetchOne(t, c, imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if f := flagsOf(t, c, imap.SeqSetNum(2)); slices.Contains(f, imap.FlagSeen) {
		t.Errorf("BODY.PEEK[] set \\Seen: %v", f)
	}
	fetchOne(t, c, imap.SeqSetNum(2), &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{{Peek: true}}})
	if f := flagsOf(t, c, imap.SeqSetNum(2)); slices.Contains(f, imap.FlagSeen) {
		t.Errorf("BINARY.PEEK[] set \\Seen: %v", f)
	}
	r := tg.rawLogin(t)
	r.OK("SELECT INBOX")
	u := r.OK("FETCH 2 BODY[]")
	if !hasLine(u, `^\* 2 FETCH \(.*FLAGS \([^)]*\\Seen`) {
		t.Errorf("FETCH 2 BODY[]: no FLAGS (\\Seen) in the response: %q", u)
	}
	if f := flagsOf(t, c, imap.SeqSetNum(2)); !slices.Contains(f, imap.FlagSeen) {
		t.Errorf("BODY[] did not set \\Seen: %v", f)
	}
	if !hasLine(u, regexp.QuoteMeta("BODY[] {"+fmt.Sprint(len(simple))+"}\r\n"+simple)) {
		t.Errorf("FETCH 2 BODY[]: %q, want the message as a literal", u)
	}
	// Macros (RFC 3501 §6.4.5) and RFC822.* items of rev1.
	u = r.OK("FETCH 1 ALL")
	if !hasLine(u, `^\* 1 FETCH \(.*INTERNALDATE "03-Feb-2021 04:05:06 \+0000"`) || !hasLine(u, `RFC822\.SIZE \d+`) ||
		!hasLine(u, `ENVELOPE \(`) || !hasLine(u, `FLAGS \(`) {
		t.Errorf("FETCH 1 ALL: %q", u)
	}
	u = r.OK("FETCH 1 (RFC822.HEADER)")
	if !hasLine(u, regexp.QuoteMeta("RFC822.HEADER {"+fmt.Sprint(hdrEnd)+"}")) {
		t.Errorf("FETCH 1 RFC822.HEADER: %q", u)
	}
	// UID FETCH always returns UID (§6.4.9); a UID range past the last UID is empty, and
	// "N:*" with N above the last UID still means the last message.
	u = r.OK("UID FETCH 1:* FLAGS")
	if len(u) != 2 || !hasLine(u, `^\* 1 FETCH \(.*UID \d+`) {
		t.Errorf("UID FETCH 1:* FLAGS: %q, want 2 responses with UID", u)
	}
	u = r.OK("UID FETCH 4000000000 FLAGS")
	if len(u) != 0 {
		t.Errorf("UID FETCH of a missing UID: %q, want nothing", u)
	}
	u = r.OK("UID FETCH 4000000000:* FLAGS")
	if len(u) != 1 || !hasLine(u, `^\* 2 FETCH`) {
		t.Errorf("UID FETCH 4000000000:*: %q, want the last message", u)
	}
	// A message sequence number above EXISTS is an error (§9 seq-number; RFC 9051 §6.4.5).
	if _, st := r.Cmd("FETCH 3 FLAGS"); strings.HasPrefix(st, "OK") {
		t.Errorf("FETCH 3 of 2 messages: %q, want BAD or NO", st)
	}
	r.Expect("BAD", "FETCH 1 (FLAGS NOSUCHITEM)")
	r.Expect("BAD", "FETCH 1 BODY[0]")
	r.Alive()
}

// searchCase is one SEARCH and its expected message sequence numbers.
type searchCase struct {
	keys string
	want []int
}

// TestIMAPSearch covers SEARCH keys of RFC 3501 §6.4.4 and RFC 9051 §6.4.4, CHARSET,
// ESEARCH (RFC 4731, RFC 9051 §7.3.4).
func TestIMAPSearch(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	big := strings.Repeat("filler line of text to make this message large\r\n", 120)
	appendMsg(t, c, "INBOX", testMessage("Quarterly report", "the zebra crossing\r\n"),
		&imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged}, Time: time.Date(2006, 1, 2, 12, 0, 0, 0, time.UTC)})
	appendMsg(t, c, "INBOX", "From: Bob <bob@other.test>\r\nTo: Carol <carol@other.test>\r\nCc: demo@example.test\r\n"+
		"Subject: Lunch\r\nDate: Wed, 15 Jul 2020 12:00:00 +0000\r\nMessage-ID: <lunch@other.test>\r\n\r\nplain\r\n",
		&imap.AppendOptions{Flags: []imap.Flag{imap.FlagAnswered}, Time: time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC)})
	appendMsg(t, c, "INBOX", "From: Alice Example <alice@other.test>\r\nTo: demo@example.test\r\nSubject: Re: Quarterly report\r\n"+
		"Date: Fri, 01 Jan 2021 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Transfer-Encoding: 8bit\r\n\r\nПривет мир\r\n"+big,
		&imap.AppendOptions{Flags: []imap.Flag{"$Important", imap.FlagDeleted}, Time: time.Date(2021, 1, 1, 9, 0, 0, 0, time.UTC)})
	appendMsg(t, c, "INBOX", "From: dave@other.test\r\nTo: demo@example.test\r\nBcc: secret@other.test\r\n"+
		"Subject: =?UTF-8?B?Q2Fmw6kgbWVldGluZw==?=\r\nX-Custom: yes please\r\nDate: Sat, 02 Jan 2021 09:00:00 +0000\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		base64.StdEncoding.EncodeToString([]byte("encoded secret word: xylophone\r\n"))+"\r\n",
		&imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}, Time: time.Date(2021, 1, 2, 9, 0, 0, 0, time.UTC)})
	sel := selectBox(t, c, "INBOX", nil)
	if sel.NumMessages != 4 {
		t.Fatalf("EXISTS %d, want 4", sel.NumMessages)
	}

	r := tg.rawLogin(t)
	r.OK("SELECT INBOX")
	uids := map[int]string{}
	for _, l := range r.OK("FETCH 1:4 UID") {
		var seq, uid int
		if _, err := fmt.Sscanf(l, "* %d FETCH (UID %d)", &seq, &uid); err == nil {
			uids[seq] = fmt.Sprint(uid)
		}
	}
	cases := []searchCase{
		{"ALL", []int{1, 2, 3, 4}},
		{"ANSWERED", []int{2}},
		{"UNANSWERED", []int{1, 3, 4}},
		{"DELETED", []int{3}},
		{"UNDELETED", []int{1, 2, 4}},
		{"DRAFT", []int{4}},
		{"UNDRAFT", []int{1, 2, 3}},
		{"FLAGGED", []int{1}},
		{"UNFLAGGED", []int{2, 3, 4}},
		{"SEEN", []int{1}},
		{"UNSEEN", []int{2, 3, 4}},
		{"KEYWORD $Important", []int{3}},
		{"UNKEYWORD $Important", []int{1, 2, 4}},
		{"KEYWORD $NeverSet", nil},
		{"FROM alice", []int{1, 3}},
		{"FROM ALICE", []int{1, 3}}, // case-insensitive substring
		{`FROM "Alice Example"`, []int{1, 3}},
		{"TO carol", []int{2}},
		{"CC demo@example.test", []int{2}},
		{"BCC secret", []int{4}},
		{"SUBJECT quarterly", []int{1, 3}},
		{`SUBJECT "re: quarterly"`, []int{3}},
		{"BODY zebra", []int{1}},
		{"BODY xylophone", []int{4}}, // decoded base64 body
		{"TEXT zebra", []int{1}},
		{"TEXT yes", []int{4}}, // TEXT searches the header too
		{"HEADER X-Custom yes", []int{4}},
		{`HEADER X-Custom ""`, []int{4}}, // presence of the field
		{`HEADER Message-ID "lunch@"`, []int{2}},
		{"LARGER 3000", []int{3}},
		{"SMALLER 3000", []int{1, 2, 4}},
		{"BEFORE 1-Jan-2021", []int{1, 2}},
		{"ON 15-Jul-2020", []int{2}},
		{"SINCE 2-Jan-2021", []int{4}},
		{"SENTBEFORE 15-Jul-2020", []int{1}},
		{"SENTON 15-Jul-2020", []int{2}},
		{"SENTSINCE 1-Jan-2021", []int{3, 4}},
		{"NOT FROM alice", []int{2, 4}},
		{"OR ANSWERED DRAFT", []int{2, 4}},
		{"OR FROM bob OR FROM dave SEEN", []int{1, 2, 4}},
		{"(FROM alice UNSEEN)", []int{3}},
		{"FROM alice UNSEEN", []int{3}}, // keys are ANDed
		{"2:3", []int{2, 3}},
		{"2:*", []int{2, 3, 4}},
		{"UID " + uids[2] + "," + uids[4], []int{2, 4}},
		{"NOT 1:2", []int{3, 4}},
		// 8-bit strings go in literals in IMAP4rev1 (RFC 3501 §9 quoted is 7-bit).
		{"CHARSET UTF-8 BODY {6+}\r\nмир", []int{3}},
		{"CHARSET UTF-8 SUBJECT {5+}\r\nCafé", []int{4}},
		{"CHARSET UTF-8 SUBJECT {5+}\r\ncafÉ", []int{4}}, // case-insensitive beyond ASCII
		{"CHARSET US-ASCII FROM dave", []int{4}},
		{"BODY nowhere-to-be-found", nil},
	}
	for _, sc := range cases {
		u, st := r.Cmd("SEARCH " + sc.keys)
		if !strings.HasPrefix(st, "OK") {
			t.Errorf("SEARCH %s: %q", sc.keys, st)
			continue
		}
		var got []int
		for _, l := range u {
			if rest, ok := strings.CutPrefix(l, "* SEARCH"); ok {
				for _, f := range strings.Fields(rest) {
					var n int
					fmt.Sscan(f, &n)
					got = append(got, n)
				}
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, sc.want) {
			t.Errorf("SEARCH %s: %v, want %v", sc.keys, got, sc.want)
		}
	}
	// RFC 9051 §6.4.4: an unknown charset is NO [BADCHARSET].
	if _, st := r.Cmd("SEARCH CHARSET X-NO-SUCH-CHARSET TEXT foo"); !strings.HasPrefix(st, "NO [BADCHARSET") {
		t.Errorf("SEARCH with an unknown charset: %q, want NO [BADCHARSET]", st)
	}
	r.Expect("BAD", "SEARCH NOSUCHKEY")
	r.Expect("BAD", "SEARCH SINCE notadate")
	r.Expect("BAD", "SEARCH (FROM alice")

	// ESEARCH (RFC 4731): RETURN options.
	// The return data may come in any order (RFC 4731 §3.1).
	u := r.OK("SEARCH RETURN (MIN MAX COUNT ALL) FROM alice")
	if !hasLine(u, `(?i)^\* ESEARCH \(TAG "a\d+"\)`) || !hasLine(u, ` MIN 1( |$)`) || !hasLine(u, ` MAX 3( |$)`) ||
		!hasLine(u, ` COUNT 2( |$)`) || !hasLine(u, ` ALL 1,3( |$)`) || len(u) != 1 {
		t.Errorf("SEARCH RETURN (MIN MAX COUNT ALL) FROM alice: %q, want one ESEARCH MIN 1 MAX 3 COUNT 2 ALL 1,3", u)
	}
	u = r.OK("UID SEARCH RETURN (COUNT) ALL")
	if !hasLine(u, `(?i)^\* ESEARCH \(TAG "a\d+"\) UID COUNT 4$`) {
		t.Errorf("UID SEARCH RETURN (COUNT) ALL: %q", u)
	}
	u = r.OK("SEARCH RETURN () BODY nowhere")
	if !hasLine(u, `(?i)^\* ESEARCH \(TAG "a\d+"\)$`) {
		t.Errorf("SEARCH RETURN () with no match: %q, want an ESEARCH without ALL", u)
	}

	// IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 §6.4.4).
	r2 := tg.rawLogin(t)
	r2.OK("ENABLE IMAP4rev2")
	r2.OK("SELECT INBOX")
	u = r2.OK("SEARCH FROM alice")
	if !hasLine(u, `(?i)^\* ESEARCH \(TAG "a\d+"\) ALL 1,3$`) || hasLine(u, `^\* SEARCH`) {
		t.Errorf("IMAP4rev2 SEARCH FROM alice: %q, want * ESEARCH (TAG ..) ALL 1,3", u)
	}
	u = r2.OK(`SEARCH SUBJECT "café"`)
	if !hasLine(u, `(?i)^\* ESEARCH \(TAG "a\d+"\) ALL 4$`) {
		t.Errorf("IMAP4rev2 SEARCH SUBJECT café (UTF-8 by default): %q", u)
	}

	// The go-imap client's SEARCH and UID SEARCH.
	data, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "alice"}},
		NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil || !slices.Equal(data.AllSeqNums(), []uint32{3}) {
		t.Errorf("go-imap SEARCH FROM alice UNSEEN: %v %v, want [3]", data, err)
	}
	data, err = c.UIDSearch(&imap.SearchCriteria{Body: []string{"zebra"}}, nil).Wait()
	if err != nil || len(data.AllUIDs()) != 1 || fmt.Sprint(data.AllUIDs()[0]) != uids[1] {
		t.Errorf("go-imap UID SEARCH BODY zebra: %v %v, want UID %s", data, err, uids[1])
	}
	data, err = c.Search(&imap.SearchCriteria{Text: []string{"QUARTERLY"}}, &imap.SearchOptions{ReturnCount: true}).Wait()
	if err != nil || data.Count != 2 {
		t.Errorf("go-imap SEARCH RETURN (COUNT) TEXT QUARTERLY: %+v %v, want COUNT 2", data, err)
	}
}

// TestIMAPStore covers STORE (RFC 9051 §6.4.6) and UNCHANGEDSINCE (RFC 7162 §3.1.3).
func TestIMAPStore(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	for i := 1; i <= 3; i++ {
		appendMsg(t, c, "INBOX", testMessage(fmt.Sprintf("Store %d", i), "body\r\n"), nil)
	}
	selectBox(t, c, "INBOX", nil)
	store := func(set imap.NumSet, op imap.StoreFlagsOp, flags ...imap.Flag) []imap.Flag {
		t.Helper()
		msgs, err := c.Store(set, &imap.StoreFlags{Op: op, Flags: flags}, nil).Collect()
		if err != nil {
			t.Fatalf("STORE %v: %v", flags, err)
		}
		if len(msgs) != 1 {
			t.Fatalf("STORE %v: %d FETCH responses, want 1", flags, len(msgs))
		}
		f := noRecent(msgs[0].Flags)
		slices.Sort(f)
		return f
	}
	if got := store(imap.SeqSetNum(1), imap.StoreFlagsAdd, imap.FlagFlagged, "$Work"); !slices.Equal(got, []imap.Flag{"$Work", imap.FlagFlagged}) {
		t.Errorf("STORE +FLAGS (\\Flagged $Work): %v", got)
	}
	if got := store(imap.SeqSetNum(1), imap.StoreFlagsAdd, imap.FlagSeen); !slices.Equal(got, []imap.Flag{"$Work", imap.FlagFlagged, imap.FlagSeen}) {
		t.Errorf("STORE +FLAGS (\\Seen): %v", got)
	}
	if got := store(imap.SeqSetNum(1), imap.StoreFlagsDel, imap.FlagFlagged); !slices.Equal(got, []imap.Flag{"$Work", imap.FlagSeen}) {
		t.Errorf("STORE -FLAGS (\\Flagged): %v", got)
	}
	if got := store(imap.SeqSetNum(1), imap.StoreFlagsSet, imap.FlagAnswered); !slices.Equal(got, []imap.Flag{imap.FlagAnswered}) {
		t.Errorf("STORE FLAGS (\\Answered): %v", got)
	}
	if got := store(imap.UIDSetNum(fetchOne(t, c, imap.SeqSetNum(2), &imap.FetchOptions{UID: true}).UID), imap.StoreFlagsAdd, imap.FlagDraft); !slices.Equal(got, []imap.Flag{imap.FlagDraft}) {
		t.Errorf("UID STORE +FLAGS (\\Draft): %v", got)
	}

	// A second session sees the changes: from NOOP as untagged FETCH, and in a new FETCH.
	var mu = make(chan imap.Flag, 10)
	other := tg.loginAs(t, tg.user, tg.pass, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, _ := msg.Collect()
			if buf != nil && buf.SeqNum == 3 {
				for _, f := range buf.Flags {
					select {
					case mu <- f:
					default:
					}
				}
			}
		},
	}})
	selectBox(t, other, "INBOX", nil)

	// .SILENT: no FETCH response for the changed message (without CONDSTORE enabled).
	r := tg.rawLogin(t)
	r.OK("SELECT INBOX")
	u := r.OK(`STORE 3 +FLAGS.SILENT (\Flagged)`)
	if hasLine(u, `^\* 3 FETCH`) {
		t.Errorf("STORE +FLAGS.SILENT answered a FETCH: %q", u)
	}
	u = r.OK(`STORE 3 -FLAGS.SILENT (\Flagged)`)
	if hasLine(u, `^\* 3 FETCH`) {
		t.Errorf("STORE -FLAGS.SILENT answered a FETCH: %q", u)
	}
	r.OK(`STORE 3 FLAGS.SILENT (\Flagged $Later)`)
	if f := flagsOf(t, c, imap.SeqSetNum(3)); !slices.Contains(f, imap.FlagFlagged) || !slices.Contains(f, "$Later") {
		t.Errorf("after STORE FLAGS.SILENT (\\Flagged $Later): %v", f)
	}
	// RFC 9051 §7.4.1: the other session learns about it when it polls.
	deadline := time.Now().Add(10 * time.Second)
	gotFlagged := false
	for !gotFlagged && time.Now().Before(deadline) {
		other.Noop().Wait()
		for len(mu) > 0 {
			if <-mu == imap.FlagFlagged {
				gotFlagged = true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !gotFlagged {
		t.Errorf("another session did not see the flag change of message 3 on NOOP")
	}
	r.Expect("BAD", `STORE 1 +FLAGS (\NoSuchSystemFlag)`)
	r.Expect("BAD", `STORE 1 +FLAGS (\Seen`)
	r.Expect("BAD", `STORE 1 FROBNICATE (\Seen)`)
	// \Recent cannot be stored (RFC 3501 §2.3.2).
	if _, st := r.Cmd(`STORE 1 +FLAGS (\Recent)`); strings.HasPrefix(st, "OK") {
		if f := flagsOf(t, c, imap.SeqSetNum(1)); slices.Contains(f, imap.Flag(`\Recent`)) {
			t.Errorf("STORE +FLAGS (\\Recent) set \\Recent")
		}
	}

	// UNCHANGEDSINCE (RFC 7162 §3.1.3).
	cs := tg.rawLogin(t)
	u = cs.OK("SELECT INBOX (CONDSTORE)")
	if !hasLine(u, `^\* OK \[HIGHESTMODSEQ \d+\]`) {
		t.Errorf("SELECT (CONDSTORE): no HIGHESTMODSEQ: %q", u)
	}
	modseq := func(seq int) uint64 {
		t.Helper()
		u := cs.OK(fmt.Sprintf("FETCH %d (MODSEQ)", seq))
		var n, ms uint64
		for _, l := range u {
			if _, err := fmt.Sscanf(l, "* %d FETCH (MODSEQ (%d))", &n, &ms); err == nil {
				return ms
			}
		}
		t.Fatalf("FETCH %d (MODSEQ): %q", seq, u)
		return 0
	}
	m1 := max(modseq(1), modseq(2))
	u = cs.OK(fmt.Sprintf(`STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\Seen)`, m1))
	if !hasLine(u, `^\* 1 FETCH \(.*MODSEQ \(\d+\)`) {
		t.Errorf("STORE with UNCHANGEDSINCE: %q, want a FETCH with MODSEQ", u)
	}
	m1b := modseq(1)
	if m1b <= m1 {
		t.Errorf("MODSEQ of message 1 %d after a STORE, want above %d", m1b, m1)
	}
	// The same UNCHANGEDSINCE again fails for message 1: MODIFIED 1 (§3.1.3).
	_, st := cs.Cmd(fmt.Sprintf(`STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\Deleted)`, m1))
	if !strings.HasPrefix(st, "OK [MODIFIED 1]") {
		t.Errorf("STORE 1:2 (UNCHANGEDSINCE old) with message 1 modified since: %q, want OK [MODIFIED 1]", st)
	}
	if f := flagsOf(t, c, imap.SeqSetNum(1)); slices.Contains(f, imap.FlagDeleted) {
		t.Errorf("STORE with a failed UNCHANGEDSINCE changed message 1: %v", f)
	}
	if f := flagsOf(t, c, imap.SeqSetNum(2)); !slices.Contains(f, imap.FlagDeleted) {
		t.Errorf("STORE 1:2 (UNCHANGEDSINCE) did not change message 2, unchanged since: %v", f)
	}
	// UNCHANGEDSINCE 0 always fails (§3.1.3).
	_, st = cs.Cmd(`STORE 2 (UNCHANGEDSINCE 0) +FLAGS (\Flagged)`)
	if !strings.HasPrefix(st, "OK [MODIFIED 2]") {
		t.Errorf("STORE (UNCHANGEDSINCE 0): %q, want OK [MODIFIED 2]", st)
	}
	// The go-imap client's UNCHANGEDSINCE.
	if _, err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Ok"}}, &imap.StoreOptions{UnchangedSince: modseq(2)}).Collect(); err != nil {
		t.Errorf("go-imap STORE (UNCHANGEDSINCE current): %v", err)
	}
	if f := flagsOf(t, c, imap.SeqSetNum(2)); !slices.Contains(f, "$Ok") {
		t.Errorf("STORE (UNCHANGEDSINCE current) did not set $Ok: %v", f)
	}
}

// TestIMAPCopyMove covers COPY and MOVE with COPYUID (RFC 9051 §6.4.7, §6.4.8; RFC 6851;
// RFC 4315 §3).
func TestIMAPCopyMove(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	if !c.Caps().Has(imap.CapMove) {
		c.Capability().Wait()
	}
	if !c.Caps().Has(imap.CapMove) {
		t.Fatalf("no MOVE capability: %v", c.Caps())
	}
	c.Create("Dest", nil).Wait()
	var srcUIDs []imap.UID
	var bodies []string
	date := time.Date(2019, 3, 4, 5, 6, 7, 0, time.UTC)
	for i := 1; i <= 4; i++ {
		b := testMessage(fmt.Sprintf("Copy %d", i), strings.Repeat(fmt.Sprintf("line %d\r\n", i), i))
		bodies = append(bodies, b)
		srcUIDs = append(srcUIDs, appendMsg(t, c, "INBOX", b, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagFlagged, "$Tag"}, Time: date}))
	}
	destSel, _ := c.Status("Dest", &imap.StatusOptions{UIDValidity: true}).Wait()
	selectBox(t, c, "INBOX", nil)

	cp, err := c.Copy(imap.SeqSet{{Start: 1, Stop: 2}}, "Dest").Wait()
	if err != nil {
		t.Fatalf("COPY: %v", err)
	}
	if cp.UIDValidity != destSel.UIDValidity {
		t.Errorf("COPYUID UIDVALIDITY %d, want Dest's %d", cp.UIDValidity, destSel.UIDValidity)
	}
	src, _ := cp.SourceUIDs.Nums()
	dst, _ := cp.DestUIDs.Nums()
	if !slices.Equal(src, srcUIDs[:2]) || len(dst) != 2 {
		t.Errorf("COPYUID %v → %v, want %v → 2 UIDs", src, dst, srcUIDs[:2])
	}
	cp, err = c.Copy(imap.UIDSetNum(srcUIDs[2]), "Dest").Wait()
	if err != nil {
		t.Fatalf("UID COPY: %v", err)
	}
	if src, _ := cp.SourceUIDs.Nums(); !slices.Equal(src, srcUIDs[2:3]) {
		t.Errorf("UID COPY: COPYUID source %v, want %v", src, srcUIDs[2:3])
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "No such mailbox").Wait(); imapType(err) != imap.StatusResponseTypeNo || imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to a missing mailbox: %v, want NO [TRYCREATE]", err)
	}
	if n := tg.countOf(t, "INBOX"); n != 4 {
		t.Errorf("COPY changed the source mailbox: %d messages, want 4", n)
	}

	mv, err := c.Move(imap.SeqSetNum(4), "Dest").Wait()
	if err != nil {
		t.Fatalf("MOVE: %v", err)
	}
	if mv.UIDValidity != destSel.UIDValidity {
		t.Errorf("MOVE's COPYUID UIDVALIDITY %d, want %d", mv.UIDValidity, destSel.UIDValidity)
	}
	if c.Mailbox().NumMessages != 3 {
		t.Errorf("after MOVE of one of 4 messages the client counts %d", c.Mailbox().NumMessages)
	}
	if _, err := c.Move(imap.UIDSetNum(srcUIDs[0]), "Dest").Wait(); err != nil {
		t.Fatalf("UID MOVE: %v", err)
	}
	// RFC 6851 §4.3: the untagged OK [COPYUID] comes before the EXPUNGE responses.
	r := tg.rawLogin(t)
	r.OK("SELECT INBOX")
	u := r.OK("MOVE 1 Dest")
	if len(u) < 2 || !regexp.MustCompile(`^\* OK \[COPYUID \d+ \d+ \d+\]`).MatchString(u[0]) || !hasLine(u, `^\* 1 EXPUNGE$`) {
		t.Errorf("MOVE 1 Dest: %q, want * OK [COPYUID ...] then * 1 EXPUNGE", u)
	}

	selectBox(t, c, "Dest", nil)
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 6 {
		t.Fatalf("FETCH in Dest: %d messages %v, want 6 (3 copies, 3 moved)", len(msgs), err)
	}
	for _, m := range msgs {
		body := string(m.FindBodySection(&imap.FetchItemBodySection{}))
		if !slices.Contains(bodies, body) {
			t.Errorf("a copied message differs: %.80q", body)
		}
		// RFC 9051 §6.4.7: flags and internal date are preserved.
		if !slices.Contains(m.Flags, imap.FlagFlagged) || !slices.Contains(m.Flags, "$Tag") || !m.InternalDate.Equal(date) {
			t.Errorf("a copied message has flags %v and date %v, want \\Flagged $Tag and %v", m.Flags, m.InternalDate, date)
		}
	}
	if n := tg.countOf(t, "INBOX"); n != 1 {
		t.Errorf("INBOX after 3 MOVEs: %d messages, want 1", n)
	}
}

// TestIMAPExpunge covers EXPUNGE, UID EXPUNGE (RFC 4315 §2.1), CLOSE, UNSELECT (RFC 3691)
// and CHECK (RFC 3501 §6.4.1).
func TestIMAPExpunge(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	var uids []imap.UID
	for i := 1; i <= 6; i++ {
		uids = append(uids, appendMsg(t, c, "INBOX", testMessage(fmt.Sprintf("Expunge %d", i), "x\r\n"), nil))
	}
	selectBox(t, c, "INBOX", nil)
	r := tg.rawLogin(t)
	r.OK("SELECT INBOX")
	r.OK("CHECK")
	r.OK(`STORE 2,4 +FLAGS.SILENT (\Deleted)`)
	u := r.OK("EXPUNGE")
	// §7.5.1: each EXPUNGE renumbers the following messages: 2 then 3 (the former 4).
	if got := expunged(t, 6, u); !slices.Equal(got, []int{2, 4}) || len(u) != 2 {
		t.Errorf("EXPUNGE of messages 2 and 4: %q removes %v", u, got)
	}
	// The go-imap session learns of them on NOOP.
	c.Noop().Wait()
	if n := c.Mailbox().NumMessages; n != 4 {
		t.Errorf("the other session counts %d messages after EXPUNGE, want 4", n)
	}
	left, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := left.AllUIDs(); !slices.Equal(got, []imap.UID{uids[0], uids[2], uids[4], uids[5]}) {
		t.Errorf("UIDs after EXPUNGE %v, want %v", got, []imap.UID{uids[0], uids[2], uids[4], uids[5]})
	}

	// UID EXPUNGE removes only the given UIDs among the \Deleted ones.
	c.Store(imap.UIDSetNum(uids[0], uids[2]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	seqs, err := c.UIDExpunge(imap.UIDSetNum(uids[2])).Collect()
	if err != nil || !slices.Equal(seqs, []uint32{2}) {
		t.Errorf("UID EXPUNGE %d: %v %v, want message 2", uids[2], seqs, err)
	}
	left, _ = c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if got := left.AllUIDs(); !slices.Equal(got, []imap.UID{uids[0], uids[4], uids[5]}) {
		t.Errorf("UIDs after UID EXPUNGE %v, want %v", got, []imap.UID{uids[0], uids[4], uids[5]})
	}
	// UIDs are never reused (RFC 9051 §2.3.1.1).
	if newUID := appendMsg(t, c, "INBOX", testMessage("After", "x\r\n"), nil); newUID <= uids[5] {
		t.Errorf("APPEND after EXPUNGE got UID %d, not above %d", newUID, uids[5])
	}
	c.Noop().Wait()

	// UNSELECT leaves \Deleted messages in place; CLOSE expunges them silently.
	r.OK("NOOP")
	u = r.OK("UNSELECT")
	if hasLine(u, "EXPUNGE") {
		t.Errorf("UNSELECT expunged: %q", u)
	}
	r.Expect("BAD", "FETCH 1 FLAGS") // no mailbox selected any more
	if n := tg.countOf(t, "INBOX"); n != 4 {
		t.Errorf("after UNSELECT: %d messages, want 4 still (one \\Deleted)", n)
	}
	// In a read-only mailbox, CLOSE does not expunge (RFC 9051 §6.4.2).
	r.OK("EXAMINE INBOX")
	r.OK("CLOSE")
	if n := tg.countOf(t, "INBOX"); n != 4 {
		t.Errorf("after CLOSE of an EXAMINEd mailbox: %d messages, want 4", n)
	}
	r.OK("SELECT INBOX")
	u = r.OK("CLOSE")
	if hasLine(u, "EXPUNGE") {
		t.Errorf("CLOSE sent EXPUNGE responses: %q", u)
	}
	if n := tg.countOf(t, "INBOX"); n != 3 {
		t.Errorf("after CLOSE: %d messages, want 3", n)
	}
	r.Expect("BAD", "CLOSE") // not selected
	// The go-imap forms: UnselectAndExpunge is CLOSE.
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Errorf("CLOSE: %v", err)
	}
	selectBox(t, c, "INBOX", nil)
	if err := c.Unselect().Wait(); err != nil {
		t.Errorf("UNSELECT: %v", err)
	}
}

// TestIMAPCondstore covers CONDSTORE (RFC 7162 §3.1): HIGHESTMODSEQ in SELECT and STATUS,
// MODSEQ in FETCH, CHANGEDSINCE and SEARCH MODSEQ.
func TestIMAPCondstore(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	for i := 1; i <= 5; i++ {
		appendMsg(t, c, "INBOX", testMessage(fmt.Sprintf("Cond %d", i), "x\r\n"), nil)
	}
	sel := selectBox(t, c, "INBOX", &imap.SelectOptions{CondStore: true})
	if sel.HighestModSeq == 0 {
		t.Fatalf("SELECT (CONDSTORE): no HIGHESTMODSEQ")
	}
	if st := tg.statusOf(t, "INBOX", &imap.StatusOptions{HighestModSeq: true}); st.HighestModSeq != sel.HighestModSeq {
		t.Errorf("STATUS (HIGHESTMODSEQ) %d, want SELECT's %d", st.HighestModSeq, sel.HighestModSeq)
	}
	before := sel.HighestModSeq
	msgs, err := c.Store(imap.SeqSetNum(2, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("STORE: %v %v", msgs, err)
	}
	for _, m := range msgs {
		if m.ModSeq <= before {
			t.Errorf("STORE's FETCH of %d: MODSEQ %d, want above %d", m.SeqNum, m.ModSeq, before)
		}
	}
	changed, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, ChangedSince: before}).Collect()
	if err != nil {
		t.Fatalf("FETCH (CHANGEDSINCE): %v", err)
	}
	var seqs []uint32
	for _, m := range changed {
		seqs = append(seqs, m.SeqNum)
		if m.ModSeq == 0 {
			t.Errorf("FETCH (CHANGEDSINCE) of %d has no MODSEQ (RFC 7162 §3.1.4.1)", m.SeqNum)
		}
	}
	if !slices.Equal(seqs, []uint32{2, 4}) {
		t.Errorf("FETCH 1:* (FLAGS) (CHANGEDSINCE %d): messages %v, want [2 4]", before, seqs)
	}
	data, err := c.Search(&imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: before + 1}}, nil).Wait()
	if err != nil || !slices.Equal(data.AllSeqNums(), []uint32{2, 4}) {
		t.Errorf("SEARCH MODSEQ %d: %+v %v, want [2 4]", before+1, data, err)
	} else if data.ModSeq == 0 {
		t.Errorf("SEARCH MODSEQ: no (MODSEQ n) in the SEARCH response (RFC 7162 §3.1.5)")
	}
	appendMsg(t, c, "INBOX", testMessage("Cond 6", "x\r\n"), nil)
	if st := tg.statusOf(t, "INBOX", &imap.StatusOptions{HighestModSeq: true}); st.HighestModSeq <= msgs[0].ModSeq {
		t.Errorf("HIGHESTMODSEQ after APPEND: %d, want above %d", st.HighestModSeq, msgs[0].ModSeq)
	}
	// Raw forms: ENABLE CONDSTORE then FETCH ... (CHANGEDSINCE n) implies MODSEQ.
	r := tg.rawLogin(t)
	r.OK("ENABLE CONDSTORE")
	u := r.OK("SELECT INBOX")
	if !hasLine(u, `^\* OK \[HIGHESTMODSEQ \d+\]`) {
		t.Errorf("SELECT after ENABLE CONDSTORE: no HIGHESTMODSEQ: %q", u)
	}
	u = r.OK(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", before))
	if len(u) != 3 || !hasLine(u, `MODSEQ \(\d+\)`) {
		t.Errorf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d): %q, want 3 messages with MODSEQ", before, u)
	}
}

// TestIMAPIdle covers IDLE (RFC 2177, RFC 9051 §6.3.13): a session in IDLE learns of
// another session's APPEND, flag change and EXPUNGE.
func TestIMAPIdle(t *testing.T) {
	tg := newIMAPTarget(t)
	events := make(chan string, 100)
	idler := tg.loginAs(t, tg.user, tg.pass, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { events <- fmt.Sprintf("expunge %d", seq) },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				events <- fmt.Sprintf("exists %d", *d.NumMessages)
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, _ := msg.Collect()
			if buf != nil {
				events <- fmt.Sprintf("fetch %d %v", buf.SeqNum, buf.Flags)
			}
		},
	}})
	c := tg.login(t)
	appendMsg(t, c, "INBOX", testMessage("Idle 1", "x\r\n"), nil)
	selectBox(t, idler, "INBOX", nil)
	idle, err := idler.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	wait := func(what string, match func(string) bool) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case e := <-events:
				if match(e) {
					return
				}
			case <-timeout:
				t.Fatalf("IDLE: no %s within 10s", what)
			}
		}
	}
	appendMsg(t, c, "INBOX", testMessage("Idle 2", "x\r\n"), nil)
	wait("* 2 EXISTS after another session's APPEND", func(e string) bool { return e == "exists 2" })
	selectBox(t, c, "INBOX", nil)
	c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged, imap.FlagDeleted}}, nil).Close()
	wait("* 1 FETCH (FLAGS (\\Flagged \\Deleted)) after another session's STORE", func(e string) bool {
		return strings.HasPrefix(e, "fetch 1 ") && strings.Contains(e, `\Flagged`)
	})
	if _, err := c.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	wait("* 1 EXPUNGE after another session's EXPUNGE", func(e string) bool { return e == "expunge 1" })
	if err := idle.Close(); err != nil {
		t.Fatalf("DONE: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE's completion: %v", err)
	}
	if err := idler.Noop().Wait(); err != nil {
		t.Errorf("NOOP after IDLE: %v", err)
	}
	// Raw: IDLE answers a continuation; anything but DONE ends it with BAD (RFC 2177 §3).
	r := tg.rawLogin(t)
	r.OK("SELECT INBOX")
	tag := r.Tag()
	r.Send(tag + " IDLE\r\n")
	if l, err := r.Response(); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q %v, want a continuation", l, err)
	}
	r.Send("NOT-DONE\r\n")
	if _, st := r.ReadTo(tag); !strings.HasPrefix(st, "BAD") {
		t.Errorf("IDLE ended with a line other than DONE: %q, want BAD", st)
	}
	r.Alive()
}

// forwardedMsg carries a whole message as a message/rfc822 attachment.
var forwardedInner = "From: Original Sender <orig@third.test>\r\n" +
	"To: alice@other.test\r\n" +
	"Subject: The original\r\n" +
	"Date: Wed, 04 Jan 2006 08:00:00 +0000\r\n" +
	"Message-ID: <orig-1@third.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=\"in\"\r\n" +
	"\r\n" +
	"--in\r\n" +
	"Content-Type: text/plain; charset=us-ascii\r\n" +
	"\r\n" +
	"inner plain\r\n" +
	"--in\r\n" +
	"Content-Type: text/html; charset=us-ascii\r\n" +
	"\r\n" +
	"<b>inner html</b>\r\n" +
	"--in--\r\n"

var forwardedMsg = "From: Alice Example <alice@other.test>\r\n" +
	"To: demo@example.test\r\n" +
	"Subject: Fwd: The original\r\n" +
	"Date: Thu, 05 Jan 2006 08:00:00 +0000\r\n" +
	"Message-ID: <fwd-1@other.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"out\"\r\n" +
	"\r\n" +
	"--out\r\n" +
	"Content-Type: text/plain; charset=us-ascii\r\n" +
	"\r\n" +
	"See below.\r\n" +
	"--out\r\n" +
	"Content-Type: message/rfc822\r\n" +
	"Content-Disposition: attachment; filename=\"original.eml\"\r\n" +
	"\r\n" +
	forwardedInner +
	"--out--\r\n"

// TestIMAPFetchNestedMessage covers the part numbering inside a message/rfc822 part
// (RFC 9051 §6.4.5: "2.HEADER", "2.TEXT", "2.1" and "2.2" address the encapsulated
// message) and its BODYSTRUCTURE, which carries the inner ENVELOPE.
func TestIMAPFetchNestedMessage(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	appendMsg(t, c, "INBOX", forwardedMsg, nil)
	selectBox(t, c, "INBOX", nil)
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}})
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || len(mp.Children) != 2 {
		t.Fatalf("BODYSTRUCTURE %#v, want multipart/mixed with 2 parts", m.BodyStructure)
	}
	rfc822, ok := mp.Children[1].(*imap.BodyStructureSinglePart)
	if !ok || rfc822.MediaType() != "message/rfc822" || rfc822.MessageRFC822 == nil {
		t.Fatalf("part 2 %#v, want message/rfc822 with its envelope and structure", mp.Children[1])
	}
	// RFC 2046 §5.1.1: the CRLF before "--out--" belongs to the boundary, not to part 2.
	part2 := strings.TrimSuffix(forwardedInner, "\r\n")
	if rfc822.Size != uint32(len(part2)) {
		t.Errorf("part 2 size %d, want %d", rfc822.Size, len(part2))
	}
	inner := rfc822.MessageRFC822
	if inner.Envelope == nil || inner.Envelope.Subject != "The original" || inner.Envelope.MessageID != "orig-1@third.test" {
		t.Errorf("inner ENVELOPE %+v, want the original's", inner.Envelope)
	}
	if alt, ok := inner.BodyStructure.(*imap.BodyStructureMultiPart); !ok || !strings.EqualFold(alt.Subtype, "alternative") || len(alt.Children) != 2 {
		t.Errorf("inner BODYSTRUCTURE %#v, want multipart/alternative with 2 parts", inner.BodyStructure)
	}
	innerHdrEnd := strings.Index(forwardedInner, "\r\n\r\n") + 4
	for _, s := range []struct {
		item *imap.FetchItemBodySection
		want string
	}{
		{&imap.FetchItemBodySection{Part: []int{2}, Peek: true}, part2},
		{&imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierHeader, Peek: true}, part2[:innerHdrEnd]},
		{&imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierText, Peek: true}, part2[innerHdrEnd:]},
		{&imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierMIME, Peek: true},
			"Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"original.eml\"\r\n\r\n"},
		{&imap.FetchItemBodySection{Part: []int{2, 1}, Peek: true}, "inner plain"},
		{&imap.FetchItemBodySection{Part: []int{2, 2}, Peek: true}, "<b>inner html</b>"},
		{&imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}, "Subject: The original\r\n\r\n"},
		{&imap.FetchItemBodySection{Part: []int{1}, Peek: true}, "See below."},
		{&imap.FetchItemBodySection{Part: []int{3}, Peek: true}, ""},
	} {
		m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{s.item}})
		if got := string(m.FindBodySection(s.item)); got != s.want {
			t.Errorf("BODY.PEEK[%v.%s %v]: got %q, want %q", s.item.Part, s.item.Specifier, s.item.HeaderFields, got, s.want)
		}
	}
}

// quoted8bit finds a quoted string holding 8-bit bytes in a response line whose literals
// Response inlined (as {N}\r\n<bytes>); literal contents are skipped.
func quoted8bit(line string) string {
	for len(line) > 0 {
		if m := regexp.MustCompile(`^~?\{(\d+)\+?\}\r\n`).FindStringSubmatch(line); m != nil {
			var n int
			fmt.Sscan(m[1], &n)
			line = line[min(len(line), len(m[0])+n):]
			continue
		}
		if line[0] == '"' {
			end := 1
			for end < len(line) && line[end] != '"' {
				if line[end] == '\\' {
					end++
				}
				end++
			}
			q := line[:min(end+1, len(line))]
			for i := 0; i < len(q); i++ {
				if q[i] >= 0x80 {
					return q
				}
			}
			line = line[min(end+1, len(line)):]
			continue
		}
		line = line[1:]
	}
	return ""
}

// TestIMAPEightBitHeaders stores a message whose header holds raw UTF-8 (RFC 6532) and a
// UTF-8 attachment name: an IMAP4rev1 client gets them as literals (RFC 3501 §4.3: quoted
// strings are 7-bit), an IMAP4rev2 client may get quoted UTF-8 (RFC 9051 §4.3); SEARCH
// finds the words.
func TestIMAPEightBitHeaders(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	msg := "From: Jürgen Müller <juergen@other.test>\r\nTo: demo@example.test\r\nSubject: Grüße aus Köln\r\n" +
		"Date: Fri, 06 Jan 2006 10:00:00 +0100\r\nMessage-ID: <utf8-hdr@other.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo\r\n" +
		"--b\r\nContent-Type: application/pdf; name=\"Überweisung.pdf\"\r\nContent-Disposition: attachment; filename=\"Überweisung.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n"
	appendMsg(t, c, "INBOX", msg, nil)

	r := tg.rawLogin(t)
	r.OK("SELECT INBOX")
	for _, item := range []string{"ENVELOPE", "BODYSTRUCTURE", "BODY"} {
		for _, l := range r.OK("FETCH 1 " + item) {
			if q := quoted8bit(l); q != "" {
				t.Errorf("IMAP4rev1 FETCH %s sends 8-bit in a quoted string: %q", item, q)
			}
		}
	}
	u := r.OK("FETCH 1 ENVELOPE")
	if !hasLine(u, `Grüße aus Köln`) || !hasLine(u, `Jürgen Müller`) {
		t.Errorf("IMAP4rev1 FETCH ENVELOPE: %q, want the UTF-8 subject and name (as literals)", u)
	}
	u = r.OK("SEARCH CHARSET UTF-8 SUBJECT " + lit("grüße"))
	if !hasLine(u, `^\* SEARCH 1$`) {
		t.Errorf("SEARCH CHARSET UTF-8 SUBJECT grüße: %q, want 1", u)
	}
	u = r.OK("SEARCH CHARSET UTF-8 FROM " + lit("MÜLLER"))
	if !hasLine(u, `^\* SEARCH 1$`) {
		t.Errorf("SEARCH CHARSET UTF-8 FROM MÜLLER: %q, want 1", u)
	}

	rev2 := tg.rawLogin(t)
	rev2.OK("ENABLE IMAP4rev2")
	rev2.OK("SELECT INBOX")
	// The file name may come as is or as an RFC 2231 parameter ("filename*"), which
	// clients decode anyway since messages carry them.
	u = rev2.OK("FETCH 1 (ENVELOPE BODYSTRUCTURE)")
	if !hasLine(u, `Grüße aus Köln`) || !hasLine(u, `(Überweisung|utf-8''%C3%9Cberweisung)\.pdf`) {
		t.Errorf("IMAP4rev2 FETCH ENVELOPE BODYSTRUCTURE: %q, want the UTF-8 subject and file name", u)
	}
	selectBox(t, c, "INBOX", nil)
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}})
	if m.Envelope == nil || m.Envelope.Subject != "Grüße aus Köln" || len(m.Envelope.From) != 1 || m.Envelope.From[0].Name != "Jürgen Müller" {
		t.Errorf("go-imap ENVELOPE %+v", m.Envelope)
	}
	if mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart); !ok || len(mp.Children) != 2 {
		t.Errorf("BODYSTRUCTURE %#v", m.BodyStructure)
	} else if sp, _ := mp.Children[1].(*imap.BodyStructureSinglePart); sp == nil || fileName(sp) != "Überweisung.pdf" {
		t.Errorf("attachment %+v, want the file name Überweisung.pdf", sp)
	}
}

// fileName is the attachment name a client shows: filename or name, plain or in the
// RFC 2231 form: the charset, two apostrophes, then the percent-encoded name.
func fileName(sp *imap.BodyStructureSinglePart) string {
	params := map[string]string{}
	for k, v := range sp.Params {
		params["ct-"+strings.ToLower(k)] = v
	}
	if d := sp.Disposition(); d != nil {
		for k, v := range d.Params {
			params["cd-"+strings.ToLower(k)] = v
		}
	}
	for _, k := range []string{"cd-filename", "ct-name"} {
		if v, ok := params[k]; ok {
			return v
		}
		if v, ok := params[k+"*"]; ok {
			if _, enc, ok := strings.Cut(v, "''"); ok {
				if dec, err := url.PathUnescape(enc); err == nil {
					return dec
				}
			}
			return v
		}
	}
	return ""
}

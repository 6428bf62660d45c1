package dsn

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

const original = "Received: by mx.example.test\r\nFrom: Alice <alice@far.test>\r\nTo: bob@example.test\r\n" +
	"Subject: hello\r\nMessage-ID: <orig@far.test>\r\n\r\nbody line one\r\nbody line two\r\n"

// parsed is a notification taken apart the way a mail client would.
type parsed struct {
	msg      *mail.Message
	params   map[string]string
	parts    []*multipart.Part
	bodies   [][]byte
	perMsg   textproto.MIMEHeader
	perRcpt  []textproto.MIMEHeader
	rawBytes []byte
}

func parse(t *testing.T, raw []byte) *parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail cannot read the report: %v\n%s", err, raw)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	p := &parsed{msg: msg, params: params, rawBytes: raw}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v\n%s", err, raw)
		}
		b, err := io.ReadAll(part)
		if err != nil {
			t.Fatalf("reading part: %v", err)
		}
		p.parts = append(p.parts, part)
		p.bodies = append(p.bodies, b)
	}
	if len(p.parts) != 3 {
		t.Fatalf("%d parts, want 3:\n%s", len(p.parts), raw)
	}
	// RFC 3464 §2.1: blocks of fields separated by empty lines.
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(p.bodies[1])))
	p.perMsg, err = tr.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("per-message fields: %v\n%s", err, p.bodies[1])
	}
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			p.perRcpt = append(p.perRcpt, h)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("per-recipient fields: %v\n%s", err, p.bodies[1])
		}
	}
	return p
}

func write(t *testing.T, r *Report, orig string) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Write(&out, r, strings.NewReader(orig)); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestFailureReport(t *testing.T) {
	arrival := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	last := arrival.Add(time.Minute)
	r := &Report{
		Kind:     Failure,
		Hostname: "mx.example.test",
		To:       "alice@far.test",
		QueueID:  "0123456789ABCDEF",
		Arrival:  arrival,
		EnvID:    "env-42",
		Size:     int64(len(original)),
		Date:     last,
		Recipients: []Recipient{
			{Final: "bob@example.test", Original: "Team@example.test", Action: ActionFailed, Status: "5.1.1",
				Reason: "mailbox unavailable", Diagnostic: "mailbox unavailable", DiagnosticType: "X-Postern", LastAttempt: last},
			{Final: "carol@remote.test", Action: ActionFailed, Status: "5.0.0", Reason: "rejected by the remote server",
				Diagnostic: "550 5.7.1 go away", RemoteMTA: "mx.remote.test", LastAttempt: last},
		},
	}
	raw := write(t, r, original)
	p := parse(t, raw)
	h := p.msg.Header
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || from.Name != "Mail Delivery System" || from.Address != "MAILER-DAEMON@mx.example.test" {
		t.Errorf("From %q: %v", h.Get("From"), err)
	}
	if to, err := mail.ParseAddress(h.Get("To")); err != nil || to.Address != "alice@far.test" {
		t.Errorf("To %q: %v", h.Get("To"), err)
	}
	if got := h.Get("Subject"); got != FailureSubject {
		t.Errorf("Subject %q", got)
	}
	if got := h.Get("Auto-Submitted"); got != "auto-replied" {
		t.Errorf("Auto-Submitted %q", got)
	}
	if d, err := h.Date(); err != nil || !d.Equal(last) {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	if ids, err := h.AddressList("Message-ID"); err != nil || len(ids) != 1 || !strings.HasSuffix(ids[0].Address, "@mx.example.test") {
		t.Errorf("Message-ID %q: %v", h.Get("Message-ID"), err)
	}
	if h.Get("MIME-Version") != "1.0" || p.params["report-type"] != "delivery-status" {
		t.Errorf("MIME-Version %q, report-type %q", h.Get("MIME-Version"), p.params["report-type"])
	}

	// Part 1: words naming every recipient and why.
	if ct := p.parts[0].Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("part 1 is %q", ct)
	}
	text := string(p.bodies[0])
	for _, want := range []string{"bob@example.test", "mailbox unavailable", "Team@example.test", "carol@remote.test",
		"mx.remote.test said: 550 5.7.1 go away", "could not be delivered", "0123456789ABCDEF", "attached below"} {
		if !strings.Contains(text, want) {
			t.Errorf("human part lacks %q:\n%s", want, text)
		}
	}

	// Part 2: the machine-readable fields.
	if ct := p.parts[1].Header.Get("Content-Type"); ct != "message/delivery-status" {
		t.Errorf("part 2 is %q", ct)
	}
	pm := p.perMsg
	if pm.Get("Reporting-MTA") != "dns; mx.example.test" || pm.Get("Original-Envelope-Id") != "env-42" {
		t.Errorf("per-message fields: %v", pm)
	}
	if d, err := mail.ParseDate(pm.Get("Arrival-Date")); err != nil || !d.Equal(arrival) {
		t.Errorf("Arrival-Date %q: %v", pm.Get("Arrival-Date"), err)
	}
	if len(p.perRcpt) != 2 {
		t.Fatalf("%d recipient blocks:\n%s", len(p.perRcpt), p.bodies[1])
	}
	b := p.perRcpt[0]
	want := map[string]string{
		"Final-Recipient":    "rfc822;bob@example.test",
		"Original-Recipient": "rfc822;Team@example.test",
		"Action":             "failed",
		"Status":             "5.1.1",
		"Diagnostic-Code":    "X-Postern; mailbox unavailable",
	}
	for k, v := range want {
		if got := b.Get(k); got != v {
			t.Errorf("recipient 1 %s = %q, want %q", k, got, v)
		}
	}
	if d, err := mail.ParseDate(b.Get("Last-Attempt-Date")); err != nil || !d.Equal(last) {
		t.Errorf("Last-Attempt-Date %q: %v", b.Get("Last-Attempt-Date"), err)
	}
	if b.Get("Will-Retry-Until") != "" || b.Get("Remote-MTA") != "" {
		t.Errorf("unexpected fields in %v", b)
	}
	c := p.perRcpt[1]
	if c.Get("Final-Recipient") != "rfc822;carol@remote.test" || c.Get("Original-Recipient") != "" ||
		c.Get("Status") != "5.0.0" || c.Get("Diagnostic-Code") != "smtp; 550 5.7.1 go away" ||
		c.Get("Remote-MTA") != "dns; mx.remote.test" {
		t.Errorf("recipient 2: %v", c)
	}

	// Part 3: the whole original.
	if ct := p.parts[2].Header.Get("Content-Type"); ct != "message/rfc822" {
		t.Errorf("part 3 is %q", ct)
	}
	if got := string(p.bodies[2]); got != original {
		t.Errorf("original not returned intact:\n got %q\nwant %q", got, original)
	}
	inner, err := mail.ReadMessage(bytes.NewReader(p.bodies[2]))
	if err != nil || inner.Header.Get("Message-ID") != "<orig@far.test>" {
		t.Errorf("returned message: %v", err)
	}
	// Every line ends in CRLF and none is longer than RFC 5322 §2.1.1 allows.
	for i, line := range bytes.SplitAfter(raw, []byte("\n")) {
		if len(line) > 0 && !bytes.HasSuffix(line, []byte("\r\n")) {
			t.Errorf("line %d lacks CRLF: %q", i, line)
		}
		if len(line) > 1000 {
			t.Errorf("line %d is %d bytes", i, len(line))
		}
	}
}

func TestHeadersOnly(t *testing.T) {
	for name, r := range map[string]*Report{
		"ret=hdrs": {Ret: "HDRS", Size: int64(len(original))},
		"large":    {Size: DefaultMaxFull + 1},
		"maxfull":  {Size: int64(len(original)), MaxFull: 10},
	} {
		t.Run(name, func(t *testing.T) {
			r.Kind, r.Hostname, r.To = Failure, "mx.example.test", "alice@far.test"
			r.Recipients = []Recipient{{Final: "bob@example.test", Action: ActionFailed, Status: "5.2.2", Reason: "mailbox full"}}
			p := parse(t, write(t, r, original))
			if ct := p.parts[2].Header.Get("Content-Type"); ct != "text/rfc822-headers" {
				t.Errorf("part 3 is %q", ct)
			}
			hdr, _, _ := strings.Cut(original, "\r\n\r\n")
			if got := string(p.bodies[2]); got != hdr+"\r\n" {
				t.Errorf("headers:\n got %q\nwant %q", got, hdr+"\r\n")
			}
			if strings.Contains(string(p.rawBytes), "body line") {
				t.Error("the body was returned")
			}
			if !strings.Contains(string(p.bodies[0]), "header section") {
				t.Errorf("the note does not say only headers are attached:\n%s", p.bodies[0])
			}
		})
	}
}

func TestDelayReport(t *testing.T) {
	until := time.Date(2025, 3, 6, 10, 0, 0, 0, time.UTC)
	r := &Report{
		Kind: Delay, Hostname: "mx.example.test", To: "alice@far.test", Size: int64(len(original)),
		Recipients: []Recipient{{Final: "bob@example.test", Action: ActionDelayed, Status: "4.3.0",
			Reason: "local delivery agent unavailable", WillRetryUntil: until, LastAttempt: until.Add(-time.Hour)}},
	}
	p := parse(t, write(t, r, original))
	if got := p.msg.Header.Get("Subject"); got != DelaySubject {
		t.Errorf("Subject %q", got)
	}
	b := p.perRcpt[0]
	if b.Get("Action") != "delayed" || b.Get("Status") != "4.3.0" || b.Get("Diagnostic-Code") != "" {
		t.Errorf("recipient block %v", b)
	}
	if d, err := mail.ParseDate(b.Get("Will-Retry-Until")); err != nil || !d.Equal(until) {
		t.Errorf("Will-Retry-Until %q: %v", b.Get("Will-Retry-Until"), err)
	}
	if ct := p.parts[2].Header.Get("Content-Type"); ct != "text/rfc822-headers" {
		t.Errorf("a delay warning returns %q, want headers only", ct)
	}
	if !strings.Contains(string(p.bodies[0]), "keeps trying") || !strings.Contains(string(p.bodies[0]), "local delivery agent unavailable") {
		t.Errorf("note:\n%s", p.bodies[0])
	}
}

func TestStatusClassFollowsAction(t *testing.T) {
	for _, c := range []struct{ action, in, want string }{
		{ActionFailed, "4.4.7", "5.4.7"},
		{ActionFailed, "5.1.1", "5.1.1"},
		{ActionDelayed, "5.3.0", "4.3.0"},
		{ActionFailed, "", "5.0.0"},
		{ActionFailed, "garbage\r\nX-Evil: 1", "5.0.0"},
	} {
		if got := statusCode(Recipient{Action: c.action, Status: c.in}); got != c.want {
			t.Errorf("statusCode(%s, %q) = %q, want %q", c.action, c.in, got, c.want)
		}
	}
}

func TestHostileText(t *testing.T) {
	r := &Report{
		Kind: Failure, Hostname: "mx.example.test", To: "alice@far.test\r\nBcc: victim@x", Size: 10,
		Recipients: []Recipient{{Final: "bob@example.test\r\nX-Injected: yes", Action: ActionFailed, Status: "5.1.1",
			Diagnostic: "550 " + strings.Repeat("x", 5000) + "\r\nX-Injected: yes", Original: "rfc822;odd@example.test"}},
	}
	// An original without a final CRLF and without a header/body separator.
	p := parse(t, write(t, r, "Subject: x\r\nno end"))
	if p.msg.Header.Get("Bcc") != "" {
		t.Error("header injection through To")
	}
	if len(p.perRcpt) != 1 || p.perRcpt[0].Get("X-Injected") != "" {
		t.Errorf("field injection in the status part: %v", p.perRcpt)
	}
	if got := p.perRcpt[0].Get("Original-Recipient"); got != "rfc822;odd@example.test" {
		t.Errorf("typed ORCPT: %q", got)
	}
	if !strings.HasSuffix(string(p.bodies[2]), "no end\r\n") {
		t.Errorf("unterminated original: %q", p.bodies[2])
	}
}

func TestUTF8(t *testing.T) {
	r := &Report{
		Kind: Failure, Hostname: "mx.example.test", To: "jösé@far.test", UTF8: true, EightBit: true, Size: 10,
		Recipients: []Recipient{{Final: "bøb@example.test", Action: ActionFailed, Status: "5.1.1"}},
	}
	raw := write(t, r, "Subject: caf\xc3\xa9\r\n\r\nx\r\n")
	p := parse(t, raw)
	if p.params["report-type"] != "global-delivery-status" || p.parts[1].Header.Get("Content-Type") != "message/global-delivery-status" ||
		p.parts[2].Header.Get("Content-Type") != "message/global" {
		t.Errorf("RFC 6533 types not used:\n%s", raw)
	}
	if got := p.perRcpt[0].Get("Final-Recipient"); got != "utf-8;bøb@example.test" {
		t.Errorf("Final-Recipient %q", got)
	}
}

func TestErrors(t *testing.T) {
	var out bytes.Buffer
	if err := Write(&out, &Report{Hostname: "h"}, strings.NewReader("")); err == nil {
		t.Error("no recipients accepted")
	}
	if err := Write(&out, &Report{Hostname: "h", Recipients: []Recipient{{Final: "a@b", Action: "delivered"}}}, strings.NewReader("")); err == nil {
		t.Error("a delivered action accepted")
	}
	r := &Report{Hostname: "h", Recipients: []Recipient{{Final: "a@b", Action: ActionFailed}}}
	if err := Write(&out, r, io.MultiReader(strings.NewReader("x"), errReader{})); err == nil {
		t.Error("a read error of the original was not reported")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// FuzzWrite feeds hostile recipients, diagnostics and originals to Write: it must never
// panic, and what it writes must always parse as a three-part report.
func FuzzWrite(f *testing.F) {
	f.Add("bob@example.test", "550 no", "5.1.1", original, false, "")
	f.Add("a\r\nb", "\x00\xff", "x", "no headers at all", true, "HDRS")
	f.Add("rfc822;x@y", strings.Repeat("d", 2000), "4.4.7", "\r\n\r\n", false, "FULL")
	f.Fuzz(func(t *testing.T, addr, diag, status, orig string, delay bool, ret string) {
		r := &Report{Hostname: "mx.example.test", To: addr, Ret: ret, Size: int64(len(orig)),
			Recipients: []Recipient{{Final: addr, Original: addr + "x", Action: ActionFailed, Status: status, Diagnostic: diag, Reason: diag}}}
		if delay {
			r.Kind = Delay
			r.Recipients[0].Action = ActionDelayed
		}
		var out bytes.Buffer
		if err := Write(&out, r, strings.NewReader(orig)); err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(&out)
		if err != nil {
			t.Fatalf("unreadable report: %v", err)
		}
		_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(msg.Body, params["boundary"])
		n := 0
		for {
			part, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("part %d: %v", n, err)
			}
			io.Copy(io.Discard, part)
			n++
		}
		if n != 3 {
			t.Fatalf("%d parts", n)
		}
	})
}

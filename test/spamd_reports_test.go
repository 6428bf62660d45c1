package test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"postern/pkg/dmarc"
)

// reportOf returns the parsed XML of the gzipped attachment of a DMARC aggregate report
// mail, with the attachment's file name; it fails the test when there is none.
func reportOf(t *testing.T, msg []byte) (*dmarc.Feedback, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("report Content-Type: %v\n%s", err, msg)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no application/gzip attachment: %v\n%s", err, msg)
		}
		if mt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); mt != "application/gzip" {
			continue
		}
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			r = base64.NewDecoder(base64.StdEncoding, p)
		}
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		var f dmarc.Feedback
		if err := xml.NewDecoder(zr).Decode(&f); err != nil {
			t.Fatalf("the report's XML: %v", err)
		}
		return &f, p.FileName()
	}
}

// TestDMARCAggregateReport sends two messages over port 25 from a domain whose DMARC
// record asks for aggregate reports at demo@example.test (a local mailbox, authorized
// by the verification record of RFC 7489 §7.1) and at an outside address that did not
// authorize them; `mailctl spam reports list` shows them pending, and after `mailctl
// spam reports send` a report arrives in demo's INBOX, DKIM-signed by example.test,
// with the Subject of §7.2.1.1 and a gzipped XML attachment that names the client
// address and counts both messages. Nothing is pending afterwards.
func TestDMARCAggregateReport(t *testing.T) {
	publish(t,
		`rua-sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.rua-sender.test. 300 IN TXT "v=DMARC1; p=quarantine; rua=mailto:demo@example.test,mailto:dmarc@unverified.test"`,
		`rua-sender.test._report._dmarc.example.test. 300 IN TXT "v=DMARC1"`,
	)
	in := NewInstance(t, "")
	in.SetConfig("spamd", "dmarc_reports", "true")
	in.SetConfig("spamd", "dmarc_report_org", `"Postern test"`)
	in.Mailctl("", "dkim", "generate", "example.test", "--selector", "rep")
	in.Stop()
	in.Start()
	const rcpt = "demo@example.test"
	for i := 0; i < 2; i++ {
		msg := fmt.Sprintf("From: <news@rua-sender.test>\r\nTo: <%s>\r\nSubject: news %d\r\nMessage-ID: <news%d@rua-sender.test>\r\n\r\nhello\r\n", rcpt, i, i)
		if got := dataReply(t, in, "news@rua-sender.test", rcpt, msg); !strings.HasPrefix(got, "250 ") {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	in.WaitMessages(rcpt, 2, 10*time.Second)
	pending := regexp.MustCompile(`(?m)^rua-sender\.test\s+2\s+1\s`)
	in.WaitFor("the evaluations pending", 10*time.Second, func() bool { return pending.MatchString(in.Mailctl("", "spam", "reports", "list")) })

	out := in.Mailctl("", "spam", "reports", "send")
	if !regexp.MustCompile(`rua-sender\.test: 2 messages, report \S+ queued as [0-9A-Z]{16} to demo@example\.test\n`).MatchString(out) ||
		!strings.Contains(out, "skipped mailto:dmarc@unverified.test") {
		t.Fatalf("spam reports send:\n%s", out)
	}
	var report []byte
	in.WaitFor("the report in demo's INBOX", 20*time.Second, func() bool {
		for _, m := range in.Messages(rcpt) {
			if bytes.Contains(m, []byte("Subject: Report Domain: rua-sender.test")) {
				report = m
				return true
			}
		}
		return false
	})
	m, err := mail.ReadMessage(bytes.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	subject := strings.Join(strings.Fields(m.Header.Get("Subject")), " ")
	if !regexp.MustCompile(`^Report Domain: rua-sender\.test Submitter: mail\.example\.test Report-ID: <[^@>]+@mail\.example\.test>$`).MatchString(subject) {
		t.Errorf("Subject: %q", subject)
	}
	if from := m.Header.Get("From"); from != `"Postern test" <postmaster@example.test>` {
		t.Errorf("From: %q", from)
	}
	if !regexp.MustCompile(`(?s)DKIM-Signature: .*d=example\.test`).Match(report) {
		t.Errorf("the report is not DKIM-signed by example.test:\n%.1500s", report)
	}
	f, name := reportOf(t, report)
	if !regexp.MustCompile(`^mail\.example\.test!rua-sender\.test!\d+!\d+\.xml\.gz$`).MatchString(name) {
		t.Errorf("attachment file name %q", name)
	}
	if f.PolicyPublished.Domain != "rua-sender.test" || f.PolicyPublished.P != "quarantine" || f.ReportMetadata.OrgName != "Postern test" {
		t.Errorf("report: %+v %+v", f.ReportMetadata, f.PolicyPublished)
	}
	if len(f.Records) != 1 {
		t.Fatalf("records: %+v", f.Records)
	}
	row := f.Records[0]
	if row.Row.SourceIP != "127.0.0.1" || row.Row.Count != 2 || row.Row.PolicyEvaluated.SPF != "pass" || row.Row.PolicyEvaluated.Disposition != "none" ||
		row.Identifiers.HeaderFrom != "rua-sender.test" || len(row.AuthResults.SPF) != 1 || row.AuthResults.SPF[0].Result != "pass" {
		t.Errorf("record: %+v", row)
	}
	if out := in.Mailctl("", "spam", "reports", "list"); !strings.Contains(out, "no evaluations pending") {
		t.Errorf("spam reports list after sending:\n%s", out)
	}
}

package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/dmarc"
)

// sentReport is a report the reporter handed to the queue.
type sentReport struct {
	to  []string
	msg []byte
}

// newReporter returns a Checker that records into a fresh database and a reporter of
// that database whose reports are kept in the slice returned.
func newReporter(t *testing.T) (*Checker, *reporter, *[]sentReport, func()) {
	t.Helper()
	c, dns, _ := newChecker(t)
	if err := dns.Add(
		`rua.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`_dmarc.rua.test. 300 IN TXT "v=DMARC1; p=reject; adkim=s; fo=1; rua=mailto:agg@rua.test,mailto:ext@reports.example!10m,mailto:unauth@other.example,mailto:tiny@rua.test!100,https://rua.test/x"`,
		`rua.test._report._dmarc.reports.example. 300 IN TXT "v=DMARC1"`,
		`_dmarc.tiny.test. 300 IN TXT "v=DMARC1; p=none; rua=mailto:t@tiny.test!100"`,
	); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "spamd.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec, err := newRecorder(db, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go rec.run(ctx)
	c.Record = rec.Record
	var sent []sentReport
	r := &reporter{db: db, dns: c.DNS, enabled: true, interval: 24 * time.Hour, org: "Example Receiver",
		from: "dmarc@example.test", submitter: "mx.example.test", log: log, now: time.Now,
		submit: func(_ context.Context, to []string, msg []byte) (string, error) {
			sent = append(sent, sentReport{to, msg})
			return "QUEUEID", nil
		}}
	// flushed waits until the recorder wrote n records.
	flushed := func(n int) func() {
		return func() {
			t.Helper()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				got := 0
				db.View(func(tx *bolt.Tx) error { got = tx.Bucket(dmarcBucket).Stats().KeyN; return nil })
				if got >= n {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d records written, want %d", got, n)
				}
			}
		}
	}
	return c, r, &sent, flushed(3)
}

// attachment returns the gzipped XML of a report mail, parsed, and the attachment's
// file name.
func attachment(t *testing.T, msg []byte) (*dmarc.Feedback, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no application/gzip part: %v\n%s", err, msg)
		}
		if p.Header.Get("Content-Type") != "application/gzip; name=\""+p.FileName()+"\"" {
			continue
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		var f dmarc.Feedback
		if err := xml.NewDecoder(zr).Decode(&f); err != nil {
			t.Fatal(err)
		}
		return &f, p.FileName()
	}
}

// TestAggregateReport records three DMARC evaluations of rua.test (two passes from
// one address, a forged From: from another) and one of reject.test, which asks for no
// reports, and checks the report: to the rua= addresses in the domain and to the one
// outside it that agreed (RFC 7489 §7.1), not to the one that did not nor to the one
// whose size limit is too small; the Subject and file name of §7.2.1.1; one row per
// source with its count; and the records gone after.
func TestAggregateReport(t *testing.T) {
	c, r, sent, flushed := newReporter(t)
	check(c, "192.0.2.1", "x@rua.test", "From: x@rua.test\r\n\r\none\r\n")
	check(c, "192.0.2.1", "x@rua.test", "From: x@rua.test\r\n\r\ntwo\r\n")
	if v := check(c, "203.0.113.5", "x@soft.test", "From: boss@rua.test\r\n\r\nforged\r\n"); v.Action != "reject" {
		t.Fatalf("forged: %+v", v)
	}
	check(c, "203.0.113.5", "x@soft.test", "From: boss@reject.test\r\n\r\nforged\r\n")
	flushed()
	list, err := r.Pending()
	if err != nil || len(list.Domains) != 2 || list.Domains[1].Domain != "rua.test" || list.Domains[1].Messages != 3 || list.Domains[1].Sources != 2 {
		t.Fatalf("pending: %+v %v", list, err)
	}
	res, err := r.Send(context.Background(), time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[1].Domain != "rua.test" || res[1].QueueID != "QUEUEID" || res[0].Domain != "reject.test" || res[0].QueueID != "" || res[0].Kept {
		t.Fatalf("sent: %+v", res)
	}
	res = res[1:]
	if len(*sent) != 1 || strings.Join((*sent)[0].to, " ") != "agg@rua.test ext@reports.example" {
		t.Fatalf("reports to %v", *sent)
	}
	if skipped := strings.Join(res[0].Skipped, "\n"); !strings.Contains(skipped, "unauth@other.example") || !strings.Contains(skipped, "tiny@rua.test") || !strings.Contains(skipped, "https://") {
		t.Errorf("skipped:\n%s", skipped)
	}
	msg := (*sent)[0].msg
	m, _ := mail.ReadMessage(bytes.NewReader(msg))
	subject := strings.Join(strings.Fields(m.Header.Get("Subject")), " ")
	if want := "Report Domain: rua.test Submitter: mx.example.test Report-ID: <" + res[0].ReportID + "@mx.example.test>"; subject != want {
		t.Errorf("Subject: %q, want %q", subject, want)
	}
	if m.Header.Get("From") != `"Example Receiver" <dmarc@example.test>` {
		t.Errorf("From: %q", m.Header.Get("From"))
	}
	f, name := attachment(t, msg)
	if want := "mx.example.test!rua.test!" + itoa(f.ReportMetadata.DateRange.Begin) + "!" + itoa(f.ReportMetadata.DateRange.End) + ".xml.gz"; name != want {
		t.Errorf("file name %q, want %q", name, want)
	}
	pp := f.PolicyPublished
	if pp.Domain != "rua.test" || pp.P != "reject" || pp.ADKIM != "s" || pp.ASPF != "r" || pp.Pct != 100 || pp.FO != "1" {
		t.Errorf("policy_published %+v", pp)
	}
	if f.ReportMetadata.OrgName != "Example Receiver" || f.ReportMetadata.Email != "dmarc@example.test" || f.ReportMetadata.ReportID != res[0].ReportID {
		t.Errorf("report_metadata %+v", f.ReportMetadata)
	}
	if len(f.Records) != 2 {
		t.Fatalf("records %+v", f.Records)
	}
	pass, forged := f.Records[0], f.Records[1]
	if pass.Row.SourceIP != "192.0.2.1" || pass.Row.Count != 2 || pass.Row.PolicyEvaluated.Disposition != "none" || pass.Row.PolicyEvaluated.DKIM != "fail" || pass.Row.PolicyEvaluated.SPF != "pass" || len(pass.Row.PolicyEvaluated.Reasons) != 0 ||
		pass.Identifiers.HeaderFrom != "rua.test" || pass.Identifiers.EnvelopeFrom != "rua.test" ||
		len(pass.AuthResults.SPF) != 1 || pass.AuthResults.SPF[0] != (dmarc.SPFAuthResult{Domain: "rua.test", Scope: "mfrom", Result: "pass"}) {
		t.Errorf("the passing row: %+v", pass)
	}
	if forged.Row.SourceIP != "203.0.113.5" || forged.Row.Count != 1 || forged.Row.PolicyEvaluated.Disposition != "reject" ||
		forged.Row.PolicyEvaluated.SPF != "fail" || forged.Identifiers.EnvelopeFrom != "soft.test" || forged.AuthResults.SPF[0].Result != "softfail" {
		t.Errorf("the forged row: %+v", forged)
	}
	// Reported, and reject.test's dropped: nothing pending.
	if list, err := r.Pending(); err != nil || len(list.Domains) != 0 {
		t.Errorf("pending after the run: %+v %v", list, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestAggregateReportKept checks that a report that cannot be queued, or whose policy
// cannot be looked up, keeps its records for the next run.
func TestAggregateReportKept(t *testing.T) {
	c, r, sent, flushed := newReporter(t)
	for i := 0; i < 3; i++ {
		check(c, "192.0.2.1", "x@rua.test", "From: x@rua.test\r\n\r\nhi\r\n")
	}
	flushed()
	submit := r.submit
	r.submit = func(context.Context, []string, []byte) (string, error) { return "", errors.New("cleanup down") }
	res, err := r.Send(context.Background(), time.Now().Add(time.Second))
	if err != nil || len(res) != 1 || !res[0].Kept {
		t.Fatalf("queue down: %+v %v", res, err)
	}
	if list, _ := r.Pending(); len(list.Domains) != 1 || list.Domains[0].Messages != 3 {
		t.Fatalf("pending after a failed run: %+v", list)
	}
	r.submit = submit
	res, err = r.Send(context.Background(), time.Now().Add(time.Second))
	if err != nil || len(res) != 1 || res[0].QueueID == "" || len(*sent) != 1 {
		t.Fatalf("second run: %+v %v", res, err)
	}
	if f, _ := attachment(t, (*sent)[0].msg); f.Records[0].Row.Count != 3 {
		t.Errorf("count %d", f.Records[0].Row.Count)
	}
}

// TestErrorReport checks §7.2.2: a report over every destination's size limit is
// replaced by a short error report to them.
func TestErrorReport(t *testing.T) {
	c, r, sent, flushed := newReporter(t)
	for i := 0; i < 3; i++ {
		check(c, "192.0.2.1", "x@tiny.test", "From: x@tiny.test\r\n\r\nhi\r\n")
	}
	flushed()
	res, err := r.Send(context.Background(), time.Now().Add(time.Second))
	if err != nil || len(res) != 1 || res[0].QueueID == "" || !strings.Contains(res[0].Error, "error report") || len(*sent) != 1 {
		t.Fatalf("sent %+v %v", res, err)
	}
	msg := (*sent)[0].msg
	if !bytes.Contains(msg, []byte("Submitter: mx.example.test\r\nSubmitting-URI: mailto:t@tiny.test\r\n")) || !bytes.Contains(msg, []byte("Report-Size: ")) ||
		bytes.Contains(msg, []byte("application/gzip")) || strings.Join((*sent)[0].to, " ") != "t@tiny.test" {
		t.Errorf("error report to %v:\n%s", (*sent)[0].to, msg)
	}
}

// TestRowReasons checks the override reasons of a row: a disposition other than the
// policy applied is local policy (spamd's score, dmarc_reject = "junk"); a policy
// lowered by pct is sampled_out.
func TestRowReasons(t *testing.T) {
	for _, c := range []struct {
		result, published, applied, action, disposition, reason string
	}{
		{dmarc.Fail, dmarc.Reject, dmarc.Reject, "reject", dmarc.Reject, ""},
		{dmarc.Fail, dmarc.Reject, dmarc.Reject, "junk", dmarc.Quarantine, dmarc.ReasonLocalPolicy},
		{dmarc.Fail, dmarc.Reject, dmarc.Quarantine, "junk", dmarc.Quarantine, dmarc.ReasonSampledOut},
		{dmarc.Fail, dmarc.Quarantine, dmarc.Quarantine, "junk", dmarc.Quarantine, ""},
		{dmarc.Pass, dmarc.Reject, dmarc.None, "accept", dmarc.None, ""},
		{dmarc.Pass, dmarc.Reject, dmarc.None, "junk", dmarc.Quarantine, dmarc.ReasonLocalPolicy},
	} {
		k := rowOf(&dmarcRecord{Result: c.result, Published: c.published, Applied: c.applied, Disposition: c.action, SourceIP: "192.0.2.1", HeaderFrom: "a.test"})
		if k.disposition != c.disposition || k.reason != c.reason {
			t.Errorf("%+v: disposition %q reason %q", c, k.disposition, k.reason)
		}
	}
}

// TestNextRun checks that reports go out on multiples of the interval (RFC 7489 §7.2:
// hour boundaries; midnight UTC for daily reports).
func TestNextRun(t *testing.T) {
	at := time.Date(2026, 12, 7, 18, 42, 5, 0, time.UTC)
	if got := nextRun(at, 24*time.Hour); !got.Equal(time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("daily: %v", got)
	}
	if got := nextRun(at, time.Hour); !got.Equal(time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)) {
		t.Errorf("hourly: %v", got)
	}
}

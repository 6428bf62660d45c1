package main

import (
	"bytes"
	"os"
	"testing"

	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/queue"
)

// TestReports checks what cleanup takes from spamd as a report: the null sender, no
// client or account, From: the configured reporter address; such a report is signed
// with the domain's DKIM keys and marked "with local". Anything else is refused, and a
// peer that may send only reports cannot send other mail.
func TestReports(t *testing.T) {
	var onlyReports bool
	cl, spool, keys := startSigningWith(t, func(c *Cleanup) {
		c.Reports = ReportPolicy{From: "dmarc@example.test", OnlyReports: func(ipc.Cred) bool { return onlyReports }}
	})
	report := func() *enqueue.Envelope {
		return &enqueue.Envelope{Report: true, Recipients: []enqueue.Recipient{{Addr: "rua@other.test"}}}
	}
	msg := "From: Reporter <DMARC@example.test>\r\nSubject: Report Domain: other.test Submitter: mx.example.test Report-ID: <x@y>\r\n\r\nreport\r\n"
	res, err := send(t, cl, report(), msg)
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, spool, res.QueueID)
	verify(t, b, keys, "example.test")
	if !bytes.Contains(b, []byte("with local id "+res.QueueID)) {
		t.Errorf("queued report:\n%s", b)
	}
	qf, err := queue.Open(spool.Path(queue.Incoming, res.QueueID))
	if err != nil {
		t.Fatal(err)
	}
	if qf.Envelope.From != "" || qf.Envelope.ClientAddr != "" {
		t.Errorf("report envelope %+v", qf.Envelope)
	}
	qf.Close()

	for name, c := range map[string]struct {
		env  func() *enqueue.Envelope
		msg  string
		code string
	}{
		"another From:":       {report, "From: postmaster@example.test\r\n\r\nx\r\n", enqueue.CodeRejected},
		"two From: addresses": {report, "From: dmarc@example.test, boss@example.test\r\n\r\nx\r\n", enqueue.CodeRejected},
		"no From:":            {report, "Subject: x\r\n\r\nx\r\n", enqueue.CodeRejected},
		"a sender":            {func() *enqueue.Envelope { e := report(); e.From = "dmarc@example.test"; return e }, msg, "invalid"},
		"a client":            {func() *enqueue.Envelope { e := report(); e.ClientAddr = "192.0.2.1"; return e }, msg, "invalid"},
		"an account":          {func() *enqueue.Envelope { e := report(); e.AuthUser = "a@example.test"; return e }, msg, "invalid"},
		"a submission":        {func() *enqueue.Envelope { e := report(); e.Submission = true; return e }, msg, "invalid"},
	} {
		if _, err := send(t, cl, c.env(), c.msg); !ipc.IsCode(err, c.code) {
			t.Errorf("%s: err = %v, want %s", name, err, c.code)
		}
	}
	// spamd's uid sends reports, nothing else.
	onlyReports = true
	if _, err := send(t, cl, &enqueue.Envelope{Bounce: true, Recipients: []enqueue.Recipient{{Addr: "x@other.test"}}}, msg); !ipc.IsCode(err, "denied") {
		t.Errorf("a bounce from a peer that may send only reports: %v", err)
	}
	if _, err := send(t, cl, report(), msg); err != nil {
		t.Errorf("a report from that peer: %v", err)
	}
	ids, _ := spool.List(queue.Incoming)
	if len(ids) != 2 {
		t.Errorf("%d files in incoming, want 2", len(ids))
	}
	os.Remove(spool.Path(queue.Incoming, res.QueueID))
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/queue"
	"postern/pkg/spamcheck"
)

// fakeSpamd answers every check with the verdict of verdict(message), after reading
// the message through the descriptor that came with the request, as spamd does.
func fakeSpamd(t *testing.T, dir string, verdict func(msg string, req *spamcheck.Request) *spamcheck.Verdict) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &ipc.Server{Name: "fake-spamd"}
	s.Handle(spamcheck.OpCheck, func(_ context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
		defer ipc.CloseFiles(files)
		req, err := spamcheck.DecodeRequest(body)
		if err != nil || len(files) != 1 {
			t.Errorf("check request %s with %d files: %v", body, len(files), err)
			return nil, ipc.Errorf("invalid", "bad request")
		}
		b, _ := io.ReadAll(io.NewSectionReader(files[0], req.Offset, req.Size))
		return verdict(string(b), req), nil
	})
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "spamd"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ctx, l)
}

func withSpamd(t *testing.T, tempfail bool, verdict func(string, *spamcheck.Request) *spamcheck.Verdict) func(*Cleanup, string) {
	return func(c *Cleanup, dir string) {
		c.Spam = SpamPolicy{Client: spamcheck.NewClient(filepath.Join(dir, "spamd"), 2*time.Second), Tempfail: tempfail, AuthservID: "mx.example.test"}
		if verdict != nil {
			fakeSpamd(t, dir, verdict)
		}
	}
}

var inbound = &enqueue.Envelope{
	From: "x@other.test", ClientAddr: "192.0.2.1", Helo: "client.other.test", Protocol: "ESMTP", TLS: "TLS1.3 X",
	Recipients: []enqueue.Recipient{{Addr: "a@example.test"}},
}

// TestSpamVerdicts checks what cleanup does with each verdict: the message spamd reads
// is the one queued (Received first, our own forged Authentication-Results removed);
// accept and junk queue it with the verdict's headers in front (junk marked for Junk in
// the envelope); reject and tempfail answer with their codes and leave no file in
// incoming/; a submission is not checked.
func TestSpamVerdicts(t *testing.T) {
	msg := "Authentication-Results: MX.example.test.; dkim=pass header.d=example.test\r\n" +
		"Authentication-Results: other.test; spf=pass\r\n" +
		"Authentication-Results: mx.example.test;\r\n\tdmarc=pass\r\n" +
		"From: x@other.test\r\nSubject: hi\r\n\r\nbody\r\n"
	want := "Authentication-Results: other.test; spf=pass\r\nFrom: x@other.test\r\nSubject: hi\r\n\r\nbody\r\n"
	for _, c := range []struct {
		action, code, text string
		err                string // the refusal, "" if queued
	}{
		{spamcheck.Accept, "", "", ""},
		{spamcheck.Junk, "", "", ""},
		{spamcheck.Reject, "5.7.23", "SPF validation failed", "5.7.23 SPF validation failed"},
		{spamcheck.Tempfail, "", "", "4.7.1 Try again later"},
	} {
		var seen string
		var seenReq *spamcheck.Request
		cl, spool, _ := startWith(t, withSpamd(t, false, func(m string, req *spamcheck.Request) *spamcheck.Verdict {
			seen, seenReq = m, req
			return &spamcheck.Verdict{Action: c.action, Code: c.code, Text: c.text, Score: 7.5, Reasons: []string{"SPF_FAIL=3", "GTUBE=4.5"},
				AuthResults: "mx.example.test;\r\n\tspf=fail smtp.mailfrom=x@other.test"}
		}))
		res, err := send(t, cl, inbound, msg)
		if !strings.HasPrefix(seen, "Received: from client.other.test") || !strings.HasSuffix(seen, want) {
			t.Errorf("%s: spamd saw %q", c.action, seen)
		}
		if seenReq == nil || seenReq.From != "x@other.test" || seenReq.ClientAddr != "192.0.2.1" || seenReq.Helo != "client.other.test" || seenReq.TLS != "TLS1.3 X" || len(seenReq.Recipients) != 1 {
			t.Errorf("%s: request %+v", c.action, seenReq)
		}
		left, _ := os.ReadDir(spool.Dir(queue.Incoming))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: answer %v, want %q", c.action, err, c.err)
			}
			if len(left) != 0 {
				t.Errorf("%s: %d files left in incoming/", c.action, len(left))
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.action, err)
		}
		qf, err := queue.Open(spool.Path(queue.Incoming, res.QueueID))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(qf.Body())
		qf.Close()
		yes := map[bool]string{true: "Yes", false: "No"}[c.action == spamcheck.Junk]
		head := "Authentication-Results: mx.example.test;\r\n\tspf=fail smtp.mailfrom=x@other.test\r\n" +
			"X-Spam-Status: " + yes + ", score=7.5\r\n\ttests=SPF_FAIL=3,GTUBE=4.5\r\n"
		if !strings.HasPrefix(string(b), head) || !strings.HasSuffix(string(b), want) {
			t.Errorf("%s: queued %q", c.action, b)
		}
		if qf.Envelope.Spam != (c.action == spamcheck.Junk) || qf.BodySize() != int64(len(b)) {
			t.Errorf("%s: envelope spam %v", c.action, qf.Envelope.Spam)
		}
	}
	// Submissions are not spamd's business.
	called := false
	cl, _, _ := startWith(t, withSpamd(t, false, func(string, *spamcheck.Request) *spamcheck.Verdict {
		called = true
		return &spamcheck.Verdict{Action: spamcheck.Reject}
	}))
	if _, err := send(t, cl, &enqueue.Envelope{From: "a@example.test", AuthUser: "a@example.test", Submission: true, SendAs: []string{"a@example.test"},
		ClientAddr: "192.0.2.1", Recipients: []enqueue.Recipient{{Addr: "x@other.test"}}}, "From: a@example.test\r\n\r\nhi\r\n"); err != nil || called {
		t.Errorf("submission: %v, spamd asked: %v", err, called)
	}
}

// TestSpamRecipientsExpanded checks that spamd is told the recipients after alias
// expansion, as they are queued: mail to the alias info@ is judged as mail to the account
// b@ (whose own corpus the classifier then uses), mail to team@ as mail to a@ and b@.
func TestSpamRecipientsExpanded(t *testing.T) {
	for rcpt, want := range map[string]string{
		"info@example.test": "b@example.test",
		"team@example.test": "a@example.test b@example.test",
		"A@example.test":    "a@example.test",
	} {
		var seen []string
		cl, _, _ := startWith(t, withSpamd(t, false, func(_ string, req *spamcheck.Request) *spamcheck.Verdict {
			seen = req.Recipients
			return &spamcheck.Verdict{Action: spamcheck.Accept}
		}))
		env := *inbound
		env.Recipients = []enqueue.Recipient{{Addr: rcpt}}
		if _, err := send(t, cl, &env, "From: x@other.test\r\n\r\nbody\r\n"); err != nil {
			t.Fatalf("to %s: %v", rcpt, err)
		}
		if got := strings.Join(seen, " "); got != want {
			t.Errorf("to %s: spamd was told %q, want %q", rcpt, got, want)
		}
	}
}

// TestSpamdDown checks that without spamd a message is queued unchecked, or refused
// with 451 when the configuration says so; never lost, never queued after a 451.
func TestSpamdDown(t *testing.T) {
	for _, tempfail := range []bool{false, true} {
		cl, spool, _ := startWith(t, withSpamd(t, tempfail, nil))
		res, err := send(t, cl, inbound, "From: x@other.test\r\n\r\nbody\r\n")
		left, _ := os.ReadDir(spool.Dir(queue.Incoming))
		if tempfail {
			if !ipc.IsCode(err, enqueue.CodeTempfail) || len(left) != 0 {
				t.Errorf("tempfail: %v, %d files", err, len(left))
			}
			continue
		}
		if err != nil || len(left) != 1 || left[0].Name() != res.QueueID {
			t.Errorf("accept: %v, files %v", err, left)
		}
	}
}

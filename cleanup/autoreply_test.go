package main

import (
	"bytes"
	"os"
	"testing"

	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/queue"
)

// A vacation reply from local is queued from the null sender, DKIM-signed for the
// domain of its From:, which must be one of the account's addresses; the envelope is
// held to what an automatic reply is, and local's uid may send nothing else.
func TestAutoReplies(t *testing.T) {
	var only bool
	cl, spool, keys := startSigningWith(t, func(c *Cleanup) {
		c.OnlyLocal = func(ipc.Cred) bool { return only }
	})
	reply := func() *enqueue.Envelope {
		return &enqueue.Envelope{AutoReply: true, AuthUser: "a@example.test", Recipients: []enqueue.Recipient{{Addr: "ann@other.test"}}}
	}
	msg := "From: team@example.test\r\nTo: <ann@other.test>\r\nSubject: Auto: hi\r\nAuto-Submitted: auto-replied (vacation)\r\n\r\naway\r\n"
	res, err := send(t, cl, reply(), msg)
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, spool, res.QueueID)
	verify(t, b, keys, "example.test")
	if !bytes.Contains(b, []byte("with local id "+res.QueueID)) {
		t.Errorf("queued reply:\n%s", b)
	}
	qf, err := queue.Open(spool.Path(queue.Incoming, res.QueueID))
	if err != nil {
		t.Fatal(err)
	}
	if qf.Envelope.From != "" || len(qf.Envelope.Recipients) != 1 || qf.Envelope.Recipients[0].Addr != "ann@other.test" {
		t.Errorf("reply envelope %+v", qf.Envelope)
	}
	qf.Close()
	os.Remove(spool.Path(queue.Incoming, res.QueueID))

	for name, c := range map[string]struct {
		env  func() *enqueue.Envelope
		msg  string
		code string
	}{
		"From: not the account's": {reply, "From: boss@example.test\r\n\r\nx\r\n", enqueue.CodeRejected},
		"no From:":                {reply, "Subject: x\r\n\r\nx\r\n", enqueue.CodeRejected},
		"a sender":                {func() *enqueue.Envelope { e := reply(); e.From = "a@example.test"; return e }, msg, "invalid"},
		"no account":              {func() *enqueue.Envelope { e := reply(); e.AuthUser = ""; return e }, msg, "invalid"},
		"a client":                {func() *enqueue.Envelope { e := reply(); e.ClientAddr = "192.0.2.1"; return e }, msg, "invalid"},
		"a submission":            {func() *enqueue.Envelope { e := reply(); e.Submission = true; return e }, msg, "invalid"},
		"two recipients": {func() *enqueue.Envelope {
			e := reply()
			e.Recipients = append(e.Recipients, enqueue.Recipient{Addr: "b@other.test"})
			return e
		}, msg, "invalid"},
	} {
		if _, err := send(t, cl, c.env(), c.msg); !ipc.IsCode(err, c.code) {
			t.Errorf("%s: err = %v, want %s", name, err, c.code)
		}
	}
	// local's uid queues automatic replies, nothing else.
	only = true
	if _, err := send(t, cl, &enqueue.Envelope{Bounce: true, Recipients: []enqueue.Recipient{{Addr: "x@other.test"}}}, msg); !ipc.IsCode(err, "denied") {
		t.Errorf("a bounce from a peer that may send only automatic replies: %v", err)
	}
	if _, err := send(t, cl, reply(), msg); err != nil {
		t.Errorf("an automatic reply from that peer: %v", err)
	}
}

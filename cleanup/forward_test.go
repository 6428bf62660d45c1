package main

import (
	"bytes"
	"testing"

	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/queue"
)

// TestForwards checks what cleanup takes from local as a forwarded message (a Sieve
// redirect): the original sender kept, every recipient marked Forward, no DKIM
// signature although the domain of its From: has keys here (the author's, not ours to
// sign), "with local". A forward claiming a client or an account is refused, and a peer
// that may send only forwards cannot send other mail.
func TestForwards(t *testing.T) {
	var onlyForwards bool
	cl, spool, _ := startSigningWith(t, func(c *Cleanup) {
		c.OnlyLocal = func(ipc.Cred) bool { return onlyForwards }
	})
	forward := func() *enqueue.Envelope {
		return &enqueue.Envelope{Forward: true, From: "author@example.test", Recipients: []enqueue.Recipient{{Addr: "target@other.test"}}}
	}
	msg := "From: Author <author@example.test>\r\nSubject: hi\r\n\r\nforwarded\r\n"
	res, err := send(t, cl, forward(), msg)
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, spool, res.QueueID)
	if bytes.Contains(b, []byte("DKIM-Signature")) || !bytes.Contains(b, []byte("with local id "+res.QueueID)) || !bytes.HasSuffix(b, []byte(msg)) {
		t.Errorf("queued forward:\n%s", b)
	}
	qf, err := queue.Open(spool.Path(queue.Incoming, res.QueueID))
	if err != nil {
		t.Fatal(err)
	}
	e := qf.Envelope
	qf.Close()
	if e.From != "author@example.test" || len(e.Recipients) != 1 || !e.Recipients[0].Forward || e.Recipients[0].Addr != "target@other.test" {
		t.Errorf("forward envelope %+v", e)
	}

	for name, env := range map[string]func() *enqueue.Envelope{
		"a client":     func() *enqueue.Envelope { e := forward(); e.ClientAddr = "192.0.2.1"; return e },
		"an account":   func() *enqueue.Envelope { e := forward(); e.AuthUser = "a@example.test"; return e },
		"a submission": func() *enqueue.Envelope { e := forward(); e.Submission = true; return e },
		"a bounce":     func() *enqueue.Envelope { e := forward(); e.Bounce = true; return e },
	} {
		if _, err := send(t, cl, env(), msg); !ipc.IsCode(err, "invalid") {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
	}
	// local's uid sends forwards, nothing else.
	onlyForwards = true
	if _, err := send(t, cl, &enqueue.Envelope{Bounce: true, Recipients: []enqueue.Recipient{{Addr: "x@other.test"}}}, msg); !ipc.IsCode(err, "denied") {
		t.Errorf("a bounce from a peer that may send only forwards: %v", err)
	}
	if _, err := send(t, cl, forward(), msg); err != nil {
		t.Errorf("a forward from that peer: %v", err)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"postern/pkg/auth"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/queue"
)

// start runs cleanup with a fake authd that knows example.test (aliases team@ → a@, b@
// and info@ → b@) and a fake qmgr that records wakeups.
func start(t *testing.T) (*enqueue.Client, queue.Spool, chan string) {
	t.Helper()
	return startWith(t, nil)
}

// startWith is start with a chance to configure the Cleanup (outbound_test.go).
func startWith(t *testing.T, configure func(c *Cleanup, dir string)) (*enqueue.Client, queue.Spool, chan string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cleanup")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	listen := func(name string) *net.UnixListener {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, name), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	authd := &ipc.Server{Name: "fake-authd"}
	authd.Handle(auth.OpResolve, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var req auth.ResolveRequest
		json.Unmarshal(body, &req)
		resolves.Add(1)
		addr := strings.ToLower(req.Address)
		if !strings.HasSuffix(addr, "@example.test") {
			return auth.ResolveResult{}, nil
		}
		switch addr {
		case "team@example.test":
			return auth.ResolveResult{Local: true, Found: true, Targets: []string{"a@example.test", "b@example.test"}}, nil
		case "info@example.test":
			return auth.ResolveResult{Local: true, Found: true, Targets: []string{"b@example.test"}}, nil
		case "a@example.test", "b@example.test":
			return auth.ResolveResult{Local: true, Found: true, Targets: []string{addr}}, nil
		}
		return auth.ResolveResult{Local: true}, nil
	})
	authd.Handle(auth.OpSendAs, fakeSendAs) // outbound_test.go
	go authd.Serve(ctx, listen("auth"))
	wakes := make(chan string, 10)
	qmgr := &ipc.Server{Name: "fake-qmgr"}
	qmgr.Handle(queue.OpWakeup, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var w queue.Wakeup
		json.Unmarshal(body, &w)
		wakes <- w.ID
		return nil, nil
	})
	go qmgr.Serve(ctx, listen("qmgr"))

	spool := queue.Spool{Root: filepath.Join(dir, "spool")}
	spool.Create(0o700)
	c := &Cleanup{
		Hostname: "mx.example.test",
		Spool:    spool,
		Auth:     auth.NewClient(filepath.Join(dir, "auth")),
		Qmgr:     ipc.NewClient(filepath.Join(dir, "qmgr")),
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if configure != nil {
		configure(c, dir)
	}
	srv := c.Server(nil)
	go c.Wakeups(ctx)
	go srv.Serve(ctx, listen("cleanup"))
	cl := enqueue.NewClient(filepath.Join(dir, "cleanup"))
	t.Cleanup(cl.Close)
	return cl, spool, wakes
}

func send(t *testing.T, cl *enqueue.Client, env *enqueue.Envelope, msg string) (enqueue.Result, error) {
	t.Helper()
	tx, err := cl.Begin(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(tx, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	return tx.Commit()
}

func TestQueueFileAndExpansion(t *testing.T) {
	cl, spool, wakes := start(t)
	msg := "From: x@other.test\r\nSubject: hi\r\n\r\nbody\r\n"
	res, err := send(t, cl, &enqueue.Envelope{
		From: "x@other.test", ClientAddr: "127.0.0.1", Helo: "client.test", Protocol: "ESMTP",
		Recipients: []enqueue.Recipient{{Addr: "team@example.test"}, {Addr: "A@example.test"}, {Addr: "nobody@example.test"}},
	}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if id := <-wakes; id != res.QueueID {
		t.Fatalf("woke qmgr for %s, queued %s", id, res.QueueID)
	}
	qf, err := queue.Open(spool.Path(queue.Incoming, res.QueueID))
	if err != nil {
		t.Fatal(err)
	}
	defer qf.Close()
	var got []string
	for _, r := range qf.Envelope.Recipients {
		got = append(got, fmt.Sprintf("%s/%s/%v", r.Addr, r.ORcpt, r.Forward))
	}
	// The alias's targets are forwarded to (qmgr gives them an SRS sender when they
	// are another host's); the account itself, and the unknown address, are not.
	want := "a@example.test/team@example.test/true b@example.test/team@example.test/true nobody@example.test//false"
	if strings.Join(got, " ") != want {
		t.Fatalf("recipients %q, want %q", got, want)
	}
	b, _ := io.ReadAll(qf.Body())
	if !strings.HasPrefix(string(b), "Received: from client.test (unknown [127.0.0.1])\r\n\tby mx.example.test (Postern) with ESMTP id "+res.QueueID+";") {
		t.Fatalf("no Received header first:\n%s", b)
	}
	if !strings.HasSuffix(string(b), "\r\n"+msg) {
		t.Fatalf("message changed:\n%s", b)
	}
	if strings.Contains(string(b), "Message-ID") {
		t.Fatal("Message-ID added to relayed mail")
	}
}

// resolves counts the questions the fake authd was asked.
var resolves atomic.Int64

// A recipient smtpd resolved at RCPT is expanded with that answer: authd is not asked
// again, and the targets are those smtpd was given.
func TestResolutionFromSMTPD(t *testing.T) {
	cl, spool, wakes := start(t)
	before := resolves.Load()
	res, err := send(t, cl, &enqueue.Envelope{
		From: "x@other.test", ClientAddr: "127.0.0.1", Helo: "client.test", Protocol: "ESMTP",
		Recipients: []enqueue.Recipient{{Addr: "team@example.test",
			Resolution: &auth.ResolveResult{Local: true, Found: true, Targets: []string{"b@example.test"}}}},
	}, "Subject: hi\r\n\r\nbody\r\n")
	if err != nil {
		t.Fatal(err)
	}
	<-wakes
	if n := resolves.Load() - before; n != 0 {
		t.Errorf("authd asked %d times for a recipient smtpd had resolved", n)
	}
	qf, err := queue.Open(spool.Path(queue.Incoming, res.QueueID))
	if err != nil {
		t.Fatal(err)
	}
	defer qf.Close()
	if rs := qf.Envelope.Recipients; len(rs) != 1 || rs[0].Addr != "b@example.test" || rs[0].ORcpt != "team@example.test" {
		t.Errorf("recipients %+v, want b@example.test for team@example.test", rs)
	}
}

func TestSubmissionGetsMessageIDAndDate(t *testing.T) {
	cl, spool, _ := start(t)
	res, err := send(t, cl, &enqueue.Envelope{From: "a@example.test", Submission: true,
		Recipients: []enqueue.Recipient{{Addr: "b@example.test"}}}, "Subject: x\r\n\r\nDate: not a header\r\n")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(spool.Path(queue.Incoming, res.QueueID))
	if !strings.Contains(string(b), "\r\nMessage-ID: <"+res.QueueID+"@mx.example.test>\r\nDate: ") {
		t.Fatalf("missing Message-ID/Date:\n%s", b)
	}
	res, err = send(t, cl, &enqueue.Envelope{From: "a@example.test", Submission: true,
		Recipients: []enqueue.Recipient{{Addr: "b@example.test"}}}, "message-id: <x@y>\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nhi\r\n")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(spool.Path(queue.Incoming, res.QueueID))
	if strings.Contains(string(b), "Message-ID: <") || strings.Count(string(b), "Date:") > 0 {
		t.Fatalf("added headers that were there:\n%s", b)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	cl, spool, _ := start(t)
	tx, err := cl.Begin(context.Background(), &enqueue.Envelope{From: "", Recipients: []enqueue.Recipient{{Addr: "a@example.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	tx.Write([]byte("Subject: x\r\n\r\npartial"))
	tx.Abort()
	// The connection is reusable after an abort.
	if _, err := send(t, cl, &enqueue.Envelope{Recipients: []enqueue.Recipient{{Addr: "a@example.test"}}}, "x\r\n"); err != nil {
		t.Fatal(err)
	}
	ids, _ := spool.List(queue.Incoming)
	if len(ids) != 1 {
		t.Fatalf("%d files in incoming, want 1", len(ids))
	}
}

func TestHasField(t *testing.T) {
	for _, c := range []struct {
		section string
		want    bool
	}{
		{"Date: x\r\n", true},
		{"date : x\r\n", true},
		{"X-Date: x\r\n", false},
		{"Subject: x\r\n Date: folded\r\n", false},
	} {
		if got := hasField([]byte(c.section), "Date"); got != c.want {
			t.Errorf("hasField(%q) = %v", c.section, got)
		}
	}
}

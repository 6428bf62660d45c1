package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/queue"
)

// startPublic runs cleanup's public socket (sendmail's) beside the private one that
// startWith runs, with a size limit of max octets.
func startPublic(t *testing.T, max int64) (*enqueue.Client, queue.Spool, string) {
	t.Helper()
	var c *Cleanup
	var dir string
	_, spool, _ := startWith(t, func(cl *Cleanup, d string) { c, dir = cl, d })
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "public"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.PublicServer(max).Serve(ctx, l)
	cl := enqueue.NewClient(filepath.Join(dir, "public"))
	t.Cleanup(cl.Close)
	return cl, spool, filepath.Join(dir, "public")
}

func submit(t *testing.T, cl *enqueue.Client, env *enqueue.Local, msg string) (enqueue.Result, error) {
	t.Helper()
	tx, err := cl.BeginLocal(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(tx, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	return tx.Commit()
}

// A local submission carries the submitting user from SO_PEERCRED: the Received header
// names the uid, the default sender is the user at the host name, and a message without
// From: gets one with -F's name.
func TestLocalSubmission(t *testing.T) {
	cl, spool, _ := startPublic(t, 1<<20)
	res, err := submit(t, cl, &enqueue.Local{FullName: "Cron Daemon\r\nBcc: evil@other.test", Recipients: []string{"a@example.test", "postmaster"}},
		"Subject: cron\r\n\r\nbody\r\n")
	if err != nil {
		t.Fatal(err)
	}
	qf, err := queue.Open(spool.Path(queue.Incoming, res.QueueID))
	if err != nil {
		t.Fatal(err)
	}
	defer qf.Close()
	me := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	e := qf.Envelope
	if e.From != me+"@mx.example.test" || !e.Local || e.LocalUID != os.Getuid() || e.AuthUser != "" {
		t.Errorf("envelope from=%q local=%v uid=%d auth=%q, want %s@mx.example.test, uid %d", e.From, e.Local, e.LocalUID, e.AuthUser, me, os.Getuid())
	}
	if len(e.Recipients) != 2 || e.Recipients[1].Addr != "postmaster@mx.example.test" {
		t.Errorf("recipients %+v, want a@example.test and postmaster@mx.example.test", e.Recipients)
	}
	b, _ := io.ReadAll(qf.Body())
	want := "Received: by mx.example.test (Postern, from userid " + strconv.Itoa(os.Getuid()) + ")\r\n\tid " + res.QueueID + ";"
	if !strings.HasPrefix(string(b), want) {
		t.Errorf("no Received header naming the uid first:\n%s", b)
	}
	if !strings.Contains(string(b), "\r\nFrom: \"Cron DaemonBcc: evil@other.test\" <"+me+"@mx.example.test>\r\n") {
		t.Errorf("no From: made of -F's name (without its CRLF) and the sender:\n%s", b)
	}
	if !strings.Contains(string(b), "\r\nMessage-ID: <") {
		t.Errorf("no Message-ID added:\n%s", b)
	}
}

// What a local user may not do: claim what smtpd alone may tell cleanup, give a bad
// address, or send more than the size limit; each is refused with the code sendmail
// turns into its exit status.
func TestLocalSubmissionRefusals(t *testing.T) {
	cl, spool, path := startPublic(t, 600)
	// An OpEnqueue envelope on the public socket is an unknown operation.
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c := ipc.NewConn(conn.(*net.UnixConn))
	if _, err := c.Call(enqueue.OpEnqueue, enqueue.Envelope{From: "x@example.test", AuthUser: "a@example.test", Submission: true}, nil); err == nil {
		t.Error("the public socket took a private enqueue request")
	}
	c.Close()
	// -f is the sender; the message is a local user's, not an account's.
	res, err := submit(t, cl, &enqueue.Local{Sender: "a@example.test", Recipients: []string{"b@example.test"}}, "From: a@example.test\r\n\r\nhi\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if qf, err := queue.Open(spool.Path(queue.Incoming, res.QueueID)); err != nil || qf.Envelope.AuthUser != "" || qf.Envelope.From != "a@example.test" {
		t.Fatalf("queued %+v, %v", qf, err)
	}
	for _, tc := range []struct {
		env  enqueue.Local
		msg  string
		code string
	}{
		{enqueue.Local{Recipients: []string{"bad address@"}}, "x\r\n", enqueue.CodeRejected},
		{enqueue.Local{Sender: "<>@x", Recipients: []string{"b@example.test"}}, "x\r\n", enqueue.CodeRejected},
		{enqueue.Local{}, "x\r\n", enqueue.CodeRejected},
		{enqueue.Local{Recipients: []string{"b@example.test"}, Notify: "SOMETIMES"}, "x\r\n", "invalid"},
		{enqueue.Local{Recipients: []string{"b@example.test"}}, strings.Repeat("long line\r\n", 100), enqueue.CodeRejected},
	} {
		_, err := submit(t, cl, &tc.env, tc.msg)
		var ie *ipc.Error
		if !errors.As(err, &ie) || ie.Code != tc.code {
			t.Errorf("%+v: error %v, want code %s", tc.env, err, tc.code)
		}
	}
	ids, _ := spool.List(queue.Incoming)
	if len(ids) != 1 {
		t.Errorf("%d files in incoming, want the one accepted", len(ids))
	}
}

// TestLocalEnvelopeSMTPUTF8: a local submission with a non-ASCII address, sender or
// recipient, needs SMTPUTF8 (RFC 6531 §3.4); an ASCII one does not.
func TestLocalEnvelopeSMTPUTF8(t *testing.T) {
	l := &localSubmission{uid: 1000, name: "bob"}
	for _, c := range []struct {
		req  enqueue.Local
		utf8 bool
	}{
		{enqueue.Local{Recipients: []string{"alice@example.test"}}, false},
		{enqueue.Local{Recipients: []string{"alice@example.test", "jöe@example.test"}}, true},
		{enqueue.Local{Sender: "bjørn@example.test", Recipients: []string{"alice@example.test"}}, true},
	} {
		env, err := localEnvelope(&c.req, l, "mail.example.test")
		if err != nil {
			t.Fatalf("%+v: %v", c.req, err)
		}
		if env.SMTPUTF8 != c.utf8 {
			t.Errorf("%+v: SMTPUTF8 = %v, want %v", c.req, env.SMTPUTF8, c.utf8)
		}
	}
}

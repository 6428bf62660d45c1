package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"postern/pkg/delivery"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
)

// fakeCleanup takes messages on an enqueue socket as cleanup does, and keeps them; or
// refuses them, with the ipc error code in fail ("temporary", enqueue.CodeRejected).
type fakeCleanup struct {
	mu   sync.Mutex
	fail string
	got  []queued
}

type queued struct {
	env  enqueue.Envelope
	data string
}

func startCleanup(t *testing.T, ctx context.Context, sock string) *fakeCleanup {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeCleanup{}
	s := &ipc.Server{Name: "fake-cleanup"}
	s.HandleStream(enqueue.OpEnqueue, func(_ context.Context, _ ipc.Cred, conn *ipc.Conn, body json.RawMessage, files []*os.File) error {
		ipc.CloseFiles(files)
		var env enqueue.Envelope
		json.Unmarshal(body, &env)
		data, err := io.ReadAll(conn.StreamReader())
		if err != nil {
			return err
		}
		var end enqueue.End
		if _, err := conn.Receive(&end); err != nil {
			return err
		}
		fc.mu.Lock()
		fail := fc.fail
		if fail == "" && end.Complete {
			fc.got = append(fc.got, queued{env, string(data)})
		}
		n := len(fc.got)
		fc.mu.Unlock()
		if fail != "" {
			return conn.Reply(nil, ipc.Errorf(fail, "refused"))
		}
		return conn.Reply(enqueue.Result{QueueID: "NEW" + strings.Repeat("X", n)}, nil)
	})
	go s.Serve(ctx, l)
	return fc
}

func (fc *fakeCleanup) queued() []queued {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return append([]queued(nil), fc.got...)
}

func (fc *fakeCleanup) setFail(code string) {
	fc.mu.Lock()
	fc.fail = code
	fc.mu.Unlock()
}

// A redirect queues one new message through cleanup: marked Forward, from the original
// sender, to the redirect's addresses (twice the same, once), the message as queued
// behind a Delivered-To naming the recipient; without :copy nothing is stored, with
// :copy the INBOX has its copy.
func TestRedirect(t *testing.T) {
	for _, c := range []struct {
		name, script string
		inbox        int
	}{
		{"redirect", `redirect "x@example.org"; redirect "y@other.test"; redirect "X@example.org";`, 0},
		{"copy", `require "copy"; redirect :copy "x@example.org"; redirect :copy "y@other.test";`, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := start(t)
			e.setScript(t, c.script)
			qf := e.queueFile(t, body)
			bob := delivery.Recipient{Addr: "bob@example.test", Maildir: filepath.Join(e.root, "example.test", "bob"), Rcpt: 0}
			res := e.deliver(t, qf, false, bob)
			if res[0].Status != delivery.Sent || res[0].Code != "2.0.0" {
				t.Fatalf("result %+v", res[0])
			}
			if got := e.files(t, ""); len(got) != c.inbox {
				t.Errorf("INBOX holds %v, want %d files", got, c.inbox)
			}
			q := e.cleanup.queued()
			if len(q) != 1 {
				t.Fatalf("%d messages queued, want 1", len(q))
			}
			env := q[0].env
			if !env.Forward || env.From != "a@far.test" || len(env.Recipients) != 2 || env.Recipients[0].Addr != "x@example.org" || env.Recipients[1].Addr != "y@other.test" ||
				env.Submission || env.AuthUser != "" || env.ClientAddr != "" {
				t.Errorf("envelope %+v", env)
			}
			if q[0].data != "Delivered-To: bob@example.test\r\n"+body {
				t.Errorf("queued message:\n%q", q[0].data)
			}
			// The attempt again, as after a crash before its result was recorded: the
			// redirect is found, not made twice.
			bob.MaybeDelivered = true
			if res := e.deliver(t, qf, false, bob); res[0].Status != delivery.Sent {
				t.Fatalf("repeated attempt: %+v", res[0])
			}
			if n := len(e.cleanup.queued()); n != 1 {
				t.Errorf("the repeated attempt queued the redirect again (%d messages)", n)
			}
			if got := e.files(t, ""); len(got) != c.inbox {
				t.Errorf("after the repeated attempt the INBOX holds %v", got)
			}
		})
	}
}

// cleanup unable to take the redirect now: the recipient is deferred, and nothing is
// stored; the next attempt redirects. cleanup refusing it for good: kept in the INBOX.
func TestRedirectFailures(t *testing.T) {
	e := start(t)
	e.setScript(t, `redirect "x@example.org";`)
	qf := e.queueFile(t, body)
	bob := delivery.Recipient{Addr: "bob@example.test", Maildir: filepath.Join(e.root, "example.test", "bob")}

	e.cleanup.setFail("temporary")
	res := e.deliver(t, qf, false, bob)
	if res[0].Status != delivery.Deferred || res[0].Code != "4.3.0" {
		t.Fatalf("cleanup failing: %+v, want deferred", res[0])
	}
	if got := e.files(t, ""); len(got) != 0 {
		t.Errorf("INBOX holds %v", got)
	}
	e.cleanup.setFail("")
	bob.MaybeDelivered = true // tried before
	if res := e.deliver(t, qf, false, bob); res[0].Status != delivery.Sent {
		t.Fatalf("second attempt: %+v", res[0])
	}
	if n := len(e.cleanup.queued()); n != 1 {
		t.Fatalf("%d messages queued, want 1", n)
	}

	e.cleanup.setFail(enqueue.CodeRejected)
	qf2 := e.queueFile(t, body)
	if res := e.deliver(t, qf2, false, bob); res[0].Status != delivery.Sent {
		t.Fatalf("redirect refused: %+v", res[0])
	}
	if got := e.files(t, ""); len(got) != 1 {
		t.Errorf("a refused redirect left the INBOX with %v, want the message kept", got)
	}
}

// RFC 5228 §4.2 loop control: a message that carries the recipient's Delivered-To went
// through its redirect before, and is kept instead of sent round again. Junk is not
// redirected either: it stays in Junk.
func TestRedirectNotDone(t *testing.T) {
	e := start(t)
	e.setScript(t, `redirect "x@example.org";`)
	bob := delivery.Recipient{Addr: "bob@example.test", Maildir: filepath.Join(e.root, "example.test", "bob")}
	looped := e.queueFile(t, "Delivered-To: carol@other.test\r\nDelivered-To: Bob@Example.test\r\n"+body)
	if res := e.deliver(t, looped, false, bob); res[0].Status != delivery.Sent {
		t.Fatalf("looped: %+v", res[0])
	}
	if got := e.files(t, ""); len(got) != 1 {
		t.Errorf("the looping message was not kept: INBOX %v", got)
	}
	spam := e.queueFile(t, body)
	if res := e.deliver(t, spam, true, bob); res[0].Status != delivery.Sent {
		t.Fatalf("spam: %+v", res[0])
	}
	if got := e.files(t, ".Junk"); len(got) != 1 {
		t.Errorf("the junk was not kept in Junk: %v", got)
	}
	// With :copy, the kept copy and the redirect not made are one copy in Junk.
	e.setScript(t, `require "copy"; redirect :copy "x@example.org";`)
	spam2 := e.queueFile(t, body)
	if res := e.deliver(t, spam2, true, bob); res[0].Status != delivery.Sent {
		t.Fatalf("spam with :copy: %+v", res[0])
	}
	if got := e.files(t, ".Junk"); len(got) != 2 {
		t.Errorf("Junk holds %v, want one more file", got)
	}
	if n := len(e.cleanup.queued()); n != 0 {
		t.Errorf("%d messages redirected, want none", n)
	}
	// Another recipient's Delivered-To is no loop.
	other := e.queueFile(t, "Delivered-To: carol@other.test\r\n"+body)
	e.deliver(t, other, false, bob)
	if n := len(e.cleanup.queued()); n != 1 {
		t.Errorf("%d messages redirected, want 1", n)
	}
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// The redirect markers of a Maildir older than markerAge are removed by the first
// redirect into it, and then at most once every markerSweepEvery: a redirect in between
// does not read tmp/. Fresh markers and files that are no markers stay.
func TestRedirectMarkerSweep(t *testing.T) {
	e := start(t)
	e.setScript(t, `redirect "x@example.org";`)
	bob := delivery.Recipient{Addr: "bob@example.test", Maildir: filepath.Join(e.root, "example.test", "bob")}
	tmp := filepath.Join(bob.Maildir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-markerAge - time.Hour)
	plant := func(name string) {
		t.Helper()
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(name string) bool { _, err := os.Lstat(filepath.Join(tmp, name)); return err == nil }
	redirect := func() string {
		t.Helper()
		qf := e.queueFile(t, body)
		if res := e.deliver(t, qf, false, bob); res[0].Status != delivery.Sent {
			t.Fatalf("result %+v", res[0])
		}
		marker := "redirect-Q" + qf.Envelope.ID + "R0"
		if !exists(marker) {
			t.Fatalf("no marker %s after the redirect", marker)
		}
		return marker
	}

	plant("redirect-QOLD1R0")
	plant("1700000000.M1P2.other") // not local's
	first := redirect()
	if exists("redirect-QOLD1R0") {
		t.Error("the first redirect left a marker older than markerAge")
	}
	if !exists("1700000000.M1P2.other") {
		t.Error("the sweep removed a file that is no redirect marker")
	}
	plant("redirect-QOLD2R0")
	second := redirect()
	if !exists("redirect-QOLD2R0") {
		t.Error("a second redirect within markerSweepEvery swept tmp/ again")
	}
	// A day later, the next redirect sweeps.
	e.agent.swept.Range(func(k, _ any) bool {
		e.agent.swept.Store(k, time.Now().Add(-markerSweepEvery-time.Minute))
		return true
	})
	third := redirect()
	if exists("redirect-QOLD2R0") {
		t.Error("a redirect after markerSweepEvery left a marker older than markerAge")
	}
	for _, m := range []string{first, second, third} {
		if !exists(m) {
			t.Errorf("the sweep removed the fresh marker %s", m)
		}
	}
	if n := len(e.cleanup.queued()); n != 3 {
		t.Errorf("%d messages queued, want 3", n)
	}
}

// BenchmarkWriteMarker writes redirect markers into a tmp/ that holds n of them
// already, as a Maildir whose user redirects all their mail does.
func BenchmarkWriteMarker(b *testing.B) {
	for _, n := range []int{0, 1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			tmp := filepath.Join(b.TempDir(), "tmp")
			if err := os.MkdirAll(tmp, 0o700); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				if err := os.WriteFile(filepath.Join(tmp, "redirect-QKEPT"+strconv.Itoa(i)+"R0"), nil, 0o600); err != nil {
					b.Fatal(err)
				}
			}
			a := &Agent{}
			b.ResetTimer()
			for i := range b.N {
				if err := a.writeMarker(tmp, filepath.Join(tmp, "redirect-QNEW"+strconv.Itoa(i)+"R0")); err != nil {
					b.Fatal(err)
				}
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

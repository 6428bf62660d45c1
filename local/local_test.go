package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/pkg/delivery"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/maildir"
	"postern/pkg/queue"
)

const body = "Received: by mx.example.test\r\nFrom: <a@far.test>\r\nSubject: hi\r\n\r\nhello\r\n.dot\r\n"

type env struct {
	dir    string
	root   string // the mail root
	client *delivery.Client
	// cleanup is the fake cleanup that takes redirected messages (redirect_test.go).
	cleanup *fakeCleanup
	agent   *Agent
}

func start(t *testing.T) *env { t.Helper(); return startWith(t, nil) }

// startWith starts an agent that configure may set up further before it serves.
func startWith(t *testing.T, configure func(a *Agent, dir string)) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "local")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sock := filepath.Join(dir, "local.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	fc := startCleanup(t, ctx, filepath.Join(dir, "cleanup.sock"))
	a := &Agent{MailRoot: filepath.Join(dir, "mail"), SieveRoot: filepath.Join(dir, "sieve"), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Cleanup: enqueue.NewClient(filepath.Join(dir, "cleanup.sock"))}
	if configure != nil {
		configure(a, dir)
	}
	go a.Server(nil).Serve(ctx, l)
	c := delivery.NewClient(sock)
	t.Cleanup(c.Close)
	return &env{dir: dir, root: a.MailRoot, client: c, cleanup: fc, agent: a}
}

// queueFile writes a committed queue file holding msg and opens it.
func (e *env) queueFile(t *testing.T, msg string) *queue.File {
	t.Helper()
	return e.queueFileFrom(t, "a@far.test", msg)
}

// queueFileFrom is queueFile with the envelope sender from ("" for <>).
func (e *env) queueFileFrom(t *testing.T, from, msg string) *queue.File {
	t.Helper()
	qdir := filepath.Join(e.dir, "queue")
	os.MkdirAll(qdir, 0o700)
	qe := &queue.Envelope{ID: queue.NewID(), From: from, Recipients: []queue.Recipient{{Addr: "bob@example.test"}}, Arrival: time.Now()}
	w, err := queue.Create(qdir, qe)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, msg)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	qf, err := queue.Open(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	// Status records after the message must not leak into the delivered copy.
	qf.Append(queue.Status{Rcpt: 0, Action: queue.Delayed, Reason: "earlier attempt"})
	t.Cleanup(func() { qf.Close() })
	return qf
}

func (e *env) deliver(t *testing.T, qf *queue.File, spam bool, rcpts ...delivery.Recipient) []delivery.Result {
	t.Helper()
	res, err := e.client.Deliver(context.Background(), qf.OSFile(), &delivery.Request{
		QueueID: qf.Envelope.ID, From: qf.Envelope.From, Offset: qf.BodyOffset(), Size: qf.BodySize(),
		Recipients: rcpts, Spam: spam,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func files(t *testing.T, dir string) [][]byte {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var out [][]byte
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc")
	}
	return len(ents)
}

func TestDeliverIntoInboxAndJunk(t *testing.T) {
	e := start(t)
	qf := e.queueFile(t, body)
	bob := filepath.Join(e.root, "example.test", "bob")
	carol := filepath.Join(e.root, "example.test", "carol")
	before := openFDs(t)
	res := e.deliver(t, qf, false,
		delivery.Recipient{Addr: "bob@example.test", Maildir: bob},
		delivery.Recipient{Addr: "carol@example.test", ORcpt: "team@example.test", Maildir: carol, Quota: 1 << 20})
	for i, r := range res {
		if r.Status != delivery.Sent || r.Code != "2.0.0" || r.Relay != "local" {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	// The Maildirs were created with their folders.
	for _, f := range []string{"cur", "tmp", ".Junk/new", ".Sent/cur", ".Trash/tmp", ".Drafts/maildirfolder", ".Archive/new"} {
		if _, err := os.Stat(filepath.Join(bob, f)); err != nil {
			t.Errorf("bob's Maildir lacks %s", f)
		}
	}
	for who, dir := range map[string]string{"bob@example.test": bob, "carol@example.test": carol} {
		got := files(t, filepath.Join(dir, "new"))
		want := "Return-Path: <a@far.test>\r\nDelivered-To: " + who + "\r\n" + body
		if len(got) != 1 || string(got[0]) != want {
			t.Errorf("%s's INBOX holds %q, want [%q]", who, got, want)
		}
	}
	// carol has a quota: the usage is recorded.
	used, n, err := maildir.Usage(carol, maildir.Quota{Bytes: 1 << 20})
	if err != nil || n != 1 || used == 0 {
		t.Errorf("carol's usage %d bytes %d messages: %v", used, n, err)
	}
	// Spam goes to Junk.
	res = e.deliver(t, qf, true, delivery.Recipient{Addr: "bob@example.test", Maildir: bob})
	if res[0].Status != delivery.Sent {
		t.Fatalf("spam: %+v", res[0])
	}
	if got := files(t, filepath.Join(bob, ".Junk", "new")); len(got) != 1 || !bytes.HasSuffix(got[0], []byte(body)) {
		t.Errorf("Junk holds %q", got)
	}
	if got := files(t, filepath.Join(bob, "new")); len(got) != 1 {
		t.Errorf("spam reached the INBOX: %d files", len(got))
	}
	// Every descriptor received was closed (the server's connections are pooled, so
	// compare after the deliveries rather than counting connections).
	e.deliver(t, qf, false, delivery.Recipient{Addr: "bob@example.test", Maildir: bob})
	after := openFDs(t)
	if after > before+2 {
		t.Errorf("%d descriptors open before, %d after: received descriptors leak", before, after)
	}
	if nm := len(files(t, filepath.Join(bob, "tmp"))); nm != 0 {
		t.Errorf("%d files left in tmp/", nm)
	}
}

func TestOverQuotaBounces(t *testing.T) {
	e := start(t)
	qf := e.queueFile(t, body)
	bob := filepath.Join(e.root, "example.test", "bob")
	res := e.deliver(t, qf, false,
		delivery.Recipient{Addr: "bob@example.test", Maildir: bob, Quota: 2 * int64(len(body))})
	if res[0].Status != delivery.Sent {
		t.Fatalf("first message: %+v", res[0])
	}
	res = e.deliver(t, qf, false, delivery.Recipient{Addr: "bob@example.test", Maildir: bob, Quota: 2 * int64(len(body))})
	if res[0].Status != delivery.Bounced || res[0].Code != "5.2.2" || !strings.Contains(res[0].Reason, "full") {
		t.Errorf("over quota: %+v", res[0])
	}
	if got := files(t, filepath.Join(bob, "new")); len(got) != 1 {
		t.Errorf("%d messages in the INBOX, want 1", len(got))
	}
}

func TestRefusesPathsOutsideTheMailRoot(t *testing.T) {
	e := start(t)
	qf := e.queueFile(t, body)
	outside := filepath.Join(e.dir, "elsewhere")
	os.MkdirAll(filepath.Join(e.root, "example.test"), 0o700)
	os.Symlink(outside, filepath.Join(e.root, "example.test", "link"))
	for _, p := range []string{
		"",
		"relative/path",
		e.root,
		outside,
		filepath.Join(e.root, "..", "elsewhere"),
		e.root + "x/bob",
		filepath.Join(e.root, "example.test", "link", "bob"),
	} {
		res := e.deliver(t, qf, false, delivery.Recipient{Addr: "bob@example.test", Maildir: p})
		if res[0].Status != delivery.Bounced || res[0].Code != "5.3.0" {
			t.Errorf("maildir %q: %+v", p, res[0])
		}
	}
	if _, err := os.Stat(outside); err == nil {
		t.Error("something was written outside the mail root")
	}
	if err := e.client.CreateMailbox(context.Background(), outside); !ipc.IsCode(err, "invalid") {
		t.Errorf("CreateMailbox outside the root: %v", err)
	}
}

func TestCreateMailbox(t *testing.T) {
	e := start(t)
	bob := filepath.Join(e.root, "example.test", "bob")
	if err := e.client.CreateMailbox(context.Background(), bob); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"new", ".Junk/cur", ".Sent/maildirfolder"} {
		if _, err := os.Stat(filepath.Join(bob, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	// Idempotent.
	if err := e.client.CreateMailbox(context.Background(), bob); err != nil {
		t.Fatal(err)
	}
}

func TestBadRequests(t *testing.T) {
	e := start(t)
	qf := e.queueFile(t, body)
	bob := filepath.Join(e.root, "example.test", "bob")
	for _, req := range []delivery.Request{
		{Offset: qf.BodyOffset(), Size: 1 << 30},
		{Offset: -1, Size: 1},
		{Offset: 1 << 40, Size: 0},
	} {
		req.Recipients = []delivery.Recipient{{Addr: "bob@example.test", Maildir: bob}}
		if _, err := e.client.Deliver(context.Background(), qf.OSFile(), &req); !ipc.IsCode(err, "invalid") {
			t.Errorf("request %+v: %v", req, err)
		}
	}
	// No descriptor at all.
	c := ipc.NewClient(filepath.Join(e.dir, "local.sock"))
	defer c.Close()
	var resp delivery.Response
	if _, err := c.Call(context.Background(), delivery.OpDeliver, delivery.Request{}, &resp); !ipc.IsCode(err, "invalid") {
		t.Errorf("request without a descriptor: %v", err)
	}
	if _, err := os.Stat(bob); err == nil {
		t.Error("a bad request created the mailbox")
	}
}

func TestTemporaryFailure(t *testing.T) {
	e := start(t)
	qf := e.queueFile(t, body)
	bob := filepath.Join(e.root, "example.test", "bob")
	if err := maildir.Create(bob, nil); err != nil {
		t.Fatal(err)
	}
	// A broken Maildir (tmp/ is a file): writing fails whoever we are, even root.
	os.Remove(filepath.Join(bob, "tmp"))
	os.WriteFile(filepath.Join(bob, "tmp"), nil, 0o600)
	res := e.deliver(t, qf, false, delivery.Recipient{Addr: "bob@example.test", Maildir: bob})
	if res[0].Status != delivery.Deferred || res[0].Code != "4.3.0" || !strings.Contains(res[0].Reason, "not a directory") {
		t.Errorf("broken Maildir: %+v", res[0])
	}
	if strings.Contains(res[0].Reason, e.root) {
		t.Errorf("the reason shows the path: %q", res[0].Reason)
	}
}

// A folder local saw a moment ago and that was removed since (a user deleted Junk over
// IMAP) is created again when the message is written, not found missing and deferred.
func TestFolderRemovedSinceLastSeen(t *testing.T) {
	e := start(t)
	qf := e.queueFile(t, body)
	bob := filepath.Join(e.root, "example.test", "bob")
	rcpt := delivery.Recipient{Addr: "bob@example.test", Maildir: bob}
	if res := e.deliver(t, qf, true, rcpt); res[0].Status != delivery.Sent {
		t.Fatalf("first: %+v", res[0])
	}
	if err := os.RemoveAll(filepath.Join(bob, ".Junk")); err != nil {
		t.Fatal(err)
	}
	if res := e.deliver(t, qf, true, rcpt); res[0].Status != delivery.Sent {
		t.Fatalf("after Junk was removed: %+v", res[0])
	}
	if got := files(t, filepath.Join(bob, ".Junk", "new")); len(got) != 1 {
		t.Errorf("Junk holds %d messages, want 1", len(got))
	}
	if got := files(t, filepath.Join(bob, ".Junk", "tmp")); len(got) != 0 {
		t.Errorf("%d files left in Junk's tmp/", len(got))
	}
}

// TestDeliverOnce checks that a delivery repeated with MaybeDelivered, as qmgr repeats one
// whose result a crash kept from the queue file, finds the copy the first one made, in
// new/ or in cur/ where imapd moves it, and writes no second one; that another recipient
// index of the same message, sharing the mailbox, gets its own copy; and that a copy the
// user deleted meanwhile is delivered again.
func TestDeliverOnce(t *testing.T) {
	e := start(t)
	qf := e.queueFile(t, body)
	bob := filepath.Join(e.root, "example.test", "bob")
	q := maildir.Quota{Bytes: 1 << 20}
	rcpt := delivery.Recipient{Addr: "bob@example.test", Maildir: bob, Quota: q.Bytes}
	count := func() (inNew, inCur int) {
		return len(files(t, filepath.Join(bob, "new"))), len(files(t, filepath.Join(bob, "cur")))
	}
	sent := func(res []delivery.Result) {
		t.Helper()
		for i, r := range res {
			if r.Status != delivery.Sent {
				t.Fatalf("result %d: %+v", i, r)
			}
		}
	}
	sent(e.deliver(t, qf, false, rcpt))
	again := rcpt
	again.MaybeDelivered = true
	sent(e.deliver(t, qf, false, again))
	if n, c := count(); n != 1 || c != 0 {
		t.Fatalf("after a repeated delivery: %d files in new/, %d in cur/; want 1, 0", n, c)
	}
	// imapd takes it into cur/ with its flags, keeping the base name.
	names, _ := os.ReadDir(filepath.Join(bob, "new"))
	first := names[0].Name()
	if !strings.Contains(first, "Q"+qf.Envelope.ID+"R0.") {
		t.Fatalf("the file name %s does not name the queue ID and recipient", first)
	}
	cur := filepath.Join(bob, "cur", first+":2,S")
	if err := os.Rename(filepath.Join(bob, "new", first), cur); err != nil {
		t.Fatal(err)
	}
	sent(e.deliver(t, qf, false, again))
	if n, c := count(); n != 0 || c != 1 {
		t.Fatalf("after a repeated delivery of a message in cur/: %d files in new/, %d in cur/; want 0, 1", n, c)
	}
	if _, n, err := maildir.Usage(bob, q); err != nil || n != 1 {
		t.Errorf("quota counts %d messages (%v), want 1: a delivery found was counted again", n, err)
	}
	// Another recipient of the same message whose address leads to the same mailbox.
	other := again
	other.Rcpt = 1
	sent(e.deliver(t, qf, false, other))
	if n, c := count(); n != 1 || c != 1 {
		t.Fatalf("after the second recipient: %d files in new/, %d in cur/; want 1, 1", n, c)
	}
	// The user expunged the first copy before the repetition: it is delivered again.
	if err := os.Remove(cur); err != nil {
		t.Fatal(err)
	}
	sent(e.deliver(t, qf, false, again))
	if n, c := count(); n != 2 || c != 0 {
		t.Fatalf("after a repetition of an expunged delivery: %d files in new/, %d in cur/; want 2, 0", n, c)
	}
}

// TestUsage: the usage op measures a Maildir as a delivery counts it (what local
// delivered, prefix included), gives 0 for a Maildir not created yet, and refuses a
// path outside the mail root.
func TestUsage(t *testing.T) {
	e := start(t)
	bob := filepath.Join(e.root, "example.test", "bob")
	u, err := e.client.Usage(context.Background(), bob, 1<<20)
	if err != nil || u.Bytes != 0 || u.Count != 0 {
		t.Fatalf("usage of a missing Maildir: %+v, %v", u, err)
	}
	qf := e.queueFile(t, body)
	for range 2 {
		e.deliver(t, qf, false, delivery.Recipient{Addr: "bob@example.test", Maildir: bob, Quota: 1 << 20})
	}
	u, err = e.client.Usage(context.Background(), bob, 1<<20)
	if err != nil || u.Count != 2 || u.Bytes <= 2*int64(len(body)) {
		t.Fatalf("usage after two deliveries of %d octets: %+v, %v", len(body), u, err)
	}
	if _, err := e.client.Usage(context.Background(), filepath.Join(e.root, "..", "etc"), 1); !ipc.IsCode(err, "invalid") {
		t.Errorf("usage outside the root: %v", err)
	}
}

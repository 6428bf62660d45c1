package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/delivery"
	"postern/pkg/ipc"
	"postern/pkg/queue"
	"postern/pkg/srs"
)

// report is a notification taken apart.
type report struct {
	header  mail.Header
	text    string
	perMsg  textproto.MIMEHeader
	perRcpt []textproto.MIMEHeader
	third   string // Content-Type of the third part
	orig    string
}

func parseReport(t *testing.T, raw []byte) report {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("notification unreadable: %v\n%s", err, raw)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q", msg.Header.Get("Content-Type"))
	}
	var r report
	r.header = msg.Header
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		switch i {
		case 0:
			r.text = string(b)
		case 1:
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
			r.perMsg, _ = tr.ReadMIMEHeader()
			for {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					r.perRcpt = append(r.perRcpt, h)
				}
				if err != nil {
					break
				}
			}
		case 2:
			r.third = p.Header.Get("Content-Type")
			r.orig = string(b)
		}
	}
	return r
}

func TestDeliveryRemovesTheFile(t *testing.T) {
	h := newHarness(t)
	h.start()
	id := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test", "Carol@Example.test")})
	h.waitState(id, "")
	for _, who := range []string{"bob@example.test", "carol@example.test"} {
		msgs := h.messages(who)
		if len(msgs) != 1 {
			t.Fatalf("%s has %d messages", who, len(msgs))
		}
		want := "Return-Path: <alice@far.test>\r\nDelivered-To: " + who + "\r\n" + testBody
		if msgs[0] != want {
			t.Errorf("%s got %q, want %q", who, msgs[0], want)
		}
	}
	if n := h.requests.Load(); n != 1 {
		t.Errorf("%d requests to local for one message, want 1", n)
	}
	log := h.logBuf.String()
	for _, want := range []string{"msg=delivery id=" + id + " to=<bob@example.test> relay=local", "status=sent", "msg=removed id=" + id} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	h.noDSN()
}

func TestCleanupWakeupAndScan(t *testing.T) {
	h := newHarness(t)
	h.start()
	// A file cleanup did not announce (its wakeup was lost) is found by the scan.
	id := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test"), noWake: true})
	h.waitState(id, "")
	if len(h.messages("bob@example.test")) != 1 {
		t.Error("not delivered")
	}
}

func TestUnknownMailboxBounces(t *testing.T) {
	h := newHarness(t)
	h.start()
	id := h.queue(message{from: "alice@far.test", rcpts: []queue.Recipient{
		{Addr: "bob@example.test"},
		{Addr: "ghost@example.test", ORcpt: "Team@example.test"},
		{Addr: "quiet@example.test", Notify: "NEVER"},
	}})
	h.waitState(id, "")
	if len(h.messages("bob@example.test")) != 1 {
		t.Error("bob got nothing")
	}
	d := h.dsn()
	if d.env.From != "" || !d.env.Bounce || len(d.env.Recipients) != 1 || d.env.Recipients[0].Addr != "alice@far.test" {
		t.Errorf("notification envelope %+v", d.env)
	}
	r := parseReport(t, d.body)
	if r.header.Get("Subject") != "Undelivered Mail Returned to Sender" || r.header.Get("Auto-Submitted") != "auto-replied" ||
		!strings.Contains(r.header.Get("From"), "MAILER-DAEMON@mx.example.test") {
		t.Errorf("header %v", r.header)
	}
	if len(r.perRcpt) != 1 {
		t.Fatalf("%d recipients reported, want ghost only (quiet said NOTIFY=NEVER, bob got it)", len(r.perRcpt))
	}
	b := r.perRcpt[0]
	if b.Get("Final-Recipient") != "rfc822;ghost@example.test" || b.Get("Original-Recipient") != "rfc822;Team@example.test" ||
		b.Get("Action") != "failed" || b.Get("Status") != "5.1.1" {
		t.Errorf("recipient fields %v", b)
	}
	if r.perMsg.Get("Reporting-MTA") != "dns; mx.example.test" || r.perMsg.Get("Arrival-Date") == "" {
		t.Errorf("message fields %v", r.perMsg)
	}
	if !strings.Contains(r.text, "ghost@example.test") || !strings.Contains(r.text, "mailbox unavailable") {
		t.Errorf("human part:\n%s", r.text)
	}
	if r.third != "message/rfc822" || r.orig != testBody {
		t.Errorf("original returned as %q: %q", r.third, r.orig)
	}
	if !strings.Contains(h.logBuf.String(), "msg=bounce id="+id+" dsn_id=") {
		t.Errorf("no bounce line in the log:\n%s", h.logBuf.String())
	}
	if !strings.Contains(h.logBuf.String(), "status=bounced") {
		t.Error("no status=bounced in the log")
	}
	h.noDSN()

	// Mail from the null sender never bounces.
	id = h.queue(message{from: "", rcpts: rcpts("ghost@example.test")})
	h.waitState(id, "")
	h.noDSN()
	if !strings.Contains(h.logBuf.String(), "null sender") {
		t.Error("the dropped bounce is not logged")
	}
}

func TestRetOnlyHeaders(t *testing.T) {
	h := newHarness(t)
	h.start()
	id := h.queue(message{from: "alice@far.test", rcpts: rcpts("ghost@example.test"), ret: "HDRS"})
	h.waitState(id, "")
	r := parseReport(t, h.dsn().body)
	if r.third != "text/rfc822-headers" || strings.Contains(r.orig, "hello") {
		t.Errorf("RET=HDRS returned %q: %q", r.third, r.orig)
	}
}

func TestOverQuotaBounces(t *testing.T) {
	h := newHarness(t)
	h.mu.Lock()
	h.accounts["bob@example.test"] = 10
	h.mu.Unlock()
	h.start()
	id := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test")})
	h.waitState(id, "")
	r := parseReport(t, h.dsn().body)
	if len(r.perRcpt) != 1 || r.perRcpt[0].Get("Status") != "5.2.2" || !strings.Contains(r.text, "mailbox full") {
		t.Errorf("over-quota report %v\n%s", r.perRcpt, r.text)
	}
}

func TestLocalDownDefersThenFlush(t *testing.T) {
	h := newHarness(t)
	h.stopLocal()
	h.start()
	id := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test", "far@remote.test")})
	h.waitState(id, queue.Deferred)
	qf := h.openFile(id)
	for i, want := range []string{"local delivery agent unavailable", "no remote delivery agent yet"} {
		st, ok := qf.Last(i)
		if !ok || st.Action != queue.Delayed || !strings.Contains(st.Reason, want) || !strings.HasPrefix(st.Code, "4.") {
			t.Errorf("recipient %d: %+v", i, st)
		}
	}
	sched := qf.Schedule()
	if sched.Attempts != 1 || time.Until(sched.Next) < 50*time.Minute {
		t.Errorf("schedule %+v, want attempt 1 and next in an hour", sched)
	}
	// The queue listing says why.
	l := h.list()
	if len(l.Messages) != 1 || l.Messages[0].ID != id || l.Messages[0].State != queue.Deferred ||
		!strings.Contains(l.Messages[0].Recipients[0].Reason, "local") || l.Messages[0].Next.IsZero() {
		t.Errorf("list: %+v", l)
	}
	if !strings.Contains(h.logBuf.String(), "status=deferred") {
		t.Error("no status=deferred in the log")
	}

	// local comes back; a flush delivers at once.
	h.startLocal()
	var n control.CountResult
	if err := h.call(control.QueueFlush, control.IDsRequest{}, &n); err != nil || n.Count != 1 {
		t.Fatalf("flush: %v %+v", err, n)
	}
	h.waitFor("delivery after flush", func() bool { return len(h.messages("bob@example.test")) == 1 })
	h.waitState(id, queue.Deferred) // the remote recipient still waits
	qf = h.openFile(id)
	if !qf.Done(0) || qf.Done(1) || qf.Schedule().Attempts != 2 {
		t.Errorf("after the retry: done %v %v, schedule %+v", qf.Done(0), qf.Done(1), qf.Schedule())
	}
	// Backoff doubles.
	if d := time.Until(qf.Schedule().Next); d < 110*time.Minute {
		t.Errorf("second backoff %v, want about 2h", d)
	}
	// A second flush does not deliver bob twice.
	h.call(control.QueueFlush, control.IDsRequest{IDs: []string{id}}, &n)
	time.Sleep(200 * time.Millisecond)
	h.waitState(id, queue.Deferred)
	if got := len(h.messages("bob@example.test")); got != 1 {
		t.Errorf("bob has %d copies", got)
	}
	h.noDSN()
}

func TestAuthdDownDefers(t *testing.T) {
	h := newHarness(t)
	h.authDown.Store(true)
	h.start()
	id := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test")})
	h.waitState(id, queue.Deferred)
	st, _ := h.openFile(id).Last(0)
	if st.Code != "4.3.0" || !strings.Contains(st.Reason, "lookup") {
		t.Errorf("status %+v", st)
	}
	h.authDown.Store(false)
	h.call(control.QueueFlush, control.IDsRequest{IDs: []string{id}}, nil)
	h.waitState(id, "")
}

func TestRecovery(t *testing.T) {
	h := newHarness(t)
	// qmgr crashed mid-delivery: a message in active/ whose first recipient was
	// recorded delivered.
	active := h.queue(message{state: queue.Active, from: "alice@far.test", rcpts: rcpts("bob@example.test", "carol@example.test"),
		records: []queue.Status{{Rcpt: 0, Action: queue.Delivered, Code: "2.0.0", At: time.Now()}}})
	// A complete file cleanup finished while qmgr was down.
	incoming := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test")})
	// A cleanup died mid-write (its lock went with it; one empty file as a kill right
	// after the creation leaves, one half-written), and another has been writing for a
	// while (a slow client): it holds its lock.
	stale, empty, fresh := queue.NewID(), queue.NewID(), queue.NewID()
	old := time.Now().Add(-time.Minute)
	os.WriteFile(h.spool.Path(queue.Incoming, stale), []byte("postern-queue 1 000000000000 000000000000\n{\"id\""), 0o600)
	os.WriteFile(h.spool.Path(queue.Incoming, empty), nil, 0o600)
	w, err := queue.Create(h.spool.Dir(queue.Incoming), &queue.Envelope{ID: fresh, From: "x@far.test", Recipients: rcpts("bob@example.test")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	io.WriteString(w, "Subject: half")
	for _, id := range []string{stale, empty, fresh} {
		os.Chtimes(h.spool.Path(queue.Incoming, id), old, old)
	}
	// Deferred messages: one due, one not yet.
	due := h.queue(message{state: queue.Deferred, from: "alice@far.test", rcpts: rcpts("carol@example.test"),
		records: []queue.Status{{Rcpt: 0, Action: queue.Delayed, Code: "4.3.0"}, {Rcpt: -1, Next: time.Now().Add(-time.Minute), Attempts: 1}}})
	later := h.queue(message{state: queue.Deferred, from: "alice@far.test", rcpts: rcpts("carol@example.test"),
		records: []queue.Status{{Rcpt: 0, Action: queue.Delayed, Code: "4.3.0"}, {Rcpt: -1, Next: time.Now().Add(time.Hour), Attempts: 1}}})
	// A file that is not a queue file.
	bad := queue.NewID()
	os.WriteFile(h.spool.Path(queue.Deferred, bad), []byte("garbage"), 0o700)

	h.start()
	h.waitState(active, "")
	h.waitState(incoming, "")
	h.waitState(due, "")
	h.waitState(bad, queue.Corrupt)
	h.waitState(stale, "")
	h.waitState(empty, "")
	if h.where(fresh) != queue.Incoming {
		t.Error("a file being written was touched")
	}
	// The recovered message and the one tried before go to local as maybe delivered
	// already, so that it looks for a copy it made; the new one does not (the look
	// reads the folder's cur/). Each names the recipient's index in the queue file.
	h.seenMu.Lock()
	for _, c := range []struct {
		id    string
		rcpt  int
		maybe bool
	}{{active, 1, true}, {due, 0, true}, {incoming, 0, false}} {
		if got := h.seen[c.id]; len(got) != 1 || got[0].Rcpt != c.rcpt || got[0].MaybeDelivered != c.maybe {
			t.Errorf("local was asked %+v for message %s, want recipient %d, maybe delivered %v", got, c.id, c.rcpt, c.maybe)
		}
	}
	h.seenMu.Unlock()
	// Neither is counted as mail (mailctl status).
	var counts control.QueueCountsResult
	if err := h.call(control.QueueCounts, nil, &counts); err != nil || counts.Counts[queue.Incoming] != 0 {
		t.Errorf("counts %v (%v): a file being written counted in incoming/", counts, err)
	}
	if h.where(later) != queue.Deferred {
		t.Errorf("a message not yet due is in %q", h.where(later))
	}
	if got := len(h.messages("bob@example.test")); got != 1 {
		t.Errorf("bob has %d messages, want 1 (the recorded delivery must not repeat)", got)
	}
	if got := len(h.messages("carol@example.test")); got != 2 {
		t.Errorf("carol has %d messages, want 2", got)
	}
	log := h.logBuf.String()
	for _, want := range []string{"removed incomplete queue file", "moved to corrupt/", "recovered interrupted deliveries"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}

	// A restart keeps the schedule: the deferred message stays where it is.
	h.restart()
	time.Sleep(100 * time.Millisecond)
	if h.where(later) != queue.Deferred {
		t.Errorf("after restart the message is in %q", h.where(later))
	}
	h.q.mu.Lock()
	next, ok := h.q.deferred[later]
	h.q.mu.Unlock()
	if !ok || time.Until(next) < 50*time.Minute {
		t.Errorf("schedule after restart: %v %v", next, ok)
	}
}

func TestExpiry(t *testing.T) {
	h := newHarness(t)
	h.stopLocal()
	h.start()
	id := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test"), arrival: time.Now().Add(-6 * 24 * time.Hour)})
	h.waitState(id, "")
	r := parseReport(t, h.dsn().body)
	if len(r.perRcpt) != 1 || r.perRcpt[0].Get("Status") != "5.4.7" || r.perRcpt[0].Get("Action") != "failed" {
		t.Errorf("expiry report %v", r.perRcpt)
	}
	if !strings.Contains(r.text, "expired") || !strings.Contains(r.text, "local delivery agent unavailable") {
		t.Errorf("human part:\n%s", r.text)
	}
	if !strings.Contains(h.logBuf.String(), "msg=expired id="+id) {
		t.Error("no expired line in the log")
	}
}

func TestDelayWarning(t *testing.T) {
	h := newHarness(t)
	h.stopLocal()
	h.start()
	// Without NOTIFY=DELAY no warning (Postfix's default).
	quiet := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test"), arrival: time.Now().Add(-5 * time.Hour)})
	h.waitState(quiet, queue.Deferred)
	h.noDSN()

	id := h.queue(message{from: "alice@far.test", arrival: time.Now().Add(-5 * time.Hour),
		rcpts: []queue.Recipient{{Addr: "bob@example.test", Notify: "FAILURE,DELAY"}}})
	h.waitState(id, queue.Deferred)
	d := h.dsn()
	r := parseReport(t, d.body)
	if r.header.Get("Subject") != "Delayed Mail (still being retried)" || len(r.perRcpt) != 1 ||
		r.perRcpt[0].Get("Action") != "delayed" || r.perRcpt[0].Get("Status") != "4.3.0" || r.perRcpt[0].Get("Will-Retry-Until") == "" {
		t.Errorf("delay warning %v %v", r.header, r.perRcpt)
	}
	if r.third != "text/rfc822-headers" {
		t.Errorf("delay warning returns %q", r.third)
	}
	if !h.openFile(id).Schedule().Warned {
		t.Error("the warning is not recorded")
	}
	// Only one warning per message.
	h.call(control.QueueFlush, control.IDsRequest{IDs: []string{id}}, nil)
	time.Sleep(100 * time.Millisecond)
	h.waitState(id, queue.Deferred)
	h.noDSN()
}

func TestBounceRetriedWhenCleanupFails(t *testing.T) {
	h := newHarness(t)
	h.cleanupFails.Store(true)
	h.start()
	id := h.queue(message{from: "alice@far.test", rcpts: rcpts("ghost@example.test")})
	// The failure is recorded, the notification could not be queued: the file waits.
	h.waitState(id, queue.Deferred)
	qf := h.openFile(id)
	if !qf.Done(0) || len(unbounced(qf.Statuses)) != 1 {
		t.Errorf("statuses %+v", qf.Statuses)
	}
	h.cleanupFails.Store(false)
	h.call(control.QueueFlush, control.IDsRequest{IDs: []string{id}}, nil)
	h.waitState(id, "")
	r := parseReport(t, h.dsn().body)
	if len(r.perRcpt) != 1 || r.perRcpt[0].Get("Final-Recipient") != "rfc822;ghost@example.test" {
		t.Errorf("report %v", r.perRcpt)
	}
	h.noDSN()
}

func TestControl(t *testing.T) {
	h := newHarness(t)
	h.stopLocal()
	h.start()
	a := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test")})
	b := h.queue(message{from: "", rcpts: rcpts("carol@example.test")})
	h.waitState(a, queue.Deferred)
	h.waitState(b, queue.Deferred)

	var counts control.QueueCountsResult
	if err := h.call(control.QueueCounts, nil, &counts); err != nil || counts.Counts[queue.Deferred] != 2 || counts.Counts[queue.Hold] != 0 {
		t.Errorf("counts %v: %v", counts, err)
	}
	var show control.QueueShowResult
	if err := h.call(control.QueueShow, control.IDsRequest{IDs: []string{a}}, &show); err != nil {
		t.Fatal(err)
	}
	if show.Entry.ID != a || show.Entry.From != "alice@far.test" || show.Entry.Size != int64(len(testBody)) ||
		!strings.Contains(show.Headers, "Message-ID: <test@far.test>") || strings.Contains(show.Headers, "hello") {
		t.Errorf("show: %+v", show)
	}
	if err := h.call(control.QueueShow, control.IDsRequest{IDs: []string{queue.NewID()}}, &show); !ipc.IsCode(err, "notfound") {
		t.Errorf("show of a missing message: %v", err)
	}
	if err := h.call(control.QueueHold, control.IDsRequest{IDs: []string{"../../etc"}}, nil); !ipc.IsCode(err, "invalid") {
		t.Errorf("hold of a bad ID: %v", err)
	}

	var n control.CountResult
	if err := h.call(control.QueueHold, control.IDsRequest{IDs: []string{a}}, &n); err != nil || n.Count != 1 {
		t.Fatalf("hold: %v %+v", err, n)
	}
	if h.where(a) != queue.Hold {
		t.Fatalf("held message in %q", h.where(a))
	}
	// A flush does not touch held mail, even with local back.
	h.startLocal()
	h.call(control.QueueFlush, control.IDsRequest{}, &n)
	h.waitState(b, "")
	if h.where(a) != queue.Hold || len(h.messages("bob@example.test")) != 0 {
		t.Fatal("held message delivered")
	}
	l := h.list()
	if len(l.Messages) != 1 || l.Messages[0].State != queue.Hold {
		t.Errorf("list: %+v", l)
	}
	if err := h.call(control.QueueRelease, control.IDsRequest{IDs: []string{a}}, &n); err != nil || n.Count != 1 {
		t.Fatalf("release: %v %+v", err, n)
	}
	h.waitState(a, "")
	if len(h.messages("bob@example.test")) != 1 {
		t.Error("released message not delivered")
	}

	// Delete, from deferred/ and from hold/.
	h.stopLocal()
	c := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test")})
	d := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test")})
	h.waitState(c, queue.Deferred)
	h.waitState(d, queue.Deferred)
	h.call(control.QueueHold, control.IDsRequest{IDs: []string{d}}, &n)
	if err := h.call(control.QueueDelete, control.IDsRequest{IDs: []string{c, d}}, &n); err != nil || n.Count != 2 {
		t.Fatalf("delete: %v %+v", err, n)
	}
	if h.where(c) != "" || h.where(d) != "" {
		t.Error("deleted messages remain")
	}
	if err := h.call(control.QueueDelete, control.IDsRequest{IDs: []string{c}}, &n); !ipc.IsCode(err, "notfound") {
		t.Errorf("second delete: %v", err)
	}
	if l := h.list(); len(l.Messages) != 0 {
		t.Errorf("queue not empty: %+v", l)
	}
	h.noDSN()
}

func TestHoldWhileDelivering(t *testing.T) {
	h := newHarness(t)
	h.start()
	// Claim a message as a worker would, then ask for hold and delete meanwhile.
	id := h.queue(message{state: queue.Active, from: "alice@far.test", rcpts: rcpts("nobody@remote.test")})
	h.q.mu.Lock()
	h.q.claimLocked(id)
	h.q.mu.Unlock()
	var n control.CountResult
	if err := h.call(control.QueueHold, control.IDsRequest{IDs: []string{id}}, &n); err != nil || n.Count != 1 {
		t.Fatalf("hold: %v", err)
	}
	if w := h.where(id); w != queue.Active {
		t.Fatalf("moved under the worker's feet to %q\n%s", w, h.logBuf.String())
	}
	h.q.run(id)
	h.waitState(id, queue.Hold)
	h.noDSN()
}

func TestBackoff(t *testing.T) {
	q := &Qmgr{Queue: config.Queue{MinBackoff: config.Duration(5 * time.Minute), MaxBackoff: config.Duration(time.Hour)}}
	for n, want := range map[int]time.Duration{0: 5 * time.Minute, 1: 5 * time.Minute, 2: 10 * time.Minute, 3: 20 * time.Minute,
		4: 40 * time.Minute, 5: time.Hour, 50: time.Hour} {
		if got := q.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestUnbounced(t *testing.T) {
	sts := []queue.Status{
		{Rcpt: 0, Action: queue.Failed},
		{Rcpt: 1, Action: queue.Delayed},
		{Rcpt: -1, Bounced: true},
		{Rcpt: 1, Action: queue.Failed},
		{Rcpt: 2, Action: queue.Delivered},
		{Rcpt: -1, Attempts: 2},
	}
	if got := unbounced(sts); len(got) != 1 || got[0] != 1 {
		t.Errorf("unbounced = %v, want [1]", got)
	}
}

func TestWantNotice(t *testing.T) {
	q := &Qmgr{}
	env := &queue.Envelope{From: "a@b", Recipients: []queue.Recipient{{}, {Notify: "NEVER"}, {Notify: "SUCCESS,DELAY"}, {Notify: "failure"}}}
	all := []int{0, 1, 2, 3}
	if got := q.wantNotice(env, all, "FAILURE"); len(got) != 2 || got[0] != 0 || got[1] != 3 {
		t.Errorf("FAILURE: %v", got)
	}
	if got := q.wantNotice(env, all, "DELAY"); len(got) != 1 || got[0] != 2 {
		t.Errorf("DELAY: %v", got)
	}
	env.From = ""
	if got := q.wantNotice(env, all, "FAILURE"); len(got) != 0 {
		t.Errorf("null sender: %v", got)
	}
}

// transportFunc is a Transport made of a function.
type transportFunc func(ctx context.Context, qf *queue.File, rcpts []delivery.Recipient) ([]delivery.Result, error)

func (f transportFunc) Deliver(ctx context.Context, qf *queue.File, _ string, rcpts []delivery.Recipient) ([]delivery.Result, error) {
	return f(ctx, qf, rcpts)
}

// A message for local and remote recipients goes to both agents at once: each agent
// here waits to see the other called, so that one after the other ends in a deferral.
func TestLocalAndRemoteSideBySide(t *testing.T) {
	h := newHarness(t)
	localCalled, remoteCalled := make(chan struct{}), make(chan struct{})
	agent := func(self, other chan struct{}) Transport {
		return transportFunc(func(_ context.Context, _ *queue.File, rcpts []delivery.Recipient) ([]delivery.Result, error) {
			close(self)
			select {
			case <-other:
			case <-time.After(5 * time.Second):
				return nil, errors.New("the other agent was not called meanwhile")
			}
			res := make([]delivery.Result, len(rcpts))
			for i := range res {
				res[i] = delivery.Result{Status: delivery.Sent, Code: "2.0.0"}
			}
			return res, nil
		})
	}
	q := &Qmgr{Dir: auth.NewClient(h.sock("auth")), Local: agent(localCalled, remoteCalled),
		Remote: agent(remoteCalled, localCalled), Log: slog.New(slog.NewTextHandler(h.logBuf, nil))}
	qf := &queue.File{Envelope: queue.Envelope{Recipients: rcpts("bob@example.test", "someone@other.test")}}
	for i, r := range q.deliver(context.Background(), qf, []int{0, 1}, false) {
		if r.Status != delivery.Sent {
			t.Errorf("recipient %d: %+v", i, r)
		}
	}
}

// senderTransport records the envelope sender of each call, by recipient.
type senderTransport struct {
	mu   sync.Mutex
	from map[string]string
}

func (s *senderTransport) Deliver(_ context.Context, _ *queue.File, from string, rcpts []delivery.Recipient) ([]delivery.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := make([]delivery.Result, len(rcpts))
	for i, r := range rcpts {
		s.from[r.Addr] = from
		res[i] = delivery.Result{Status: delivery.Sent, Code: "2.0.0"}
	}
	return res, nil
}

// Recipients this host forwards (an alias's foreign target, a Sieve redirect) go to
// remote in a transaction of their own, from the SRS form of the sender; the others
// keep the sender, and so does a forward of the null sender or without SRS.
func TestForwardedRecipientsGetSRSSender(t *testing.T) {
	h := newHarness(t)
	remote := &senderTransport{from: map[string]string{}}
	q := &Qmgr{Dir: auth.NewClient(h.sock("auth")), Local: remote, Remote: remote,
		Log: slog.New(slog.NewTextHandler(h.logBuf, nil)),
		SRS: &srs.Rewriter{Domain: "example.test", Secrets: [][]byte{[]byte("k")}}}
	r := rcpts("plain@other.test", "fwd@other.test", "bob@example.test")
	r[1].Forward, r[2].Forward = true, true
	qf := &queue.File{Envelope: queue.Envelope{ID: "Q1", From: "sender@origin.test", Recipients: r}}
	for i, res := range q.deliver(context.Background(), qf, []int{0, 1, 2}, false) {
		if res.Status != delivery.Sent {
			t.Errorf("recipient %d: %+v", i, res)
		}
	}
	if got := remote.from["plain@other.test"]; got != "sender@origin.test" {
		t.Errorf("a recipient not forwarded went from <%s>", got)
	}
	got := remote.from["fwd@other.test"]
	if back, err := q.SRS.Reverse(got); !strings.HasPrefix(got, "SRS0=") || !strings.HasSuffix(got, "@example.test") || err != nil || back != "sender@origin.test" {
		t.Errorf("the forwarded recipient went from <%s> (%q, %v)", got, back, err)
	}
	if got := remote.from["bob@example.test"]; got != "sender@origin.test" {
		t.Errorf("a local delivery was given <%s>", got)
	}

	qf.Envelope.From = ""
	q.deliver(context.Background(), qf, []int{1}, false)
	if got := remote.from["fwd@other.test"]; got != "" {
		t.Errorf("the null sender became <%s>", got)
	}
	q.SRS = nil
	qf.Envelope.From = "sender@origin.test"
	q.deliver(context.Background(), qf, []int{1}, false)
	if got := remote.from["fwd@other.test"]; got != "sender@origin.test" {
		t.Errorf("without SRS: <%s>", got)
	}
}

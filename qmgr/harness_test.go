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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/delivery"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/logtest"
	"postern/pkg/maildir"
	"postern/pkg/queue"
)

// harness runs a qmgr on a temporary spool with fake authd, local and cleanup daemons on
// Unix sockets, the way the real ones talk to it.
type harness struct {
	t     *testing.T
	dir   string
	spool queue.Spool
	mail  string // the mail root

	// authd
	mu       sync.Mutex
	accounts map[string]int64 // address → quota
	authDown atomic.Bool
	// local
	localStop func()
	requests  atomic.Int32 // deliver requests served
	seenMu    sync.Mutex
	seen      map[string][]delivery.Recipient // the recipients of each request, by queue ID
	// cleanup
	cleanupFails atomic.Bool
	dsns         chan captured

	q      *Qmgr
	cfg    config.Queue
	stop   func()
	ctl    *ipc.Client
	priv   *ipc.Client
	logBuf *logtest.Buffer
}

// captured is a message submitted to the fake cleanup.
type captured struct {
	env  enqueue.Envelope
	body []byte
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir, err := os.MkdirTemp("", "qmgr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &harness{
		t:        t,
		dir:      dir,
		spool:    queue.Spool{Root: filepath.Join(dir, "spool")},
		mail:     filepath.Join(dir, "mail"),
		accounts: map[string]int64{"bob@example.test": 0, "carol@example.test": 0},
		dsns:     make(chan captured, 10),
		logBuf:   &logtest.Buffer{},
		cfg: config.Queue{
			MinBackoff:       config.Duration(time.Hour),
			MaxBackoff:       config.Duration(4 * time.Hour),
			DelayWarning:     config.Duration(4 * time.Hour),
			MaxLifetime:      config.Duration(5 * 24 * time.Hour),
			ScanInterval:     config.Duration(time.Minute),
			LocalConcurrency: 4,
		},
	}
	if err := h.spool.Create(0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h.startAuthd(ctx)
	h.startCleanup(ctx)
	h.startLocal()
	t.Cleanup(func() { h.stopLocal() })
	return h
}

func (h *harness) sock(name string) string { return filepath.Join(h.dir, name) }

func (h *harness) listen(name string) *net.UnixListener {
	h.t.Helper()
	os.Remove(h.sock(name))
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: h.sock(name), Net: "unix"})
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

func (h *harness) maildir(addr string) string {
	local, domain, _ := strings.Cut(addr, "@")
	return filepath.Join(h.mail, domain, local)
}

// startAuthd serves a fake authd: example.test is ours, with the accounts in h.accounts.
func (h *harness) startAuthd(ctx context.Context) {
	s := &ipc.Server{Name: "fake-authd"}
	s.Handle(auth.OpMailbox, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		if h.authDown.Load() {
			return nil, ipc.Errorf("temporary", "database unavailable")
		}
		var req auth.MailboxRequest
		json.Unmarshal(body, &req)
		addr := strings.ToLower(req.Address)
		h.mu.Lock()
		quota, ok := h.accounts[addr]
		h.mu.Unlock()
		if !ok {
			return auth.MailboxResult{LocalDomain: strings.HasSuffix(addr, "@example.test")}, nil
		}
		return auth.MailboxResult{Exists: true, Address: addr, Maildir: h.maildir(addr), Quota: quota}, nil
	})
	go s.Serve(ctx, h.listen("auth"))
}

// startLocal serves a fake local delivery agent that writes into Maildirs with pkg/maildir
// and bounces messages larger than a recipient's quota.
func (h *harness) startLocal() {
	ctx, cancel := context.WithCancel(context.Background())
	s := &ipc.Server{Name: "fake-local"}
	delivery.Handle(s, func(_ context.Context, req *delivery.Request, f *os.File) []delivery.Result {
		h.requests.Add(1)
		h.seenMu.Lock()
		if h.seen == nil {
			h.seen = map[string][]delivery.Recipient{}
		}
		h.seen[req.QueueID] = append(h.seen[req.QueueID], req.Recipients...)
		h.seenMu.Unlock()
		var results []delivery.Result
		for _, r := range req.Recipients {
			if r.Quota > 0 && req.Size > r.Quota {
				results = append(results, delivery.Result{Status: delivery.Bounced, Code: "5.2.2", Reason: "mailbox full", Relay: "local"})
				continue
			}
			maildir.Create(r.Maildir, nil)
			prefix := "Return-Path: <" + req.From + ">\r\nDelivered-To: " + r.Addr + "\r\n"
			if _, _, err := maildir.DeliverWithPrefix(r.Maildir, []byte(prefix), io.NewSectionReader(f, req.Offset, req.Size)); err != nil {
				results = append(results, delivery.Result{Status: delivery.Deferred, Code: "4.3.0", Reason: err.Error(), Relay: "local"})
				continue
			}
			results = append(results, delivery.Result{Status: delivery.Sent, Code: "2.0.0", Reason: "delivered to maildir", Relay: "local"})
		}
		return results
	})
	l := h.listen("local")
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	h.localStop = func() {
		// As if local died: its connections close too.
		cancel()
		<-done
		s.Shutdown(context.Background())
	}
}

func (h *harness) stopLocal() {
	if h.localStop != nil {
		h.localStop()
		h.localStop = nil
	}
}

// startCleanup serves a fake cleanup that captures what qmgr submits.
func (h *harness) startCleanup(ctx context.Context) {
	s := &ipc.Server{Name: "fake-cleanup"}
	s.HandleStream(enqueue.OpEnqueue, func(_ context.Context, _ ipc.Cred, c *ipc.Conn, body json.RawMessage, files []*os.File) error {
		ipc.CloseFiles(files)
		var env enqueue.Envelope
		json.Unmarshal(body, &env)
		data, err := io.ReadAll(c.StreamReader())
		if err != nil {
			return err
		}
		var end enqueue.End
		if _, err := c.Receive(&end); err != nil {
			return err
		}
		if !end.Complete {
			return c.Reply(nil, ipc.Errorf("aborted", "discarded"))
		}
		if h.cleanupFails.Load() {
			return c.Reply(nil, ipc.Errorf("temporary", "queue file error"))
		}
		h.dsns <- captured{env: env, body: data}
		return c.Reply(enqueue.Result{QueueID: queue.NewID(), Size: int64(len(data))}, nil)
	})
	go s.Serve(ctx, h.listen("cleanup"))
}

// start runs a qmgr (again) on the spool, serving its private and control sockets.
func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(h.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	q := &Qmgr{
		Hostname: "mx.example.test",
		Spool:    h.spool,
		Queue:    h.cfg,
		Dir:      auth.NewClient(h.sock("auth")),
		Local:    NewAgent("local", delivery.NewClient(h.sock("local")), h.cfg.LocalConcurrency),
		Remote:   Unavailable{Relay: "none", Reason: "no remote delivery agent yet"},
		Bounces:  enqueue.NewClient(h.sock("cleanup")),
		Log:      log,
	}
	if err := q.OpenState(filepath.Join(h.dir, "state", "qmgr.db")); err != nil {
		h.t.Fatal(err)
	}
	priv := q.PrivateServer(nil)
	ctl := q.ControlServer(nil)
	go priv.Serve(ctx, h.listen("qmgr"))
	go ctl.Serve(ctx, h.listen("qmgr-control"))
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	<-q.recovered
	h.q = q
	h.ctl = ipc.NewClient(h.sock("qmgr-control"))
	h.priv = ipc.NewClient(h.sock("qmgr"))
	h.stop = func() {
		cancel()
		<-done
		h.ctl.Close()
		h.priv.Close()
		if err := q.CloseState(); err != nil {
			h.t.Error(err)
		}
	}
	h.t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
			h.stop = nil
		}
	})
}

// restart stops qmgr the way a crash would leave things (no cleanup beyond what Run does
// when cancelled) and starts a new one.
func (h *harness) restart() {
	h.stop()
	h.stop = nil
	h.start()
}

// message describes a queue file to write.
type message struct {
	state   string // queue directory; incoming by default
	from    string
	rcpts   []queue.Recipient
	arrival time.Time
	body    string
	ret     string
	records []queue.Status
	noWake  bool
	spam    bool // spamd's verdict
}

const testBody = "Received: by mx.example.test\r\nFrom: <alice@far.test>\r\nTo: <bob@example.test>\r\n" +
	"Subject: test\r\nMessage-ID: <test@far.test>\r\n\r\nhello\r\n"

func rcpts(addrs ...string) []queue.Recipient {
	var out []queue.Recipient
	for _, a := range addrs {
		out = append(out, queue.Recipient{Addr: a})
	}
	return out
}

// queue writes a complete queue file and, for incoming/, wakes qmgr as cleanup would.
func (h *harness) queue(m message) string {
	h.t.Helper()
	if m.state == "" {
		m.state = queue.Incoming
	}
	if m.body == "" {
		m.body = testBody
	}
	if m.arrival.IsZero() {
		m.arrival = time.Now()
	}
	env := &queue.Envelope{ID: queue.NewID(), From: m.from, Recipients: m.rcpts, Arrival: m.arrival, Ret: m.ret, Spam: m.spam}
	w, err := queue.Create(h.spool.Dir(m.state), env)
	if err != nil {
		h.t.Fatal(err)
	}
	io.WriteString(w, m.body)
	if err := w.Commit(); err != nil {
		h.t.Fatal(err)
	}
	if len(m.records) > 0 {
		qf, err := queue.Open(w.Path())
		if err != nil {
			h.t.Fatal(err)
		}
		if err := qf.Append(m.records...); err != nil {
			h.t.Fatal(err)
		}
		qf.Close()
	}
	if m.state == queue.Incoming && !m.noWake && h.priv != nil {
		if _, err := h.priv.Call(context.Background(), queue.OpWakeup, queue.Wakeup{ID: env.ID}, nil); err != nil {
			h.t.Fatal(err)
		}
	}
	return env.ID
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s\nlog:\n%s", what, h.logBuf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// where returns the queue directory holding id, or "" once it is gone.
func (h *harness) where(id string) string {
	st, err := h.spool.Find(id)
	if err != nil {
		return ""
	}
	return st
}

// waitState waits until the message is in state ("" = removed) and no longer being
// worked on.
func (h *harness) waitState(id, state string) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%s in %q", id, state), func() bool {
		h.q.mu.Lock()
		busy := h.q.claimed[id] != nil
		h.q.mu.Unlock()
		return !busy && h.where(id) == state
	})
}

// messages returns the files in the account's INBOX.
func (h *harness) messages(addr string) []string {
	ents, _ := os.ReadDir(filepath.Join(h.maildir(addr), "new"))
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(h.maildir(addr), "new", e.Name()))
		if err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

func (h *harness) noDSN() {
	h.t.Helper()
	select {
	case d := <-h.dsns:
		h.t.Errorf("unexpected notification to %v:\n%s", d.env.Recipients, d.body)
	case <-time.After(100 * time.Millisecond):
	}
}

func (h *harness) dsn() captured {
	h.t.Helper()
	select {
	case d := <-h.dsns:
		return d
	case <-time.After(10 * time.Second):
		h.t.Fatalf("no notification was submitted\nlog:\n%s", h.logBuf.String())
	}
	return captured{}
}

func (h *harness) call(op string, req, resp any) error {
	_, err := h.ctl.Call(context.Background(), op, req, resp)
	return err
}

func (h *harness) list() control.QueueListResult {
	h.t.Helper()
	var res control.QueueListResult
	if err := h.call(control.QueueList, nil, &res); err != nil {
		h.t.Fatal(err)
	}
	return res
}

func (h *harness) openFile(id string) *queue.File {
	h.t.Helper()
	st := h.where(id)
	qf, err := queue.Open(h.spool.Path(st, id))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { qf.Close() })
	return qf
}

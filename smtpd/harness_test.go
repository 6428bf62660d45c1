package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
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
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/logtest"
	"postern/pkg/ratelimit"
)

// fakeMsg is a message the fake cleanup queued.
type fakeMsg struct {
	ID   string
	Env  enqueue.Envelope
	Body []byte
}

// fakeCleanup serves enqueue.OpEnqueue the way cleanup does, keeping messages in memory.
type fakeCleanup struct {
	mu      sync.Mutex
	msgs    []fakeMsg
	aborted int
	n       int
	// failCommit makes every complete message fail with a "temporary" error.
	failCommit atomic.Bool
	// discard makes it forget messages once counted (for benchmarks).
	discard atomic.Bool
}

func (f *fakeCleanup) serve(ctx context.Context, _ ipc.Cred, c *ipc.Conn, body json.RawMessage, files []*os.File) error {
	ipc.CloseFiles(files)
	var env enqueue.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return err
	}
	var data []byte
	var err error
	if f.discard.Load() {
		_, err = io.Copy(io.Discard, c.StreamReader())
	} else {
		data, err = io.ReadAll(c.StreamReader())
	}
	if err != nil {
		return err
	}
	var end enqueue.End
	if _, err := c.Receive(&end); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !end.Complete {
		f.aborted++
		return c.Reply(nil, ipc.Errorf("aborted", "message discarded"))
	}
	if f.failCommit.Load() {
		return c.Reply(nil, ipc.Errorf("temporary", "queue file error"))
	}
	f.n++
	id := fmt.Sprintf("4F00000000%06d", f.n)
	if !f.discard.Load() {
		f.msgs = append(f.msgs, fakeMsg{ID: id, Env: env, Body: data})
	}
	return c.Reply(enqueue.Result{QueueID: id, Size: int64(len(data))}, nil)
}

func (f *fakeCleanup) messages() []fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeMsg(nil), f.msgs...)
}

func (f *fakeCleanup) abortedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.aborted
}

// fakeResolve answers auth.OpResolve: example.test is ours with the users demo, user and
// postmaster; fail@example.test makes the lookup fail; every other domain is foreign.
func fakeResolve(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
	var req auth.ResolveRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, ipc.Errorf("invalid", "%v", err)
	}
	addr := strings.ToLower(req.Address)
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return nil, ipc.Errorf("invalid", "no domain in %q", req.Address)
	}
	local, domain := addr[:at], addr[at+1:]
	if domain != "example.test" {
		return auth.ResolveResult{}, nil
	}
	local, _, _ = strings.Cut(local, "+")
	switch local {
	case "demo", "user", "postmaster":
		return auth.ResolveResult{Local: true, Found: true, Targets: []string{local + "@example.test"}}, nil
	case "fail":
		return nil, ipc.Errorf("temporary", "database unavailable")
	case "full", "small":
		// full's mailbox is at its quota of 1000 octets; small has 1000 octets of
		// room under a quota of 2000. Their usage is given only when asked for.
		res := auth.ResolveResult{Local: true, Found: true, Targets: []string{local + "@example.test"}}
		if req.Usage {
			quota := map[string]int64{"full": 1000, "small": 2000}[local]
			res.Usage = []auth.MailboxUsage{{Address: local + "@example.test", Quota: quota, Used: 1000}}
		}
		return res, nil
	}
	return auth.ResolveResult{Local: true}, nil
}

// testEnv is a running smtpd with fake cleanup and authd.
type testEnv struct {
	t       testing.TB
	cfg     *config.Config
	srv     *Server
	cleanup *fakeCleanup
	addrs   map[string]string
	roots   *x509.CertPool
	log     *logtest.Buffer
	cancel  context.CancelFunc
	done    chan error
}

// startEnv starts a server on loopback with the listeners smtp, submission and
// submissions; configure may change the configuration first.
func startEnv(t testing.TB, configure func(*config.Config)) *testEnv {
	t.Helper()
	return startEnvWith(t, configure, envOptions{})
}

// envOptions leave out fake daemons.
type envOptions struct {
	noAuthd, noCleanup bool
}

func startEnvWith(t testing.TB, configure func(*config.Config), opts envOptions) *testEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "smtpd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := config.Default()
	cfg.Hostname = "mx.example.test"
	cfg.SpoolDir = filepath.Join(dir, "spool")
	cfg.SMTPD.Timeout = config.Duration(10 * time.Second)
	cfg.SMTPD.DataTimeout = config.Duration(10 * time.Second)
	cfg.SMTPD.ShutdownGrace = config.Duration(5 * time.Second)
	cfg.SMTPD.MaxMessageSize = 1 << 20
	e := &testEnv{t: t, cfg: cfg, cleanup: &fakeCleanup{}, addrs: map[string]string{}, log: &logtest.Buffer{}}
	cfg.TLS.Cert, cfg.TLS.Key, e.roots = writeCert(t, dir)
	if configure != nil {
		configure(cfg)
	}
	if err := os.MkdirAll(filepath.Join(cfg.SpoolDir, "private"), 0o700); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if !opts.noCleanup {
		cl := &ipc.Server{Name: "fake-cleanup", Logger: quiet}
		cl.HandleStream(enqueue.OpEnqueue, e.cleanup.serve)
		go cl.Serve(ctx, listenUnix(t, cfg.PrivateSocket("cleanup")))
	}
	if !opts.noAuthd {
		au := &ipc.Server{Name: "fake-authd", Logger: quiet}
		au.Handle(auth.OpResolve, fakeResolve)
		au.Handle(auth.OpVerify, fakeVerify) // auth_test.go
		au.Handle(auth.OpSendAs, fakeSendAs) // auth_test.go
		au.Handle(auth.OpWebCheck, fakeWebCheck)
		// authd counts the submission rates; the fake counts them as authd does.
		rates := ratelimit.New(cfg.Submission.MaxMessagesPerHour, cfg.Submission.MaxRecipientsPerHour, time.Hour)
		au.Handle(auth.OpRate, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
			var req auth.RateRequest
			if err := json.Unmarshal(body, &req); err != nil {
				return nil, ipc.Errorf("invalid", "%v", err)
			}
			return auth.RateResult{OK: rates.Take(req.User, req.Recipient)}, nil
		})
		go au.Serve(ctx, listenUnix(t, cfg.PrivateSocket("auth")))
	}

	log := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv, err = New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	listeners := map[string]net.Listener{}
	for _, name := range []string{listenSMTP, listenSubmission, listenSubmissions} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners[name] = l
		e.addrs[name] = l.Addr().String()
	}
	srvCtx, srvCancel := context.WithCancel(context.Background())
	e.cancel = srvCancel
	e.done = make(chan error, 1)
	go func() { e.done <- e.srv.Run(srvCtx, listeners) }()
	t.Cleanup(func() {
		srvCancel()
		select {
		case <-e.done:
		case <-time.After(15 * time.Second):
			t.Error("server did not stop")
		}
		cancel()
		if t.Failed() || os.Getenv("SMTPD_TEST_LOG") != "" {
			t.Logf("server log:\n%s", e.log.String())
		}
	})
	return e
}

func listenUnix(t testing.TB, path string) *net.UnixListener {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// writeCert makes a self-signed certificate for mx.example.test and 127.0.0.1.
func writeCert(t testing.TB, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mx.example.test"},
		DNSNames:              []string{"mx.example.test"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

func (e *testEnv) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: e.roots, ServerName: "mx.example.test"}
}

// waitMessages waits until the fake cleanup holds n messages.
func (e *testEnv) waitMessages(n int) []fakeMsg {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		msgs := e.cleanup.messages()
		if len(msgs) >= n || time.Now().After(deadline) {
			if len(msgs) != n {
				e.t.Fatalf("%d messages queued, want %d", len(msgs), n)
			}
			return msgs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLog waits until the server log contains every one of subs and returns the log.
// The server writes some lines (disconnect, reject) after the reply the client has
// already read, so a test must not look only once.
func (e *testEnv) waitLog(subs ...string) (string, bool) {
	return e.log.WaitFor(5*time.Second, subs...)
}

// client is a raw SMTP client.
type client struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// dial connects to a listener of e and returns the client with the greeting.
func (e *testEnv) dial(listener string) (*client, string) {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", e.addrs[listener], 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	if listener == listenSubmissions {
		tc := tls.Client(c, e.tlsConfig())
		if err := tc.Handshake(); err != nil {
			e.t.Fatal(err)
		}
		c = tc
	}
	e.t.Cleanup(func() { c.Close() })
	cl := &client{t: e.t, c: c, r: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return cl, cl.read()
}

// session dials the MX listener and says EHLO.
func (e *testEnv) session() *client {
	e.t.Helper()
	c, greeting := e.dial(listenSMTP)
	expect(e.t, greeting, "220 mx.example.test")
	expect(e.t, c.cmd("EHLO client.test"), "250-mx.example.test")
	return c
}

// read reads one reply, all its lines.
func (c *client) read() string {
	c.t.Helper()
	var all strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v (so far %q)", err, all.String())
		}
		all.WriteString(line)
		if len(line) < 4 || line[3] != '-' {
			return all.String()
		}
	}
}

// tryRead reads one reply or returns the error.
func (c *client) tryRead() (string, error) {
	var all strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return all.String(), err
		}
		all.WriteString(line)
		if len(line) < 4 || line[3] != '-' {
			return all.String(), nil
		}
	}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatal(err)
	}
}

// cmd sends a command line and reads its reply.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.read()
}

// expectClosed checks that the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if s, err := c.r.ReadString('\n'); err == nil {
		c.t.Fatalf("connection still open, read %q", s)
	}
}

func expect(t testing.TB, got, prefix string) {
	t.Helper()
	if !strings.HasPrefix(got, prefix) {
		t.Fatalf("got %q, want %q...", strings.TrimSpace(got), prefix)
	}
}

// transaction runs MAIL, RCPT and DATA with body and returns the final reply.
func (c *client) transaction(from, to, body string) string {
	c.t.Helper()
	expect(c.t, c.cmd("MAIL FROM:<"+from+">"), "250 2.1.0")
	expect(c.t, c.cmd("RCPT TO:<"+to+">"), "250 2.1.5")
	expect(c.t, c.cmd("DATA"), "354")
	c.send(body + ".\r\n")
	return c.read()
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"postern/pkg/config"
	"postern/pkg/delivery"
	"postern/pkg/logtest"
	"postern/pkg/mtasts"
	"postern/pkg/resolver"
	"postern/pkg/resolver/resolvertest"
	"postern/pkg/smtp"
)

type env struct {
	t     *testing.T
	dns   *resolvertest.Server
	agent *Agent
	log   *logtest.Buffer
}

// newEnv starts a fake DNS server and an agent that asks it and sends to port.
func newEnv(t *testing.T, port int, tune func(*config.Config)) *env {
	t.Helper()
	d, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	res, err := resolver.New([]string{d.Addr})
	if err != nil {
		t.Fatal(err)
	}
	res.Timeout = time.Second
	cfg := config.Default()
	cfg.Hostname = "mx.a.test"
	cfg.Remote.Port = port
	cfg.Remote.ConnectTimeout = config.Duration(2 * time.Second)
	cfg.Remote.CommandTimeout = config.Duration(5 * time.Second)
	cfg.Remote.DataTimeout = config.Duration(5 * time.Second)
	if tune != nil {
		tune(cfg)
	}
	logs := &logtest.Buffer{}
	a := NewAgent(cfg, res, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithCancel(context.Background())
	go a.pool.expire(ctx)
	t.Cleanup(cancel)
	return &env{t: t, dns: d, agent: a, log: logs}
}

func (e *env) zone(records ...string) {
	e.t.Helper()
	if err := e.dns.Add(records...); err != nil {
		e.t.Fatal(err)
	}
}

// queueFile writes body into a file after some bytes that stand for the queue file's
// envelope, and returns the open file and the request locating the message in it.
func queueFile(t *testing.T, from, body string, rcpts ...string) (*os.File, *delivery.Request) {
	t.Helper()
	head := "{\"envelope\": \"not part of the message\"}\n"
	p := filepath.Join(t.TempDir(), "Q1")
	if err := os.WriteFile(p, []byte(head+body+"trailer"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	req := &delivery.Request{QueueID: "Q1", From: from, Offset: int64(len(head)), Size: int64(len(body))}
	for _, r := range rcpts {
		req.Recipients = append(req.Recipients, delivery.Recipient{Addr: r})
	}
	return f, req
}

const testBody = "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: hi\r\n\r\nHello.\r\n.hidden dot line\r\n.\r\nend\r\n"

func (e *env) deliver(f *os.File, req *delivery.Request) []delivery.Result {
	e.t.Helper()
	res := e.agent.Deliver(context.Background(), f, req)
	if len(res) != len(req.Recipients) {
		e.t.Fatalf("%d results for %d recipients", len(res), len(req.Recipients))
	}
	return res
}

func TestDeliverThroughMX(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"PIPELINING", "8BITMIME", "SIZE 100000", "STARTTLS", "DSN", "ENHANCEDSTATUSCODES"}
	})
	srv.set(func(c *fakeConfig) {
		c.tlsConfig = selfSigned(t, "mx.b.test")
	})
	srv.set(func(c *fakeConfig) {
		c.rcptReply = func(addr string) string {
			if strings.HasPrefix(addr, "nobody@") {
				return "550 5.1.1 <" + addr + ">: Recipient address rejected: User unknown"
			}
			if strings.HasPrefix(addr, "later@") {
				return "450 4.2.1 <" + addr + ">: try later"
			}
			return "250 2.1.5 OK"
		}
	})
	e := newEnv(t, srv.port, nil)
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	f, req := queueFile(t, "alice@a.test", testBody, "bob@b.test", "nobody@B.TEST", "later@b.test")
	req.BodyType = "8BITMIME"
	req.EnvID = "env+1"
	req.Ret = "HDRS"
	req.Recipients[0].Notify = "SUCCESS,FAILURE"
	req.Recipients[0].ORcpt = "rfc822;Bob@b.test"
	res := e.deliver(f, req)

	relay := fmt.Sprintf("mx.b.test[127.0.0.1]:%d", srv.port)
	if r := res[0]; r.Status != delivery.Sent || r.Code != "2.0.0" || r.Relay != relay || !strings.Contains(r.Reason, "queued as FAKE1") {
		t.Errorf("bob: %+v", r)
	}
	if r := res[1]; r.Status != delivery.Bounced || r.Code != "5.1.1" || r.Relay != relay ||
		r.Reason != "550 5.1.1 <nobody@b.test>: Recipient address rejected: User unknown" {
		t.Errorf("nobody: %+v", r)
	}
	if r := res[2]; r.Status != delivery.Deferred || r.Code != "4.2.1" || r.Relay != relay {
		t.Errorf("later: %+v", r)
	}
	msgs, conns, _ := srv.snapshot()
	if len(msgs) != 1 || conns != 1 {
		t.Fatalf("%d messages on %d connections", len(msgs), conns)
	}
	m := msgs[0]
	if string(m.data) != testBody {
		t.Errorf("the server got\n%q\nwant\n%q", m.data, testBody)
	}
	if !m.tls || m.from != "alice@a.test" || len(m.rcpts) != 1 || m.rcpts[0] != "bob@b.test" {
		t.Errorf("message: %+v", m)
	}
	for _, p := range []string{"SIZE=" + fmt.Sprint(len(testBody)), "BODY=8BITMIME", "RET=HDRS", "ENVID=env+2B1"} {
		if !strings.Contains(m.mailParams, p) {
			t.Errorf("MAIL parameters %q lack %s", m.mailParams, p)
		}
	}
	if m.rcptParams[0] != "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@b.test" {
		t.Errorf("RCPT parameters %q", m.rcptParams[0])
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !srv.pipelined || len(srv.violations) > 0 {
		t.Errorf("pipelined %v, violations %v", srv.pipelined, srv.violations)
	}
	// Opportunistic TLS with a self-signed certificate: used, and logged as unverified.
	if logs := e.log.String(); !strings.Contains(logs, "verified=false") || !strings.Contains(logs, "tls=\"TLS 1.3") {
		t.Errorf("the log does not tell the TLS state:\n%s", logs)
	}
}

func TestCertificateVerified(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"STARTTLS"}
	})
	srv.set(func(c *fakeConfig) {
		c.tlsConfig = selfSigned(t, "mx.b.test")
	})
	e := newEnv(t, srv.port, nil)
	e.agent.dialer.roots = certPool(t, srv.config().tlsConfig)
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	f, req := queueFile(t, "alice@a.test", testBody, "bob@b.test")
	if res := e.deliver(f, req); res[0].Status != delivery.Sent {
		t.Fatalf("%+v", res[0])
	}
	if logs := e.log.String(); !strings.Contains(logs, "verified=true") {
		t.Errorf("the log does not say the certificate verified:\n%s", logs)
	}
	if len(srv.violations) > 0 {
		t.Errorf("violations %v", srv.violations)
	}
}

func TestBrokenSTARTTLSFallsBackToPlainText(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"STARTTLS", "PIPELINING"}
	})
	srv.set(func(c *fakeConfig) {
		c.badTLS = true
	})
	e := newEnv(t, srv.port, nil)
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	f, req := queueFile(t, "alice@a.test", testBody, "bob@b.test")
	// The server breaks every handshake; the agent must then not ask for TLS.
	srv.set(func(c *fakeConfig) {
		c.onCommand = nil
	})
	res := e.deliver(f, req)
	msgs, conns, _ := srv.snapshot()
	if res[0].Status != delivery.Sent || len(msgs) != 1 || msgs[0].tls || conns != 2 {
		t.Fatalf("%+v; %d messages on %d connections", res[0], len(msgs), conns)
	}
}

func TestMXOrderAndFallback(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	e := newEnv(t, srv.port, nil)
	// The preferred MX has an address where nothing listens; the second works. The
	// third would work too but comes later.
	e.zone(
		"b.test. MX 5 dead.b.test.",
		"b.test. MX 10 mx.b.test.",
		"b.test. MX 20 never.b.test.",
		"dead.b.test. A 127.0.0.9",
		"mx.b.test. A 127.0.0.1",
		"never.b.test. A 127.0.0.1",
	)
	f, req := queueFile(t, "alice@a.test", testBody, "bob@b.test")
	res := e.deliver(f, req)
	if res[0].Status != delivery.Sent || !strings.HasPrefix(res[0].Relay, "mx.b.test[") {
		t.Fatalf("%+v\n%s", res[0], e.log.String())
	}
	if !strings.Contains(e.log.String(), "dead.b.test[127.0.0.9]") {
		t.Errorf("the failed MX is not in the log:\n%s", e.log.String())
	}
}

func TestImplicitMX(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	e := newEnv(t, srv.port, nil)
	e.zone("b.test. A 127.0.0.1") // no MX: the domain's address (RFC 5321 §5.1)
	f, req := queueFile(t, "", testBody, "bob@b.test")
	res := e.deliver(f, req)
	msgs, _, _ := srv.snapshot()
	if res[0].Status != delivery.Sent || len(msgs) != 1 || msgs[0].from != "" {
		t.Fatalf("%+v %+v", res[0], msgs)
	}
}

func TestRoutingFailures(t *testing.T) {
	e := newEnv(t, 1, nil)
	e.zone(
		"null.test. MX 0 .",
		"noaddr.test. TXT \"no mail here\"",
		"mxnoaddr.test. MX 10 gone.mxnoaddr.test.",
		"down.test. MX 10 mx.down.test.",
		"mx.down.test. A 127.0.0.1",
	)
	e.dns.Fail("servfail.test", dns.RcodeServerFailure)
	f, req := queueFile(t, "alice@a.test", testBody,
		"a@null.test", "b@nxdomain.test", "c@servfail.test", "d@noaddr.test", "e@mxnoaddr.test", "f@down.test", "g@[127.0.0.1]")
	res := e.deliver(f, req)
	for i, want := range []struct{ status, code, words string }{
		{delivery.Bounced, "5.1.10", "null MX"},
		{delivery.Bounced, "5.1.2", "does not exist"},
		{delivery.Deferred, "4.4.3", "SERVFAIL"},
		{delivery.Bounced, "5.4.4", "no addresses"},
		{delivery.Bounced, "5.4.4", "no addresses"},
		{delivery.Deferred, "4.4.1", "connection refused"},
		{delivery.Deferred, "4.4.1", "connection refused"},
	} {
		r := res[i]
		if r.Status != want.status || r.Code != want.code || !strings.Contains(r.Reason, want.words) || r.Relay != "none" {
			t.Errorf("%s: %+v, want %s %s %q", req.Recipients[i].Addr, r, want.status, want.code, want.words)
		}
	}
}

func TestReplies(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"PIPELINING"}
	})
	e := newEnv(t, srv.port, nil)
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")

	// A refused sender: the verdict of every recipient.
	srv.set(func(c *fakeConfig) {
		c.onCommand = func(l string) string {
			if strings.HasPrefix(l, "MAIL") {
				return "553 5.7.1 sender refused"
			}
			return ""
		}
	})
	f, req := queueFile(t, "alice@a.test", testBody, "bob@b.test", "carol@b.test")
	for _, r := range e.deliver(f, req) {
		if r.Status != delivery.Bounced || r.Code != "5.7.1" || r.Reason != "553 5.7.1 sender refused" {
			t.Errorf("refused sender: %+v", r)
		}
	}
	// The message refused after DATA, without an enhanced code.
	srv.set(func(c *fakeConfig) {
		c.onCommand = nil
	})
	srv.set(func(c *fakeConfig) {
		c.dataReply = "554 spam"
	})
	for _, r := range e.deliver(f, req) {
		if r.Status != delivery.Bounced || r.Code != "5.0.0" || r.Reason != "554 spam" {
			t.Errorf("refused message: %+v", r)
		}
	}
	srv.set(func(c *fakeConfig) {
		c.dataReply = "451 4.3.0 try again"
	})
	for _, r := range e.deliver(f, req) {
		if r.Status != delivery.Deferred || r.Code != "4.3.0" {
			t.Errorf("deferred message: %+v", r)
		}
	}
	// The server goes away mid-transaction.
	srv.set(func(c *fakeConfig) {
		c.dataReply = ""
	})
	srv.set(func(c *fakeConfig) {
		c.onCommand = func(l string) string {
			if strings.HasPrefix(l, "RCPT") {
				return "421 4.3.2 shutting down"
			}
			return ""
		}
	})
	for _, r := range e.deliver(f, req) {
		if r.Status != delivery.Deferred {
			t.Errorf("421: %+v", r)
		}
	}
}

func TestConnectionReuse(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"PIPELINING"}
	})
	e := newEnv(t, srv.port, nil)
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	for i := range 3 {
		f, req := queueFile(t, "alice@a.test", testBody, fmt.Sprintf("u%d@b.test", i))
		if r := e.deliver(f, req)[0]; r.Status != delivery.Sent {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	msgs, conns, cmds := srv.snapshot()
	if len(msgs) != 3 || conns != 1 {
		t.Fatalf("%d messages over %d connections, want 3 over 1", len(msgs), conns)
	}
	if n := strings.Count(strings.Join(cmds, "\n"), "RSET"); n != 2 {
		t.Errorf("%d RSETs between 3 messages:\n%s", n, strings.Join(cmds, "\n"))
	}

	// A cached connection that the server closed is replaced without a failure.
	srv2 := newFakeServer(t, "127.0.0.1")
	e2 := newEnv(t, srv2.port, func(c *config.Config) { c.Remote.ConnectionCacheTime = config.Duration(time.Minute) })
	e2.zone("c.test. MX 10 mx.c.test.", "mx.c.test. A 127.0.0.1")
	f, req := queueFile(t, "alice@a.test", testBody, "x@c.test")
	e2.deliver(f, req)
	srv2.set(func(c *fakeConfig) {
		c.onCommand = func(l string) string {
			if l == "RSET" {
				return "421 4.4.2 idle too long"
			}
			return ""
		}
	})
	if r := e2.deliver(f, req)[0]; r.Status != delivery.Sent {
		t.Fatalf("after a dead cached connection: %+v", r)
	}
	if _, conns, _ := srv2.snapshot(); conns != 2 {
		t.Errorf("%d connections, want 2", conns)
	}
}

func TestNoCache(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	e := newEnv(t, srv.port, func(c *config.Config) { c.Remote.ConnectionCacheTime = 0 })
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	for range 2 {
		f, req := queueFile(t, "alice@a.test", testBody, "bob@b.test")
		e.deliver(f, req)
	}
	if _, conns, cmds := srv.snapshot(); conns != 2 || cmds[len(cmds)-1] != "QUIT" {
		t.Errorf("%d connections, last command %q", conns, cmds[len(cmds)-1])
	}
}

func TestWithoutPipelining(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"8BITMIME"}
	})
	srv.set(func(c *fakeConfig) {
		c.rcptReply = func(a string) string {
			if strings.HasPrefix(a, "no@") {
				return "550 5.1.1 no"
			}
			return "250 OK"
		}
	})
	e := newEnv(t, srv.port, nil)
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	f, req := queueFile(t, "alice@a.test", testBody, "no@b.test", "yes@b.test")
	res := e.deliver(f, req)
	if res[0].Status != delivery.Bounced || res[1].Status != delivery.Sent {
		t.Fatalf("%+v", res)
	}
	// Only refusals: no DATA at all.
	f, req = queueFile(t, "alice@a.test", testBody, "no@b.test")
	if r := e.deliver(f, req)[0]; r.Status != delivery.Bounced {
		t.Fatalf("%+v", r)
	}
	_, _, cmds := srv.snapshot()
	if strings.Count(strings.Join(cmds, "\n"), "DATA") != 1 {
		t.Errorf("commands:\n%s", strings.Join(cmds, "\n"))
	}
	// The refused transaction was ended at once, not left open in the cache.
	if cmds[len(cmds)-1] != "RSET" {
		t.Errorf("last command %q, want RSET:\n%s", cmds[len(cmds)-1], strings.Join(cmds, "\n"))
	}
	if len(srv.violations) > 0 {
		t.Errorf("violations %v", srv.violations)
	}
}

func TestTooManyRecipients(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"PIPELINING"}
	})
	srv.set(func(c *fakeConfig) {
		c.maxRcpts = 2
	})
	e := newEnv(t, srv.port, nil)
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	f, req := queueFile(t, "alice@a.test", testBody, "a@b.test", "b@b.test", "c@b.test", "d@b.test", "e@b.test")
	for i, r := range e.deliver(f, req) {
		if r.Status != delivery.Sent {
			t.Errorf("%d: %+v", i, r)
		}
	}
	msgs, _, _ := srv.snapshot()
	if len(msgs) != 3 {
		t.Errorf("%d transactions, want 3", len(msgs))
	}

	// RFC 821's 552 for the same: temporary too.
	srv.set(func(c *fakeConfig) {
		c.maxRcpts = 0
		c.rcptReply = func(string) string { return "552 5.5.3 too many recipients" }
	})
	f, req = queueFile(t, "alice@a.test", testBody, "a@b.test")
	if r := e.deliver(f, req)[0]; r.Status != delivery.Deferred || r.Code != "4.5.3" {
		t.Errorf("552 to RCPT: %+v", r)
	}
}

func TestServerCapabilities(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"SIZE 100"}
	})
	// Every message on a new connection: the server changes its extensions.
	e := newEnv(t, srv.port, func(c *config.Config) { c.Remote.ConnectionCacheTime = 0 })
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")

	check := func(name string, r delivery.Result, status, code, words string) {
		t.Helper()
		if r.Status != status || r.Code != code || !strings.Contains(r.Reason, words) {
			t.Errorf("%s: %+v, want %s %s %q", name, r, status, code, words)
		}
	}
	// SIZE: the server's limit is final.
	f, req := queueFile(t, "alice@a.test", strings.Repeat("x", 200)+"\r\n", "bob@b.test")
	check("size", e.deliver(f, req)[0], delivery.Bounced, "5.3.4", "exceeds the limit 100")

	// 8BITMIME missing: 8-bit content is returned, 7-bit content declared 8-bit goes.
	srv.set(func(c *fakeConfig) {
		c.ext = nil
	})
	f, req = queueFile(t, "alice@a.test", "Subject: x\r\n\r\ncaf\xc3\xa9\r\n", "bob@b.test")
	req.BodyType = "8BITMIME"
	check("8bit", e.deliver(f, req)[0], delivery.Bounced, "5.6.3", "8BITMIME")
	f, req = queueFile(t, "alice@a.test", "Subject: x\r\n\r\ncafe\r\n", "bob@b.test")
	req.BodyType = "8BITMIME"
	check("7bit", e.deliver(f, req)[0], delivery.Sent, "2.0.0", "queued")
	msgs, _, _ := srv.snapshot()
	if p := msgs[len(msgs)-1].mailParams; strings.Contains(p, "BODY") {
		t.Errorf("BODY sent to a server without 8BITMIME: %q", p)
	}

	// SMTPUTF8 missing: a UTF-8 address, or UTF-8 headers, cannot go.
	f, req = queueFile(t, "alice@a.test", testBody, "josé@b.test")
	req.SMTPUTF8 = true
	check("utf8 address", e.deliver(f, req)[0], delivery.Bounced, "5.6.7", "SMTPUTF8")
	f, req = queueFile(t, "alice@a.test", "Subject: caf\xc3\xa9\r\n\r\nhi\r\n", "bob@b.test")
	req.SMTPUTF8 = true
	req.BodyType = "8BITMIME"
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"8BITMIME"}
	})
	check("utf8 header", e.deliver(f, req)[0], delivery.Bounced, "5.6.9", "SMTPUTF8")
	// ... but an ASCII message that only carried the flag goes, without it.
	f, req = queueFile(t, "alice@a.test", testBody, "bob@b.test")
	req.SMTPUTF8 = true
	check("ascii", e.deliver(f, req)[0], delivery.Sent, "2.0.0", "queued")

	// With SMTPUTF8 at the server, the UTF-8 address goes with the parameter.
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"8BITMIME", "SMTPUTF8"}
	})
	f, req = queueFile(t, "alice@a.test", testBody, "josé@b.test")
	req.SMTPUTF8 = true
	check("utf8 server", e.deliver(f, req)[0], delivery.Sent, "2.0.0", "queued")
	msgs, _, _ = srv.snapshot()
	if m := msgs[len(msgs)-1]; !strings.Contains(m.mailParams, "SMTPUTF8") || m.rcpts[0] != "josé@b.test" {
		t.Errorf("%+v", m)
	}
}

func TestDestinationConcurrency(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.slow = 200 * time.Millisecond
	})
	e := newEnv(t, srv.port, func(c *config.Config) { c.Remote.DestinationConcurrency = 2 })
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, req := queueFile(t, "alice@a.test", testBody, fmt.Sprintf("u%d@b.test", i))
			if r := e.agent.Deliver(context.Background(), f, req)[0]; r.Status != delivery.Sent {
				t.Errorf("%d: %+v", i, r)
			}
		}()
	}
	wg.Wait()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	// Six deliveries of 200 ms each started together: the limit is reached, never passed.
	if srv.maxActive != 2 || len(srv.messages) != 6 {
		t.Errorf("%d connections at once (limit 2, and six waiting), %d messages", srv.maxActive, len(srv.messages))
	}
}

func TestServeDeliverOverTheSocket(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	e := newEnv(t, srv.port, nil)
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	sock := filepath.Join(t.TempDir(), "remote")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.agent.Server(nil).Serve(ctx, l)
	c := delivery.NewClient(sock)
	defer c.Close()
	f, req := queueFile(t, "alice@a.test", testBody, "bob@b.test")
	res, err := c.Deliver(ctx, f, req)
	if err != nil || res[0].Status != delivery.Sent {
		t.Fatalf("%+v %v", res, err)
	}
	// A request whose message lies outside the file is refused.
	req.Size = 1 << 20
	if _, err := c.Deliver(ctx, f, req); err == nil {
		t.Error("a message outside the queue file was accepted")
	}
}

func TestGreetingRefused(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.greeting = "554 5.7.1 go away"
	})
	e := newEnv(t, srv.port, nil)
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	f, req := queueFile(t, "alice@a.test", testBody, "bob@b.test")
	r := e.deliver(f, req)[0]
	if r.Status != delivery.Deferred || !strings.Contains(r.Reason, "554 5.7.1 go away") {
		t.Errorf("%+v", r)
	}
}

func TestParseExtensions(t *testing.T) {
	rep, err := smtp.ReadReply(bufio.NewReader(strings.NewReader(
		"250-mx.b.test hello\r\n250-PIPELINING\r\n250-size 1000\r\n250-8BITMIME\r\n250-STARTTLS\r\n250-SMTPUTF8\r\n250 DSN\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	ext := parseExtensions(rep)
	want := extensions{esmtp: true, pipelining: true, size: true, maxSize: 1000, eightBit: true, starttls: true, smtputf8: true, dsn: true}
	if ext != want {
		t.Errorf("got %+v, want %+v", ext, want)
	}
	if x := xtext("a+b=c d\xc3"); x != "a+2Bb+3Dc+20d+C3" {
		t.Errorf("xtext: %q", x)
	}
}

// FuzzEHLOReply feeds the EHLO reply parser (smtp.ReadReply, whose own fuzz test is in
// pkg/smtp, then parseExtensions) with anything a server could send.
func FuzzEHLOReply(f *testing.F) {
	for _, s := range []string{
		"250-mx.b.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
		"250 mx\r\n", "250-x\r\n250-SIZE\r\n250 SIZE -5\r\n", "250-x\r\n250-\r\n250  \r\n",
		"250-x\r\n250-SIZE 99999999999999999999999\r\n250 STARTTLS extra\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := smtp.ReadReply(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		ext := parseExtensions(rep)
		if ext.maxSize < 0 || (ext.maxSize > 0 && !ext.size) {
			t.Fatalf("bad SIZE: %+v", ext)
		}
	})
}

// caAndLeaf returns a CA certificate and a server configuration whose chain is a leaf
// for name issued by that CA, then the CA.
func caAndLeaf(t *testing.T, name string) (*x509.Certificate, *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return ca, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, caDER}, PrivateKey: key}}}
}

func tlsaRecord(t *testing.T, owner string, usage, selector, matching uint8, c *x509.Certificate) string {
	t.Helper()
	h, err := dns.CertificateToDANE(selector, matching, c)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s 300 IN TLSA %d %d %d %s", owner, usage, selector, matching, h)
}

func leafOf(t *testing.T, cfg *tls.Config) *x509.Certificate {
	c, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tlsDestination starts b.test's MX, mx.b.test, offering STARTTLS with cert, and an
// agent that sends to it and keeps connections for cacheTime.
func tlsDestination(t *testing.T, cert *tls.Config, cacheTime time.Duration) (*fakeServer, *env) {
	t.Helper()
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"STARTTLS", "PIPELINING"}
		c.tlsConfig = cert
	})
	e := newEnv(t, srv.port, func(c *config.Config) { c.Remote.ConnectionCacheTime = config.Duration(cacheTime) })
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	return srv, e
}

// send delivers a message from alice@a.test to bob@b.test and returns bob's result.
func (e *env) send() delivery.Result {
	e.t.Helper()
	f, req := queueFile(e.t, "alice@a.test", testBody, "bob@b.test")
	return e.deliver(f, req)[0]
}

func TestDANE(t *testing.T) {
	good := selfSigned(t, "mx.b.test")
	srv, e := tlsDestination(t, good, 0)
	owner := fmt.Sprintf("_%d._tcp.mx.b.test.", srv.port)
	send := e.send
	sent := func() int { m, _, _ := srv.snapshot(); return len(m) }

	// TLSA records without DNSSEC validation do not count: opportunistic TLS.
	e.zone(tlsaRecord(t, owner, 3, 1, 1, leafOf(t, selfSigned(t, "other"))))
	if r := send(); r.Status != delivery.Sent {
		t.Fatalf("unvalidated TLSA: %+v", r)
	}

	// Validated, and not matching: the mail waits, and nothing is sent.
	e.dns.SetAuthenticated(true)
	before := sent()
	if r := send(); r.Status != delivery.Deferred || r.Code != "4.7.5" || !strings.Contains(r.Reason, "DANE") {
		t.Fatalf("mismatching TLSA: %+v", r)
	}
	if sent() != before {
		t.Fatal("a message went to a server that failed DANE")
	}

	// DANE-EE(3) SPKI SHA-256 of the server's own (self-signed) certificate.
	e.dns.Remove(owner, dns.TypeTLSA)
	e.zone(tlsaRecord(t, owner, 3, 1, 1, leafOf(t, good)))
	if r := send(); r.Status != delivery.Sent {
		t.Fatalf("matching DANE-EE: %+v\n%s", r, e.log.String())
	}
	if !strings.Contains(e.log.String(), "verified=true dane=true") {
		t.Errorf("the log does not say DANE verified the server:\n%s", e.log.String())
	}

	// DANE-TA(2) full certificate SHA-512 of the issuing CA; the leaf names the MX host.
	ca, chain := caAndLeaf(t, "mx.b.test")
	srv.set(func(c *fakeConfig) { c.tlsConfig = chain })
	e.dns.Remove(owner, dns.TypeTLSA)
	e.zone(tlsaRecord(t, owner, 2, 0, 2, ca))
	if r := send(); r.Status != delivery.Sent {
		t.Fatalf("matching DANE-TA: %+v\n%s", r, e.log.String())
	}
	// ... but a leaf for another name fails.
	_, wrongName := caAndLeaf(t, "elsewhere.test")
	ca2, _ := x509.ParseCertificate(wrongName.Certificates[0].Certificate[1])
	srv.set(func(c *fakeConfig) { c.tlsConfig = wrongName })
	e.dns.Remove(owner, dns.TypeTLSA)
	e.zone(tlsaRecord(t, owner, 2, 0, 1, ca2))
	if r := send(); r.Status != delivery.Deferred || r.Code != "4.7.5" {
		t.Fatalf("DANE-TA with a wrong name: %+v", r)
	}

	// Only unusable records (PKIX-EE): TLS required, not authenticated.
	srv.set(func(c *fakeConfig) { c.tlsConfig = good })
	e.dns.Remove(owner, dns.TypeTLSA)
	e.zone(tlsaRecord(t, owner, 1, 1, 1, leafOf(t, good)))
	if r := send(); r.Status != delivery.Sent {
		t.Fatalf("unusable TLSA, TLS available: %+v", r)
	}
	// ... and a server without STARTTLS is skipped.
	srv.set(func(c *fakeConfig) { c.ext = []string{"PIPELINING"} })
	if r := send(); r.Status != delivery.Deferred || !strings.Contains(r.Reason, "STARTTLS") {
		t.Fatalf("DANE without STARTTLS: %+v", r)
	}

	// A failed TLSA lookup under a validated MX: the host is not used.
	e.dns.Fail(owner, dns.RcodeServerFailure)
	if r := send(); r.Status != delivery.Deferred || !strings.Contains(r.Reason, "TLSA") {
		t.Fatalf("TLSA SERVFAIL: %+v", r)
	}
}

func TestMTASTS(t *testing.T) {
	mxCert := selfSigned(t, "mx.b.test")
	srv, e := tlsDestination(t, mxCert, 0)
	e.zone("mta-sts.b.test. A 127.0.0.1", `_mta-sts.b.test. TXT "v=STSv1; id=1"`)

	// The policy server: HTTPS with a certificate for mta-sts.b.test.
	var policy atomicString
	policy.set("version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n")
	webCert := selfSigned(t, "mta-sts.b.test")
	web := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(policy.get()))
	}))
	web.Listener.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web.Listener = l
	web.TLS = webCert
	web.StartTLS()
	defer web.Close()
	f := mtasts.NewFetcher(e.agent.dialHost, &tls.Config{RootCAs: certPool(t, webCert)})
	f.Port = l.Addr().(*net.TCPAddr).Port
	e.agent.STS = &mtasts.Cache{DNS: e.agent.Resolver, Fetch: f.Fetch}

	send := e.send
	sent := func() int { m, _, _ := srv.snapshot(); return len(m) }

	// enforce, and the MX certificate is not trusted: nothing goes.
	if r := send(); r.Status != delivery.Deferred || r.Code != "4.7.5" || !strings.Contains(r.Reason, "MTA-STS") {
		t.Fatalf("enforce, untrusted certificate: %+v\n%s", r, e.log.String())
	}
	if sent() != 0 {
		t.Fatal("a message went to a server that failed its MTA-STS policy")
	}
	// ... trusted: it goes, verified.
	e.agent.dialer.roots = certPool(t, mxCert)
	if r := send(); r.Status != delivery.Sent {
		t.Fatalf("enforce, trusted certificate: %+v\n%s", r, e.log.String())
	}
	if !strings.Contains(e.log.String(), "verified=true mta_sts=enforce") {
		t.Errorf("the log does not say MTA-STS applied:\n%s", e.log.String())
	}
	// ... a server without STARTTLS is refused.
	srv.set(func(c *fakeConfig) { c.ext = []string{"PIPELINING"} })
	if r := send(); r.Status != delivery.Deferred || !strings.Contains(r.Reason, "STARTTLS") {
		t.Fatalf("enforce, no STARTTLS: %+v", r)
	}
	srv.set(func(c *fakeConfig) { c.ext = []string{"STARTTLS", "PIPELINING"} })

	// A new policy (new id) that does not name the MX host: nothing goes.
	policy.set("version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n")
	e.dns.Remove("_mta-sts.b.test", dns.TypeTXT)
	e.zone(`_mta-sts.b.test. TXT "v=STSv1; id=2"`)
	if r := send(); r.Status != delivery.Deferred || r.Code != "4.7.5" || !strings.Contains(r.Reason, "named by its MTA-STS") {
		t.Fatalf("MX not in the policy: %+v", r)
	}

	// testing mode: delivered despite the untrusted certificate, and logged.
	e.agent.dialer.roots = nil
	policy.set("version: STSv1\nmode: testing\nmx: mx.b.test\nmax_age: 86400\n")
	e.dns.Remove("_mta-sts.b.test", dns.TypeTXT)
	e.zone(`_mta-sts.b.test. TXT "v=STSv1; id=3"`)
	before := sent()
	if r := send(); r.Status != delivery.Sent || sent() != before+1 {
		t.Fatalf("testing mode: %+v", r)
	}
	if !strings.Contains(e.log.String(), "testing mode would refuse") {
		t.Errorf("testing mode did not log the failure:\n%s", e.log.String())
	}
	// ... and so is a server without STARTTLS: delivered in plain text, and logged.
	srv.set(func(c *fakeConfig) { c.ext = []string{"PIPELINING"} })
	if r := send(); r.Status != delivery.Sent || sent() != before+2 {
		t.Fatalf("testing mode, no STARTTLS: %+v", r)
	}
	if n := strings.Count(e.log.String(), "testing mode would refuse"); n != 2 {
		t.Errorf("testing mode without TLS: %d warnings, want 2:\n%s", n, e.log.String())
	}
}

type atomicString struct {
	mu sync.Mutex
	s  string
}

func (a *atomicString) set(s string) { a.mu.Lock(); a.s = s; a.mu.Unlock() }
func (a *atomicString) get() string  { a.mu.Lock(); defer a.mu.Unlock(); return a.s }

func TestCachedConnectionNeedsTheSamePolicy(t *testing.T) {
	cert := selfSigned(t, "mx.b.test")
	srv, e := tlsDestination(t, cert, time.Minute)
	send := func() {
		t.Helper()
		if r := e.send(); r.Status != delivery.Sent {
			t.Fatalf("%+v", r)
		}
	}
	send()
	send() // over the cached connection
	if _, conns, _ := srv.snapshot(); conns != 1 {
		t.Fatalf("%d connections for two messages, want 1", conns)
	}
	// Now the domain has DANE: the connection made without it is not used again.
	e.dns.SetAuthenticated(true)
	e.zone(tlsaRecord(t, fmt.Sprintf("_%d._tcp.mx.b.test.", srv.port), 3, 1, 1, leafOf(t, cert)))
	send()
	if _, conns, _ := srv.snapshot(); conns != 2 || !strings.Contains(e.log.String(), "dane=true") {
		t.Errorf("%d connections, want 2, the second checked by DANE:\n%s", conns, e.log.String())
	}
	send()
	if _, conns, _ := srv.snapshot(); conns != 2 {
		t.Errorf("%d connections: the DANE-checked one was not reused", conns)
	}
}

func TestScanLongLines(t *testing.T) {
	long := strings.Repeat("a", 100<<10)
	for _, tc := range []struct {
		body             string
		eightBit, header bool
	}{
		{"Subject: " + long + "\r\n\r\n" + long + "\r\n", false, false},
		{"Subject: " + long + "é\r\n\r\nbody\r\n", true, true},
		{"Subject: x\r\n\r\n" + long + "é\r\n", true, false},
		{"Subject: x\r\n\r\nSubject: é\r\n", true, false},
		{"X: " + long + "\r\n\r\n", false, false},
	} {
		f, req := queueFile(t, "a@a.test", tc.body, "b@b.test")
		m := &message{f: f, off: req.Offset, size: req.Size}
		if err := m.scan(); err != nil {
			t.Fatal(err)
		}
		if m.eightBit != tc.eightBit || m.utf8Headers != tc.header {
			t.Errorf("%.40q...: 8bit %v header %v, want %v %v", tc.body, m.eightBit, m.utf8Headers, tc.eightBit, tc.header)
		}
	}
}

func TestEqualPreferencesInRandomOrder(t *testing.T) {
	e := newEnv(t, 25, nil)
	e.zone("b.test. MX 10 one.b.test.", "b.test. MX 10 two.b.test.", "b.test. MX 5 first.b.test.",
		"one.b.test. A 127.0.0.1", "two.b.test. A 127.0.0.2", "first.b.test. A 127.0.0.3")
	seen := map[string]int{}
	for range 64 {
		targets, err := e.agent.route(context.Background(), "b.test", e.agent.Log)
		if err != nil || len(targets) != 3 {
			t.Fatalf("%+v %v", targets, err)
		}
		if targets[0].host != "first.b.test" {
			t.Fatalf("preference 5 is not tried first: %+v", targets)
		}
		seen[targets[1].host]++
	}
	// RFC 5321 §5.1: equal preferences in random order. Both orders in 64 tries; the
	// chance that one never comes up is 2^-63.
	if seen["one.b.test"] == 0 || seen["two.b.test"] == 0 {
		t.Errorf("second place over 64 routes: %v", seen)
	}
}

func TestStaysInStepWithABrokenPipeliningServer(t *testing.T) {
	srv := newFakeServer(t, "127.0.0.1")
	srv.set(func(c *fakeConfig) {
		c.ext = []string{"PIPELINING", "DSN"}
		// Refuses the sender, then says 354 to DATA anyway (RFC 2920 §3.1 says it
		// should not).
		c.onCommand = func(l string) string {
			switch {
			case strings.HasPrefix(l, "MAIL"):
				return "550 5.7.1 not you"
			case l == "DATA":
				return "354 go on anyway"
			}
			return ""
		}
	})
	e := newEnv(t, srv.port, nil)
	e.zone("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	f, req := queueFile(t, "alice@a.test", testBody, "bob@b.test")
	req.Recipients[0].Notify = "SUCCESS\r\nRSET" // a damaged queue file
	if r := e.deliver(f, req)[0]; r.Status != delivery.Bounced || r.Code != "5.7.1" {
		t.Fatalf("%+v", r)
	}
	srv.set(func(c *fakeConfig) { c.onCommand = nil })
	if r := e.deliver(f, req)[0]; r.Status != delivery.Sent {
		t.Fatalf("the next message on the connection: %+v", r)
	}
	msgs, conns, cmds := srv.snapshot()
	if conns != 1 || len(msgs) != 1 || string(msgs[0].data) != testBody {
		t.Errorf("%d connections, %d messages", conns, len(msgs))
	}
	for _, c := range cmds {
		if strings.Contains(c, "NOTIFY") {
			t.Errorf("a damaged NOTIFY went out: %q", c)
		}
	}
}

// FuzzSession plays a server that sends anything at all, in any chunks, to a whole
// session: greeting, EHLO, (STARTTLS,) the pipelined transaction and the message. The
// client must neither panic nor hang, and must give every recipient a result.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"220 x\r\n250-x\r\n250-PIPELINING\r\n250 SIZE 100000\r\n250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n250 queued\r\n",
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n",
		"220 x\r\n502 no\r\n250 x\r\n250 ok\r\n452 too many\r\n",
		"220 x\r\n250-x\r\n250 STARTTLS\r\n220 go\r\n\x16\x03\x01garbage",
		"554 go away\r\n", "220 x\r\n421 bye\r\n", "220-x\r\n220-y\n220 z\r\n250-x\r\n250-PIPELINING\r\n250 8BITMIME\r\n421 4.3.2 down\r\n",
	} {
		f.Add([]byte(s))
	}
	d := &dialer{helo: "mx.a.test", timeouts: timeouts{connect: time.Second, command: 200 * time.Millisecond, data: 200 * time.Millisecond}}
	f.Fuzz(func(t *testing.T, script []byte) {
		client, server := net.Pipe()
		defer client.Close()
		go func() {
			defer server.Close()
			go io.Copy(io.Discard, server)
			for len(script) > 0 {
				n := min(len(script), 7)
				server.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := server.Write(script[:n]); err != nil {
					return
				}
				script = script[n:]
			}
		}()
		s, err := d.open(context.Background(), client, target{host: "mx.b.test", addr: "192.0.2.1:25"}, true)
		if err != nil {
			return
		}
		msg := &message{id: "Q", f: fuzzFile(t), off: 0, size: int64(len(testBody)), bodyType: "8BITMIME"}
		rcpts := []delivery.Recipient{{Addr: "a@b.test"}, {Addr: "b@b.test"}}
		outs, err := s.transact(msg, rcpts)
		if err != nil {
			return
		}
		if len(outs) != len(rcpts) {
			t.Fatalf("%d outcomes for %d recipients", len(outs), len(rcpts))
		}
		for _, o := range outs {
			if o.res.Status == "" {
				t.Fatalf("a recipient without a result: %+v", outs)
			}
		}
	})
}

var (
	fuzzFileOnce sync.Once
	fuzzFileF    *os.File
)

func fuzzFile(t *testing.T) *os.File {
	fuzzFileOnce.Do(func() {
		p := filepath.Join(os.TempDir(), fmt.Sprintf("postern-remote-fuzz-%d", os.Getpid()))
		os.WriteFile(p, []byte(testBody), 0o600)
		fuzzFileF, _ = os.Open(p)
		os.Remove(p)
	})
	return fuzzFileF
}

package main

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"postern/pkg/config"
)

// TestQuotaAtRcpt: a recipient whose mailbox is full is refused at RCPT with 452 4.2.2,
// one whose quota is smaller than the declared SIZE with 552 5.2.2, one that has room
// for the declared SIZE is accepted; no message reaches cleanup for a refused one.
func TestQuotaAtRcpt(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<full@example.test>"), "452 4.2.2")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "250")
	expect(t, c.cmd("RSET"), "250")
	expect(t, c.cmd("MAIL FROM:<a@other.test> SIZE=1500"), "250")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "452 4.2.2")
	expect(t, c.cmd("RSET"), "250")
	expect(t, c.cmd("MAIL FROM:<a@other.test> SIZE=5000"), "250")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "552 5.2.2")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, c.cmd("RSET"), "250")
	expect(t, c.cmd("MAIL FROM:<a@other.test> SIZE=900"), "250")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "250")
	if _, ok := e.waitLog("mailbox=full@example.test"); !ok {
		t.Error("the refusal is not logged with the mailbox")
	}
}

// TestQuotaAtEndOfData: a message larger than the room left (its size undeclared) is
// refused at the final dot, before cleanup queues it: 452 4.2.2 when it would fit an
// emptier mailbox, 552 5.2.2 when it is larger than the quota; with a recipient that
// has room beside, it is queued.
func TestQuotaAtEndOfData(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	body := strings.Repeat("x", 70) + "\r\n"
	expect(t, c.transaction("a@other.test", "small@example.test", strings.Repeat(body, 20)), "452 4.2.2")
	expect(t, c.transaction("a@other.test", "small@example.test", strings.Repeat(body, 40)), "552 5.2.2")
	// BDAT ends the same way.
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "250")
	chunk := strings.Repeat(body, 20)
	c.send("BDAT " + strconv.Itoa(len(chunk)) + " LAST\r\n" + chunk)
	expect(t, c.read(), "452 4.2.2")
	if n := len(e.cleanup.messages()); n != 0 {
		t.Fatalf("%d messages queued for a full mailbox", n)
	}
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<small@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, c.cmd("DATA"), "354")
	expect(t, c.cmd(strings.Repeat(body, 20)+"."), "250 2.0.0")
	e.waitMessages(1)
	// A message that fits is queued.
	expect(t, c.transaction("a@other.test", "small@example.test", "short\r\n"), "250 2.0.0")
	e.waitMessages(2)
}

// connectFrom opens a session on listener as if from ip, first writing early (if not
// empty) before anything is read, and returns the client unread.
func (e *testEnv) connectFrom(ip, listener, early string) *client {
	e.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	sc, err := l.Accept()
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if early != "" {
		io.WriteString(c, early)
	}
	e.srv.admit(addrConn{sc, &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000}}, listenerPolicies[listener])
	cl := &client{t: e.t, c: c, r: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return cl
}

// TestConnectionsPerNet: beyond max_connections_per_net sessions from one /24 (IPv4) or
// /64 (IPv6), a new one gets 421 4.7.0, though each address is under its own cap; other
// networks and loopback are not affected.
func TestConnectionsPerNet(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) {
		cfg.SMTPD.MaxConnectionsPerIP = 2
		cfg.SMTPD.MaxConnectionsPerNet = 3
		cfg.SMTPD.GreetDelay = 0
	})
	for _, net := range []struct{ a, b, c, d, other string }{
		{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.200", "192.0.3.1"},
		{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::ffff:1", "2001:db8:0:1::1"},
	} {
		first, g := e.dialFrom(net.a)
		expect(t, g, "220")
		for _, ip := range []string{net.b, net.c} {
			_, g := e.dialFrom(ip)
			expect(t, g, "220")
		}
		c, g := e.dialFrom(net.d)
		expect(t, g, "421 4.7.0 mx.example.test Error: too many connections from your network")
		c.expectClosed()
		_, g = e.dialFrom(net.other)
		expect(t, g, "220")
		// A session that ends makes room.
		expect(t, first.cmd("QUIT"), "221")
		first.expectClosed()
		waitAdmitted(t, e, net.d)
	}
	for range 5 {
		_, g := e.dial(listenSMTP)
		expect(t, g, "220")
	}
}

// waitAdmitted dials from ip until it is greeted (a session's end is noticed by the
// server a moment after the client sees the connection closed).
func waitAdmitted(t *testing.T, e *testEnv, ip string) {
	t.Helper()
	for i := 0; ; i++ {
		c, g := e.dialFrom(ip)
		if strings.HasPrefix(g, "220") {
			return
		}
		c.expectClosed()
		if i > 250 {
			t.Fatalf("%s still refused: %q", ip, g)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConnectionRate: beyond connection_rate new connections in a minute from one
// address, the next is refused with 421 4.7.0 though none is open.
func TestConnectionRate(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) {
		cfg.SMTPD.ConnectionRate = 3
		cfg.SMTPD.GreetDelay = 0
	})
	for range 3 {
		c, g := e.dialFrom("192.0.2.9")
		expect(t, g, "220")
		expect(t, c.cmd("QUIT"), "221")
	}
	c, g := e.dialFrom("192.0.2.9")
	expect(t, g, "421 4.7.0 mx.example.test Error: too many connections from your address in the last minute")
	c.expectClosed()
	_, g = e.dialFrom("192.0.2.10")
	expect(t, g, "220")
	if _, ok := e.waitLog("connection refused", "client=192.0.2.9", "in the last minute"); !ok {
		t.Error("refusal not logged")
	}
}

// TestClientRates: message_rate and recipient_rate per minute from one address, across
// its sessions: then 450 4.7.0 at MAIL or RCPT; loopback is exempt.
func TestClientRates(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) {
		cfg.SMTPD.MessageRate = 2
		cfg.SMTPD.RecipientRate = 3
		cfg.SMTPD.GreetDelay = 0
	})
	c, _ := e.dialFrom("192.0.2.20")
	expect(t, c.cmd("EHLO client.test"), "250")
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<user@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<postmaster@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo+x@example.test>"), "450 4.7.0")
	expect(t, c.cmd("RSET"), "250")
	// Another session of the same client shares the counts.
	d, _ := e.dialFrom("192.0.2.20")
	expect(t, d.cmd("EHLO client.test"), "250")
	expect(t, d.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, d.cmd("RCPT TO:<demo@example.test>"), "450 4.7.0")
	expect(t, d.cmd("RSET"), "250")
	expect(t, d.cmd("MAIL FROM:<a@other.test>"), "450 4.7.0 Error: too many messages from your address")
	// Loopback is exempt.
	l := e.session()
	for range 3 {
		expect(t, l.transaction("a@other.test", "demo@example.test", "x\r\n"), "250")
	}
}

// TestUnknownRecipients: a dictionary attack ends after max_unknown_recipients
// unknown recipients with 421 4.7.0; known ones in between do not reset the count.
func TestUnknownRecipients(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) {
		cfg.SMTPD.MaxUnknownRecipients = 3
		cfg.SMTPD.GreetDelay = 0
	})
	c, _ := e.dialFrom("192.0.2.30")
	expect(t, c.cmd("EHLO client.test"), "250")
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<alice@example.test>"), "550 5.1.1")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<bob@example.test>"), "550 5.1.1")
	expect(t, c.cmd("RCPT TO:<carol@example.test>"), "550 5.1.1")
	expect(t, c.read(), "421 4.7.0 mx.example.test Error: too many unknown recipients")
	c.expectClosed()
	if _, ok := e.waitLog("too many unknown recipients", "client=192.0.2.30"); !ok {
		t.Error("not logged")
	}
}

// TestEarlyTalker: on port 25 a client that sends EHLO before the greeting is dropped
// with 554 5.5.0; one that waits is greeted; submission and loopback clients are
// greeted without delay (a delay of an hour would stall this test).
func TestEarlyTalker(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.GreetDelay = config.Duration(time.Hour) })
	c := e.connectFrom("192.0.2.40", listenSMTP, "EHLO spammer.test\r\n")
	expect(t, c.read(), "554 5.5.0 mx.example.test Error: you talked before the greeting")
	c.expectClosed()
	if _, ok := e.waitLog("early talker", "client=192.0.2.40"); !ok {
		t.Error("not logged")
	}
	s := e.connectFrom("192.0.2.40", listenSubmission, "EHLO laptop.test\r\n")
	expect(t, s.read(), "220")
	expect(t, s.read(), "250")
	l, g := e.dial(listenSMTP)
	expect(t, g, "220")
	expect(t, l.cmd("EHLO client.test"), "250")

	e = startEnv(t, func(cfg *config.Config) { cfg.SMTPD.GreetDelay = config.Duration(100 * time.Millisecond) })
	p := e.connectFrom("192.0.2.41", listenSMTP, "")
	expect(t, p.read(), "220")
	expect(t, p.cmd("EHLO patient.test"), "250")
}

// TestStressMode: with sessions at stress_threshold percent of max_connections, an idle
// session is cut after stress_timeout (421 4.4.2), not after timeout (an hour here).
func TestStressMode(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) {
		cfg.SMTPD.MaxConnections = 4
		cfg.SMTPD.StressThreshold = 50
		cfg.SMTPD.StressTimeout = config.Duration(200 * time.Millisecond)
		cfg.SMTPD.Timeout = config.Duration(time.Hour)
	})
	a, _ := e.dial(listenSMTP)
	b, _ := e.dial(listenSMTP)
	expect(t, a.read(), "421 4.4.2 mx.example.test Error: timeout exceeded")
	expect(t, b.read(), "421 4.4.2")
}

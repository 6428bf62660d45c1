package main

import (
	"net"
	"testing"
	"time"

	"postern/pkg/config"
)

// addrConn is a connection that claims another client address.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// dialFrom opens a session as if from the address ip, and returns the greeting.
func (e *testEnv) dialFrom(ip string) (*client, string) {
	e.t.Helper()
	cl := e.connectFrom(ip, listenSMTP, "")
	return cl, cl.read()
}

func TestConnectionsPerIP(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.MaxConnectionsPerIP = 2 })
	a, _ := e.dialFrom("192.0.2.7")
	_, greeting := e.dialFrom("192.0.2.7")
	expect(t, greeting, "220")
	c, greeting := e.dialFrom("192.0.2.7")
	expect(t, greeting, "421 4.7.0 mx.example.test Error: too many connections from your address")
	c.expectClosed()
	// Other addresses are not affected, nor is loopback.
	_, greeting = e.dialFrom("2001:db8::7")
	expect(t, greeting, "220")
	for i := 0; i < 3; i++ {
		_, greeting := e.dial(listenSMTP)
		expect(t, greeting, "220")
	}
	// A session that ends makes room.
	expect(t, a.cmd("QUIT"), "221")
	a.expectClosed()
	waitAdmitted(t, e, "192.0.2.7")
	// The envelope carries the address.
	c, _ = e.dialFrom("192.0.2.8")
	c.cmd("EHLO client.test")
	expect(t, c.transaction("a@other.test", "demo@example.test", "x\r\n"), "250")
	if got := e.waitMessages(1)[0].Env.ClientAddr; got != "192.0.2.8" {
		t.Errorf("client address %q", got)
	}
}

func TestConnectionsInTotal(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.MaxConnections = 1 })
	e.dial(listenSMTP)
	_, greeting := e.dial(listenSubmission)
	expect(t, greeting, "421 4.7.0 mx.example.test Error: too many connections")
}

func TestIdleTimeout(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.Timeout = config.Duration(300 * time.Millisecond) })
	c := e.session()
	start := time.Now()
	expect(t, c.read(), "421 4.4.2")
	c.expectClosed()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timeout after %v", d)
	}
	// A command line that trickles in counts as one wait.
	c = e.session()
	c.send("NO")
	time.Sleep(200 * time.Millisecond)
	c.send("O")
	expect(t, c.read(), "421 4.4.2")
}

func TestGracefulShutdown(t *testing.T) {
	e := startEnv(t, nil)
	idle := e.session()
	busy := e.session()
	expect(t, busy.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, busy.cmd("RCPT TO:<demo@example.test>"), "250")
	between := e.session()
	expect(t, between.transaction("a@other.test", "demo@example.test", "first\r\n"), "250 2.0.0")

	e.cancel()
	// The idle sessions hear it at once.
	expect(t, idle.read(), "421 4.3.2 mx.example.test Service shutting down")
	idle.expectClosed()
	expect(t, between.read(), "421 4.3.2")
	// New connections are no longer accepted.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", e.addrs[listenSMTP], time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The session in a transaction finishes it, then hears it.
	expect(t, busy.cmd("DATA"), "354")
	busy.send("second\r\n.\r\n")
	expect(t, busy.read(), "250 2.0.0 Ok: queued as")
	expect(t, busy.cmd("MAIL FROM:<a@other.test>"), "421 4.3.2")
	busy.expectClosed()
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	e.done <- nil // for the cleanup
	e.waitMessages(2)
}

func TestShutdownGraceEnds(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.ShutdownGrace = config.Duration(300 * time.Millisecond) })
	busy := e.session()
	expect(t, busy.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, busy.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, busy.cmd("DATA"), "354")
	busy.send("half a message\r\n")
	start := time.Now()
	e.cancel()
	busy.expectClosed()
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	e.done <- nil
	if d := time.Since(start); d < 250*time.Millisecond || d > 10*time.Second {
		t.Errorf("sessions closed after %v, grace 300ms", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.cleanup.abortedCount() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.cleanup.abortedCount() != 1 || len(e.cleanup.messages()) != 0 {
		t.Errorf("aborted %d, queued %d", e.cleanup.abortedCount(), len(e.cleanup.messages()))
	}
}

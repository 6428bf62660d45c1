package main

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// scriptConn is a connection whose client sends a fixed script and then hangs up; what
// the server writes is dropped.
type scriptConn struct {
	r *bytes.Reader
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
}
func (c *scriptConn) SetDeadline(t time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(t time.Time) error { return nil }

// runScript runs one session over a scriptConn to its end.
func runScript(t testing.TB, e *testEnv, listener string, script []byte) {
	c := &scriptConn{r: bytes.NewReader(script)}
	ip := netip.MustParseAddr("192.0.2.1")
	sess := newSession(e.srv, c, listenerPolicies[listener], ip)
	e.srv.mu.Lock()
	e.srv.sessions[sess] = struct{}{}
	e.srv.perIP[ip]++
	e.srv.wg.Add(1)
	e.srv.mu.Unlock()
	done := make(chan struct{})
	go func() {
		sess.run()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("session hangs on %q", script)
	}
}

// FuzzSession feeds arbitrary client input to a session: it must never panic or hang,
// and whatever is queued must be a message of the script's own transaction.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO c.test\r\nMAIL FROM:<a@other.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"HELO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\n..\r\n.\r\n",
		"EHLO c.test\r\nMAIL FROM:<a@other.test> BODY=8BITMIME SIZE=100\r\nRCPT TO:<demo@example.test> NOTIFY=NEVER\r\nBDAT 5\r\nhelloBDAT 0 LAST\r\n",
		"EHLO c.test\r\nMAIL FROM:<a@other.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nx\n.\nMAIL FROM:<e@other.test>\r\n.\r\n",
		"EHLO c.test\r\nSTARTTLS\r\nMAIL FROM:<a@other.test>\r\n",
		"EHLO c.test\r\nBDAT 99999999999999999\r\nxx",
		"EHLO c.test\r\nMAIL FROM:<jö@other.test> SMTPUTF8\r\nRCPT TO:<ü@example.test>\r\nDATA\r\n",
		"EHLO c.test\r\nMAIL FROM:<a@other.test>\r\nRCPT TO:<@x.test:user@foreign.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\nRSET\r\nVRFY x\r\nHELP\r\nNOOP\r\nFOO\r\n",
		"\x00\xff\r\n" + strings.Repeat("A", 3000) + "\r\nGET / HTTP/1.0\r\n",
		"EHLO c.test\r\nMAIL FROM:<a@other.test>\r\nRCPT TO:<demo@example.test>\r\nBDAT 3\r\nabcDATA\r\nBDAT 2 LAST\r\n\r\r",
	} {
		f.Add([]byte(s), false)
	}
	e := startEnv(f, nil)
	f.Fuzz(func(t *testing.T, script []byte, submission bool) {
		l := listenSMTP
		if submission {
			l = listenSubmission
		}
		runScript(t, e, l, script)
		e.cleanup.mu.Lock()
		e.cleanup.msgs = nil
		e.cleanup.mu.Unlock()
	})
}

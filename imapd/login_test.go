package main

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"

	"postern/pkg/auth"
	"postern/pkg/ipc"
)

// TestLoginThrottled checks that a login authd refuses as throttled is answered
// NO [UNAVAILABLE] with the wait (RFC 5530), not AUTHENTICATIONFAILED, for LOGIN and
// AUTHENTICATE alike, and that a wrong password still gets AUTHENTICATIONFAILED.
func TestLoginThrottled(t *testing.T) {
	e := newTestEnv(t)
	c := e.dial()
	if st := c.no("LOGIN a@example.test wrong"); st != "NO [AUTHENTICATIONFAILED] Authentication failed" {
		t.Errorf("wrong password: %s", st)
	}
	const want = "NO [UNAVAILABLE] Too many failed logins; try again in 42 seconds"
	if st := c.no("LOGIN throttled@example.test pw"); st != want {
		t.Errorf("throttled LOGIN: %s; want %s", st, want)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00throttled@example.test\x00pw"))
	if st := c.no("AUTHENTICATE PLAIN " + plain); st != want {
		t.Errorf("throttled AUTHENTICATE PLAIN: %s; want %s", st, want)
	}
	// Three refusals end the session, throttled ones included.
	if l := c.line(); !strings.HasPrefix(l, "* BYE ") {
		t.Errorf("after three refusals: %q; want BYE", l)
	}
	c = e.dial()
	c.send("t1 AUTHENTICATE LOGIN\r\n")
	for _, s := range []string{"throttled@example.test", "pw"} {
		if l := c.line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("AUTHENTICATE LOGIN: %q", l)
		}
		c.send(base64.StdEncoding.EncodeToString([]byte(s)) + "\r\n")
	}
	if l := c.line(); l != "t1 "+want {
		t.Errorf("throttled AUTHENTICATE LOGIN: %q", l)
	}
	c.ok("LOGIN a@example.test pw")
}

// TestLoginCachePerClient checks that a cached login answers only the client address that
// logged in: from elsewhere the credentials go to authd, which may throttle them.
func TestLoginCachePerClient(t *testing.T) {
	c := newLoginCache()
	owner, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	c.put("a@example.test", "pw", owner, "a@example.test", "/mail/a", 0)
	if e, ok := c.get("a@example.test", "pw", owner); !ok || e.maildir != "/mail/a" {
		t.Errorf("the owner's address: %+v, %v", e, ok)
	}
	if _, ok := c.get("a@example.test", "pw", other); ok {
		t.Error("another address got the cached login")
	}
	if _, ok := c.get("a@example.test", "pw2", owner); ok {
		t.Error("another password got the cached login")
	}
}

// TestWebMechanism: httpd's web session token logs its user in through
// X-POSTERN-WEB, and nobody else; a client that is not httpd's user is not even offered
// the mechanism.
func TestWebMechanism(t *testing.T) {
	e := newTestEnv(t)
	msg := func(user, token string) string {
		return base64.StdEncoding.EncodeToString(auth.WebResponse(user, token))
	}
	c := e.dial()
	if st := c.no("AUTHENTICATE X-POSTERN-WEB " + msg("b@example.test", "tok")); !strings.Contains(st, "AUTHENTICATIONFAILED") {
		t.Errorf("a's token for b: %s", st)
	}
	if st := c.no("AUTHENTICATE X-POSTERN-WEB " + msg("a@example.test", "nope")); !strings.Contains(st, "AUTHENTICATIONFAILED") {
		t.Errorf("a wrong token: %s", st)
	}
	c = e.dial()
	c.ok("AUTHENTICATE X-POSTERN-WEB " + msg("a@example.test", "tok"))
	c.ok("SELECT INBOX")
	// Without an initial response the server asks for the message with an empty
	// challenge.
	c = e.dial()
	c.send("t1 AUTHENTICATE X-POSTERN-WEB\r\n")
	if l := c.line(); l != "+ " {
		t.Fatalf("challenge %q", l)
	}
	c.send(msg("a@example.test", "tok") + "\r\n")
	if l := c.line(); !strings.HasPrefix(l, "t1 OK") {
		t.Errorf("after the message: %q", l)
	}
	// A client that is not httpd's user: the right token does not help.
	e.srv.webPeer = func(ipc.Cred) bool { return false }
	c = e.dial()
	if st := c.no("AUTHENTICATE X-POSTERN-WEB " + msg("a@example.test", "tok")); st != "NO Unsupported authentication mechanism" {
		t.Errorf("from another user: %s", st)
	}
}

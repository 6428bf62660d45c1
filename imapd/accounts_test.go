package main

import (
	"strings"
	"testing"
	"time"

	"postern/pkg/auth"
)

// change tells imapd about an account change, as authd does, and waits until imapd
// acknowledged it (it has acted on it by then).
func (e *testEnv) change(addr, change string) {
	e.t.Helper()
	select {
	case e.events <- auth.AccountEvent{Address: addr, Change: change}:
	case <-time.After(30 * time.Second):
		e.t.Fatal("imapd did not subscribe to account changes")
	}
	select {
	case <-e.acked:
	case <-time.After(30 * time.Second):
		e.t.Fatal("imapd did not acknowledge the account change")
	}
}

// waitSubscribed waits until imapd hears account changes: its login cache answers
// only from then on.
func (e *testEnv) waitSubscribed() {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, live := e.srv.generation(); live {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatal("imapd did not subscribe to authd's account changes")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAccountChanges: a password change drops the cached login at once (the cached one
// answered before the change was heard, which shows the cache was in use); disabling the
// account ends its IMAP session, also one in IDLE, with BYE and its POP3 session with
// -ERR [AUTH].
func TestAccountChanges(t *testing.T) {
	e := newTestEnv(t)
	e.waitSubscribed()
	c := e.login("a")
	e.passwords.Store("a@example.test", "pw2")
	// Not yet heard: the login cache still answers for this client.
	e.login("a")
	e.change("a@example.test", auth.ChangePassword)
	if st := e.dial().no("LOGIN a@example.test pw"); !strings.Contains(st, "AUTHENTICATIONFAILED") {
		t.Errorf("the old password after the change: %s", st)
	}
	e.passwords.Store("a@example.test", "pw")

	idle := e.login("a")
	idle.ok("SELECT INBOX")
	idle.send("t9 IDLE\r\n")
	if l := idle.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	p := e.popLogin("a")
	other := e.login("b")

	e.change("a@example.test", auth.ChangeDisabled)
	if l := c.line(); l != "* BYE Account disabled" {
		t.Errorf("the session of the disabled account got %q, want * BYE Account disabled", l)
	}
	if l := idle.line(); l != "* BYE Account disabled" {
		t.Errorf("the IDLE session of the disabled account got %q", l)
	}
	if l := p.line(); !strings.HasPrefix(l, "-ERR [AUTH] Account disabled") {
		t.Errorf("the POP3 session of the disabled account got %q", l)
	}
	for _, cl := range []interface{ Read([]byte) (int, error) }{c.r, idle.r, p.r} {
		if n, err := cl.Read(make([]byte, 1)); err == nil {
			t.Errorf("a session of the disabled account is still open (%d bytes more)", n)
		}
	}
	// Another account's session goes on.
	other.ok("NOOP")
}

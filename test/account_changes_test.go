package test

import (
	"regexp"
	"strings"
	"testing"
)

// TestAccountChangesReachIMAP: authd tells imapd of every account change before mailctl
// returns, so that nothing imapd remembers outlives it. From the same client address,
// within the minute its login cache would otherwise answer: the old password is refused
// right after mailctl user passwd, a revoked app password right after the revoke; mailctl
// user disable ends the account's IMAP session (one in IDLE too) with BYE and its POP3
// session, and refuses a new login; mailctl user del ends the sessions of the deleted
// account.
func TestAccountChangesReachIMAP(t *testing.T) {
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	const bob = "bob@example.test"
	pass := in.addUser(t, bob)
	login := func(user, pw string) (*rawIMAP, string) {
		r := tg.rawDial(t, false)
		_, st := r.Cmd("LOGIN " + imapQuote(user) + " " + imapQuote(pw))
		return r, st
	}
	mustLogin := func(user, pw string) *rawIMAP {
		t.Helper()
		r, st := login(user, pw)
		if !strings.HasPrefix(st, "OK") {
			t.Fatalf("LOGIN %s: %s\n%s", user, st, tail(in.Log(), 20))
		}
		return r
	}
	refused := func(what, user, pw string) {
		t.Helper()
		if _, st := login(user, pw); !strings.HasPrefix(st, "NO") {
			t.Errorf("%s: LOGIN answered %q, want NO", what, st)
		}
	}

	// Twice: the second login is answered by imapd's cache.
	mustLogin(bob, pass)
	mustLogin(bob, pass)
	newPass := "Correct horse, battery staple 42!"
	in.Mailctl(newPass+"\n", "user", "passwd", bob, "--password-stdin")
	refused("the old password after user passwd", bob, pass)
	// The cache was in use, and imapd dropped what it held of bob.
	if !regexp.MustCompile(`msg="account changed" daemon=imapd pid=\d+ user=bob@example.test change=password cached_logins_dropped=[1-9]`).MatchString(in.Log()) {
		t.Errorf("imapd did not drop bob's cached login at the password change:\n%s", tail(in.Log(), 30))
	}
	mustLogin(bob, newPass)
	pass = newPass

	out := in.Mailctl("", "app-password", "add", bob, "laptop")
	m := regexp.MustCompile(`(?m)^([a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no app password in:\n%s", out)
	}
	mustLogin(bob, m[1])
	mustLogin(bob, m[1])
	in.Mailctl("", "app-password", "revoke", bob, "laptop")
	refused("a revoked app password", bob, m[1])
	if !regexp.MustCompile(`msg="account changed" daemon=imapd pid=\d+ user=bob@example.test change=apppassword cached_logins_dropped=[1-9]`).MatchString(in.Log()) {
		t.Errorf("imapd did not drop bob's cached app password login at the revoke:\n%s", tail(in.Log(), 30))
	}

	// Open sessions end when the account is disabled.
	s := mustLogin(bob, pass)
	s.OK("SELECT INBOX")
	idle := mustLogin(bob, pass)
	idle.OK("SELECT INBOX")
	idle.Send("i1 IDLE\r\n")
	if l, err := idle.Response(); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q %v", l, err)
	}
	pop := dialPOP3(t, in)
	pop.ok("USER " + bob)
	pop.ok("PASS " + pass)
	demo := mustLogin("demo@example.test", in.Password)

	in.Mailctl("", "user", "disable", bob)
	for name, r := range map[string]*rawIMAP{"selected": s, "idling": idle} {
		if l, err := r.Response(); l != "* BYE Account disabled" {
			t.Errorf("the %s session of the disabled account got %q (%v), want * BYE Account disabled", name, l, err)
		}
		if l, err := r.Response(); err == nil {
			t.Errorf("the %s session of the disabled account is still open: %q", name, l)
		}
	}
	if l := pop.line(); !strings.HasPrefix(l, "-ERR [AUTH] Account disabled") {
		t.Errorf("the POP3 session of the disabled account got %q", l)
	}
	refused("a disabled account", bob, pass)
	demo.Alive() // another account's session goes on

	in.Mailctl("", "user", "disable", bob, "--off")
	s = mustLogin(bob, pass)
	in.Mailctl("", "user", "del", bob)
	if l, _ := s.Response(); l != "* BYE Account deleted" {
		t.Errorf("the session of the deleted account got %q, want * BYE Account deleted", l)
	}
	refused("a deleted account", bob, pass)
	demo.Alive()
}

package test

import (
	"crypto/tls"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// TestIMAPCapabilityNoopLogout covers the commands valid in any state (RFC 9051 §6.1).
func TestIMAPCapabilityNoopLogout(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.dial(t, nil)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatalf("CAPABILITY: %v", err)
	}
	// RFC 9051 §6.1.1: IMAP4rev2 and AUTH=PLAIN are mandatory; this server also speaks
	// IMAP4rev1 (RFC 3501) for the clients that never ENABLE IMAP4rev2.
	for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapIMAP4rev2, "AUTH=PLAIN"} {
		if !caps.Has(want) {
			t.Errorf("CAPABILITY before login lacks %s: %v", want, caps)
		}
	}
	// RFC 9051 §6.2.1: no STARTTLS once TLS is active; no LOGINDISABLED on TLS.
	if caps.Has(imap.CapStartTLS) {
		t.Errorf("CAPABILITY on implicit TLS offers STARTTLS")
	}
	if caps.Has(imap.CapLoginDisabled) {
		t.Errorf("CAPABILITY on implicit TLS says LOGINDISABLED")
	}
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("NOOP before login: %v", err)
	}
	if err := c.Login(tg.user, tg.pass).Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	caps, err = c.Capability().Wait()
	if err != nil {
		t.Fatalf("CAPABILITY after login: %v", err)
	}
	// The extensions issue 3 promises, each advertised by its own name so IMAP4rev1
	// clients may use them.
	for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapIMAP4rev2, imap.CapIdle, imap.CapNamespace,
		imap.CapUIDPlus, imap.CapMove, imap.CapCondStore, imap.CapEnable, imap.CapLiteralPlus,
		imap.CapSpecialUse, imap.CapListStatus, imap.CapESearch, imap.CapID, imap.CapUnselect,
		imap.CapBinary} {
		if !caps.Has(want) {
			t.Errorf("CAPABILITY after login lacks %s: %v", want, caps)
		}
	}
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("NOOP: %v", err)
	}

	// RFC 9051 §6.1.3: LOGOUT answers an untagged BYE, then the tagged OK, then closes.
	r := tg.rawLogin(t)
	u, st := r.Cmd("LOGOUT")
	if !hasLine(u, `^\* BYE`) || !strings.HasPrefix(st, "OK") {
		t.Errorf("LOGOUT: got %q then %q, want * BYE then OK", u, st)
	}
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := r.r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection not closed after LOGOUT: read %d bytes, %v", n, err)
	}
}

// TestIMAPStartTLS upgrades the cleartext port (RFC 9051 §6.2.1) with the go-imap client and
// checks that commands pipelined behind STARTTLS in cleartext are discarded, not run inside
// TLS (the command injection of CVE-2011-0411 and CVE-2021-33515).
func TestIMAPStartTLS(t *testing.T) {
	tg := newIMAPTarget(t)
	r := tg.rawDial(t, true)
	u := r.OK("CAPABILITY")
	if !hasLine(u, `^\* CAPABILITY .*\bSTARTTLS\b`) {
		t.Fatalf("cleartext CAPABILITY lacks STARTTLS: %q", u)
	}
	r.OK("STARTTLS")
	tc := tls.Client(r.c, tg.tlsConfig)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake after STARTTLS: %v", err)
	}
	r.c = tc
	r.r.Reset(tc)
	u, st := r.Cmd("CAPABILITY")
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("CAPABILITY inside TLS: %q", st)
	}
	if hasLine(u, `^\* CAPABILITY .*\bSTARTTLS\b`) {
		t.Errorf("CAPABILITY after STARTTLS still offers STARTTLS: %q", u)
	}
	r.Expect("BAD", "STARTTLS") // RFC 9051 §6.2.1: TLS is already active.
	r.OK("LOGIN " + imapQuote(tg.user) + " " + imapQuote(tg.pass))

	// A command pipelined behind STARTTLS in cleartext must not run inside TLS: the server
	// discards it (or drops the connection).
	inj := tg.rawDial(t, true)
	tag := inj.Tag()
	inj.Send(tag + " STARTTLS\r\ninjected NOOP\r\n")
	// Refusing STARTTLS because data follows it (BAD) is fine too: nothing runs in TLS.
	_, st = inj.ReadTo(tag)
	if !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "BAD") {
		t.Fatalf("STARTTLS followed by data: %q, want OK (then discarding the data) or BAD", st)
	}
	if strings.HasPrefix(st, "OK") {
		// A failed handshake or a dropped connection is fine too: nothing runs in TLS.
		tc = tls.Client(inj.c, tg.tlsConfig)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err == nil {
			inj.c = tc
			inj.r.Reset(tc)
			tag := inj.Tag()
			inj.Send(tag + " NOOP\r\n")
			for l, err := inj.Response(); err == nil && !strings.HasPrefix(l, tag+" "); l, err = inj.Response() {
				if strings.HasPrefix(l, "injected ") {
					t.Errorf("a command sent in cleartext behind STARTTLS was run inside TLS: %q", l)
				}
			}
		}
	}

	// The go-imap client's own STARTTLS.
	c, err := imapclient.DialStartTLS(tg.plainAddr, tg.options(t, nil))
	if err != nil {
		t.Fatalf("DialStartTLS: %v", err)
	}
	defer c.Close()
	if err := c.Login(tg.user, tg.pass).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT after STARTTLS: %v", err)
	}
	c.Logout().Wait()
}

// TestIMAPAuthenticate covers LOGIN and AUTHENTICATE PLAIN (RFC 9051 §6.2.2, §6.2.3,
// RFC 4616), with and without the initial response of SASL-IR (RFC 4959).
func TestIMAPAuthenticate(t *testing.T) {
	tg := newIMAPTarget(t)

	c := tg.dial(t, nil)
	if err := c.Authenticate(sasl.NewPlainClient("", tg.user, tg.pass)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if c.State() != imap.ConnStateAuthenticated {
		t.Errorf("state after AUTHENTICATE: %v", c.State())
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT after AUTHENTICATE: %v", err)
	}

	bad := tg.dial(t, nil)
	err := bad.Authenticate(sasl.NewPlainClient("", tg.user, tg.pass+"x"))
	if imapType(err) != imap.StatusResponseTypeNo {
		t.Errorf("AUTHENTICATE PLAIN with a wrong password: %v, want NO", err)
	} else if imapCode(err) != imap.ResponseCodeAuthenticationFailed {
		// RFC 9051 §7.1: AUTHENTICATIONFAILED.
		t.Errorf("AUTHENTICATE PLAIN with a wrong password: %v, want the code AUTHENTICATIONFAILED", err)
	}
	err = bad.Login(tg.user, tg.pass+"y").Wait()
	if imapType(err) != imap.StatusResponseTypeNo {
		t.Errorf("LOGIN with a wrong password: %v, want NO", err)
	}
	// The server may end a session after a few failures (with BYE); the password still
	// works on a new connection: a few mistakes do not lock the account.
	bad2 := tg.dial(t, nil)
	err = bad2.Login("nobody@example.test", "whatever").Wait()
	if imapType(err) != imap.StatusResponseTypeNo {
		t.Errorf("LOGIN of an unknown user: %v, want NO", err)
	}
	if err := tg.dial(t, nil).Login(tg.user, tg.pass).Wait(); err != nil {
		t.Errorf("LOGIN after 3 failed attempts: %v", err)
	}

	r := tg.rawDial(t, false)
	caps := r.OK("CAPABILITY")
	plain := func(authz, user, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
	}
	// Authorizing as someone else than the authenticated user is refused (RFC 4616 §2).
	if hasLine(caps, `\bSASL-IR\b`) {
		r.Expect("NO", "AUTHENTICATE PLAIN "+plain("postmaster@example.test", tg.user, tg.pass))
	}
	// A client may cancel an exchange with "*" (RFC 9051 §6.2.2).
	tag := r.Tag()
	r.Send(tag + " AUTHENTICATE PLAIN\r\n")
	if l, err := r.Response(); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("AUTHENTICATE PLAIN without initial response: %q %v, want a continuation", l, err)
	}
	r.Send("*\r\n")
	if _, st := r.ReadTo(tag); !strings.HasPrefix(st, "BAD") {
		t.Errorf("AUTHENTICATE cancelled with *: %q, want BAD", st)
	}
	// Garbage instead of base64.
	tag = r.Tag()
	r.Send(tag + " AUTHENTICATE PLAIN\r\n")
	if l, err := r.Response(); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("AUTHENTICATE PLAIN: %q %v, want a continuation", l, err)
	}
	r.Send("!!!not base64!!!\r\n")
	if _, st := r.ReadTo(tag); !strings.HasPrefix(st, "BAD") && !strings.HasPrefix(st, "NO") {
		t.Errorf("AUTHENTICATE answered with non-base64: %q, want BAD or NO", st)
	}
	r.Expect("NO", "AUTHENTICATE X-UNKNOWN-MECHANISM")
	// The two-step exchange.
	tag = r.Tag()
	r.Send(tag + " AUTHENTICATE PLAIN\r\n")
	if l, err := r.Response(); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("AUTHENTICATE PLAIN: %q %v, want a continuation", l, err)
	}
	r.Send(plain("", tg.user, tg.pass) + "\r\n")
	if _, st := r.ReadTo(tag); !strings.HasPrefix(st, "OK") {
		t.Fatalf("AUTHENTICATE PLAIN in two steps: %q", st)
	}
	// RFC 9051 §6.2: LOGIN and AUTHENTICATE are only valid in the not-authenticated state.
	r.Expect("BAD", "LOGIN "+imapQuote(tg.user)+" "+imapQuote(tg.pass))
	r.Expect("BAD", "AUTHENTICATE PLAIN "+plain("", tg.user, tg.pass))
	r.Alive()
}

// TestIMAPEnable turns IMAP4rev2 and CONDSTORE on with ENABLE (RFC 5161, RFC 9051 §6.3.1).
func TestIMAPEnable(t *testing.T) {
	tg := newIMAPTarget(t)
	r := tg.rawDial(t, false)
	// RFC 5161 §3.1: only in the authenticated state.
	if _, st := r.Cmd("ENABLE IMAP4rev2"); strings.HasPrefix(st, "OK") {
		t.Errorf("ENABLE before login: %q, want BAD or NO", st)
	}
	r.OK("LOGIN " + imapQuote(tg.user) + " " + imapQuote(tg.pass))
	u := r.OK("ENABLE IMAP4rev2 X-NO-SUCH-EXTENSION")
	if !hasLine(u, `(?i)^\* ENABLED .*\bIMAP4rev2\b`) || hasLine(u, `X-NO-SUCH-EXTENSION`) {
		t.Errorf("ENABLE IMAP4rev2 X-NO-SUCH-EXTENSION: %q, want * ENABLED IMAP4rev2 only", u)
	}

	c := tg.login(t)
	data, err := c.Enable(imap.CapIMAP4rev2).Wait()
	if err != nil {
		t.Fatalf("ENABLE: %v", err)
	}
	if !data.Caps.Has(imap.CapIMAP4rev2) {
		t.Errorf("ENABLE IMAP4rev2 enabled only %v", data.Caps)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	// RFC 9051 §6.3.2: an IMAP4rev2 SELECT carries the mailbox's LIST response.
	if sel.List == nil {
		t.Errorf("IMAP4rev2 SELECT has no untagged LIST response")
	}
}

// TestIMAPID exchanges identification (RFC 2971).
func TestIMAPID(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.dial(t, nil)
	if _, err := c.ID(&imap.IDData{Name: "postern-e2e", Version: "1"}).Wait(); err != nil {
		t.Errorf("ID before login: %v", err)
	}
	r := tg.rawLogin(t)
	u := r.OK(`ID ("name" "postern-e2e" "version" "1.0")`)
	if !hasLine(u, `^\* ID (NIL|\(.*\))$`) {
		t.Errorf("ID: %q, want one untagged ID response", u)
	}
	u = r.OK("ID NIL")
	if !hasLine(u, `^\* ID `) {
		t.Errorf("ID NIL: %q, want one untagged ID response", u)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"net/smtp"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
)

// The fake authd's accounts: demo@example.test (password "secret") may send as itself
// and postmaster@example.test; throttled@example.test is always throttled.
const demoPassword = "secret"

func fakeVerify(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
	var req auth.VerifyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, ipc.Errorf("invalid", "%v", err)
	}
	switch {
	case strings.EqualFold(req.User, "throttled@example.test"):
		return auth.VerifyResult{Throttled: true, RetryAfter: 42}, nil
	case strings.EqualFold(req.User, "demo@example.test") && req.Password == demoPassword && req.RemoteAddr != "":
		return auth.VerifyResult{OK: true, Address: "demo@example.test"}, nil
	case strings.EqualFold(req.User, "down@example.test"):
		return nil, ipc.Errorf("temporary", "database unavailable")
	}
	return auth.VerifyResult{}, nil
}

func fakeSendAs(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
	var req auth.SendAsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, ipc.Errorf("invalid", "%v", err)
	}
	if req.User != "demo@example.test" {
		return nil, ipc.Errorf("notfound", "no account %s", req.User)
	}
	return auth.SendAsResult{Addresses: []string{"demo@example.test", "postmaster@example.test"}}, nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// submission dials the submission listener, says EHLO, starts TLS and says EHLO again.
func (e *testEnv) submission() *client {
	e.t.Helper()
	c, greeting := e.dial(listenSubmission)
	expect(e.t, greeting, "220 mx.example.test")
	expect(e.t, c.cmd("EHLO client.test"), "250-mx.example.test")
	expect(e.t, c.cmd("STARTTLS"), "220 2.0.0")
	tc := tls.Client(c.c, e.tlsConfig())
	if err := tc.Handshake(); err != nil {
		e.t.Fatal(err)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	ehlo := c.cmd("EHLO client.test")
	if !strings.Contains(ehlo, "AUTH PLAIN LOGIN\r\n") {
		e.t.Fatalf("AUTH not offered inside TLS:\n%s", ehlo)
	}
	return c
}

func TestAuthNeedsTLS(t *testing.T) {
	e := startEnv(t, nil)
	c, _ := e.dial(listenSubmission)
	ehlo := c.cmd("EHLO client.test")
	if strings.Contains(ehlo, "AUTH") {
		t.Errorf("AUTH offered before TLS:\n%s", ehlo)
	}
	expect(t, c.cmd("AUTH PLAIN "+b64("\x00demo@example.test\x00"+demoPassword)), "530 5.7.0 Must issue a STARTTLS command first")
	expect(t, c.cmd("MAIL FROM:<demo@example.test>"), "530 5.7.0")

	// Port 25 offers no AUTH at all, with or without TLS.
	m := e.session()
	expect(t, m.cmd("AUTH PLAIN "+b64("\x00demo@example.test\x00"+demoPassword)), "502 5.5.1")
}

func TestAuthPlainAndLogin(t *testing.T) {
	e := startEnv(t, nil)
	good := b64("\x00demo@example.test\x00" + demoPassword)
	for name, steps := range map[string][][2]string{
		"plain initial":   {{"AUTH PLAIN " + good, "235 2.7.0"}},
		"plain authzid":   {{"AUTH plain " + b64("demo@example.test\x00demo@example.test\x00"+demoPassword), "235 2.7.0"}},
		"plain challenge": {{"AUTH PLAIN", "334 \r\n"}, {good, "235 2.7.0"}},
		"login":           {{"AUTH LOGIN", "334 VXNlcm5hbWU6"}, {b64("demo@example.test"), "334 UGFzc3dvcmQ6"}, {b64(demoPassword), "235 2.7.0"}},
		"login initial":   {{"AUTH LOGIN " + b64("Demo@Example.test"), "334 UGFzc3dvcmQ6"}, {b64(demoPassword), "235 2.7.0"}},
		"wrong password":  {{"AUTH PLAIN " + b64("\x00demo@example.test\x00nope"), "535 5.7.8"}},
		"login wrong":     {{"AUTH LOGIN", "334 "}, {b64("demo@example.test"), "334 "}, {b64("nope"), "535 5.7.8"}},
		"other authzid":   {{"AUTH PLAIN " + b64("postmaster@example.test\x00demo@example.test\x00"+demoPassword), "535 5.7.8"}},
		"throttled":       {{"AUTH PLAIN " + b64("\x00throttled@example.test\x00x"), "454 4.7.0 Temporary authentication failure: too many failed logins, try again in 42 seconds\r\n"}},
		"throttled login": {{"AUTH LOGIN", "334 "}, {b64("throttled@example.test"), "334 "}, {b64("x"), "454 4.7.0 Temporary authentication failure: too many failed logins, try again in 42 seconds\r\n"}},
		"authd fails":     {{"AUTH PLAIN " + b64("\x00down@example.test\x00x"), "454 4.7.0"}},
		"cancelled":       {{"AUTH LOGIN", "334 "}, {"*", "501 5.0.0"}},
		"bad base64":      {{"AUTH PLAIN", "334 "}, {"not base64!", "501 5.5.2"}},
		"bad initial":     {{"AUTH PLAIN %%%", "501 5.5.2"}},
		"empty initial":   {{"AUTH PLAIN =", "501 5.5.2"}},
		"malformed plain": {{"AUTH PLAIN " + b64("demo@example.test"), "501 5.5.2"}},
		"unknown mech":    {{"AUTH CRAM-MD5", "504 5.5.4"}},
		"no mech":         {{"AUTH", "501 5.5.4"}},
		"too long":        {{"AUTH PLAIN", "334 "}, {strings.Repeat("A", maxAuthLine+4), "500 5.5.6"}},
	} {
		t.Run(name, func(t *testing.T) {
			c := e.submission()
			for _, st := range steps {
				expect(t, c.cmd(st[0]), st[1])
			}
			// The session goes on in step with the client.
			expect(t, c.cmd("NOOP"), "250")
		})
	}
	if strings.Contains(e.log.String(), demoPassword) || strings.Contains(e.log.String(), "nope") {
		t.Error("a password reached the log")
	}
}

func TestAuthSequence(t *testing.T) {
	e := startEnv(t, nil)
	c := e.submission()
	expect(t, c.cmd("AUTH PLAIN "+b64("\x00demo@example.test\x00"+demoPassword)), "235")
	expect(t, c.cmd("AUTH PLAIN "+b64("\x00demo@example.test\x00"+demoPassword)), "503 5.5.1") // RFC 4954 §4
	expect(t, c.cmd("MAIL FROM:<demo@example.test>"), "250")
	c2 := e.submission()
	expect(t, c2.cmd("MAIL FROM:<demo@example.test>"), "530 5.7.0")
}

func TestSubmissionSenderAndRelay(t *testing.T) {
	e := startEnv(t, nil)
	c := e.submission()
	expect(t, c.cmd("AUTH PLAIN "+b64("\x00demo@example.test\x00"+demoPassword)), "235")
	for _, from := range []string{"user@example.test", "someone@other.test", "demo@example.test.evil", "demo@other.test"} {
		expect(t, c.cmd("MAIL FROM:<"+from+">"), "553 5.7.1")
	}
	for _, from := range []string{"demo@example.test", "Demo+lists@EXAMPLE.test", "postmaster@example.test", ""} {
		expect(t, c.cmd("MAIL FROM:<"+from+">"), "250")
		expect(t, c.cmd("RSET"), "250")
	}
	// Authenticated mail to another domain is relayed; unknown local users are not.
	expect(t, c.cmd("MAIL FROM:<demo@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<friend@foreign.test>"), "250 2.1.5")
	expect(t, c.cmd("RCPT TO:<nobody@example.test>"), "550 5.1.1")
	expect(t, c.cmd("RCPT TO:<user@example.test>"), "250")
	expect(t, c.cmd("DATA"), "354")
	c.send("From: demo@example.test\r\nSubject: hi\r\n\r\nhello\r\n.\r\n")
	expect(t, c.read(), "250 2.0.0")
	env := e.waitMessages(1)[0].Env
	if env.AuthUser != "demo@example.test" || !env.Submission || env.Protocol != "ESMTPSA" {
		t.Errorf("envelope auth %q submission %v protocol %q", env.AuthUser, env.Submission, env.Protocol)
	}
	// authd's sendas answer at AUTH travels along, so that cleanup need not ask again.
	if !slices.Equal(env.SendAs, []string{"demo@example.test", "postmaster@example.test"}) {
		t.Errorf("envelope send-as %q, want authd's answer at AUTH", env.SendAs)
	}

	// The same over implicit TLS (RFC 8314), with net/smtp's PLAIN client.
	conn, err := tls.Dial("tcp", e.addrs[listenSubmissions], e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := smtp.NewClient(conn, "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Auth(smtp.PlainAuth("", "demo@example.test", demoPassword, "mx.example.test")); err != nil {
		t.Fatal(err)
	}
	if err := sc.Mail("demo@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Rcpt("friend@foreign.test"); err != nil {
		t.Fatal(err)
	}
}

func TestSubmissionRateLimits(t *testing.T) {
	e := startEnv(t, func(c *config.Config) {
		c.Submission.MaxMessagesPerHour = 2
		c.Submission.MaxRecipientsPerHour = 3
	})
	c := e.submission()
	expect(t, c.cmd("AUTH PLAIN "+b64("\x00demo@example.test\x00"+demoPassword)), "235")
	expect(t, c.cmd("MAIL FROM:<demo@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<a@foreign.test>"), "250")
	expect(t, c.cmd("RCPT TO:<b@foreign.test>"), "250")
	expect(t, c.cmd("RSET"), "250")
	expect(t, c.cmd("MAIL FROM:<demo@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<c@foreign.test>"), "250")
	expect(t, c.cmd("RCPT TO:<d@foreign.test>"), "451 4.7.1")
	expect(t, c.cmd("RSET"), "250")
	expect(t, c.cmd("MAIL FROM:<demo@example.test>"), "451 4.7.1")
	// The limit is the account's, not the session's.
	c2 := e.submission()
	expect(t, c2.cmd("AUTH PLAIN "+b64("\x00demo@example.test\x00"+demoPassword)), "235")
	expect(t, c2.cmd("MAIL FROM:<demo@example.test>"), "451 4.7.1")
}

func TestParseAuthArg(t *testing.T) {
	for _, tc := range []struct {
		arg     string
		mech    string
		initial string
		has     bool
		err     error
	}{
		{"PLAIN", "PLAIN", "", false, nil},
		{"login", "LOGIN", "", false, nil},
		{"PLAIN =", "PLAIN", "", true, nil},
		{"PLAIN " + b64("\x00u\x00p"), "PLAIN", "\x00u\x00p", true, nil},
		{"", "", "", false, errAuthSyntax},
		{"PLAIN  x", "", "", false, errAuthSyntax},
		{"PLAIN a b", "", "", false, errAuthSyntax},
		{"PL@IN", "", "", false, errAuthSyntax},
		{strings.Repeat("A", 21), "", "", false, errAuthSyntax},
		{"PLAIN AAA", "", "", false, errBadBase64},
		{"PLAIN AA==\n", "", "", false, errBadBase64},
	} {
		mech, initial, has, err := parseAuthArg(tc.arg)
		if mech != tc.mech || string(initial) != tc.initial || has != tc.has || err != tc.err {
			t.Errorf("parseAuthArg(%q) = %q, %q, %v, %v", tc.arg, mech, initial, has, err)
		}
	}
}

// FuzzParseAuthArg: no panic; what parses has a valid mechanism name, and an initial
// response that re-encodes to what was sent.
func FuzzParseAuthArg(f *testing.F) {
	for _, s := range []string{"PLAIN", "PLAIN =", "LOGIN dXNlcg==", "PLAIN AGEAYg==", "X  y", "A B C", "PLAIN ====", "PLAIN \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		mech, initial, has, err := parseAuthArg(arg)
		if err != nil {
			return
		}
		if mech == "" || len(mech) > 20 || mech != strings.ToUpper(mech) {
			t.Errorf("mechanism %q from %q", mech, arg)
		}
		if has {
			_, rest, _ := strings.Cut(arg, " ")
			if rest != "=" && base64.StdEncoding.EncodeToString(initial) != rest {
				t.Errorf("initial response %q does not re-encode to %q", initial, rest)
			}
		}
	})
}

// sendsPassword reports whether a word of script is the base64 of something that ends
// in the demo password.
func sendsPassword(script []byte) bool {
	for _, w := range bytes.Fields(script) {
		b, err := base64.StdEncoding.DecodeString(string(w))
		if err == nil && bytes.HasSuffix(b, []byte(demoPassword)) {
			return true
		}
	}
	return false
}

// FuzzAuthExchange feeds arbitrary input to a submission session that is past TLS, so
// that AUTH and its exchange run: no panic, no hang, and nothing is queued unless the
// script authenticated with the right password.
func FuzzAuthExchange(f *testing.F) {
	good := b64("\x00demo@example.test\x00" + demoPassword)
	for _, s := range []string{
		"EHLO c.test\r\nAUTH PLAIN " + good + "\r\nMAIL FROM:<demo@example.test>\r\nRCPT TO:<x@foreign.test>\r\nDATA\r\nFrom: demo@example.test\r\n\r\nx\r\n.\r\n",
		"EHLO c.test\r\nAUTH LOGIN\r\n" + b64("demo@example.test") + "\r\n" + b64(demoPassword) + "\r\nQUIT\r\n",
		"EHLO c.test\r\nAUTH PLAIN\r\n*\r\nAUTH LOGIN =\r\n=\r\n=\r\n",
		"EHLO c.test\r\nAUTH PLAIN\r\n",
		"EHLO c.test\r\nAUTH LOGIN\r\n\r\n\r\n\r\n",
		"EHLO c.test\r\nAUTH PLAIN AAAA\r\nAUTH X\r\nAUTH PLAIN " + good + "\r\nAUTH PLAIN " + good + "\r\n",
		"EHLO c.test\r\nMAIL FROM:<demo@example.test>\r\nAUTH PLAIN " + good + "\r\n",
	} {
		f.Add([]byte(s))
	}
	e := startEnv(f, nil)
	f.Fuzz(func(t *testing.T, script []byte) {
		c := &scriptConn{r: bytes.NewReader(script)}
		ip := netip.MustParseAddr("192.0.2.1")
		sess := newSession(e.srv, c, listenerPolicies[listenSubmission], ip)
		sess.tlsInfo = "TLS1.3 fuzz" // as if STARTTLS had succeeded
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
		if sess.authUser != "" && !sendsPassword(script) {
			t.Errorf("authenticated as %q without the password: %q", sess.authUser, script)
		}
		e.cleanup.mu.Lock()
		e.cleanup.msgs = nil
		e.cleanup.mu.Unlock()
	})
}

// TestContentRejected: cleanup's enqueue.CodeRejected (an author the user may not
// write as, spamd's verdict) is a 550 at the end of data with cleanup's text, 5.7.1 unless
// cleanup named another enhanced code (5.7.23 for SPF); enqueue.CodeTempfail is a 451
// (4.7.1 by default); its "denied" (smtpd's uid not admitted on the socket, a
// configuration error) stays a temporary 451.
func TestContentRejected(t *testing.T) {
	const author = "From: header address <x@example.test> not owned by user demo@example.test"
	for _, c := range []struct{ code, msg, want string }{
		{enqueue.CodeRejected, author, "550 5.7.1 " + author},
		{enqueue.CodeRejected, "5.7.23 SPF validation failed for x.test", "550 5.7.23 SPF validation failed for x.test"},
		{enqueue.CodeRejected, "4.7.23 wrong class", "550 5.7.1 4.7.23 wrong class"},
		{enqueue.CodeTempfail, "Try again later", "451 4.7.1 Try again later"},
		{enqueue.CodeTempfail, "4.7.0 Message checks unavailable", "451 4.7.0 Message checks unavailable"},
		{"denied", author, "451 4.3.0"},
	} {
		code, msg, want := c.code, c.msg, c.want
		e := startEnvWith(t, nil, envOptions{noCleanup: true})
		cl := &ipc.Server{Name: "rejecting-cleanup", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		cl.HandleStream(enqueue.OpEnqueue, func(_ context.Context, _ ipc.Cred, c *ipc.Conn, _ json.RawMessage, files []*os.File) error {
			ipc.CloseFiles(files)
			io.Copy(io.Discard, c.StreamReader())
			var end enqueue.End
			if _, err := c.Receive(&end); err != nil {
				return err
			}
			return c.Reply(nil, ipc.Errorf(code, "%s", msg))
		})
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go cl.Serve(ctx, listenUnix(t, e.cfg.PrivateSocket("cleanup")))
		c := e.submission()
		expect(t, c.cmd("AUTH PLAIN "+b64("\x00demo@example.test\x00"+demoPassword)), "235")
		expect(t, c.cmd("MAIL FROM:<demo@example.test>"), "250")
		expect(t, c.cmd("RCPT TO:<friend@foreign.test>"), "250")
		expect(t, c.cmd("DATA"), "354")
		c.send("From: x@example.test\r\n\r\nhi\r\n.\r\n")
		expect(t, c.read(), want)
	}
}

// fakeWebCheck knows one web session token: "tok" of demo@example.test.
func fakeWebCheck(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
	var req auth.WebCheckRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, ipc.Errorf("invalid", "%v", err)
	}
	if strings.EqualFold(req.User, "demo@example.test") && req.Token == "tok" {
		return auth.WebCheckResult{OK: true, Address: "demo@example.test"}, nil
	}
	return auth.WebCheckResult{}, nil
}

// TestAuthWeb: httpd's web session token authenticates its user through
// X-POSTERN-WEB, on a connection from httpd's user (even without TLS, on this host); from
// any other user the mechanism does not exist.
func TestAuthWeb(t *testing.T) {
	e := startEnv(t, nil)
	web := func(user, token string) string { return b64(string(auth.WebResponse(user, token))) }
	c, _ := e.dial(listenSubmission)
	if ehlo := c.cmd("EHLO client.test"); strings.Contains(ehlo, "X-POSTERN-WEB") {
		t.Errorf("the web mechanism is advertised:\n%s", ehlo)
	}
	expect(t, c.cmd("AUTH X-POSTERN-WEB "+web("postmaster@example.test", "tok")), "535 5.7.8")
	expect(t, c.cmd("AUTH X-POSTERN-WEB "+web("demo@example.test", "wrong")), "535 5.7.8")
	expect(t, c.cmd("AUTH X-POSTERN-WEB "+b64("no separator")), "501 5.5.2")
	expect(t, c.cmd("AUTH X-POSTERN-WEB"), "334 \r\n")
	expect(t, c.cmd(web("demo@example.test", "tok")), "235 2.7.0")
	// The session is the user's: the send-as rule applies.
	expect(t, c.cmd("MAIL FROM:<demo@example.test>"), "250 ")

	e.srv.webPeer = func(ipc.Cred) bool { return false }
	c, _ = e.dial(listenSubmission)
	c.cmd("EHLO client.test")
	expect(t, c.cmd("AUTH X-POSTERN-WEB "+web("demo@example.test", "tok")), "530 5.7.0")
}

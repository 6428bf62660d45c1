package main

import (
	"fmt"
	"net/smtp"
	"regexp"
	"strings"
	"testing"

	"postern/pkg/config"
)

func TestNetSMTPTransaction(t *testing.T) {
	e := startEnv(t, nil)
	c, err := smtp.Dial(e.addrs[listenSMTP])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS", "DSN"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("extension %s not offered", ext)
		}
	}
	if ok, param := c.Extension("SIZE"); !ok || param != "1048576" {
		t.Errorf("SIZE %q, want 1048576", param)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered")
	}
	if err := c.Mail("sender@other.test"); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"demo@example.test", "User@Example.Test"} {
		if err := c.Rcpt(to); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	body := "Subject: hello\r\n\r\nline one\r\n.leading dot\r\ncaf\xc3\xa9\r\n"
	fmt.Fprint(w, body)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	m := e.waitMessages(1)[0]
	if string(m.Body) != body {
		t.Errorf("body %q, want %q", m.Body, body)
	}
	env := m.Env
	if env.From != "sender@other.test" || len(env.Recipients) != 2 ||
		env.Recipients[0].Addr != "demo@example.test" || env.Recipients[1].Addr != "User@example.test" {
		t.Errorf("envelope from %q to %+v", env.From, env.Recipients)
	}
	// authd's answer at RCPT travels along, so that cleanup need not ask again.
	for i, want := range []string{"demo@example.test", "user@example.test"} {
		if r := env.Recipients[i].Resolution; r == nil || !r.Local || !r.Found || len(r.Targets) != 1 || r.Targets[0] != want {
			t.Errorf("recipient %d resolution %+v, want %s", i, r, want)
		}
	}
	// net/smtp sends BODY=8BITMIME and SMTPUTF8 when offered (RFC 6531 §3.7.4).
	if env.ClientAddr != "127.0.0.1" || env.Helo != "client.test" || env.Protocol != "UTF8SMTP" ||
		env.BodyType != "8BITMIME" || !env.SMTPUTF8 || env.TLS != "" || env.Submission {
		t.Errorf("envelope %+v", env)
	}
	log, ok := e.waitLog("msg=disconnect", "rcpt=2")
	if !ok {
		t.Errorf("no disconnect line with counters:\n%s", log)
	}
	if !regexp.MustCompile(`msg=queued id=4F00000000000001 from=<sender@other.test> size=49 nrcpt=2 client=127.0.0.1 listener=smtp`).MatchString(log) {
		t.Errorf("no queued line in the log:\n%s", log)
	}
	if strings.Contains(log, "leading dot") {
		t.Error("message content in the log")
	}
}

func TestProtocolField(t *testing.T) {
	e := startEnv(t, nil)
	c, _ := e.dial(listenSMTP)
	c.cmd("HELO old.test")
	expect(t, c.transaction("", "demo@example.test", "Subject: a\r\n\r\nx\r\n"), "250 2.0.0 Ok: queued as ")
	c.cmd("EHLO new.test")
	expect(t, c.transaction("a@other.test", "demo@example.test", "Subject: b\r\n\r\nx\r\n"), "250 2.0.0 Ok: queued as ")
	msgs := e.waitMessages(2)
	if p := msgs[0].Env.Protocol; p != "SMTP" || msgs[0].Env.From != "" || msgs[0].Env.Helo != "old.test" {
		t.Errorf("HELO: protocol %q from %q helo %q", p, msgs[0].Env.From, msgs[0].Env.Helo)
	}
	if p := msgs[1].Env.Protocol; p != "ESMTP" || msgs[1].Env.SMTPUTF8 || msgs[1].Env.BodyType != "" {
		t.Errorf("EHLO: %+v", msgs[1].Env)
	}
}

func TestPipelining(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	// RFC 2920: the whole transaction up to DATA in one go, then the content, then
	// another transaction and QUIT in one go.
	c.send("MAIL FROM:<a@other.test>\r\nRCPT TO:<demo@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
	for _, want := range []string{"250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"} {
		expect(t, c.read(), want)
	}
	c.send("Subject: one\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@other.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n")
	for _, want := range []string{"250 2.0.0 Ok: queued as", "250 2.1.0", "250 2.1.5", "354"} {
		expect(t, c.read(), want)
	}
	c.send("Subject: two\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
	for _, want := range []string{"250 2.0.0 Ok: queued as", "250 2.0.0", "250 2.0.0", "221 2.0.0"} {
		expect(t, c.read(), want)
	}
	c.expectClosed()
	msgs := e.waitMessages(2)
	if len(msgs[0].Env.Recipients) != 2 || string(msgs[1].Body) != "Subject: two\r\n\r\nbody\r\n" {
		t.Errorf("messages %+v", msgs)
	}
}

func TestPipelinedRepliesComeTogether(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	c.send("NOOP\r\nNOOP\r\nNOOP\r\n")
	// The three replies are flushed at once, when the server has no more input.
	buf := make([]byte, 4096)
	n, err := c.r.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(buf[:n]), "250 2.0.0 Ok\r\n"); got != 3 {
		t.Errorf("first read held %d replies: %q", got, buf[:n])
	}
}

func TestSimpleCommands(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.MaxErrors = 100 })
	c := e.session()
	for _, tc := range []struct{ cmd, want string }{
		{"NOOP", "250 2.0.0"},
		{"NOOP whatever", "250 2.0.0"},
		{"noop", "250 2.0.0"},
		{"RSET", "250 2.0.0"},
		{"RSET x", "501 5.5.4"},
		{"VRFY demo", "252 2.5.2"},
		{"VRFY", "501 5.5.4"},
		{"HELP", "214 2.0.0"},
		{"EXPN staff", "502 5.5.1"},
		{"AUTH PLAIN AGRlbW8AeA==", "502 5.5.1"},
		{"ETRN example.test", "502 5.5.1"},
		{"FOO", "502 5.5.2"},
		{"X-FOO bar", "502 5.5.2"},
		{"", "500 5.5.2"},
		{"MAIL\x00FROM:<a@b.test>", "500 5.5.2"},
		{"NOOP " + strings.Repeat("x", 600), "500 5.5.2"},
		{"MAIL FROM:<" + strings.Repeat("x", 3000) + "@other.test>", "500 5.5.2"},
		{"EHLO", "501 5.5.4"},
		{"HELO", "501 5.5.4"},
		{"EHLO client.test", "250-mx.example.test"},
		{"HELO client.test", "250 mx.example.test"},
	} {
		if got := c.cmd(tc.cmd); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%.40q: got %q, want %s", tc.cmd, strings.TrimSpace(got), tc.want)
		}
	}
	expect(t, c.cmd("QUIT"), "221 2.0.0")
	c.expectClosed()
}

func TestSequenceErrors(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.MaxErrors = 100 })
	c, _ := e.dial(listenSMTP)
	for _, tc := range []struct{ cmd, want string }{
		{"MAIL FROM:<a@other.test>", "503 5.5.1"}, // before EHLO
		{"RCPT TO:<demo@example.test>", "503 5.5.1"},
		{"DATA", "503 5.5.1"},
		{"EHLO client.test", "250"},
		{"RCPT TO:<demo@example.test>", "503 5.5.1"},
		{"DATA", "503 5.5.1"},
		{"MAIL FROM:<a@other.test>", "250 2.1.0"},
		{"MAIL FROM:<a@other.test>", "503 5.5.1"},
		{"DATA", "503 5.5.1"}, // no RCPT yet
		{"RCPT TO:<nobody@example.test>", "550 5.1.1"},
		{"DATA", "554 5.5.1"}, // no valid recipients (RFC 5321 §3.3)
		{"RCPT TO:<demo@example.test>", "250 2.1.5"},
		{"DATA x", "501 5.5.4"},
		{"RSET", "250"},
		{"RCPT TO:<demo@example.test>", "503 5.5.1"},
		// EHLO resets the transaction (RFC 5321 §4.1.4).
		{"MAIL FROM:<a@other.test>", "250 2.1.0"},
		{"EHLO client.test", "250"},
		{"RCPT TO:<demo@example.test>", "503 5.5.1"},
	} {
		if got := c.cmd(tc.cmd); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: got %q, want %s", tc.cmd, strings.TrimSpace(got), tc.want)
		}
	}
}

func TestMailAndRcptSyntax(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.MaxErrors = 100 })
	c := e.session()
	for _, tc := range []struct{ cmd, want string }{
		{"MAIL FROM a@other.test", "501 5.5.4"},
		{"MAIL TO:<a@other.test>", "501 5.5.4"},
		{"MAIL FROM:a@other.test", "501 5.1.7"},
		{"MAIL FROM:<a b@other.test>", "501 5.1.7"},
		{"MAIL FROM:<a@other..test>", "501 5.1.7"},
		{"MAIL FROM:<" + strings.Repeat("a", 65) + "@other.test>", "501 5.1.7"},
		{"MAIL FROM:<a@other.test> SIZE=abc", "501 5.5.4"},
		{"MAIL FROM:<a@other.test> BODY=9BIT", "501 5.5.4"},
		{"MAIL FROM:<a@other.test> BODY=BINARYMIME", "555 5.5.4"},
		{"MAIL FROM:<a@other.test> FOO=BAR", "555 5.5.4"},
		{"MAIL FROM:<a@other.test> AUTH=<>", "555 5.5.4"},
		{"MAIL FROM:<a@other.test> RET=ALL", "501 5.5.4"},
		{"MAIL FROM:<a@other.test> ENVID=" + strings.Repeat("x", 101), "501 5.5.4"},
		{"MAIL FROM:<a@other.test> SMTPUTF8=yes", "501 5.5.4"},
		// RFC 6531 §3.5: a non-ASCII address needs the SMTPUTF8 parameter.
		{"MAIL FROM:<jöran@other.test>", "553 5.6.7"},
		{"MAIL FROM:<a@bücher.test>", "553 5.6.7"},
		{"MAIL FROM:<a@other.test> SIZE=1000 BODY=7BIT RET=HDRS ENVID=abc+2Bdef", "250 2.1.0"},
		{"RCPT demo@example.test", "501 5.5.4"},
		{"RCPT TO:<>", "501 5.1.3"},
		{"RCPT TO:demo@example.test", "501 5.1.3"},
		{"RCPT TO:<demo@example.test> NOTIFY=SOMETIMES", "501 5.5.4"},
		{"RCPT TO:<demo@example.test> ORCPT=demo@example.test", "501 5.5.4"},
		{"RCPT TO:<demo@example.test> FOO", "555 5.5.4"},
		{"RCPT TO:<jöran@example.test>", "553 5.6.7"},
		{"RCPT TO:<demo@example.test> NOTIFY=success,failure ORCPT=rfc822;Demo+40example.test", "250 2.1.5"},
		{"RSET", "250"},
		{"MAIL FROM:<jöran@other.test> SMTPUTF8", "250 2.1.0"},
		{"RCPT TO:<user@example.test>", "250 2.1.5"},
	} {
		if got := c.cmd(tc.cmd); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%.60q: got %q, want %s", tc.cmd, strings.TrimSpace(got), tc.want)
		}
	}
	expect(t, c.cmd("DATA"), "354")
	c.send("Subject: x\r\n\r\ny\r\n.\r\n")
	expect(t, c.read(), "250 2.0.0")
	m := e.waitMessages(1)[0]
	if m.Env.From != "jöran@other.test" || !m.Env.SMTPUTF8 || m.Env.Protocol != "UTF8SMTP" {
		t.Errorf("envelope %+v", m.Env)
	}
}

func TestDSNParameters(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	expect(t, c.cmd("MAIL FROM:<a@other.test> RET=hdrs ENVID=QQ+2B1"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;Alias+2Bx@example.test"), "250")
	expect(t, c.cmd("RCPT TO:<user@example.test> NOTIFY=NEVER"), "250")
	expect(t, c.cmd("DATA"), "354")
	c.send("x\r\n.\r\n")
	expect(t, c.read(), "250")
	env := e.waitMessages(1)[0].Env
	if env.Ret != "HDRS" || env.EnvID != "QQ+1" {
		t.Errorf("ret %q envid %q", env.Ret, env.EnvID)
	}
	r := env.Recipients
	if r[0].Notify != "FAILURE,DELAY" || r[0].ORcpt != "Alias+x@example.test" || r[1].Notify != "NEVER" || r[1].ORcpt != "" {
		t.Errorf("recipients %+v", r)
	}
}

func TestRecipientPolicy(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.MaxErrors = 100 })
	c := e.session()
	expect(t, c.cmd("MAIL FROM:<x@other.test>"), "250")
	for _, tc := range []struct{ rcpt, want string }{
		{"<demo@example.test>", "250 2.1.5"},
		{"<DEMO@Example.Test>", "250 2.1.5"},
		{"<demo+tag@example.test>", "250 2.1.5"},
		{"<postmaster>", "250 2.1.5"},
		{"<PostMaster>", "250 2.1.5"},
		{"<nobody@example.test>", "550 5.1.1"},
		{"<fail@example.test>", "451 4.3.0"},
		// Relay tricks: none may leave the machine.
		{"<user@foreign.test>", "554 5.7.1"},
		{"<user%foreign.test@example.test>", "550 5.1.1"},
		{"<@example.test:user@foreign.test>", "554 5.7.1"},
		{"<@example.test,@other.test:user@foreign.test>", "554 5.7.1"},
		{`<"user@foreign.test"@example.test>`, "550 5.1.1"},
		{"<user!foreign.test@example.test>", "550 5.1.1"},
		{"<user@[192.0.2.1]>", "554 5.7.1"},
	} {
		if got := c.cmd("RCPT TO:" + tc.rcpt); !strings.HasPrefix(got, tc.want) {
			t.Errorf("RCPT TO:%s = %q, want %s", tc.rcpt, strings.TrimSpace(got), tc.want)
		}
	}
	expect(t, c.cmd("DATA"), "354")
	c.send("x\r\n.\r\n")
	expect(t, c.read(), "250")
	var got []string
	for _, r := range e.waitMessages(1)[0].Env.Recipients {
		got = append(got, r.Addr)
	}
	want := "demo@example.test DEMO@example.test demo+tag@example.test postmaster@example.test postmaster@example.test"
	if strings.Join(got, " ") != want {
		t.Errorf("recipients %q, want %q", got, want)
	}
	if log, ok := e.waitLog(`msg=reject client=127.0.0.1 cmd=RCPT reply="550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown" from=<x@other.test> to=<nobody@example.test>`); !ok {
		t.Errorf("reject not logged:\n%s", log)
	}
}

func TestTooManyRecipients(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.MaxRecipients = 2 })
	c := e.session()
	c.cmd("MAIL FROM:<x@other.test>")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<nobody@example.test>"), "550")
	expect(t, c.cmd("RCPT TO:<user@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<postmaster@example.test>"), "452 4.5.3")
	expect(t, c.cmd("DATA"), "354")
	c.send("x\r\n.\r\n")
	expect(t, c.read(), "250")
	if n := len(e.waitMessages(1)[0].Env.Recipients); n != 2 {
		t.Errorf("%d recipients", n)
	}
}

func TestTooManyErrors(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.MaxErrors = 3 })
	c := e.session()
	expect(t, c.cmd("FOO"), "502")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "503")
	expect(t, c.cmd("NOOP"), "250")
	c.send("BAR\r\n")
	expect(t, c.read(), "502")
	expect(t, c.read(), "421 4.7.0")
	c.expectClosed()
}

func TestHTTPIsDropped(t *testing.T) {
	e := startEnv(t, nil)
	c, _ := e.dial(listenSMTP)
	c.send("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
	expect(t, c.read(), "221 2.7.0")
	c.expectClosed()
}

func TestSubmissionNeedsAuth(t *testing.T) {
	e := startEnv(t, nil)
	for _, l := range []string{listenSubmission, listenSubmissions} {
		c, greeting := e.dial(l)
		expect(t, greeting, "220 mx.example.test")
		ehlo := c.cmd("EHLO client.test")
		// AUTH is offered inside TLS only: on 465 at once, on 587 after STARTTLS.
		if got, want := strings.Contains(ehlo, "AUTH PLAIN LOGIN"), l == listenSubmissions; got != want {
			t.Errorf("%s: AUTH offered %v, want %v:\n%s", l, got, want, ehlo)
		}
		if l == listenSubmissions && strings.Contains(ehlo, "STARTTLS") {
			t.Errorf("%s: STARTTLS offered under implicit TLS", l)
		}
		// RFC 6409 §4.3, RFC 4954 §6: nothing is accepted without authentication.
		expect(t, c.cmd("MAIL FROM:<demo@example.test>"), "530 5.7.0")
		for _, to := range []string{"demo@example.test", "someone@foreign.test"} {
			expect(t, c.cmd("RCPT TO:<"+to+">"), "503 5.5.1")
		}
		expect(t, c.cmd("DATA"), "503 5.5.1")
		expect(t, c.cmd("QUIT"), "221")
	}
	if n := len(e.cleanup.messages()); n != 0 {
		t.Errorf("%d messages queued", n)
	}
}

func TestAuthdDown(t *testing.T) {
	e := startEnvWith(t, nil, envOptions{noAuthd: true})
	c := e.session()
	c.cmd("MAIL FROM:<x@other.test>")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "451 4.3.0")
}

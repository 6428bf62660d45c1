package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"postern/pkg/config"
)

func TestDataDotStuffingAndEmptyMessage(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	expect(t, c.transaction("a@other.test", "demo@example.test", "..leading\r\n..\r\n...\r\nx\r\n"), "250 2.0.0 Ok: queued as ")
	expect(t, c.transaction("a@other.test", "demo@example.test", ""), "250 2.0.0 Ok: queued as ")
	msgs := e.waitMessages(2)
	if got := string(msgs[0].Body); got != ".leading\r\n.\r\n..\r\nx\r\n" {
		t.Errorf("body %q", got)
	}
	if len(msgs[1].Body) != 0 {
		t.Errorf("empty message became %q", msgs[1].Body)
	}
}

// The smuggling tricks of CVE-2023-51764 and siblings: an end of data that another
// server might see. Each session must yield exactly one message that holds the fake
// commands as text, and nothing may remain to be run after it.
func TestSmugglingYieldsOneMessage(t *testing.T) {
	e := startEnv(t, nil)
	tricks := []string{"\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", "\r\n.\r", "\r.\r\n", "\r\n.\r\r\n", "\n..\r\n"}
	for i, trick := range tricks {
		c := e.session()
		expect(t, c.cmd("MAIL FROM:<x@other.test>"), "250")
		expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
		expect(t, c.cmd("DATA"), "354")
		c.send(fmt.Sprintf("Subject: smuggle %d\r\n\r\nhello%sMAIL FROM:<evil@other.test>\r\nRCPT TO:<user@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n", i, trick))
		expect(t, c.read(), "250 2.0.0 Ok: queued as")
		expect(t, c.cmd("QUIT"), "221")
		c.expectClosed()
	}
	msgs := e.waitMessages(len(tricks))
	for i, m := range msgs {
		body := string(m.Body)
		if !strings.Contains(body, fmt.Sprintf("Subject: smuggle %d", i)) || !strings.Contains(body, "MAIL FROM:<evil@other.test>\r\n") ||
			!strings.Contains(body, "Subject: smuggled") || len(m.Env.Recipients) != 1 {
			t.Errorf("trick %q: message %q to %+v", tricks[i], body, m.Env.Recipients)
		}
		if strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\r") || strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\n") {
			t.Errorf("trick %q: bare CR or LF left in %q", tricks[i], body)
		}
	}
}

func TestMessageTooLarge(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.MaxMessageSize = 10000 })
	c := e.session()
	// Declared too large: refused at MAIL (RFC 1870 §6.1).
	expect(t, c.cmd("MAIL FROM:<a@other.test> SIZE=10001"), "552 5.3.4")
	expect(t, c.cmd("MAIL FROM:<a@other.test> SIZE=10000"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, c.cmd("DATA"), "354")
	// Too large in fact: the content is read to its end, the session stays in step.
	big := strings.Repeat("0123456789012345678901234567890123456789\r\n", 1000)
	c.send(big + ".\r\nNOOP\r\n")
	expect(t, c.read(), "552 5.3.4")
	expect(t, c.read(), "250 2.0.0 Ok")
	// The transaction is over.
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "503")
	// A message of exactly the limit passes.
	exact := strings.Repeat("x", 9998) + "\r\n"
	expect(t, c.transaction("a@other.test", "demo@example.test", exact), "250 2.0.0")
	if n := len(e.waitMessages(1)[0].Body); n != 10000 {
		t.Errorf("queued %d octets", n)
	}
	if e.cleanup.abortedCount() != 1 {
		t.Errorf("%d aborted, want 1", e.cleanup.abortedCount())
	}
}

func TestLongLine(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.MaxLineLength = 1000 })
	c := e.session()
	expect(t, c.transaction("a@other.test", "demo@example.test", strings.Repeat("y", 1001)+"\r\n"), "554 5.6.0")
	expect(t, c.cmd("NOOP"), "250")
	expect(t, c.transaction("a@other.test", "demo@example.test", strings.Repeat("y", 1000)+"\r\n"), "250 2.0.0")
	e.waitMessages(1)
}

func TestCleanupFailure(t *testing.T) {
	e := startEnv(t, nil)
	e.cleanup.failCommit.Store(true)
	c := e.session()
	expect(t, c.transaction("a@other.test", "demo@example.test", "x\r\n"), "451 4.3.0")
	expect(t, c.cmd("NOOP"), "250")
	e.cleanup.failCommit.Store(false)
	expect(t, c.transaction("a@other.test", "demo@example.test", "x\r\n"), "250 2.0.0")
}

func TestCleanupDown(t *testing.T) {
	e := startEnvWith(t, nil, envOptions{noCleanup: true})
	c := e.session()
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	// Refused before 354: the client sends no content.
	expect(t, c.cmd("DATA"), "451 4.3.0")
	expect(t, c.cmd("NOOP"), "250")
	// BDAT: the chunk is read and discarded.
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	c.send("BDAT 5\r\nhelloBDAT 3 LAST\r\nabcNOOP\r\n")
	expect(t, c.read(), "451 4.3.0")
	expect(t, c.read(), "451 4.3.0")
	expect(t, c.read(), "250 2.0.0 Ok")
}

func TestBDAT(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	expect(t, c.cmd("MAIL FROM:<a@other.test> BODY=8BITMIME"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	// A CRLF split across chunks, a bare LF and a bare CR, and a line that looks like
	// the end of DATA, which means nothing in BDAT.
	chunks := []string{"Subject: chunks\r", "\n\r\nbare lf\nbare cr\r.\r\n", "MAIL FROM:<x@y.test>\r\n"}
	for _, ch := range chunks {
		c.send(fmt.Sprintf("BDAT %d\r\n%s", len(ch), ch))
		expect(t, c.read(), fmt.Sprintf("250 2.0.0 %d octets received", len(ch)))
	}
	c.send("BDAT 4 LAST\r\nend.")
	expect(t, c.read(), "250 2.0.0 Ok: queued as")
	// BDAT 0 LAST ends a message whose chunks are all sent; pipelined with the rest.
	c.send("MAIL FROM:<b@other.test>\r\nRCPT TO:<user@example.test>\r\nBDAT 7\r\nline\r\n\nBDAT 0 LAST\r\nQUIT\r\n")
	for _, want := range []string{"250 2.1.0", "250 2.1.5", "250 2.0.0 7 octets", "250 2.0.0 Ok: queued as", "221"} {
		expect(t, c.read(), want)
	}
	msgs := e.waitMessages(2)
	if got, want := string(msgs[0].Body), "Subject: chunks\r\n\r\nbare lf\r\nbare cr\r\n.\r\nMAIL FROM:<x@y.test>\r\nend.\r\n"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
	if got := string(msgs[1].Body); got != "line\r\n\r\n" {
		t.Errorf("body %q", got)
	}
	if msgs[0].Env.BodyType != "8BITMIME" {
		t.Errorf("envelope %+v", msgs[0].Env)
	}
}

func TestBDATErrors(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) {
		cfg.SMTPD.MaxMessageSize = 100
		cfg.SMTPD.MaxErrors = 100
	})
	c := e.session()
	// Out of sequence: the chunk is read and discarded (RFC 3030 §2).
	c.send("BDAT 10\r\nRSET\r\nQUIT")
	expect(t, c.read(), "503 5.5.1")
	expect(t, c.cmd("NOOP"), "250")
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	c.send("BDAT 4 LAST\r\nQUIT")
	expect(t, c.read(), "503 5.5.1")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	// DATA and BDAT do not mix (RFC 3030 §2).
	c.send("BDAT 3\r\nabc")
	expect(t, c.read(), "250 2.0.0 3 octets")
	expect(t, c.cmd("DATA"), "503 5.5.1")
	expect(t, c.cmd("RCPT TO:<user@example.test>"), "503 5.5.1")
	expect(t, c.cmd("RSET"), "250")
	// Too large: this chunk and the pipelined ones after it are read and refused; the
	// session stays in step.
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	c.send("BDAT 60\r\n" + strings.Repeat("x", 60) + "BDAT 60\r\n" + strings.Repeat("y", 60) + "BDAT 5 LAST\r\nz\r\n\r\nNOOP\r\n")
	expect(t, c.read(), "250 2.0.0 60")
	expect(t, c.read(), "552 5.3.4")
	expect(t, c.read(), "552 5.3.4")
	expect(t, c.read(), "250 2.0.0 Ok")
	// Line endings that grow in normalization count against the limit too.
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	c.send("BDAT 60 LAST\r\n" + strings.Repeat("\n", 60))
	expect(t, c.read(), "552 5.3.4")
	if n := len(e.cleanup.messages()); n != 0 {
		t.Errorf("%d messages queued", n)
	}
	// A BDAT whose size cannot be read ends the session: what follows cannot be
	// told from commands.
	expect(t, c.cmd("BDAT x"), "501 5.5.4")
	c.expectClosed()
}

func TestDataTimeout(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.SMTPD.DataTimeout = config.Duration(300 * time.Millisecond) })
	c := e.session()
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, c.cmd("DATA"), "354")
	c.send("Subject: slow\r\n")
	expect(t, c.read(), "421 4.4.2")
	c.expectClosed()
	deadline := time.Now().Add(5 * time.Second)
	for e.cleanup.abortedCount() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.cleanup.abortedCount() != 1 || len(e.cleanup.messages()) != 0 {
		t.Errorf("aborted %d, queued %d", e.cleanup.abortedCount(), len(e.cleanup.messages()))
	}
}

package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"testing"

	"postern/pkg/config"
)

func TestSTARTTLS(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	expect(t, c.cmd("STARTTLS now"), "501 5.5.4")
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "250")
	expect(t, c.cmd("STARTTLS"), "220 2.0.0")
	tc := tls.Client(c.c, e.tlsConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if v := tc.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Errorf("TLS version %x", v)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	// RFC 3207 §4.2: everything from before is forgotten, EHLO comes first.
	expect(t, c.cmd("MAIL FROM:<a@other.test>"), "503 5.5.1")
	ehlo := c.cmd("EHLO client.test")
	if strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS offered twice:\n%s", ehlo)
	}
	expect(t, c.cmd("STARTTLS"), "503 5.5.1")
	expect(t, c.transaction("a@other.test", "demo@example.test", "x\r\n"), "250 2.0.0")
	env := e.waitMessages(1)[0].Env
	if env.Protocol != "ESMTPS" || !strings.HasPrefix(env.TLS, "TLS1.3 TLS_") {
		t.Errorf("protocol %q tls %q", env.Protocol, env.TLS)
	}
}

func TestSTARTTLSWithNetSMTP(t *testing.T) {
	e := startEnv(t, nil)
	c, err := smtp.Dial(e.addrs[listenSMTP])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := e.tlsConfig()
	cfg.MaxVersion = tls.VersionTLS12
	if err := c.StartTLS(cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@other.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("demo@example.test"); err != nil {
		t.Fatal(err)
	}
	w, _ := c.Data()
	fmt.Fprint(w, "Subject: tls\r\n\r\nx\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	env := e.waitMessages(1)[0].Env
	if env.Protocol != "UTF8SMTPS" || !strings.HasPrefix(env.TLS, "TLS1.2 TLS_ECDHE_") {
		t.Errorf("protocol %q tls %q", env.Protocol, env.TLS)
	}
}

// Commands pipelined after STARTTLS came in the clear; they must not run in the TLS
// session (CVE-2011-0411).
func TestSTARTTLSInjection(t *testing.T) {
	e := startEnv(t, nil)
	c := e.session()
	c.send("STARTTLS\r\nMAIL FROM:<evil@other.test>\r\nRCPT TO:<demo@example.test>\r\n")
	expect(t, c.read(), "220 2.0.0")
	tc := tls.Client(c.c, e.tlsConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	// The first reply in TLS is the one to this NOOP, not to the injected commands.
	expect(t, c.cmd("NOOP"), "250 2.0.0 Ok")
	expect(t, c.cmd("EHLO client.test"), "250-")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "503 5.5.1")
	if _, ok := e.waitLog("discarded input pipelined after STARTTLS"); !ok {
		t.Error("discard not logged")
	}
}

func TestImplicitTLS(t *testing.T) {
	e := startEnv(t, nil)
	c, greeting := e.dial(listenSubmissions)
	expect(t, greeting, "220 mx.example.test")
	expect(t, c.cmd("EHLO client.test"), "250-")
	expect(t, c.cmd("STARTTLS"), "503 5.5.1")
	expect(t, c.cmd("QUIT"), "221")
}

func TestNoCertificate(t *testing.T) {
	e := startEnv(t, func(cfg *config.Config) { cfg.TLS.Cert = cfg.TLS.Cert + ".missing" })
	c := e.session()
	expect(t, c.cmd("STARTTLS"), "502 5.5.1")
	if ehlo := c.cmd("EHLO client.test"); strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS offered without a certificate:\n%s", ehlo)
	}
	if _, ok := e.waitLog("not serving implicit TLS without a certificate"); !ok {
		t.Fatal("the submissions listener should not be served")
	}
	if c, err := net.Dial("tcp", e.addrs[listenSubmissions]); err == nil {
		c.Close()
		t.Error("the submissions listener is still open")
	}
}

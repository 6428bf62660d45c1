package test

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTLSCipherSuites: on every TLS listener (SMTP STARTTLS on 25 and 587, implicit TLS
// on 465, 993 and 995, IMAP STARTTLS on 143, POP3 STLS on 110) a TLS 1.2 client offering only CBC suites with
// SHA-1 MACs (ECDHE-ECDSA-AES128-SHA, AES256-SHA) fails the handshake, and one offering
// the ECDHE AEAD suites gets one of them.
func TestTLSCipherSuites(t *testing.T) {
	openssl := need(t, "openssl", "openssl")
	in := NewInstance(t, "")
	addr := func(off int) string { return net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+off)) }
	listeners := []struct {
		name string
		args []string
	}{
		{"smtp", []string{"-connect", addr(25), "-starttls", "smtp"}},
		{"submission", []string{"-connect", addr(587), "-starttls", "smtp"}},
		{"submissions", []string{"-connect", addr(465)}},
		{"imap", []string{"-connect", addr(143), "-starttls", "imap"}},
		{"imaps", []string{"-connect", addr(993)}},
		{"pop3", []string{"-connect", addr(110), "-starttls", "pop3"}},
		{"pop3s", []string{"-connect", addr(995)}},
	}
	run := func(args []string, ciphers string) (string, error) {
		args = append([]string{"s_client", "-tls1_2", "-cipher", ciphers}, args...)
		cmd := exec.Command(openssl, args...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, l := range listeners {
		// SECLEVEL=0 so that the client's own OpenSSL does not refuse SHA-1 first.
		out, err := run(l.args, "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES256-SHA:@SECLEVEL=0")
		if err == nil || strings.Contains(out, "Cipher is ECDHE") || strings.Contains(out, "Cipher is AES") {
			t.Errorf("%s: a client offering only CBC/SHA-1 suites got through:\n%s", l.name, tail(out, 30))
		}
		out, err = run(l.args, "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
		if err != nil || !(strings.Contains(out, "GCM") || strings.Contains(out, "CHACHA20")) {
			t.Errorf("%s: a client offering AEAD suites failed (%v):\n%s", l.name, err, tail(out, 30))
		}
	}
}

// TestQuotaNoBackscatter: mail for a mailbox over its quota is refused while the client
// holds it (no bounce to a possibly forged sender): at RCPT when the mailbox is full or
// the declared SIZE does not fit, at the final dot for the actual size. The usage comes
// from local, which reads the Maildir that smtpd may not.
func TestQuotaNoBackscatter(t *testing.T) {
	in := NewInstance(t, "")
	in.Mailctl("pw-quota-Xq7\n", "user", "add", "tiny@example.test", "--quota", "4000", "--password-stdin")
	c, r := dialSMTP(t, in.SMTPAddr())
	defer c.Close()
	cmd := func(line, want string) {
		t.Helper()
		if got := command(t, c, r, line); !strings.HasPrefix(got, want) {
			t.Fatalf("%s: got %q, want %s", line, got, want)
		}
	}
	cmd("EHLO client.test", "250")
	// Larger than the quota: refused at RCPT with its declared size.
	cmd("MAIL FROM:<x@other.test> SIZE=5000", "250")
	cmd("RCPT TO:<tiny@example.test>", "552 5.2.2")
	cmd("RSET", "250")
	// 3000 octets fit the empty mailbox.
	line := strings.Repeat("y", 98) + "\r\n"
	cmd("MAIL FROM:<x@other.test> SIZE=3000", "250")
	cmd("RCPT TO:<tiny@example.test>", "250")
	cmd("DATA", "354")
	cmd("Subject: filler\r\n\r\n"+strings.Repeat(line, 29)+".", "250")
	in.WaitMessages("tiny@example.test", 1, 20*time.Second)
	// Now 1000 more do not fit: refused at RCPT when declared ...
	cmd("MAIL FROM:<x@other.test> SIZE=1500", "250")
	cmd("RCPT TO:<tiny@example.test>", "452 4.2.2")
	cmd("RSET", "250")
	// ... and at the final dot when not.
	cmd("MAIL FROM:<x@other.test>", "250")
	cmd("RCPT TO:<tiny@example.test>", "250")
	cmd("DATA", "354")
	cmd("Subject: too much\r\n\r\n"+strings.Repeat(line, 15)+".", "452 4.2.2")
	cmd("QUIT", "221")
	// cleanup logs "queued" for each message it queued: the refused ones were not.
	n := 0
	for _, l := range strings.Split(in.Log(), "\n") {
		if strings.Contains(l, "msg=queued") && strings.Contains(l, "daemon=cleanup") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d messages queued, want 1:\n%s", n, tail(in.Log(), 40))
	}
	if strings.Contains(in.Log(), "mailbox full") {
		t.Errorf("local bounced for the full mailbox: the refusal came too late")
	}
}

// TestSendAsDisplayNameAndResent: an authenticated bob may not pass as demo through a
// display name that is demo's address (plain or in nested quotes) nor through
// Resent-From: or Resent-Sender: (550 5.7.1 at the end of the data, nothing queued);
// his own address as display name and Resent-From: go through.
func TestSendAsDisplayNameAndResent(t *testing.T) {
	in := NewInstance(t, "")
	bobPass := in.addUser(t, "bob@example.test")
	s, _ := in.dialRaw(t, in.SubmissionsAddr(), true)
	s.expect(plainAuth("bob@example.test", bobPass), "235 2.7.0")
	for _, header := range []string{
		`From: "demo@example.test" <bob@example.test>`,
		`From: "\"demo@example.test\"" <bob@example.test>`,
		`From: "Demo <demo@example.test>" <bob@example.test>`,
		"From: bob@example.test\r\nResent-From: demo@example.test",
		"From: bob@example.test\r\nResent-From: bob@example.test\r\nResent-Sender: demo@example.test",
	} {
		s.expect("MAIL FROM:<bob@example.test>", "250")
		s.expect("RCPT TO:<demo@example.test>", "250")
		s.expect("DATA", "354")
		s.expect(header+"\r\nSubject: forged\r\n\r\nnot demo\r\n.", "550 5.7.1")
	}
	s.expect("MAIL FROM:<bob@example.test>", "250")
	s.expect("RCPT TO:<demo@example.test>", "250")
	s.expect("DATA", "354")
	s.expect("From: \"bob@example.test\" <bob@example.test>\r\nResent-From: bob@example.test\r\nSubject: mine\r\n\r\nbob\r\n.", "250 2.0.0")
	s.expect("QUIT", "221")
	msgs := in.WaitMessages("demo@example.test", 1, 10*time.Second)
	if len(msgs) != 1 || !strings.Contains(string(msgs[0]), "Subject: mine") {
		t.Fatalf("demo got %d messages, want only bob's own", len(msgs))
	}
}

// dialFromIP opens a connection to addr from the local address ip (a loopback address
// other than 127.0.0.1 stands for another client).
func dialFromIP(t *testing.T, ip, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return c, bufio.NewReader(c)
}

// expectClosedConn checks that the server hung up.
func expectClosedConn(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := r.ReadString('\n'); err == nil {
		t.Fatalf("connection still open, read %q", l)
	}
}

// TestClientLimits: the per-client limits of the real smtpd, with loopback not exempt:
// an early talker on port 25 is dropped (554 5.5.0) while submission greets at once; a
// dictionary attack ends after max_unknown_recipients (421 4.7.0); a /24 holds no more
// than max_connections_per_net sessions (421 4.7.0); message_rate per minute (450 4.7.0).
func TestClientLimits(t *testing.T) {
	in := newInstanceAt(t, "127.0.0.1", nextPortBase(), func(in *Instance) {
		in.SetConfig("smtpd", "exempt_networks", "[]")
		in.SetConfig("smtpd", "greet_delay", `"1s"`)
		in.SetConfig("smtpd", "max_unknown_recipients", "3")
		in.SetConfig("smtpd", "max_connections_per_ip", "2")
		in.SetConfig("smtpd", "max_connections_per_net", "3")
		in.SetConfig("smtpd", "message_rate", "1")
	})
	// Early talker.
	c, r := dialFromIP(t, "127.0.0.9", in.SMTPAddr())
	fmt.Fprintf(c, "EHLO spammer.test\r\n")
	if got := readReply(t, r); !strings.HasPrefix(got, "554 5.5.0") {
		t.Fatalf("early talker got %q", got)
	}
	expectClosedConn(t, c, r)
	// Submission is greeted at once: EHLO sent right away is answered.
	s, sr := dialFromIP(t, "127.0.0.9", in.SubmissionAddr())
	fmt.Fprintf(s, "EHLO laptop.test\r\n")
	if got := readReply(t, sr); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("submission greeting %q", got)
	}
	if got := readReply(t, sr); !strings.HasPrefix(got, "250") {
		t.Fatalf("submission EHLO %q", got)
	}
	s.Close()

	// Dictionary attack.
	c, r = dialFromIP(t, "127.0.0.10", in.SMTPAddr())
	readReply(t, r)
	command(t, c, r, "EHLO client.test")
	command(t, c, r, "MAIL FROM:<x@other.test>")
	for _, u := range []string{"alice", "bob"} {
		if got := command(t, c, r, "RCPT TO:<"+u+"@example.test>"); !strings.HasPrefix(got, "550 5.1.1") {
			t.Fatalf("RCPT %s: %q", u, got)
		}
	}
	fmt.Fprintf(c, "RCPT TO:<carol@example.test>\r\n")
	if got := readReply(t, r) + readReply(t, r); !strings.Contains(got, "550 5.1.1") || !strings.Contains(got, "421 4.7.0") {
		t.Fatalf("third unknown recipient: %q", got)
	}
	expectClosedConn(t, c, r)

	// Message rate: one a minute from 127.0.0.11.
	c, r = dialFromIP(t, "127.0.0.11", in.SMTPAddr())
	readReply(t, r)
	command(t, c, r, "EHLO client.test")
	if got := command(t, c, r, "MAIL FROM:<x@other.test>"); !strings.HasPrefix(got, "250") {
		t.Fatalf("first MAIL %q", got)
	}
	command(t, c, r, "RSET")
	if got := command(t, c, r, "MAIL FROM:<x@other.test>"); !strings.HasPrefix(got, "450 4.7.0") {
		t.Fatalf("second MAIL %q", got)
	}
	c.Close()

	// Three sessions from 127.0.1.0/24, two of them from one address; a fourth from
	// another address of the network is refused. Not 127.0.0.0/24: smtpd may not yet
	// have noticed the end of the sessions above, which would still count there.
	for _, ip := range []string{"127.0.1.20", "127.0.1.20", "127.0.1.21"} {
		_, r := dialFromIP(t, ip, in.SMTPAddr())
		if got := readReply(t, r); !strings.HasPrefix(got, "220") {
			t.Fatalf("session from %s: %q", ip, got)
		}
	}
	c, r = dialFromIP(t, "127.0.1.22", in.SMTPAddr())
	if got := readReply(t, r); !strings.HasPrefix(got, "421 4.7.0") || !strings.Contains(got, "network") {
		t.Fatalf("fourth session of the /24: %q", got)
	}
}

// TestStressModeE2E: with sessions at stress_threshold of max_connections, idle
// sessions are cut after stress_timeout (421 4.4.2) instead of timeout (an hour here),
// and smtpd logs that it is under stress.
func TestStressModeE2E(t *testing.T) {
	in := newInstanceAt(t, "127.0.0.1", nextPortBase(), func(in *Instance) {
		in.SetConfig("smtpd", "max_connections", "10")
		in.SetConfig("smtpd", "stress_threshold", "30")
		in.SetConfig("smtpd", "stress_timeout", `"1s"`)
		in.SetConfig("smtpd", "timeout", `"1h"`)
	})
	var conns []*bufio.Reader
	for range 3 {
		_, r := dialSMTP(t, in.SMTPAddr())
		conns = append(conns, r)
	}
	for i, r := range conns {
		if got := readReply(t, r); !strings.HasPrefix(got, "421 4.4.2") {
			t.Errorf("idle session %d: %q", i, got)
		}
	}
	if !strings.Contains(in.Log(), "under stress") {
		t.Error("stress not logged")
	}
}

// TestSubmissionRateSurvivesRestart: the hourly per-account submission limit holds
// across a restart of Postern (authd keeps the counts in users.db): the third message
// of the hour is refused (451 4.7.1) before and after.
func TestSubmissionRateSurvivesRestart(t *testing.T) {
	in := newInstanceAt(t, "127.0.0.1", nextPortBase(), func(in *Instance) {
		in.SetConfig("submission", "max_messages_per_hour", "2")
	})
	send := func(want string) {
		t.Helper()
		c, _ := in.dialRaw(t, in.SubmissionsAddr(), true)
		c.expect(plainAuth("demo@example.test", in.Password), "235")
		c.expect("MAIL FROM:<demo@example.test>", want)
		c.expect("QUIT", "221")
	}
	send("250")
	send("250")
	send("451 4.7.1")
	in.Stop()
	in.Start()
	send("451 4.7.1")
}

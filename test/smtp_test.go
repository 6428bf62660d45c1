package test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// stripTrace returns the message below the lines that delivery added: Return-Path and
// Delivered-To (local) and the Received header (cleanup), which may be folded.
func stripTrace(t *testing.T, msg []byte) []byte {
	t.Helper()
	skip := func() {
		i := bytes.Index(msg, []byte("\r\n"))
		msg = msg[i+2:]
		for len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t') {
			i = bytes.Index(msg, []byte("\r\n"))
			msg = msg[i+2:]
		}
	}
	for _, name := range []string{"Return-Path:", "Delivered-To:", "Received:"} {
		if name == "Received:" {
			// spamd's verdict on mail from port 25 comes above cleanup's Received.
			for _, opt := range []string{"Authentication-Results:", "X-Spam-Status:"} {
				if bytes.HasPrefix(msg, []byte(opt)) {
					skip()
				}
			}
		}
		if !bytes.HasPrefix(msg, []byte(name)) {
			t.Fatalf("message does not start with %s:\n%.300s", name, msg)
		}
		skip()
	}
	return msg
}

func TestSwaksDeliversByteForByte(t *testing.T) {
	swaks := need(t, "swaks", "swaks")
	in := NewInstance(t, "")
	body := "From: Sender <sender@other.test>\r\nTo: demo@example.test\r\nSubject: byte for byte\r\n" +
		"Message-ID: <swaks-1@other.test>\r\n\r\nline one\r\n.leading dot\r\n\ttab and trailing space \r\n" +
		"8bit: caf\xc3\xa9\r\n..two dots\r\n"
	dataFile := filepath.Join(t.TempDir(), "msg")
	// swaks ends the data with CRLF "." CRLF itself, so a file that ends in CRLF would
	// gain an empty line: the file holds the body without its last line break.
	os.WriteFile(dataFile, []byte(strings.TrimSuffix(body, "\r\n")), 0o644)
	out, err := exec.Command(swaks, "--server", in.SMTPAddr(), "--from", "sender@other.test",
		"--to", "demo@example.test", "--data", "@"+dataFile, "--timeout", "20").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`250 2\.0\.0 .*queued as ([0-9A-Z]{16})`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no queue ID in the 250 reply:\n%s", out)
	}
	msgs := in.WaitMessages("demo@example.test", 1, 10*time.Second)
	got := stripTrace(t, msgs[0])
	if !bytes.Equal(got, []byte(body)) {
		t.Fatalf("delivered message differs below the trace headers:\n got %q\nwant %q", got, body)
	}
	if !bytes.Contains(msgs[0], []byte("id "+string(m[1]))) {
		t.Errorf("Received header does not carry the queue ID %s", m[1])
	}
	// The log tells the message's story under its queue ID.
	deadline := time.Now().Add(5 * time.Second)
	for {
		log := in.Log()
		var story []string
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, string(m[1])) {
				story = append(story, l)
			}
		}
		joined := strings.Join(story, "\n")
		if strings.Contains(joined, "queued") && strings.Contains(joined, "status=sent") && strings.Contains(joined, "removed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lines for %s do not tell queued → sent → removed:\n%s", m[1], joined)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialSMTP opens a raw session and reads the greeting.
func dialSMTP(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	readReply(t, r)
	return c, r
}

func readReply(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var all string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading reply: %v (so far %q)", err, all)
		}
		all += line
		if len(line) < 4 || line[3] != '-' {
			return all
		}
	}
}

func command(t *testing.T, c net.Conn, r *bufio.Reader, cmd string) string {
	t.Helper()
	fmt.Fprintf(c, "%s\r\n", cmd)
	return readReply(t, r)
}

func TestRecipientPolicy(t *testing.T) {
	in := NewInstance(t, "")
	c, r := dialSMTP(t, in.SMTPAddr())
	defer c.Close()
	command(t, c, r, "EHLO client.test")
	if got := command(t, c, r, "MAIL FROM:<x@other.test>"); !strings.HasPrefix(got, "250") {
		t.Fatalf("MAIL: %s", got)
	}
	for _, tc := range []struct{ rcpt, want string }{
		{"<demo@example.test>", "250"},
		{"<DEMO@Example.Test>", "250"},
		{"<demo+tag@example.test>", "250"},
		{"<nobody@example.test>", "550 5.1.1"},
		// Relay tricks: none may leave the machine.
		{"<user@foreign.test>", "554 5.7.1"},
		{"<user%foreign.test@example.test>", "550 5.1.1"},
		{"<@example.test:user@foreign.test>", "554 5.7.1"},
		{`<"user@foreign.test"@example.test>`, "550 5.1.1"},
		{"<user!foreign.test@example.test>", "550 5.1.1"},
	} {
		if got := command(t, c, r, "RCPT TO:"+tc.rcpt); !strings.HasPrefix(got, tc.want) {
			t.Errorf("RCPT TO:%s = %q, want %s", tc.rcpt, strings.TrimSpace(got), tc.want)
		}
	}
	command(t, c, r, "QUIT")
}

func TestSmugglingYieldsOneMessage(t *testing.T) {
	in := NewInstance(t, "")
	for i, trick := range []string{"\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", "\r\n.\r"} {
		c, r := dialSMTP(t, in.SMTPAddr())
		command(t, c, r, "EHLO client.test")
		command(t, c, r, "MAIL FROM:<x@other.test>")
		command(t, c, r, "RCPT TO:<demo@example.test>")
		if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "354") {
			t.Fatalf("DATA: %s", got)
		}
		fmt.Fprintf(c, "Subject: smuggle %d\r\n\r\nhello%sMAIL FROM:<evil@other.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n", i, trick)
		got := readReply(t, r)
		if !strings.HasPrefix(got, "250") {
			t.Fatalf("trick %q: %s", trick, got)
		}
		// Whatever the server does with the bytes, nothing more may be pending.
		if got := command(t, c, r, "QUIT"); !strings.HasPrefix(got, "221") {
			t.Fatalf("trick %q: after the message the server answered %q to QUIT: the smuggled commands were run", trick, got)
		}
		c.Close()
	}
	msgs := in.WaitMessages("demo@example.test", 5, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	msgs = in.Messages("demo@example.test")
	if len(msgs) != 5 {
		t.Fatalf("%d messages delivered for 5 smuggling attempts", len(msgs))
	}
	for _, m := range msgs {
		if bytes.Contains(m, []byte("Subject: smuggled")) && !bytes.Contains(m, []byte("Subject: smuggle ")) {
			t.Fatalf("a smuggled message was delivered on its own:\n%s", m)
		}
	}
}

func TestConcurrentClients(t *testing.T) {
	in := NewInstance(t, "")
	const clients, each = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cl, err := smtp.Dial(in.SMTPAddr())
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			for i := 0; i < each; i++ {
				if err := sendOne(cl, "load@other.test", "demo@example.test", fmt.Sprintf("<c%d-m%d@load.test>", c, i)); err != nil {
					errs <- fmt.Errorf("client %d message %d: %w", c, i, err)
					return
				}
			}
			cl.Quit()
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	msgs := in.WaitMessages("demo@example.test", clients*each, 120*time.Second)
	time.Sleep(time.Second)
	msgs = in.Messages("demo@example.test")
	seen := map[string]int{}
	for _, m := range msgs {
		seen[messageID(m)]++
	}
	for c := 0; c < clients; c++ {
		for i := 0; i < each; i++ {
			id := fmt.Sprintf("<c%d-m%d@load.test>", c, i)
			if seen[id] != 1 {
				t.Errorf("%s delivered %d times", id, seen[id])
			}
		}
	}
	if len(msgs) != clients*each {
		t.Errorf("%d messages in the Maildir, want %d", len(msgs), clients*each)
	}
}

// sendOne sends a small message on an open net/smtp client.
func sendOne(cl *smtp.Client, from, to, msgid string) error {
	if err := cl.Mail(from); err != nil {
		return err
	}
	if err := cl.Rcpt(to); err != nil {
		return err
	}
	w, err := cl.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: %s\r\nTo: %s\r\nSubject: test\r\nMessage-ID: %s\r\n\r\n%s\r\n", from, to, msgid, strings.Repeat("load test line\r\n", 20))
	if err := w.Close(); err != nil {
		return fmt.Errorf("%w: %w", errAtFinalDot, err)
	}
	return nil
}

// errAtFinalDot marks a failure of sendOne at the end of DATA: the message went out, and
// the answer to the final dot was an error or never came. The server may have queued
// the message all the same (a client would then send it again).
var errAtFinalDot = errors.New("after the final dot")

var msgidRe = regexp.MustCompile(`(?mi)^Message-ID: (<[^>]+>)`)

func messageID(m []byte) string {
	if s := msgidRe.FindSubmatch(m); s != nil {
		return string(s[1])
	}
	return ""
}

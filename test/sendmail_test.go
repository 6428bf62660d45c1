package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// nobody is the uid sendmail runs as in these tests when they run as root: any local
// user may hand mail over, and cleanup records which one.
const nobody = 65534

// sendmailCmd returns bin/sendmail with the instance's configuration (-C) and args, run
// as nobody when the tests run as root, and the uid it runs as.
func (in *Instance) sendmailCmd(ctx context.Context, args ...string) (*exec.Cmd, int) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "sendmail"), append([]string{"-C", in.Config}, args...)...)
	uid := os.Getuid()
	if uid == 0 {
		uid = nobody
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	}
	return cmd, uid
}

// Sendmail pipes stdin to sendmail and returns its exit status and output.
func (in *Instance) Sendmail(stdin string, args ...string) (int, string, int) {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd, uid := in.sendmailCmd(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out), uid
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out), uid
	}
	in.t.Fatalf("running sendmail: %v", err)
	return 0, "", 0
}

// messageWith returns the one message of msgs that contains s, nil if none, and fails
// when there are more.
func messageWith(t *testing.T, msgs [][]byte, s string) []byte {
	t.Helper()
	var found []byte
	for _, m := range msgs {
		if bytes.Contains(m, []byte(s)) {
			if found != nil {
				t.Fatalf("%q is in two messages", s)
			}
			found = m
		}
	}
	return found
}

// cron's and PHP's ways of calling sendmail deliver into a local Maildir, with the
// submitting user in the Received header, and mailq and newaliases answer.
func TestSendmail(t *testing.T) {
	in := NewInstance(t, "")
	in.Mailctl("pw-second-user-1234\n", "user", "add", "second@example.test", "--password-stdin")

	t.Run("Cron", func(t *testing.T) {
		// Debian's cron runs: sendmail -FCronDaemon -i -B8BITMIME -oem USER, with LF line
		// endings and no From:.
		msg := "Subject: Cron <root@host> run-parts /etc/cron.daily\nContent-Type: text/plain; charset=UTF-8\n\n/etc/cron.daily/logrotate:\nerror: skipping \"/var/log/x\" ✓\n.\nthe lone dot above is text with -i\n"
		status, out, uid := in.Sendmail(msg, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "demo@example.test")
		if status != 0 {
			t.Fatalf("sendmail exited %d: %s", status, out)
		}
		m := messageWith(t, in.WaitMessages("demo@example.test", 1, 20*time.Second), "run-parts /etc/cron.daily")
		if m == nil {
			t.Fatal("the cron message is not in demo's Maildir")
		}
		user := "nobody"
		if uid != nobody {
			user = os.Getenv("USER")
		}
		host := in.Cfg.Hostname
		for _, want := range []string{
			fmt.Sprintf("Received: by %s (Postern, from userid %d)\r\n", host, uid),
			fmt.Sprintf("From: \"CronDaemon\" <%s@%s>\r\n", user, host),
			"Return-Path: <" + user + "@" + host + ">\r\n",
			"Message-ID: <",
			"\r\n.\r\nthe lone dot above is text with -i\r\n",
			"✓",
		} {
			if user == "" && strings.Contains(want, "@") {
				continue
			}
			if !bytes.Contains(m, []byte(want)) {
				t.Errorf("the cron message lacks %q:\n%s", want, m)
			}
		}
	})

	t.Run("PHPMail", func(t *testing.T) {
		// PHP's mail($to, $subject, $message, $headers) runs sendmail -t -i and writes To:
		// and Subject: first, then the extra headers, then the body.
		msg := "To: demo@example.test\r\nSubject: Order 42 confirmed\r\nFrom: shop@example.test\r\nBcc: second@example.test\r\nX-Mailer: PHP/8.2\r\n\r\nThank you for your order.\r\n"
		status, out, _ := in.Sendmail(msg, "-t", "-i")
		if status != 0 {
			t.Fatalf("sendmail -t -i exited %d: %s", status, out)
		}
		for _, rcpt := range []string{"demo@example.test", "second@example.test"} {
			var m []byte
			in.WaitFor("the PHP message at "+rcpt, 20*time.Second, func() bool {
				m = messageWith(t, in.Messages(rcpt), "Order 42 confirmed")
				return m != nil
			})
			if bytes.Contains(m, []byte("Bcc:")) || bytes.Contains(m, []byte("second@example.test>")) {
				t.Errorf("the Bcc: field reached %s:\n%s", rcpt, m)
			}
			if !bytes.Contains(m, []byte("From: shop@example.test\r\n")) || !bytes.Contains(m, []byte("\r\n\r\nThank you for your order.\r\n")) {
				t.Errorf("%s's copy is not the message sent:\n%s", rcpt, m)
			}
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		if status, out, _ := in.Sendmail("Subject: nobody\n\nx\n", "-t"); status != 64 || !strings.Contains(out, "no recipient") {
			t.Errorf("-t without recipients: exit %d (%s), want 64 (EX_USAGE)", status, out)
		}
		if status, out, _ := in.Sendmail("x\n", "bad address@"); status != 65 {
			t.Errorf("a bad address: exit %d (%s), want 65 (EX_DATAERR)", status, out)
		}
	})

	t.Run("MailqNewaliases", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		mailq := filepath.Join(dir, "mailq")
		if err := os.Symlink(filepath.Join(binDir, "sendmail"), mailq); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(mailq, "-C", in.Config)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Mail queue is empty") && !strings.Contains(string(out), "-Queue ID-") {
			t.Fatalf("mailq (as root or the instance's user): %v\n%s", err, out)
		}
		newaliases := filepath.Join(dir, "newaliases")
		os.Symlink(filepath.Join(binDir, "sendmail"), newaliases)
		out, err = exec.Command(newaliases).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "authd") {
			t.Errorf("newaliases: %v %s", err, out)
		}
	})
}

// sendmail exits 0 only for a message cleanup made durable: with cleanup killed (-9)
// while sendmail streams, it exits EX_TEMPFAIL, and of many messages sent while cleanup
// is killed again and again, every one acknowledged is delivered, and none twice.
func TestSendmailCleanupKilled(t *testing.T) {
	in := NewInstance(t, "")

	t.Run("WhileStreaming", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd, _ := in.sendmailCmd(ctx, "-i", "demo@example.test")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		before, _ := os.ReadDir(filepath.Join(in.Cfg.SpoolDir, "incoming"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The header section goes out, then sendmail waits for more of the body: cleanup
		// has begun the queue file.
		io.WriteString(stdin, "Subject: killed while streaming\n\nfirst line\n")
		in.WaitFor("cleanup to begin a queue file", 20*time.Second, func() bool {
			now, _ := os.ReadDir(filepath.Join(in.Cfg.SpoolDir, "incoming"))
			return len(now) > len(before)
		})
		pid := in.DaemonPIDs()["cleanup"]
		if pid == 0 {
			t.Fatal("no cleanup running")
		}
		syscall.Kill(pid, syscall.SIGKILL)
		io.WriteString(stdin, "last line\n")
		stdin.Close()
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 75 {
			t.Fatalf("sendmail with cleanup killed: %v, want exit 75 (EX_TEMPFAIL)\n%s", err, out.String())
		}
		// master starts cleanup again; the same message then goes through, once.
		in.WaitFor("cleanup to be back", 20*time.Second, func() bool {
			p := in.DaemonPIDs()["cleanup"]
			return p != 0 && p != pid
		})
		var status int
		var sout string
		in.WaitFor("sendmail to succeed again", 20*time.Second, func() bool {
			status, sout, _ = in.Sendmail("Subject: killed while streaming\n\nfirst line\nlast line\n", "demo@example.test")
			return status == 0
		})
		in.WaitMessages("demo@example.test", 1, 20*time.Second)
		time.Sleep(time.Second) // a partial copy, were it delivered, would be here by now
		if n := len(in.Messages("demo@example.test")); n != 1 {
			t.Errorf("demo has %d messages, want the one acknowledged (%s)", n, sout)
		}
	})

	t.Run("UnderLoad", func(t *testing.T) {
		const total, workers = 60, 4
		var mu sync.Mutex
		acked := map[string]bool{}
		var wg sync.WaitGroup
		next := make(chan int)
		for range workers {
			wg.Go(func() {
				for i := range next {
					id := "load-" + strconv.Itoa(i)
					status, _, _ := in.Sendmail("Subject: "+id+"\n\n"+strings.Repeat("line of the body\n", 2000), "-i", "demo@example.test")
					if status == 0 {
						mu.Lock()
						acked[id] = true
						mu.Unlock()
					} else if status != 75 {
						t.Errorf("sendmail %s exited %d, want 0 or 75", id, status)
					}
				}
			})
		}
		kills := 0
		for i := range total {
			next <- i
			if i%10 == 5 {
				if pid := in.DaemonPIDs()["cleanup"]; pid != 0 {
					syscall.Kill(pid, syscall.SIGKILL)
					kills++
				}
			}
		}
		close(next)
		wg.Wait()
		t.Logf("%d of %d messages acknowledged, cleanup killed %d times", len(acked), total, kills)
		if kills == 0 {
			t.Fatal("cleanup was never killed")
		}
		want := regexp.MustCompile(`Subject: (load-\d+)\r\n`)
		var delivered map[string]int
		in.WaitFor("every acknowledged message in demo's Maildir", 60*time.Second, func() bool {
			delivered = map[string]int{}
			for _, m := range in.Messages("demo@example.test") {
				if s := want.FindSubmatch(m); s != nil {
					delivered[string(s[1])]++
				}
			}
			for id := range acked {
				if delivered[id] == 0 {
					return false
				}
			}
			return true
		})
		for id, n := range delivered {
			if n > 1 {
				t.Errorf("%s delivered %d times", id, n)
			}
		}
	})
}

// A message handed to sendmail on one instance goes out through remote to the other,
// DKIM-signed as a submission is: B's checks pass it.
func TestSendmailRelay(t *testing.T) {
	p := newPair(t)
	A, B := p.A, p.B
	A.Mailctl("", "dkim", "generate", "a.test")
	p.Publish(A, "a.test")
	msg := "From: Alice <alice@a.test>\nTo: bob@b.test\nSubject: from a script on A\n\nsent with sendmail -t -i\n"
	if status, out, _ := A.Sendmail(msg, "-t", "-i", "-f", "alice@a.test"); status != 0 {
		t.Fatalf("sendmail exited %d: %s", status, out)
	}
	var m []byte
	B.WaitFor("the message at bob's", 30*time.Second, func() bool {
		m = messageWith(t, B.Messages("bob@b.test"), "from a script on A")
		return m != nil
	})
	for _, re := range []string{
		`Return-Path: <alice@a\.test>\r\n`,
		`\tdkim=pass header\.d=a\.test;`,
		`\tdmarc=pass header\.from=a\.test\r\n`,
		`Received: by mx\.a\.test \(Postern, from userid \d+\)\r\n`,
		`\r\n\r\nsent with sendmail -t -i\r\n`,
	} {
		if !regexp.MustCompile(re).Match(m) {
			t.Errorf("bob's copy does not match %s:\n%s", re, m)
		}
	}
}

// mailq for a user who is not an administrator (nobody) goes through public/qmgr, and
// shows what queue.mailq_users says: by default the messages that user submitted, with
// "admin" nothing (EX_NOPERM), with "all" the whole queue. Root sees everything.
func TestMailqUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to run mailq as nobody")
	}
	in := NewInstance(t, "")
	// Mail for deferred.test waits in deferred/: its DNS fails.
	testDNS.Fail("deferred.test", dns.RcodeServerFailure)
	t.Cleanup(func() { testDNS.Fail("deferred.test", dns.RcodeSuccess) })
	if status, out, _ := in.Sendmail("Subject: nobody's\n\nx\n", "-i", "someone@deferred.test"); status != 0 {
		t.Fatalf("sendmail as nobody: exit %d: %s", status, out)
	}
	// root's message, another user's for nobody.
	out, err := exec.Command(filepath.Join(binDir, "sendmail"), "-C", in.Config, "-v", "-i", "someone@deferred.test").CombinedOutput()
	m := regexp.MustCompile(`queued as ([0-9A-Z]{16})`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("sendmail as root: %v\n%s", err, out)
	}
	other := string(m[1])
	var mine string
	in.WaitFor("both messages in the queue", 30*time.Second, func() bool {
		out := in.Mailctl("", "queue", "list")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.Contains(l, "nobody@") {
				mine = strings.TrimRight(f[0], "*!#")
			}
		}
		return mine != "" && strings.Contains(out, other)
	})
	mailq := func() (int, string) {
		t.Helper()
		status, out, uid := in.Sendmail("", "-bp")
		if uid != nobody {
			t.Fatalf("mailq ran as uid %d, not nobody", uid)
		}
		return status, out
	}
	if status, out := mailq(); status != 0 || !strings.Contains(out, mine) || strings.Contains(out, other) {
		t.Errorf("mailq as nobody (own): exit %d, want %s alone:\n%s", status, mine, out)
	}
	root := in.Mailctl("", "queue", "list")
	if !strings.Contains(root, mine) || !strings.Contains(root, other) {
		t.Errorf("queue list as root lacks a message:\n%s", root)
	}

	in.SetConfig("queue", "mailq_users", `"admin"`)
	in.Reload()
	in.WaitFor("mailq refused to nobody", 30*time.Second, func() bool {
		status, _ := mailq()
		return status == 77
	})
	if _, out := mailq(); !strings.Contains(out, "administrators only") {
		t.Errorf("mailq as nobody (admin): %s", out)
	}
	in.SetConfig("queue", "mailq_users", `"all"`)
	in.Reload()
	in.WaitFor("mailq shows nobody the whole queue", 30*time.Second, func() bool {
		status, out := mailq()
		return status == 0 && strings.Contains(out, mine) && strings.Contains(out, other)
	})
}

// sendmail -bs holds an SMTP dialogue on its standard input and output: swaks --pipe
// sends a message through it (as nobody when the tests run as root), which cleanup
// queues with the Unix user in its Received header and local delivers.
func TestSendmailBS(t *testing.T) {
	swaks := need(t, "swaks", "swaks")
	in := NewInstance(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd, uid := in.sendmailCmd(ctx)
	pipe := filepath.Join(binDir, "sendmail") + " -bs -C " + in.Config
	sw := exec.CommandContext(ctx, swaks, "--pipe", pipe, "--from", "cron@example.test", "--to", "demo@example.test",
		"--header", "Subject: through sendmail -bs", "--body", "line one\n.leading dot\n")
	sw.SysProcAttr = cmd.SysProcAttr
	out, err := sw.CombinedOutput()
	if err != nil {
		t.Fatalf("swaks --pipe 'sendmail -bs': %v\n%s", err, out)
	}
	m := regexp.MustCompile(`<-\s+250 2\.0\.0 Ok: queued as ([0-9A-Z]{16})`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no queue ID in the dialogue:\n%s", out)
	}
	if !regexp.MustCompile(`<-\s+220 `).Match(out) {
		t.Errorf("no greeting:\n%s", out)
	}
	msg := messageWith(t, in.WaitMessages("demo@example.test", 1, 20*time.Second), "through sendmail -bs")
	if msg == nil {
		t.Fatal("the message is not in demo's Maildir")
	}
	for _, want := range []string{
		fmt.Sprintf("(Postern, from userid %d)", uid),
		"Return-Path: <cron@example.test>\r\n",
		"\r\n.leading dot\r\n",
	} {
		if !bytes.Contains(msg, []byte(want)) {
			t.Errorf("the delivered message lacks %q:\n%s", want, msg)
		}
	}
	if log := in.Log(); !strings.Contains(log, "id="+string(m[1])) {
		t.Errorf("cleanup did not log %s", m[1])
	}
}

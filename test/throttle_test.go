package test

// Failed-login throttling through the real imapd, smtpd and authd (issue 9, point 3):
// clients on other loopback addresses (127.0.0.2 ... ; Linux routes all of 127/8 to lo,
// so any user may bind them) play the guessers.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialFrom opens a TLS connection to addr from the local address src.
func dialFrom(t *testing.T, in *Instance, src, addr string) net.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := tls.DialWithDialer(d, "tcp", addr, in.tlsConfig())
	if err != nil {
		t.Fatalf("dialing %s from %s: %v", addr, src, err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return c
}

// imapLoginFrom sends LOGIN over IMAPS from src and returns the tagged status.
func imapLoginFrom(t *testing.T, in *Instance, src, user, pass string) string {
	t.Helper()
	c := dialFrom(t, in, src, in.IMAPSAddr())
	defer c.Close()
	r := &rawIMAP{t: t, c: c, r: bufio.NewReader(c)}
	if g, err := r.Response(); err != nil || !strings.HasPrefix(g, "* OK") {
		t.Fatalf("IMAP greeting from %s: %q, %v", src, g, err)
	}
	_, st := r.Cmd("LOGIN " + imapQuote(user) + " " + imapQuote(pass))
	return st
}

// submissionAuthFrom sends AUTH PLAIN on the submissions port (implicit TLS) from src
// and returns the reply.
func submissionAuthFrom(t *testing.T, in *Instance, src, user, pass string) string {
	t.Helper()
	c := dialFrom(t, in, src, in.SubmissionsAddr())
	defer c.Close()
	rc := &rawClient{t: t, c: c, r: bufio.NewReader(c)}
	if g := rc.read(); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("SMTP greeting from %s: %q", src, g)
	}
	rc.expect("EHLO client.test", "250")
	return strings.TrimSpace(rc.cmd(plainAuth(user, pass)))
}

var (
	imapThrottled = regexp.MustCompile(`^NO \[UNAVAILABLE\] Too many failed logins; try again in [1-9][0-9]* seconds$`)
	smtpThrottled = regexp.MustCompile(`^454 4\.7\.0 .*try again in [1-9][0-9]* seconds$`)
)

// authdLines counts authd's log lines that match re.
func authdLines(in *Instance, re string) int {
	n := 0
	rx := regexp.MustCompile(re)
	for _, l := range strings.Split(in.Log(), "\n") {
		if strings.Contains(l, "daemon=authd") && rx.MatchString(l) {
			n++
		}
	}
	return n
}

// TestLoginLockoutAttack is the attack of issue 9: 100 wrong passwords for
// demo@example.test from 49 other addresses, over IMAP and submission, do not keep the
// owner out of either, while the guessers' network is throttled; the owner's device is
// remembered across a restart of authd.
func TestLoginLockoutAttack(t *testing.T) {
	in := NewInstance(t, "")
	imapTargetOf(t, in)
	const owner, user = "127.0.0.1", "demo@example.test"
	// The owner's device has logged in before (over submission: imapd's cache of
	// logins must not be what lets the owner in over IMAP below).
	if r := submissionAuthFrom(t, in, owner, user, in.Password); !strings.HasPrefix(r, "235 ") {
		t.Fatalf("the owner's first login: %q", r)
	}
	// authd dies and master starts it again: it remembers the owner's device from
	// users.db, not from its memory. (mailctl tells when it answers again, without a
	// login that would teach it the device anew.)
	old := in.DaemonPIDs()["authd"]
	if old == 0 {
		t.Fatal("authd is not running")
	}
	syscall.Kill(old, syscall.SIGKILL)
	in.WaitFor("authd to be back", 20*time.Second, func() bool {
		pid := in.DaemonPIDs()["authd"]
		if pid == 0 || pid == old {
			return false
		}
		_, err := in.MailctlErr("", "throttle", "list")
		return err == nil
	})

	refused := 0
	for i := range 100 {
		src := fmt.Sprintf("127.0.0.%d", 2+i%49)
		guess := fmt.Sprintf("guess-%d", i)
		if i%2 == 0 {
			st := imapLoginFrom(t, in, src, user, guess)
			switch {
			case imapThrottled.MatchString(st):
				refused++
			case st != "NO [AUTHENTICATIONFAILED] Authentication failed":
				t.Fatalf("guess %d over IMAP from %s: %q", i, src, st)
			}
		} else {
			r := submissionAuthFrom(t, in, src, user, guess)
			switch {
			case smtpThrottled.MatchString(r):
				refused++
			case !strings.HasPrefix(r, "535 5.7.8 "):
				t.Fatalf("guess %d over submission from %s: %q", i, src, r)
			}
		}
	}
	// The network 127.0.0.0/24 reached its limit (50) and the rest were refused.
	if refused != 50 {
		t.Errorf("%d of 100 guesses refused as throttled; want 50 (the network's limit is 50)", refused)
	}

	// The owner gets in, over IMAP and submission.
	if st := imapLoginFrom(t, in, owner, user, in.Password); !strings.HasPrefix(st, "OK") {
		t.Errorf("the owner's IMAP login after the attack: %q", st)
	}
	if r := submissionAuthFrom(t, in, owner, user, in.Password); !strings.HasPrefix(r, "235 ") {
		t.Errorf("the owner's submission login after the attack: %q", r)
	}
	// A device never seen before, in the guessers' network, waits even with the right
	// password, and is told so (not that the password is wrong).
	if st := imapLoginFrom(t, in, "127.0.0.51", user, in.Password); !imapThrottled.MatchString(st) {
		t.Errorf("a new client in the throttled network, IMAP: %q", st)
	}
	if r := submissionAuthFrom(t, in, "127.0.0.51", user, in.Password); !smtpThrottled.MatchString(r) {
		t.Errorf("a new client in the throttled network, submission: %q", r)
	}

	// The block was logged once, however many refusals followed.
	if n := authdLines(in, `msg="login throttled" .*kind=network .*remote=127\.0\.0\.0/24`); n != 1 {
		t.Errorf("the network's block was logged %d times; want once", n)
	}
	// mailctl lists the block and lifts it.
	list := in.Mailctl("", "throttle", "list")
	if !regexp.MustCompile(`(?m)^network +127\.0\.0\.0/24 +50 +`).MatchString(list) {
		t.Errorf("throttle list:\n%s", list)
	}
	out := in.Mailctl("", "throttle", "lift", "127.0.0.51")
	if !strings.Contains(out, "lifted the block of network 127.0.0.0/24") {
		t.Errorf("throttle lift 127.0.0.51:\n%s", out)
	}
	if st := imapLoginFrom(t, in, "127.0.0.51", user, in.Password); !strings.HasPrefix(st, "OK") {
		t.Errorf("after the lift: %q", st)
	}
	if l := in.Log(); strings.Contains(l, "guess-") || strings.Contains(l, in.Password) {
		t.Error("a password reached the log")
	}
}

// TestLoginThrottledClient: a client that guessed wrong five times at an account is
// refused for a while, over IMAP and submission, with the right password too; others
// are not; mailctl lists and lifts the block.
func TestLoginThrottledClient(t *testing.T) {
	in := NewInstance(t, "")
	imapTargetOf(t, in)
	const src, user = "127.0.0.7", "demo@example.test"
	for i := range 5 {
		if st := imapLoginFrom(t, in, src, user, fmt.Sprintf("typo-%d", i)); st != "NO [AUTHENTICATIONFAILED] Authentication failed" {
			t.Fatalf("wrong password %d: %q", i+1, st)
		}
	}
	if st := imapLoginFrom(t, in, src, user, in.Password); !imapThrottled.MatchString(st) {
		t.Errorf("the right password from the throttled client, IMAP: %q", st)
	}
	if r := submissionAuthFrom(t, in, src, user, in.Password); !smtpThrottled.MatchString(r) {
		t.Errorf("the right password from the throttled client, submission: %q", r)
	}
	// Another client, even a new one in the same network, gets in.
	if st := imapLoginFrom(t, in, "127.0.0.8", user, in.Password); !strings.HasPrefix(st, "OK") {
		t.Errorf("another client: %q", st)
	}
	list := in.Mailctl("", "throttle", "list")
	if !regexp.MustCompile(`(?m)^pair +demo@example\.test from 127\.0\.0\.7 +5 +`).MatchString(list) {
		t.Errorf("throttle list:\n%s", list)
	}
	if n := authdLines(in, `msg="login throttled" .*kind=pair .*user=demo@example\.test remote=127\.0\.0\.7`); n != 1 {
		t.Errorf("the block was logged %d times; want once", n)
	}
	in.Mailctl("", "throttle", "lift", user)
	if st := imapLoginFrom(t, in, src, user, in.Password); !strings.HasPrefix(st, "OK") {
		t.Errorf("after mailctl throttle lift %s: %q", user, st)
	}
	if out := in.Mailctl("", "throttle", "list"); !strings.Contains(out, "no logins are throttled") {
		t.Errorf("throttle list after the lift:\n%s", out)
	}
}

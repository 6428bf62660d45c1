package test

import (
	"bufio"
	"bytes"
	"fmt"
	"net/smtp"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// send delivers one message through the MX listener and returns the queue ID.
func send(t *testing.T, in *Instance, from, to, msgid string) string {
	t.Helper()
	c, r := dialSMTP(t, in.SMTPAddr())
	defer c.Close()
	command(t, c, r, "EHLO client.test")
	for _, cmd := range []string{"MAIL FROM:<" + from + ">", "RCPT TO:<" + to + ">"} {
		if got := command(t, c, r, cmd); !strings.HasPrefix(got, "250") {
			t.Fatalf("%s: %s", cmd, got)
		}
	}
	if got := command(t, c, r, "DATA"); !strings.HasPrefix(got, "354") {
		t.Fatalf("DATA: %s", got)
	}
	fmt.Fprintf(c, "From: <%s>\r\nTo: <%s>\r\nSubject: admin test\r\nMessage-ID: %s\r\n\r\nhello\r\n.\r\n", from, to, msgid)
	got := readReply(t, r)
	m := regexp.MustCompile(`^250 .*queued as ([0-9A-Z]{16})`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("end of DATA: %s", got)
	}
	command(t, c, r, "QUIT")
	return m[1]
}

func TestAccountsAliasesAndQueue(t *testing.T) {
	in := NewInstance(t, "")
	in.Mailctl("", "domain", "add", "other.test")
	in.Mailctl("secret-bob-Kq73-lantern\n", "user", "add", "bob@other.test", "--password-stdin")
	in.Mailctl("", "alias", "add", "team@other.test", "bob@other.test", "demo@example.test")
	in.Mailctl("", "alias", "add", "@other.test", "bob@other.test")
	if out := in.Mailctl("", "domain", "list"); !strings.Contains(out, "other.test") || !strings.Contains(out, "example.test") {
		t.Errorf("domain list:\n%s", out)
	}
	if out := in.Mailctl("", "user", "list"); !strings.Contains(out, "bob@other.test") || !strings.Contains(out, "demo@example.test") {
		t.Errorf("user list:\n%s", out)
	}
	if out := in.Mailctl("", "alias", "list"); !strings.Contains(out, "team@other.test") || !strings.Contains(out, "@other.test") {
		t.Errorf("alias list:\n%s", out)
	}
	// The new account has its Maildir++ folders.
	for _, f := range []string{"cur", ".Sent/cur", ".Drafts/new", ".Junk/tmp", ".Trash/cur", ".Archive/cur"} {
		in.WaitFor("bob's "+f, 5*time.Second, func() bool {
			_, err := os.Stat(in.Maildir("bob@other.test") + "/" + f)
			return err == nil
		})
	}
	// Secrets never reach the command line: mailctl refuses a password argument.
	if out, err := in.MailctlErr("", "user", "add", "eve@other.test", "hunter2"); err == nil {
		t.Errorf("user add with a password argument succeeded:\n%s", out)
	}

	send(t, in, "x@far.test", "team@other.test", "<team@t>")      // bob and demo
	send(t, in, "x@far.test", "BOB+news@Other.Test", "<plus@t>")  // bob
	send(t, in, "x@far.test", "anything@other.test", "<catch@t>") // bob, by the catch-all
	in.WaitMessages("bob@other.test", 3, 10*time.Second)
	in.WaitMessages("demo@example.test", 1, 10*time.Second)
	ids := map[string]bool{}
	for _, m := range in.Messages("bob@other.test") {
		ids[messageID(m)] = true
		if messageID(m) == "<plus@t>" && !bytes.Contains(m, []byte("Delivered-To: bob@other.test")) {
			t.Errorf("plus-addressed message lacks Delivered-To of the account:\n%.400s", m)
		}
	}
	for _, id := range []string{"<team@t>", "<plus@t>", "<catch@t>"} {
		if !ids[id] {
			t.Errorf("bob did not get %s", id)
		}
	}

	// Stop local: mail waits in deferred/ and the queue says why.
	in.Mailctl("", "alias", "del", "@other.test")
	in.SetConfig("services.local", "enable", "false")
	// The test's client sends in demo's name from port 25, whose bounce demo gets:
	// spamd refuses that from an untrusted host (mail claiming a local domain).
	in.SetConfig("spamd", "trusted_relays", `["127.0.0.1"]`)
	in.Reload()
	in.WaitFor("local to stop", 10*time.Second, func() bool { _, ok := in.DaemonPIDs()["local"]; return !ok })
	id := send(t, in, "demo@example.test", "bob@other.test", "<deferred@t>")
	in.WaitFor("the message in deferred/", 15*time.Second, func() bool {
		_, err := os.Stat(in.Cfg.SpoolDir + "/deferred/" + id)
		return err == nil
	})
	out := in.Mailctl("", "queue", "list")
	if !strings.Contains(out, id) || !strings.Contains(out, "bob@other.test") || !strings.Contains(out, "demo@example.test") {
		t.Fatalf("queue list does not show %s:\n%s", id, out)
	}
	if !regexp.MustCompile(`(?i)local|connect|unavailable|refused`).MatchString(out) {
		t.Errorf("queue list gives no reason for the deferral:\n%s", out)
	}
	if out := in.Mailctl("", "queue", "show", id); !strings.Contains(out, "Message-ID: <deferred@t>") {
		t.Errorf("queue show lacks the headers:\n%s", out)
	}
	in.Mailctl("", "queue", "hold", id)
	if _, err := os.Stat(in.Cfg.SpoolDir + "/hold/" + id); err != nil {
		t.Errorf("queue hold: %v", err)
	}
	in.Mailctl("", "queue", "release", id)

	// The account goes away while the message waits: it bounces to the sender.
	in.Mailctl("", "user", "del", "bob@other.test")
	in.SetConfig("services.local", "enable", "true")
	in.Reload()
	in.WaitFor("local to start", 10*time.Second, func() bool { _, ok := in.DaemonPIDs()["local"]; return ok })
	in.Mailctl("", "queue", "flush")
	msgs := in.WaitMessages("demo@example.test", 2, 20*time.Second)
	var dsn []byte
	for _, m := range msgs {
		if bytes.Contains(m, []byte("multipart/report")) {
			dsn = m
		}
	}
	if dsn == nil {
		t.Fatalf("no bounce reached demo@example.test\n%s", tail(in.Log(), 40))
	}
	for _, want := range []string{"report-type=delivery-status", "Final-Recipient: rfc822;bob@other.test", "Action: failed", "Status: 5.1.1", "<deferred@t>"} {
		if !bytes.Contains(dsn, []byte(want)) {
			t.Errorf("bounce lacks %q:\n%s", want, dsn)
		}
	}
	in.WaitFor("the queue to empty", 10*time.Second, func() bool {
		return strings.Contains(in.Mailctl("", "queue", "list"), "empty") || !strings.Contains(in.Mailctl("", "queue", "list"), id)
	})
}

// TestDaemonsRunAsTheirUsers checks privilege separation; it needs root, which CI has.
func TestDaemonsRunAsTheirUsers(t *testing.T) {
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run the tests as root")
		}
		t.Skip("privilege separation is only visible as root (CI runs as root)")
	}
	in := NewInstance(t, "")
	status := in.Mailctl("", "status")
	want := map[string]string{"master": "root", "smtpd": "postern", "cleanup": "postern", "qmgr": "postern", "local": "vmail", "authd": "postern", "httpd": "postern-web"}
	pids := in.DaemonPIDs()
	for name, account := range want {
		if name == "master" {
			continue
		}
		if !regexp.MustCompile(`(?m)^\s*` + name + `\b.*\b` + account + `\b`).MatchString(status) {
			t.Errorf("mailctl status does not show %s as %s:\n%s", name, account, status)
		}
		pid, ok := pids[name]
		if !ok {
			t.Errorf("%s is not running", name)
			continue
		}
		u, err := user.Lookup(account)
		if err != nil {
			t.Fatal(err)
		}
		if uid := procUID(t, pid); uid != u.Uid {
			t.Errorf("%s (pid %d) runs as uid %s, want %s (%s)", name, pid, uid, u.Uid, account)
		}
	}
	if uid := procUID(t, in.master.Process.Pid); uid != "0" {
		t.Errorf("master runs as uid %s", uid)
	}
	// Mail still flows across the users.
	send(t, in, "x@far.test", "demo@example.test", "<root@t>")
	in.WaitMessages("demo@example.test", 1, 10*time.Second)
}

func procUID(t *testing.T, pid int) string {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			return strings.Fields(rest)[0]
		}
	}
	return ""
}

var _ = smtp.Dial

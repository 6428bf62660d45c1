package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// spamStatus returns the X-Spam-Status field of a delivered message, unfolded.
func spamStatus(m []byte) string {
	return regexp.MustCompile(`(?m)^X-Spam-Status: [^\r\n]*`).FindString(unfold(string(m)))
}

// withSubject returns the message of msgs whose Subject is subject.
func withSubject(t *testing.T, msgs [][]byte, subject string) []byte {
	t.Helper()
	for _, m := range msgs {
		if strings.Contains(string(m), "\r\nSubject: "+subject+"\r\n") {
			return m
		}
	}
	t.Fatalf("no message with Subject %q among %d", subject, len(msgs))
	return nil
}

// TestSpamdDNSLists sends mail from three loopback clients through the real daemons,
// with a DNS blocklist and a DNS allowlist served by the tests' fake DNS server: the
// listed client (127.0.0.1) is refused at DATA with 550 5.7.1 naming the zone, the
// unlisted one (127.0.0.5) is delivered, and the allowlisted one (127.0.0.6) is
// delivered with the allowlist's weight taken off its score. The same instance's
// classifier minimums come from the configuration.
func TestSpamdDNSLists(t *testing.T) {
	publish(t,
		`1.0.0.127.bl.e2e-dnsbl.test. 300 IN A 127.0.0.2`,
		`6.0.0.127.wl.e2e-dnsbl.test. 300 IN A 127.0.10.2`,
	)
	in := NewInstance(t, "")
	in.SetConfig("spamd", "dnsbl", `[{ zone = "bl.e2e-dnsbl.test", reject = true }]`)
	in.SetConfig("spamd", "dnswl", `[{ zone = "wl.e2e-dnsbl.test", weight = -2.5 }]`)
	in.SetConfig("spamd", "classifier_min_spam", "3")
	in.SetConfig("spamd", "classifier_min_ham", "4")
	in.Stop()
	in.Start()
	// The classifier's minimums come from the configuration.
	if out := in.Mailctl("", "spam", "status"); !strings.Contains(out, "it needs 3 spam and 4 ham") {
		t.Errorf("spam status with classifier_min_spam = 3 and classifier_min_ham = 4:\n%s", out)
	}
	const rcpt = "demo@example.test"
	msg := func(subject string) string {
		return fmt.Sprintf("From: <x@nowhere.test>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nhello\r\n", rcpt, subject)
	}
	got := dataReplyFrom(t, in, "127.0.0.1", "x@nowhere.test", []string{rcpt}, msg("listed"))
	if !strings.HasPrefix(got, "550 5.7.1 ") || !strings.Contains(got, "bl.e2e-dnsbl.test") || !strings.Contains(got, "127.0.0.1") {
		t.Errorf("listed client: %q, want 550 5.7.1 naming the zone", got)
	}
	for _, c := range []struct{ src, subject string }{{"127.0.0.5", "unlisted"}, {"127.0.0.6", "allowlisted"}} {
		if got := dataReplyFrom(t, in, c.src, "x@nowhere.test", []string{rcpt}, msg(c.subject)); !strings.HasPrefix(got, "250 ") {
			t.Errorf("%s client %s: %q", c.subject, c.src, got)
		}
	}
	inbox := in.WaitMessages(rcpt, 2, 10*time.Second)
	time.Sleep(time.Second) // the refused message would arrive now, had it been queued
	if inbox = in.Messages(rcpt); len(inbox) != 2 {
		t.Fatalf("INBOX holds %d messages, want the unlisted and the allowlisted", len(inbox))
	}
	unlisted, allowed := spamStatus(withSubject(t, inbox, "unlisted")), spamStatus(withSubject(t, inbox, "allowlisted"))
	if unlisted != "X-Spam-Status: No, score=0.0" {
		t.Errorf("unlisted: %q", unlisted)
	}
	if !strings.HasPrefix(allowed, "X-Spam-Status: No, score=-2.5 tests=") || !strings.Contains(allowed, "DNSWL(wl.e2e-dnsbl.test:127.0.10.2)=-2.5") {
		t.Errorf("allowlisted: %q", allowed)
	}
	if log := in.Log(); !regexp.MustCompile(`msg=verdict daemon=spamd pid=\d+ id=[0-9A-Z]{16} action=reject score=5 reasons="?\[DNSBL\(bl\.e2e-dnsbl\.test:127\.0\.0\.2\)=5\]`).MatchString(log) {
		t.Errorf("no verdict line naming the DNSBL in the log:\n%s", tail(log, 20))
	}
}

// TestSpamdBlockAllow checks the administrator's lists through mailctl and the real
// daemons: a blocked address is refused with 550 5.7.1 (and delivered once unblocked);
// an allowed address whose SPF passes gets GTUBE, certain spam, delivered into the INBOX.
func TestSpamdBlockAllow(t *testing.T) {
	publish(t, `allow-e2e.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`)
	in := NewInstance(t, "")
	const rcpt = "demo@example.test"
	const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
	msg := func(from, subject, body string) string {
		return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n%s\r\n", from, rcpt, subject, body)
	}
	if out := in.Mailctl("", "spam", "block", "Pest@Nowhere.test"); out != "blocked address pest@nowhere.test\n" {
		t.Errorf("spam block: %q", out)
	}
	if got := dataReply(t, in, "pest@nowhere.test", rcpt, msg("pest@nowhere.test", "blocked", "hi")); !strings.HasPrefix(got, "550 5.7.1 ") || !strings.Contains(got, "pest@nowhere.test") {
		t.Errorf("blocked sender: %q", got)
	}
	// Blocked by its From: address too.
	if got := dataReply(t, in, "other@nowhere.test", rcpt, msg("pest@nowhere.test", "blocked from", "hi")); !strings.HasPrefix(got, "550 5.7.1 ") {
		t.Errorf("blocked From: %q", got)
	}
	// GTUBE is refused, until its (authenticated) sender is allowed.
	if got := dataReply(t, in, "friend@allow-e2e.test", rcpt, msg("friend@allow-e2e.test", "gtube refused", gtube)); !strings.HasPrefix(got, "550 5.7.1 ") {
		t.Fatalf("GTUBE before allow: %q", got)
	}
	if out := in.Mailctl("", "spam", "allow", "friend@allow-e2e.test"); out != "allowed address friend@allow-e2e.test\n" {
		t.Errorf("spam allow: %q", out)
	}
	if got := dataReply(t, in, "friend@allow-e2e.test", rcpt, msg("friend@allow-e2e.test", "gtube allowed", gtube)); !strings.HasPrefix(got, "250 ") {
		t.Errorf("GTUBE from an allowed sender: %q", got)
	}
	out := in.Mailctl("", "spam", "lists")
	if !regexp.MustCompile(`(?m)^block\s+-\s+address\s+pest@nowhere\.test\s`).MatchString(out) || !regexp.MustCompile(`(?m)^allow\s+-\s+address\s+friend@allow-e2e\.test\s`).MatchString(out) {
		t.Errorf("spam lists:\n%s", out)
	}
	if out := in.Mailctl("", "spam", "unblock", "pest@nowhere.test"); out != "removed address pest@nowhere.test from the block list\n" {
		t.Errorf("spam unblock: %q", out)
	}
	if got := dataReply(t, in, "pest@nowhere.test", rcpt, msg("pest@nowhere.test", "unblocked", "hi")); !strings.HasPrefix(got, "250 ") {
		t.Errorf("unblocked sender: %q", got)
	}
	inbox := in.WaitMessages(rcpt, 2, 10*time.Second)
	time.Sleep(time.Second)
	if inbox = in.Messages(rcpt); len(inbox) != 2 {
		t.Fatalf("INBOX holds %d messages, want the allowed GTUBE and the unblocked one", len(inbox))
	}
	if st := spamStatus(withSubject(t, inbox, "gtube allowed")); !strings.Contains(st, "ALLOWLIST(address:friend@allow-e2e.test)") {
		t.Errorf("allowed message: %q", st)
	}
	withSubject(t, inbox, "unblocked")
	if n := len(junk(in, rcpt)); n != 0 {
		t.Errorf("%d messages in Junk", n)
	}
}

// TestSpamdUserLists checks a user's own block list: a message to demo and carol from a
// sender demo blocked lands in demo's Junk (seen over IMAP) and in carol's INBOX.
func TestSpamdUserLists(t *testing.T) {
	in := NewInstance(t, "")
	in.addUser(t, "carol@example.test")
	if out := in.Mailctl("", "spam", "block", "--user", "demo@example.test", "pest@nowhere.test"); out != "blocked address pest@nowhere.test (demo@example.test)\n" {
		t.Errorf("spam block --user: %q", out)
	}
	if out, err := in.MailctlErr("", "spam", "block", "--user", "demo@example.test", "192.0.2.1"); err == nil || !strings.Contains(out, "not IP addresses") {
		t.Errorf("an IP address on a user's list: %v %q", err, out)
	}
	msg := "From: <pest@nowhere.test>\r\nTo: <demo@example.test>, <carol@example.test>\r\nSubject: pest\r\n\r\nhello\r\n"
	if got := dataReplyFrom(t, in, "", "pest@nowhere.test", []string{"demo@example.test", "carol@example.test"}, msg); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("message from a sender demo blocked: %q", got)
	}
	in.WaitMessages("carol@example.test", 1, 10*time.Second)
	in.WaitFor("demo's copy in Junk", 10*time.Second, func() bool { return len(junk(in, "demo@example.test")) == 1 })
	if n, m := len(in.Messages("demo@example.test")), len(junk(in, "carol@example.test")); n != 0 || m != 0 {
		t.Errorf("%d messages in demo's INBOX, %d in carol's Junk; want none", n, m)
	}
	// demo sees it in Junk over IMAP.
	r := imapTargetOf(t, in).rawLogin(t)
	if got := strings.Join(r.OK("EXAMINE Junk"), "\n"); !strings.Contains(got, "1 EXISTS") {
		t.Errorf("EXAMINE Junk:\n%s", got)
	}
	if got := strings.Join(r.OK("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]"), "\n"); !strings.Contains(got, "Subject: pest") {
		t.Errorf("FETCH from Junk:\n%s", got)
	}
}

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dataReply sends one message on port 25 without authentication and returns the reply
// to its final dot (or to the first command refused).
func dataReply(t *testing.T, in *Instance, from, to, msg string) string {
	t.Helper()
	c, r := dialSMTP(t, in.SMTPAddr())
	defer c.Close()
	command(t, c, r, "EHLO client.other.test")
	for _, cmd := range []string{"MAIL FROM:<" + from + ">", "RCPT TO:<" + to + ">", "DATA"} {
		if got := command(t, c, r, cmd); !strings.HasPrefix(got, "250") && !strings.HasPrefix(got, "354") {
			return got
		}
	}
	fmt.Fprintf(c, "%s.\r\n", msg)
	got := readReply(t, r)
	command(t, c, r, "QUIT")
	return got
}

// publish adds records to the DNS server the instances of NewInstance ask.
func publish(t *testing.T, records ...string) {
	t.Helper()
	testResolver(t)
	if err := testDNS.Add(records...); err != nil {
		t.Fatal(err)
	}
}

// junk returns the messages in the Junk folder of addr.
func junk(in *Instance, addr string) [][]byte {
	var out [][]byte
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(in.Maildir(addr), ".Junk", sub)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
				out = append(out, b)
			}
		}
	}
	return out
}

// TestSpamdVerdicts sends mail from port 25 through the real smtpd, cleanup, spamd,
// qmgr and local, with SPF and DMARC records served by the tests' fake DNS: an SPF fail
// with -all is refused with 550 5.7.23 (RFC 7372); a From: forged in the name of a
// p=reject domain, GTUBE, and mail in the name of our own domain without SPF or DKIM
// (the attacker of issue 10) are refused with 550 5.7.1 at DATA and never delivered or
// bounced; p=quarantine lands in Junk; an SPF pass is delivered into the INBOX with
// spamd's Authentication-Results, and one that came forged with our authserv-id is gone.
func TestSpamdVerdicts(t *testing.T) {
	publish(t,
		`spf-fail.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`spf-pass.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.spf-pass.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`p-reject.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 ~all"`,
		`_dmarc.p-reject.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`_dmarc.p-quarantine.test. 300 IN TXT "v=DMARC1; p=quarantine"`,
	)
	in := NewInstance(t, "")
	const rcpt = "demo@example.test"
	msg := func(from, subject string, extra ...string) string {
		return fmt.Sprintf("%sFrom: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@spamd.test>\r\n\r\nhello\r\n",
			strings.Join(extra, ""), from, rcpt, subject, strings.ReplaceAll(subject, " ", "-"))
	}
	const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
	for _, c := range []struct{ name, from, msg, want string }{
		{"spf fail", "x@spf-fail.test", msg("x@spf-fail.test", "spf fail"), "550 5.7.23 "},
		{"forged p=reject", "x@nowhere.test", msg("boss@p-reject.test", "forged reject"), "550 5.7.1 "},
		{"gtube", "x@nowhere.test", msg("x@nowhere.test", "gtube") + gtube + "\r\n", "550 5.7.1 "},
		{"our own domain", "demo@example.test", msg("demo@example.test", "own domain"), "550 5.7.1 "},
		{"our own domain in From: only", "x@nowhere.test", msg("demo@example.test", "own from"), "550 5.7.1 "},
		{"quarantine", "x@nowhere.test", msg("x@p-quarantine.test", "quarantine"), "250 "},
		{"spf pass", "x@spf-pass.test", msg("x@spf-pass.test", "spf pass",
			"Authentication-Results: "+in.Cfg.Hostname+"; dkim=pass header.d=forged.test\r\n"), "250 "},
	} {
		if got := dataReply(t, in, c.from, rcpt, c.msg); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	in.WaitFor("the quarantined message in Junk", 10*time.Second, func() bool { return len(junk(in, rcpt)) == 1 })
	j := string(junk(in, rcpt)[0])
	if !strings.Contains(j, "Subject: quarantine") || !strings.Contains(j, "dmarc=fail header.from=p-quarantine.test") || !strings.Contains(j, "X-Spam-Status: Yes") {
		t.Errorf("Junk holds:\n%s", j)
	}
	inbox := in.WaitMessages(rcpt, 1, 10*time.Second)
	time.Sleep(time.Second) // anything refused that was queued all the same would arrive now
	inbox = in.Messages(rcpt)
	if len(inbox) != 1 {
		t.Fatalf("INBOX holds %d messages, want only the SPF pass", len(inbox))
	}
	m := string(inbox[0])
	ar := "Authentication-Results: " + in.Cfg.Hostname + ";\r\n\tspf=pass smtp.mailfrom=x@spf-pass.test;\r\n\tdmarc=pass header.from=spf-pass.test\r\n"
	if !strings.Contains(m, "Subject: spf pass") || !strings.Contains(m, ar) || strings.Contains(m, "forged.test") || !strings.Contains(m, "X-Spam-Status: No") {
		t.Errorf("INBOX holds:\n%s", m)
	}
	// Every verdict is in the log with its queue ID and reasons.
	if log := in.Log(); !regexp.MustCompile(`msg=verdict daemon=spamd pid=\d+ id=[0-9A-Z]{16} action=reject score=\S+ reasons=.*GTUBE=1000`).MatchString(log) {
		t.Errorf("no verdict lines with queue IDs and reasons in the log:\n%s", tail(log, 20))
	}
}

// TestSpamdTrustedRelays checks that a host in [spamd] trusted_relays may send mail in
// the name of our own domain from port 25.
func TestSpamdTrustedRelays(t *testing.T) {
	in := NewInstance(t, "")
	in.SetConfig("spamd", "trusted_relays", `["127.0.0.0/8"]`)
	in.Stop()
	in.Start()
	if got := dataReply(t, in, "demo@example.test", "demo@example.test", "From: demo@example.test\r\nSubject: relayed\r\n\r\nhi\r\n"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("from a trusted relay: %q", got)
	}
	in.WaitMessages("demo@example.test", 1, 10*time.Second)
}

// TestSpamdDown checks that with spamd disabled (down) mail is accepted unchecked, or
// refused with 451 4.7.1 when on_failure = "tempfail"; never lost.
func TestSpamdDown(t *testing.T) {
	in := NewInstance(t, "")
	in.SetConfig("services.spamd", "enable", "false")
	in.SetConfig("spamd", "on_failure", `"tempfail"`)
	in.Stop()
	in.Start()
	// The client side of cleanup is disabled with the service: no verdict is asked for.
	if got := dataReply(t, in, "x@nowhere.test", "demo@example.test", "From: x@nowhere.test\r\nSubject: unchecked\r\n\r\nhi\r\n"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("spamd disabled: %q", got)
	}
	in.WaitMessages("demo@example.test", 1, 10*time.Second)
	// Enabled but not answering: its socket exists, nobody listens.
	in.SetConfig("services.spamd", "enable", "true")
	in.SetConfig("services.spamd", "command", `"/bin/sleep"`)
	in.SetConfig("services.spamd", "args", `["1000"]`)
	in.Stop()
	in.Start()
	if got := dataReply(t, in, "x@nowhere.test", "demo@example.test", "From: x@nowhere.test\r\nSubject: tempfail\r\n\r\nhi\r\n"); !strings.HasPrefix(got, "451 4.7.1 ") {
		t.Fatalf("spamd not answering, on_failure tempfail: %q", got)
	}
	in.SetConfig("spamd", "on_failure", `"accept"`)
	in.SetConfig("spamd", "timeout", `"1s"`)
	in.Stop()
	in.Start()
	if got := dataReply(t, in, "x@nowhere.test", "demo@example.test", "From: x@nowhere.test\r\nSubject: accepted\r\n\r\nhi\r\n"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("spamd not answering, on_failure accept: %q", got)
	}
	in.WaitMessages("demo@example.test", 2, 10*time.Second)
}

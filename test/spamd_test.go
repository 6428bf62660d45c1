package test

import (
	"bufio"
	"fmt"
	"net"
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
	return dataReplyFrom(t, in, "", from, []string{to}, msg)
}

// dataReplyFrom is dataReply from the source address src ("" lets the kernel choose,
// another loopback address such as 127.0.0.5 makes another client) to recipients.
func dataReplyFrom(t *testing.T, in *Instance, src, from string, to []string, msg string) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	conn, err := d.Dial("tcp", in.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	readReply(t, r)
	command(t, conn, r, "EHLO client.other.test")
	cmds := []string{"MAIL FROM:<" + from + ">"}
	for _, rcpt := range to {
		cmds = append(cmds, "RCPT TO:<"+rcpt+">")
	}
	for _, cmd := range append(cmds, "DATA") {
		if got := command(t, conn, r, cmd); !strings.HasPrefix(got, "250") && !strings.HasPrefix(got, "354") {
			return got
		}
	}
	fmt.Fprintf(conn, "%s.\r\n", msg)
	got := readReply(t, r)
	command(t, conn, r, "QUIT")
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

// Words of the generated training mail: spam about pills, loans and prizes with links,
// ham about meetings, code and travel, as a small site's mail looks.
var (
	spamProducts = []string{"viagra", "cialis", "xanax", "weight-loss pills", "payday loan", "casino bonus", "crypto investment", "replica watches", "debt relief", "lottery prize"}
	spamPhrases  = []string{"no prescription needed", "act now before it expires", "100% guaranteed", "instant approval, bad credit ok",
		"limited time offer", "you have been selected", "double your money", "free shipping worldwide", "risk free trial", "lowest price online"}
	spamDomains = []string{"cheap-meds.example", "fastcash-loans.example", "mega-casino.example", "bestpills.example", "win-prize.example"}
	hamTopics   = []string{"sprint planning", "code review", "release notes", "budget meeting", "design document", "quarterly report",
		"database migration", "offsite agenda", "hiring committee", "customer feedback"}
	hamPhrases = []string{"please look at the pull request before Thursday", "the unit tests pass on my branch now",
		"can we move the meeting to the afternoon", "I attached the slides from yesterday", "the parser refactoring is merged",
		"let me know what you think of the draft", "the build broke after the dependency update", "notes from the call are in the wiki",
		"I will be out of the office on Friday", "thanks for fixing the flaky test"}
	hamPeople = []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"}
)

// trainingSpam returns the i-th generated spam message: distinct words and links each.
func trainingSpam(i int) string {
	p, q := spamProducts[i%len(spamProducts)], spamProducts[(i*3+1)%len(spamProducts)]
	d := spamDomains[i%len(spamDomains)]
	return fmt.Sprintf("From: \"Best Deals\" <offers%d@%s>\r\nTo: <demo@example.test>\r\nSubject: %s - %s!!! %d%% OFF\r\n"+
		"Message-ID: <spam%d@%s>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"+
		"<html><body><h1>Buy %s and %s today</h1><p>%s. %s. Order at <a href=\"http://%s/buy?id=%d\">our online pharmacy</a>.</p>"+
		"<p>Unsubscribe: <a href=\"http://%s/u/%d\">click here</a></p></body></html>\r\n",
		i, d, strings.ToUpper(p), spamPhrases[i%len(spamPhrases)], 50+i%50, i, d,
		p, q, spamPhrases[(i+3)%len(spamPhrases)], spamPhrases[(i*7+2)%len(spamPhrases)], d, 1000+i, d, i)
}

// trainingHam returns the i-th generated wanted message.
func trainingHam(i int) string {
	from, to := hamPeople[i%len(hamPeople)], hamPeople[(i+3)%len(hamPeople)]
	topic := hamTopics[i%len(hamTopics)]
	return fmt.Sprintf("From: %s <%s@partner.example>\r\nTo: <demo@example.test>\r\nSubject: Re: %s for week %d\r\n"+
		"Message-ID: <ham%d@partner.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Hi %s,\r\n\r\nabout the %s: %s. Also, %s.\r\nThe ticket is PROJ-%d in the tracker.\r\n\r\nBest,\r\n%s\r\n",
		from, strings.ToLower(from), topic, i%52+1, i, to, topic, hamPhrases[i%len(hamPhrases)],
		hamPhrases[(i*3+5)%len(hamPhrases)], 200+i, from)
}

// TestSpamdClassifier trains spamd's classifier with mailctl spam train (spam from an
// mbox, ham from a Maildir folder), checks that mailctl spam status shows the counts and
// that it gives an opinion, and then sends a new spam-like and a new ham-like message
// over port 25: the first lands in Junk with a BAYES_ reason in X-Spam-Status, the second
// in the INBOX. Before the training, the same spam-like message lands in the INBOX: the
// classifier has no opinion on a fresh install.
func TestSpamdClassifier(t *testing.T) {
	in := NewInstance(t, "")
	const rcpt = "demo@example.test"
	if out := in.Mailctl("", "spam", "status"); !strings.Contains(out, "gives no opinion yet") {
		t.Errorf("fresh spam status:\n%s", out)
	}
	newSpam := strings.Replace(trainingSpam(1000), "Message-ID: <spam1000@", "Message-ID: <newspam@", 1)
	if got := dataReply(t, in, "offers@bestpills.example", rcpt, newSpam); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("untrained, spam-like message: %q", got)
	}
	in.WaitMessages(rcpt, 1, 10*time.Second)

	const n = 60
	spamMbox, hamDir := trainingSets(t, n)
	if out := in.Mailctl("", "spam", "train", "--spam", spamMbox); out != fmt.Sprintf("%d messages learned as spam, 0 known already\n", n) {
		t.Errorf("spam train --spam: %q", out)
	}
	if out := in.Mailctl("", "spam", "train", "--ham", hamDir); out != fmt.Sprintf("%d messages learned as ham, 0 known already\n", n) {
		t.Errorf("spam train --ham: %q", out)
	}
	// Learning the same messages again changes nothing.
	if out := in.Mailctl("", "spam", "train", "--ham", hamDir); out != fmt.Sprintf("0 messages learned as ham, %d known already\n", n) {
		t.Errorf("spam train --ham again: %q", out)
	}
	out := in.Mailctl("", "spam", "status")
	if !regexp.MustCompile(`(?m)^global\s+60\s+60\s+[1-9]\d*$`).MatchString(out) || !strings.Contains(out, "gives an opinion on all mail") {
		t.Errorf("spam status after training:\n%s", out)
	}

	newSpam = strings.Replace(trainingSpam(1001), "Message-ID: <spam1001@", "Message-ID: <newspam2@", 1)
	newHam := trainingHam(1001)
	if got := dataReply(t, in, "offers@bestpills.example", rcpt, newSpam); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("spam-like message: %q", got)
	}
	if got := dataReply(t, in, "alice@partner.example", rcpt, newHam); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("ham-like message: %q", got)
	}
	in.WaitFor("the spam-like message in Junk", 10*time.Second, func() bool { return len(junk(in, rcpt)) == 1 })
	j := string(junk(in, rcpt)[0])
	if !strings.Contains(j, "Message-ID: <newspam2@") || !regexp.MustCompile(`X-Spam-Status: Yes.*BAYES_9\d=`).MatchString(unfold(j)) {
		t.Errorf("Junk holds:\n%s", j)
	}
	inbox := in.WaitMessages(rcpt, 2, 10*time.Second)
	var hamGot string
	for _, m := range inbox {
		if strings.Contains(string(m), "Message-ID: <ham1001@") {
			hamGot = string(m)
		}
	}
	if !regexp.MustCompile(`X-Spam-Status: No.*BAYES_0\d=-`).MatchString(unfold(hamGot)) {
		t.Errorf("the ham-like message in INBOX:\n%s\n(INBOX holds %d messages)", hamGot, len(inbox))
	}
}

// trainingSets writes n messages of trainingSpam into an mbox and n of trainingHam into
// a Maildir (in new/ and cur/), the two forms mailctl spam train reads besides files.
func trainingSets(t *testing.T, n int) (spamMbox, hamMaildir string) {
	t.Helper()
	dir := t.TempDir()
	var mbox strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&mbox, "From offers%d@spam.example Mon Dec  7 10:%02d:00 2026\n%s\n", i, i%60, strings.ReplaceAll(trainingSpam(i), "\r\n", "\n"))
	}
	spamMbox = filepath.Join(dir, "spam.mbox")
	if err := os.WriteFile(spamMbox, []byte(mbox.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	hamMaildir = filepath.Join(dir, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(hamMaildir, sub), 0o700)
	}
	for i := 0; i < n; i++ {
		sub := "cur"
		if i%4 == 0 {
			sub = "new"
		}
		if err := os.WriteFile(filepath.Join(hamMaildir, sub, fmt.Sprintf("%d.M%dP1.host:2,S", 1700000000+i, i)), []byte(trainingHam(i)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return spamMbox, hamMaildir
}

// unfold joins folded header lines (RFC 5322 §2.2.3).
func unfold(s string) string {
	return regexp.MustCompile(`\r?\n[ \t]+`).ReplaceAllString(s, " ")
}

// TestSpamdLearnsFromIMAP checks that imapd tells spamd what a user moves into Junk
// (learned as spam in the user's own corpus) and back out of it (the same message then
// counts as ham), as mailctl spam status shows; a move into Trash teaches nothing.
func TestSpamdLearnsFromIMAP(t *testing.T) {
	in := NewInstance(t, "")
	const rcpt = "demo@example.test"
	for i := 0; i < 2; i++ {
		if got := dataReply(t, in, "offers@bestpills.example", rcpt, trainingSpam(i)); !strings.HasPrefix(got, "250 ") {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	in.WaitMessages(rcpt, 2, 10*time.Second)
	r := imapTargetOf(t, in).rawLogin(t)
	r.Cmd("CREATE Junk")
	r.OK("SELECT INBOX")
	status := func(spam, ham int) func() bool {
		re := regexp.MustCompile(fmt.Sprintf(`(?m)^demo@example\.test\s+%d\s+%d\s+[1-9]`, spam, ham))
		return func() bool { return re.MatchString(in.Mailctl("", "spam", "status")) }
	}
	r.OK("UID MOVE 1 Junk")
	in.WaitFor("the message moved into Junk learned as spam", 10*time.Second, status(1, 0))
	r.OK("SELECT Junk")
	r.OK("UID MOVE 1:* INBOX")
	in.WaitFor("the message moved out of Junk learned as ham", 10*time.Second, status(0, 1))
	r.OK("SELECT INBOX")
	r.OK("UID MOVE 2 Trash")
	r.OK("SELECT Trash")
	r.OK("UID MOVE 1:* Junk") // out of Trash into Junk: spam
	in.WaitFor("the message moved from Trash into Junk learned as spam", 10*time.Second, status(1, 1))
	r.OK("SELECT Junk")
	r.OK("UID MOVE 1:* Trash") // out of Junk into Trash: nothing
	// spamd learns in the order of the moves: once a later move counts, the move into
	// Trash before it would have counted too, had it been learned.
	if got := dataReply(t, in, "offers@bestpills.example", rcpt, trainingSpam(2)); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("third message: %q", got)
	}
	in.WaitMessages(rcpt, 2, 10*time.Second)
	r.OK("SELECT INBOX")
	// The first message (ham now) and the third into Junk: three spam, unless the move
	// into Trash had made the second ham.
	r.OK("MOVE 1:* Junk")
	in.WaitFor("the first and third messages learned as spam", 10*time.Second, status(3, 0))
	if out := in.Mailctl("", "spam", "status"); !regexp.MustCompile(`(?m)^global\s+0\s+0\s+0$`).MatchString(out) {
		t.Errorf("moves changed the global corpus:\n%s", out)
	}
}

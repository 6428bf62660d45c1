package test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestSieveDelivery delivers through the real daemons to an account whose active Sieve
// script files mail by a header rule into a folder with a flag: IMAP shows the message
// there, flagged, and the other message in the INBOX. A script that does not parse
// delivers to the INBOX.
func TestSieveDelivery(t *testing.T) {
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	const rcpt = "demo@example.test"
	// The administrator installs the script, readable by local (the mail user).
	dir := filepath.Join(in.Cfg.SieveDir(), "example.test", "demo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `require ["fileinto", "imap4flags"];
if header :contains "subject" "[report]" {
    addflag "\\Flagged";
    fileinto "Reports/Daily";
    stop;
}
`
	if err := os.WriteFile(filepath.Join(dir, "active"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	in.sendMail(t, "alice@other.test", rcpt, testMessage("[REPORT] numbers", "figures\r\n"))
	in.sendMail(t, "alice@other.test", rcpt, testMessage("hello", "hi\r\n"))
	in.WaitMessages(rcpt, 1, 10*time.Second)
	folder := filepath.Join(in.Maildir(rcpt), ".Reports.Daily")
	in.WaitFor("the report filed by Sieve", 10*time.Second, func() bool {
		n, _ := filepath.Glob(filepath.Join(folder, "new", "*"))
		m, _ := filepath.Glob(filepath.Join(folder, "cur", "*"))
		return len(n)+len(m) == 1
	})

	c := tg.login(t)
	defer c.Close()
	sel, err := c.Select("Reports/Daily", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT Reports/Daily: %v", err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("Reports/Daily holds %d messages, want 1", sel.NumMessages)
	}
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 1}}, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{hdr}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH: %v %v", msgs, err)
	}
	if !slices.Contains(msgs[0].Flags, imap.FlagFlagged) {
		t.Errorf("flags %v, want \\Flagged set by the script", msgs[0].Flags)
	}
	if b := msgs[0].FindBodySection(hdr); !strings.Contains(string(b), "Subject: [REPORT] numbers") {
		t.Errorf("Reports/Daily holds:\n%s", b)
	}
	sel, err = c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("INBOX: %v messages, %v; want the one message the rule does not match", sel, err)
	}

	// A broken script: mail goes to the INBOX, and the log says why.
	if err := os.WriteFile(filepath.Join(dir, "active"), []byte("if header :contains \"subject\" \"x\" { fileinto \"X\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in.sendMail(t, "alice@other.test", rcpt, testMessage("[report] broken", "x\r\n"))
	in.WaitMessages(rcpt, 2, 10*time.Second)
	in.WaitFor("the log line about the broken script", 10*time.Second, func() bool {
		return strings.Contains(in.Log(), "the active script does not parse")
	})
	if !strings.Contains(in.Log(), "line 1:") {
		t.Errorf("the log does not say where the script is broken:\n%s", tail(in.Log(), 20))
	}
}

// TestSieveExtensions installs with mailctl sieve a script that uses variables, body,
// relational, date and imap4flags keywords, and delivers through the real daemons mail
// that it files by content: a large invoice (its text base64-encoded) into
// Invoices/Large with the keyword $Work and \Flagged, which IMAP FETCH FLAGS shows; a
// small one into Invoices; a project's mail into a folder named by a variable cut
// from the subject; old mail by its Date into Old.
func TestSieveExtensions(t *testing.T) {
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	const rcpt = "demo@example.test"
	script := `require ["fileinto", "variables", "body", "relational", "comparator-i;ascii-numeric", "date", "index", "imap4flags"];
if header :matches "subject" "[*] *" {
    set :lower "project" "${1}";
}
if body :content "text" :contains "invoice" {
    if header :value "ge" :comparator "i;ascii-numeric" "x-amount" "1000" {
        addflag ["$Work", "\\Flagged"];
        fileinto "Invoices/Large";
        stop;
    }
    fileinto "Invoices";
    stop;
}
if allof (string :is "${project}" "apollo",
          date :value "ge" :originalzone :index 1 "date" "year" "2020") {
    fileinto "Projects/${project}";
    stop;
}
if date :value "lt" :zone "+0000" "date" "date" "2000-01-01" {
    fileinto "Old";
}
`
	in.Mailctl(script, "sieve", "put", rcpt, "extensions")
	in.Mailctl("", "sieve", "activate", rcpt, "extensions")
	if out := in.Mailctl("", "sieve", "get", rcpt, "extensions"); out != script {
		t.Fatalf("mailctl sieve get: %q", out)
	}

	msg := func(subject, date string, extra []string, body string) string {
		var b strings.Builder
		b.WriteString("From: Alice <alice@other.test>\r\nTo: <demo@example.test>\r\nSubject: " + subject + "\r\nDate: " + date + "\r\n")
		b.WriteString("Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@other.test>\r\n")
		for _, h := range extra {
			b.WriteString(h + "\r\n")
		}
		return b.String() + "\r\n" + body
	}
	const now = "Tue, 03 Mar 2026 10:00:00 +0100"
	// "Your invoice is attached." in base64: the body test sees the decoded text.
	in.sendMail(t, "alice@other.test", rcpt, msg("March", now, []string{"X-Amount: 1500", "MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64"}, "WW91ciBpbnZvaWNlIGlzIGF0dGFjaGVkLg==\r\n"))
	in.sendMail(t, "alice@other.test", rcpt, msg("Small", now, []string{"X-Amount: 20"}, "The invoice, small.\r\n"))
	in.sendMail(t, "alice@other.test", rcpt, msg("[Apollo] launch", now, nil, "Countdown.\r\n"))
	in.sendMail(t, "alice@other.test", rcpt, msg("[Apollo] history", "Fri, 31 Dec 1999 13:00:00 -0500", nil, "Long ago.\r\n"))
	in.sendMail(t, "alice@other.test", rcpt, msg("Hello", now, nil, "Nothing to file.\r\n"))

	want := map[string]string{"Invoices/Large": "March", "Invoices": "Small", "Projects/apollo": "[Apollo] launch", "Old": "[Apollo] history", "INBOX": "Hello"}
	in.WaitFor("the five messages filed", 20*time.Second, func() bool {
		n := 0
		for _, dir := range []string{"", ".Invoices.Large", ".Invoices", ".Projects.apollo", ".Old"} {
			for _, sub := range []string{"new", "cur"} {
				f, _ := filepath.Glob(filepath.Join(in.Maildir(rcpt), dir, sub, "[0-9]*"))
				n += len(f)
			}
		}
		return n == 5
	})
	c := tg.login(t)
	defer c.Close()
	for folder, subject := range want {
		sel, err := c.Select(folder, nil).Wait()
		if err != nil || sel.NumMessages != 1 {
			t.Errorf("SELECT %s: %v, %v; want one message", folder, sel, err)
			continue
		}
		hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 1}}, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{hdr}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("FETCH in %s: %v %v", folder, msgs, err)
		}
		if got := strings.TrimSpace(string(msgs[0].FindBodySection(hdr))); got != "Subject: "+subject {
			t.Errorf("%s holds %q, want %q", folder, got, subject)
		}
		flags := msgs[0].Flags
		if folder == "Invoices/Large" {
			if !slices.Contains(flags, imap.FlagFlagged) || !slices.Contains(flags, imap.Flag("$Work")) {
				t.Errorf("flags in %s: %v, want \\Flagged and $Work set by the script", folder, flags)
			}
		} else if slices.Contains(flags, imap.FlagFlagged) || slices.Contains(flags, imap.Flag("$Work")) {
			t.Errorf("flags in %s: %v, want neither", folder, flags)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(in.Maildir(rcpt), ".Invoices.Large", "new", ".*")); len(left) != 0 {
		t.Errorf("keywords files left behind: %v", left)
	}
}

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

package test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestImportMboxAndMaildir imports an mbox into the demo account's INBOX and a Maildir
// folder into a new folder, through the running system (local writes, imapd takes the
// files in), and reads them back over IMAP with their flags, dates and bodies.
func TestImportMboxAndMaildir(t *testing.T) {
	in := NewInstance(t, "")
	dir := t.TempDir()
	box := filepath.Join(dir, "old.mbox")
	mbox := "From alice@old.test Mon Dec  7 10:00:00 2020\n" +
		"From: alice@old.test\nSubject: read and flagged\nStatus: RO\nX-Status: F\n\nfirst body\n>From the start of a line\n\n" +
		"From bob@old.test Tue Dec  8 11:30:00 2020\n" +
		"From: bob@old.test\nSubject: unread\n\nsecond body\n\n" +
		"From carol@old.test Wed Dec  9 12:00:00 2020\n" +
		"From: carol@old.test\nSubject: answered\nStatus: RO\nX-Status: A\n\nthird body\n"
	if err := os.WriteFile(box, []byte(mbox), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := in.Mailctl("", "import", "mbox", box, "demo@example.test"); !strings.Contains(out, "Imported 3 messages into demo@example.test's INBOX") {
		t.Fatalf("import mbox: %s", out)
	}

	src := filepath.Join(dir, "Maildir")
	for _, d := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(src, d), 0o755)
	}
	os.WriteFile(filepath.Join(src, "cur", "1600000000.M1P1.old:2,FS"), []byte("Subject: from a maildir\r\n\r\nmaildir body\r\n"), 0o644)
	os.WriteFile(filepath.Join(src, "new", "1600000001.M2P2.old"), []byte("Subject: new in a maildir\n\nnew body\n"), 0o644)
	when := time.Date(2020, 9, 13, 12, 26, 40, 0, time.UTC)
	os.Chtimes(filepath.Join(src, "cur", "1600000000.M1P1.old:2,FS"), when, when)
	if out := in.Mailctl("", "import", "maildir", src, "demo@example.test", "Old Mail"); !strings.Contains(out, "Imported 2 messages into demo@example.test's Old Mail") {
		t.Fatalf("import maildir: %s", out)
	}

	c := imapTargetOf(t, in).login(t)
	defer c.Close()
	var msgs []*imapclientMessage
	in.WaitFor("imapd shows the 3 imported messages", 20*time.Second, func() bool {
		msgs = fetchAll(t, c, "INBOX")
		return len(msgs) == 3
	})
	want := []struct {
		subject string
		flags   []imap.Flag
		date    time.Time
		body    string
	}{
		{"read and flagged", []imap.Flag{imap.FlagFlagged, imap.FlagSeen}, time.Date(2020, 12, 7, 10, 0, 0, 0, time.UTC), "first body\r\nFrom the start of a line\r\n"},
		{"unread", nil, time.Date(2020, 12, 8, 11, 30, 0, 0, time.UTC), "second body\r\n"},
		{"answered", []imap.Flag{imap.FlagAnswered, imap.FlagSeen}, time.Date(2020, 12, 9, 12, 0, 0, 0, time.UTC), "third body\r\n"},
	}
	for i, m := range msgs {
		w := want[i]
		if !strings.Contains(m.raw, "Subject: "+w.subject+"\r\n") || !strings.HasSuffix(m.raw, "\r\n\r\n"+w.body) {
			t.Errorf("message %d: %q, want subject %q and body %q", i+1, m.raw, w.subject, w.body)
		}
		if !slices.Equal(m.flags, w.flags) {
			t.Errorf("message %d: flags %v, want %v", i+1, m.flags, w.flags)
		}
		if !m.date.Equal(w.date) {
			t.Errorf("message %d: internal date %v, want %v", i+1, m.date, w.date)
		}
	}
	msgs = fetchAll(t, c, "Old Mail")
	if len(msgs) != 2 || !slices.Equal(msgs[0].flags, []imap.Flag{imap.FlagFlagged, imap.FlagSeen}) || !msgs[0].date.Equal(when) ||
		!strings.HasSuffix(msgs[1].raw, "\r\n\r\nnew body\r\n") || len(msgs[1].flags) != 0 {
		t.Errorf("Old Mail: %+v", msgs)
	}

	// Bad input: a file that is not an mbox, an account that does not exist.
	notMbox := filepath.Join(dir, "letter.txt")
	os.WriteFile(notMbox, []byte("Dear Sir,\n"), 0o644)
	if out, err := in.MailctlErr("", "import", "mbox", notMbox, "demo@example.test"); err == nil || !strings.Contains(out, notMbox+": not an mbox file") {
		t.Errorf("import of a non-mbox: %v %s", err, out)
	}
	if out, err := in.MailctlErr("", "import", "mbox", box, "nobody@example.test"); err == nil || !strings.Contains(out, "nobody@example.test is not an account") {
		t.Errorf("import for a non-account: %v %s", err, out)
	}
}

type imapclientMessage struct {
	raw   string
	flags []imap.Flag
	date  time.Time
}

// fetchAll selects a mailbox and fetches every message: its text, flags (without
// \Recent) and internal date, in sequence order.
func fetchAll(t *testing.T, c *imapclient.Client, mailbox string) []*imapclientMessage {
	t.Helper()
	data := selectBox(t, c, mailbox, nil)
	if data.NumMessages == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatalf("FETCH in %s: %v", mailbox, err)
	}
	var out []*imapclientMessage
	for _, m := range msgs {
		var raw []byte
		for _, b := range m.BodySection {
			raw = b.Bytes
		}
		out = append(out, &imapclientMessage{raw: string(raw), flags: noRecent(m.Flags), date: m.InternalDate})
	}
	return out
}

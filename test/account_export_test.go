package test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"postern/pkg/mbox"
)

// TestAccountExport: mail delivered over SMTP to INBOX (one message of 2 MB, one with
// From lines in its body) and 105 messages APPENDed to a folder Archive/2026 (more than
// one FETCH batch) come back from the account page's export as a zip of one mbox per
// folder, each message's bytes those imapd serves (LF line endings).
func TestAccountExport(t *testing.T) {
	in := NewInstance(t, "")
	const demo = "demo@example.test"
	big := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 32<<10)
	in.sendMail(t, "alice@other.test", demo, testMessage("Big one", big))
	in.sendMail(t, "alice@other.test", demo, testMessage("Quoted", "From the start of a line\r\n>From quoted already\r\nlast line\r\n"))
	in.sendMail(t, "alice@other.test", demo, testMessage("Plain", "hello\r\n"))
	in.WaitMessages(demo, 3, 20*time.Second)

	c := imapTargetOf(t, in).login(t)
	defer c.Close()
	if err := c.Create("Archive/2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 105 {
		appendMsg(t, c, "Archive/2026", testMessage(fmt.Sprintf("Archived %d", i), fmt.Sprintf("number %d\r\nFrom me\r\n", i)), nil)
	}

	// What imapd serves, folder by folder.
	want := map[string][][]byte{}
	folders, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range folders {
		if _, err := c.Select(f.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil && !strings.Contains(err.Error(), "No messages") {
			t.Fatalf("FETCH %s: %v", f.Mailbox, err)
		}
		name := strings.ReplaceAll(f.Mailbox, string(f.Delim), "/") + ".mbox"
		want[name] = [][]byte{}
		for _, m := range msgs {
			for _, b := range m.BodySection {
				want[name] = append(want[name], bytes.ReplaceAll(b.Bytes, []byte("\r\n"), []byte("\n")))
			}
		}
	}
	if len(want["INBOX.mbox"]) != 3 || len(want["Archive/2026.mbox"]) != 105 {
		t.Fatalf("imapd serves %d messages in INBOX and %d in Archive/2026", len(want["INBOX.mbox"]), len(want["Archive/2026.mbox"]))
	}

	w := in.newWebClient(t)
	if code := w.login(demo, in.Password); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	_, page := w.get("/account")
	if !strings.Contains(page, `href="/account/export"`) {
		t.Errorf("the account page has no export link:\n%s", page)
	}
	resp, data := w.get("/account/export")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %q %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"), tail(in.Log(), 20))
	}
	zr, err := zip.NewReader(strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("the export is no zip (%d bytes): %v", len(data), err)
	}
	got := map[string]bool{}
	for _, zf := range zr.File {
		got[zf.Name] = true
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := mbox.Read(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", zf.Name, err)
		}
		exp, ok := want[zf.Name]
		if !ok {
			t.Errorf("the export has %s, which is no folder", zf.Name)
			continue
		}
		if len(msgs) != len(exp) {
			t.Errorf("%s: %d messages exported, imapd has %d", zf.Name, len(msgs), len(exp))
			continue
		}
		for i, m := range msgs {
			if !strings.HasPrefix(m.Separator, "From MAILER-DAEMON ") {
				t.Errorf("%s message %d: separator %q", zf.Name, i, m.Separator)
			}
			if !bytes.Equal(m.Body, exp[i]) {
				t.Errorf("%s message %d differs: %d bytes exported, %d served", zf.Name, i, len(m.Body), len(exp[i]))
			}
		}
	}
	for name := range want {
		if !got[name] {
			t.Errorf("the export lacks the folder %s", name)
		}
	}
	if !strings.Contains(in.Log(), "mail exported") {
		t.Errorf("no log line of the export")
	}
}

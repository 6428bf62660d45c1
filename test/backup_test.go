package test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"postern/pkg/mbox"
)

// TestBackupRestoreExport backs up a running instance (users.db through authd's online
// backup, the Maildirs), exports the INBOX as an mbox, restores the backup into a
// second, stopped instance, and finds there the same accounts, passwords and mail.
func TestBackupRestoreExport(t *testing.T) {
	a := NewInstance(t, "")
	bobPass := a.addUser(t, "bob@example.test")
	a.sendMail(t, "someone@other.test", "bob@example.test", testMessage("for bob", "hello bob"))
	a.sendMail(t, "someone@other.test", "demo@example.test", testMessage("for demo", "From the first line\nhello demo"))
	a.WaitMessages("bob@example.test", 1, 20*time.Second)
	a.WaitMessages("demo@example.test", 1, 20*time.Second)
	// A flag set over IMAP, which the backup keeps in the file name.
	c := imapTargetOf(t, a).login(t)
	selectBox(t, c, "INBOX", nil)
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	c.Logout()

	dir := filepath.Join(t.TempDir(), "backup")
	if out := a.Mailctl("", "backup", dir); !strings.Contains(out, "Backed up users.db") {
		t.Fatalf("backup: %s", out)
	}
	if out, err := a.MailctlErr("", "backup", dir); err == nil || !strings.Contains(out, "is not empty") {
		t.Errorf("backup into a used directory: %v %s", err, out)
	}

	// Export: an mbox that pkg/mbox reads back, the body's "From " line escaped.
	box := filepath.Join(t.TempDir(), "demo.mbox")
	if out := a.Mailctl("", "export", "mbox", "demo@example.test", box); !strings.Contains(out, "Exported 1 messages") {
		t.Fatalf("export: %s", out)
	}
	raw, _ := os.ReadFile(box)
	if !strings.Contains(string(raw), "\n>From the first line\n") || !strings.Contains(string(raw), "\nX-Status: F\n") {
		t.Errorf("exported mbox:\n%s", raw)
	}
	s := mbox.NewScanner(strings.NewReader(string(raw)))
	m, err := s.Next()
	if err != nil || m.Flags != "F" {
		t.Errorf("the exported mbox reads back as %+v, %v", m, err)
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("more than one message in the export: %v", err)
	}

	b := NewInstance(t, "")
	if out, err := b.MailctlErr("", "restore", dir); err == nil || !strings.Contains(out, "Postern is running") {
		t.Errorf("restore into a running instance: %v %s", err, out)
	}
	b.Stop()
	if out := b.Mailctl("", "restore", dir); !strings.Contains(out, "Restored users.db") {
		t.Fatalf("restore: %s", out)
	}
	// The SRS secrets came along: an address a made for forwarded mail still takes
	// bounces on b.
	aKey, _ := os.ReadFile(a.Cfg.SRSKeyFile())
	if bKey, err := os.ReadFile(b.Cfg.SRSKeyFile()); err != nil || len(aKey) == 0 || string(bKey) != string(aKey) {
		t.Errorf("SRS secrets after restore: %q, want %q (%v)", bKey, aKey, err)
	}
	b.Start()
	tg := imapTargetOf(t, b)
	for _, acct := range []struct{ user, pass, subject string }{
		{"bob@example.test", bobPass, "for bob"},
		{"demo@example.test", a.Password, "for demo"},
	} {
		c := tg.loginAs(t, acct.user, acct.pass, nil)
		msgs := fetchAll(t, c, "INBOX")
		if len(msgs) != 1 || !strings.Contains(msgs[0].raw, "Subject: "+acct.subject) {
			t.Errorf("%s after restore: %d messages", acct.user, len(msgs))
		}
		if acct.user == "demo@example.test" && (len(msgs) != 1 || len(msgs[0].flags) != 1 || msgs[0].flags[0] != `\Flagged`) {
			t.Errorf("demo's flags after restore: %+v", msgs)
		}
		c.Logout()
	}
	// The restored users.db replaced the second instance's own: its demo password is gone.
	if b.Password != a.Password {
		c := tg.dial(t, nil)
		if err := c.Login("demo@example.test", b.Password).Wait(); err == nil {
			t.Error("the second instance's own demo password still works after the restore")
		}
		c.Close()
	}
}

package main

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestExportPath: a folder's name in the zip keeps its hierarchy and cannot climb out of
// the archive or name another folder's entry through a "/" in a name.
func TestExportPath(t *testing.T) {
	for _, c := range []struct {
		mailbox string
		delim   rune
		want    string
	}{
		{"INBOX", '/', "INBOX.mbox"},
		{"Archive/2026", '/', "Archive/2026.mbox"},
		{"Archive.2026", '.', "Archive/2026.mbox"},
		{"a/b", '.', "a_b.mbox"},
		{"../../etc", '/', "_../_../etc.mbox"},
		{"/x//y", '/', "_/x/_/y.mbox"},
		{"plain", 0, "plain.mbox"},
	} {
		if got := exportPath(&imap.ListData{Mailbox: c.mailbox, Delim: c.delim}); got != c.want {
			t.Errorf("exportPath(%q, %q) = %q, want %q", c.mailbox, c.delim, got, c.want)
		}
	}
}

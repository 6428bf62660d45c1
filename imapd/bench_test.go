package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/pkg/maildir"
)

// BenchmarkStoreFetchSearch measures the commands bench/imap times, in process, on a
// mailbox of 10,000 messages written straight into cur/.
func BenchmarkStoreFetchSearch(b *testing.B) {
	e := newTestEnv(b)
	root := e.maildir("a")
	maildir.Create(root, maildir.DefaultFolders)
	for i := 0; i < 10000; i++ {
		body := strings.Repeat("some words of a message body that goes on\r\n", 50)
		if i%100 == 0 {
			body += "xylophone\r\n"
		}
		m := msg(fmt.Sprintf("subject %d", i), body)
		name := fmt.Sprintf("%d.M%dP1.host,S=%d:2,", 1700000000+i, i, len(m))
		os.WriteFile(filepath.Join(root, "cur", name), []byte(m), 0o600)
	}
	c := e.login("a")
	c.ok("SELECT INBOX")
	timeIt := func(name, cmd string) {
		start := time.Now()
		u := c.ok(cmd)
		b.Logf("%-45s %8v  %d lines", name, time.Since(start).Round(time.Microsecond), len(u))
	}
	timeIt("FETCH ENVELOPE (first)", "FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)")
	timeIt("FETCH ENVELOPE", "FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)")
	timeIt("SEARCH TEXT (first)", "SEARCH TEXT xylophone")
	timeIt("SEARCH TEXT", "SEARCH TEXT xylophone")
	timeIt("SORT SUBJECT (first)", "SORT (SUBJECT) UTF-8 ALL")
	timeIt("SORT SUBJECT", "SORT (SUBJECT) UTF-8 ALL")
	timeIt("SORT REVERSE DATE", "UID SORT (REVERSE DATE) UTF-8 ALL")
	timeIt("THREAD REFERENCES", "THREAD REFERENCES UTF-8 ALL")
	for i := 0; i < b.N; i++ {
		timeIt("STORE +FLAGS", `STORE 1:* +FLAGS (\Seen)`)
		timeIt("STORE -FLAGS.SILENT", `STORE 1:* -FLAGS.SILENT (\Seen)`)
	}
	e.stop()
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"postern/pkg/maildir"
)

// benchSortMailbox logs in to a mailbox of n messages written straight into cur/, a
// thread of replies every tenth message, and selects it.
func benchSortMailbox(b *testing.B, n int) (*testEnv, *client) {
	e := newTestEnv(b)
	root := e.maildir("a")
	maildir.Create(root, maildir.DefaultFolders)
	for i := 0; i < n; i++ {
		m := fmt.Sprintf("From: Sender %d <s%d@example.test>\r\nSubject: Message %d\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <m%d@example.test>\r\n", i%97, i%97, i/10, i)
		if i%10 != 0 {
			m += fmt.Sprintf("In-Reply-To: <m%d@example.test>\r\nReferences: <m%d@example.test>\r\n", i-1, i-i%10)
		}
		m += "\r\nbody\r\n"
		name := fmt.Sprintf("%d.M%dP1.host,S=%d:2,", 1700000000+i, i, len(m))
		os.WriteFile(filepath.Join(root, "cur", name), []byte(m), 0o600)
	}
	c := e.login("a")
	c.ok("SELECT INBOX")
	c.ok("UID SORT (DATE) UTF-8 ALL") // fills the cache
	return e, c
}

// BenchmarkSort measures UID SORT of a 10,000-message mailbox whose cache is warm, as
// the webmail's message list sends it.
func BenchmarkSort(b *testing.B) {
	e, c := benchSortMailbox(b, 10000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.ok("UID SORT (REVERSE DATE) UTF-8 ALL")
	}
	b.StopTimer()
	e.stop()
}

// BenchmarkThread measures UID THREAD REFERENCES of the same mailbox, in threads of 10.
func BenchmarkThread(b *testing.B) {
	e, c := benchSortMailbox(b, 10000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.ok("UID THREAD REFERENCES UTF-8 ALL")
	}
	b.StopTimer()
	e.stop()
}

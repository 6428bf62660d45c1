package main

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzSession sends arbitrary bytes to a logged-in session with INBOX selected. Whatever
// they are, no command handler may panic, and the daemon must keep serving: a new
// connection still gets a greeting and NOOPs.
// (The command parser has its own fuzz test in pkg/imap; this one reaches the command
// handlers.)
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"a FETCH 1:* (FLAGS BODY[1.2.HEADER.FIELDS (X)]<0.10> BINARY[1] BODYSTRUCTURE)\r\n",
		"a UID STORE 1:* (UNCHANGEDSINCE 1) +FLAGS.SILENT (\\Seen kw)\r\n",
		"a SEARCH RETURN (SAVE) OR TEXT x (UID 1:* NOT HEADER Subject y)\r\na FETCH $ FLAGS\r\n",
		"a COPY 1 Trash\r\na MOVE 1:* \"Archive\"\r\na UID EXPUNGE 1:*\r\n",
		"a CREATE \"x/../y\"\r\na RENAME INBOX Sent\r\na DELETE INBOX\r\n",
		"a APPEND INBOX (\\Seen) {5+}\r\nhello\r\na SELECT \"&ZeVnLIqe-\"\r\n",
		"a IDLE\r\nDONE\r\na LIST (SUBSCRIBED RECURSIVEMATCH) \"\" *\r\n",
		"a ENABLE IMAP4rev2\r\na STATUS INBOX (SIZE DELETED HIGHESTMODSEQ)\r\n",
		"a FETCH 99 FLAGS\r\na STORE 1 FLAGS \\Recent\r\n\x00\xff\r\n",
		"a SORT RETURN (MIN MAX ALL SAVE) (REVERSE SUBJECT DISPLAYFROM) UTF-8 ALL\r\na UID THREAD REFERENCES UTF-8 1:*\r\n",
		"a THREAD ORDEREDSUBJECT US-ASCII OR FROM x SENTSINCE 1-Jan-2000\r\na SORT (CC) KOI8-R ALL\r\n",
		"a NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge FlagChange)) (SUBTREE (x \"\") NONE)\r\na NOOP\r\na NOTIFY NONE\r\n",
		"a FETCH 1:* (SAVEDATE)\r\na SEARCH SAVEDATESUPPORTED SAVEDSINCE 1-Jan-2020 NOT SAVEDON 2-Feb-2021\r\n",
		"a FETCH 1:* (EMAILID THREADID)\r\na SEARCH EMAILID M1 OR THREADID x\r\na STATUS INBOX (MAILBOXID)\r\n",
		"a ENABLE UTF8=ACCEPT\r\na CREATE \"\xc3\xa9t\xc3\xa9\"\r\na APPEND INBOX UTF8 (~{3+}\r\n\xc3\xa9!)\r\n",
		"a COMPRESS DEFLATE\r\n\x01\x05\x00\xfa\xffa NOOP\r\n",
		"a ENABLE QRESYNC\r\na SELECT INBOX (QRESYNC (1 1 1:* (1 1)))\r\na UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)\r\n",
	} {
		f.Add([]byte(s))
	}
	e := newTestEnv(f)
	setup := e.login("a")
	setup.appendMsg("INBOX", "", msg("one", "body\r\n"))
	setup.appendMsg("INBOX", "", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n")
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		c.Write([]byte("l1 LOGIN a@example.test pw\r\nl2 SELECT INBOX\r\n"))
		c.Write(in)
		c.Write([]byte("\r\nzz LOGOUT\r\n"))
		// Read until the server answers LOGOUT, hangs up, or goes quiet. A command
		// handler that panics is caught by dispatch, which answers [SERVERBUG] and
		// keeps the daemon up: that answer is the crash this test looks for.
		for {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			l, err := r.ReadString('\n')
			if strings.Contains(l, "[SERVERBUG]") {
				t.Fatalf("a command handler panicked on %q: %q", in, l)
			}
			if err != nil || strings.HasPrefix(l, "zz ") {
				break
			}
		}
		// The daemon still serves.
		d, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatalf("imapd stopped accepting after %q: %v", in, err)
		}
		defer d.Close()
		d.SetDeadline(time.Now().Add(10 * time.Second))
		dr := bufio.NewReader(d)
		if l, err := dr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
			t.Fatalf("no greeting after %q: %q %v", in, l, err)
		}
		d.Write([]byte("n NOOP\r\n"))
		if l, err := dr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "n OK") {
			t.Fatalf("NOOP after %q: %q %v", in, l, err)
		}
	})
}

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/pkg/quickack"
)

// TestAppendSplitWrites sends APPENDs the way Python's imaplib does: Nagle's algorithm
// on, the command line, the literal after the continuation request, then the closing
// CRLF in a write of its own. Each must be stored and answered. (The latency this used
// to cost, one delayed ACK per command, is measured by bench/imap -seq-append.)
func TestAppendSplitWrites(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	if err := c.c.(*net.TCPConn).SetNoDelay(false); err != nil {
		t.Fatal(err)
	}
	c.ok("CREATE Split")
	// The server's side of the connection ACKs every read at once (package quickack).
	e.srv.mu.Lock()
	for sess := range e.srv.sessions {
		raw := sess.(*Session).raw
		if _, ok := raw.(*quickack.Conn); !ok {
			t.Errorf("session's connection is %T, want *quickack.Conn", raw)
		}
	}
	e.srv.mu.Unlock()
	for i := 0; i < 5; i++ {
		m := msg(fmt.Sprintf("split %d", i), strings.Repeat("x", 4000)+"\r\n")
		tag := fmt.Sprintf("s%d", i)
		c.send(fmt.Sprintf("%s APPEND Split {%d}\r\n", tag, len(m)))
		if l := c.line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("continuation request: got %q", l)
		}
		c.send(m)
		c.send("\r\n")
		if l := c.line(); !strings.HasPrefix(l, tag+" OK [APPENDUID ") {
			t.Fatalf("APPEND %d: %q", i, l)
		}
	}
	// A command line whose CRLF comes apart from the rest.
	c.send("n1 NOOP")
	c.send("\r\n")
	if l := c.line(); l != "n1 OK NOOP completed" {
		t.Fatalf("NOOP: %q", l)
	}
	u := c.ok("STATUS Split (MESSAGES)")
	if !hasLine(u, `MESSAGES 5\)`) {
		t.Fatalf("STATUS: %q", u)
	}
	files, _ := os.ReadDir(filepath.Join(e.maildir("a"), ".Split", "cur"))
	if len(files) != 5 {
		t.Fatalf("%d files in .Split/cur, want 5", len(files))
	}
}

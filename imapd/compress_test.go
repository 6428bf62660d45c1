package main

import (
	"bufio"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// clientDeflate is the client side of COMPRESS=DEFLATE: one compressor and one
// decompressor for the life of the connection, as clients have.
type clientDeflate struct {
	net.Conn
	w *flate.Writer
	r io.Reader
}

func (c *clientDeflate) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err == nil {
		err = c.w.Flush()
	}
	return n, err
}

func (c *clientDeflate) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestCompress covers COMPRESS=DEFLATE (RFC 4978): commands and answers compressed both
// ways, a large FETCH, IDLE, pipelined commands, and COMPRESS again.
func TestCompress(t *testing.T) {
	e := newTestEnv(t)
	c := e.dial()
	if u := c.ok("CAPABILITY"); hasLine(u, `COMPRESS=DEFLATE`) {
		t.Errorf("COMPRESS=DEFLATE offered before authentication: %q", u)
	}
	c.ok("LOGIN a@example.test pw")
	if u := c.ok("CAPABILITY"); !hasLine(u, ` COMPRESS=DEFLATE\b`) {
		t.Errorf("CAPABILITY: %q", u)
	}
	if st := c.no("COMPRESS LZ4"); !strings.HasPrefix(st, "BAD") {
		t.Errorf("COMPRESS LZ4: %s", st)
	}
	body := strings.Repeat("a line of a long message that compresses well\r\n", 4000)
	c.appendMsg("INBOX", "", msg("big", body))
	c.ok("COMPRESS DEFLATE")
	fw, _ := flate.NewWriter(c.c, flate.DefaultCompression)
	cc := &clientDeflate{Conn: c.c, w: fw, r: flate.NewReader(c.r)}
	c.c, c.r = cc, bufio.NewReader(cc)

	if u := c.ok("CAPABILITY"); hasLine(u, `COMPRESS=DEFLATE`) {
		t.Errorf("COMPRESS=DEFLATE offered while active: %q", u)
	}
	if st := c.no("COMPRESS DEFLATE"); !strings.HasPrefix(st, "NO [COMPRESSIONACTIVE]") {
		t.Errorf("COMPRESS again: %s", st)
	}
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1 BODY.PEEK[TEXT]")
	if len(u) != 1 || !strings.HasSuffix(u[0], body+")") {
		t.Errorf("FETCH BODY[TEXT] through DEFLATE: %d lines, %d bytes", len(u), len(strings.Join(u, "")))
	}
	// APPEND with a synchronizing literal: the continuation is compressed too.
	m := msg("second", "x\r\n")
	c.ok(fmt.Sprintf("APPEND INBOX {%d}\r\n%s", len(m), m))
	// Pipelined commands.
	c.send("p1 NOOP\r\np2 SEARCH SUBJECT second\r\n")
	var got []string
	for len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "p2 ") {
		got = append(got, c.line())
	}
	if !hasLine(got, `^p1 OK`) || !hasLine(got, `^\* SEARCH 2$`) {
		t.Errorf("pipelined: %q", got)
	}
	// IDLE hears another session's APPEND through the compressed stream.
	c.send("i IDLE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	o := e.login("a")
	o.appendMsg("INBOX", "", msg("third", "y\r\n"))
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l := c.line(); l != "* 3 EXISTS" {
		t.Errorf("in IDLE: %q, want * 3 EXISTS", l)
	}
	c.send("DONE\r\n")
	for l := c.line(); !strings.HasPrefix(l, "i "); l = c.line() {
	}
	c.ok("LOGOUT")
}

// TestCompressGarbage: a stream that is no deflate ends the session, not the server.
func TestCompressGarbage(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	c.ok("COMPRESS DEFLATE")
	c.send("\xff\xff\xff\xff garbage\r\n")
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// Whatever was answered, the connection must end.
	if _, err := io.Copy(io.Discard, c.r); err != nil {
		t.Errorf("after a stream that is no deflate: %v, want the connection closed", err)
	}
	e.login("a").ok("NOOP")
}

// TestCompressPartialFlush: a command that the client's zlib ended with
// Z_PARTIAL_FLUSH, as isync/mbsync sends them, is answered at once (with
// compress/flate's reader it waited for more input forever).
func TestCompressPartialFlush(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	c.ok("COMPRESS DEFLATE")
	// "1 NOOP\r\n" then "2 NOOP\r\n2 NOOP\r\n", each ended with Z_PARTIAL_FLUSH by
	// Python's zlib (compressobj(6, DEFLATED, -15)).
	c.c.Write([]byte{0x32, 0x54, 0xf0, 0xf3, 0xf7, 0x0f, 0xe0, 0xe5, 0x02, 0x08})
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(flate.NewReader(c.r))
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "1 OK") {
		t.Fatalf("answer to a partially flushed NOOP: %q, %v", l, err)
	}
	c.c.Write([]byte{0x20, 0x23, 0x34, 0x1a, 0x20})
	for _, want := range []string{"2 OK", "2 OK"} {
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, want) {
			t.Fatalf("answer to the next ones: %q, %v", l, err)
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"io"
	"net"
	"sync"

	"postern/pkg/imap"
	"postern/pkg/inflate"
)

// COMPRESS=DEFLATE (RFC 4978): after "COMPRESS DEFLATE" both directions are one raw
// deflate stream (RFC 1951) each, under TLS when there is TLS.
//
// Memory: a flate.Writer takes 0.7 to 1.2 MB, so none is held by an idle session: each
// write (one per flush of the session's response buffer) takes one from a pool, ends
// with a sync flush (which aligns the stream to a byte and ends the block) and gives it
// back. A fresh writer does not refer to what earlier writers sent, which a deflate
// stream allows; the cost is a little ratio across responses. The inflater cannot drop
// its 32 KiB window, which the client's compressor refers to: a session that enabled
// COMPRESS holds about 45 KB more (flate's decompressor and a 4 KiB read buffer).
//
// Reading uses pkg/inflate, compress/flate's decompressor changed to hand out every
// block as it ends: clients that flush with zlib's Z_PARTIAL_FLUSH (isync/mbsync) end
// a command with a block that compress/flate would keep until more input came.
var deflaters = sync.Pool{New: func() any {
	d := &deflater{}
	d.w, _ = flate.NewWriter(&d.buf, flate.BestSpeed)
	return d
}}

// deflater compresses one write into buf, which goes to the connection in one piece
// (flate writes in small pieces, which under TLS would each be a record).
type deflater struct {
	w   *flate.Writer
	buf bytes.Buffer
}

// deflateConn is a connection whose reads are inflated and writes deflated. It
// embeds the net.Conn interface, not the connection, so that it has no SyscallConn
// method: sendWhole sends by sendfile(2) only to a syscall.Conn, which would bypass the
// compressor.
type deflateConn struct {
	net.Conn
	r io.ReadCloser
}

func (c *deflateConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *deflateConn) Write(p []byte) (int, error) {
	d := deflaters.Get().(*deflater)
	defer func() {
		if d.buf.Cap() <= 64<<10 {
			deflaters.Put(d)
		}
	}()
	d.buf.Reset()
	d.w.Reset(&d.buf)
	if _, err := d.w.Write(p); err != nil {
		return 0, err
	}
	if err := d.w.Flush(); err != nil {
		return 0, err
	}
	if _, err := c.Conn.Write(d.buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// compress runs COMPRESS (RFC 4978 §3).
func (s *Session) compress(c *imap.Command) {
	if _, ok := s.conn.(*deflateConn); ok {
		// RFC 4978 §3.
		s.no(c, "[COMPRESSIONACTIVE] DEFLATE active already")
		return
	}
	if c.Compress != "DEFLATE" {
		s.tagged(c.Tag, "BAD", "Unknown compression mechanism")
		return
	}
	s.tagged(c.Tag, "OK", "DEFLATE active")
	s.flush()
	// What the client sent after the command is compressed already.
	var raw io.Reader = s.conn
	if n := s.br.Buffered(); n > 0 {
		pending, _ := s.br.Peek(n)
		raw = io.MultiReader(bytes.NewReader(bytes.Clone(pending)), s.conn)
	}
	dc := &deflateConn{Conn: s.conn, r: inflate.NewReader(bufio.NewReaderSize(raw, 4096))}
	s.conn = dc
	s.w.Reset(s.conn)
	s.br.Reset(s.conn)
	s.dec.Reset(s.br)
}

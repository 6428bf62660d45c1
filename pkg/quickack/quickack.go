// Package quickack makes a server acknowledge what it reads from a TCP connection at
// once, instead of after the kernel's delayed-ACK timer (40 ms on Linux).
//
// A server that answers each command quickly puts Linux's TCP into its interactive
// ("pingpong") mode, in which the ACK for data received is held back in the hope of
// riding on the next reply. A client that writes the end of a command in a second small
// write with Nagle's algorithm on (TCP_NODELAY off, the default in most client
// libraries: Python's imaplib sends an APPEND literal, then its closing CRLF) cannot send
// that second write until the first one is acknowledged, and the server sends no reply
// before it has the whole command: the two wait for each other until the delayed ACK
// fires, about 40 ms per command. Dovecot avoids it the same way: it sets TCP_QUICKACK
// after each read.
package quickack

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Conn is a TCP connection that sends the ACK for every read at once.
type Conn struct {
	net.Conn
	raw syscall.RawConn
}

var _ syscall.Conn = (*Conn)(nil)

// Wrap returns c as a *Conn when it is a TCP connection, and c unchanged otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{Conn: tc, raw: raw}
}

// Read reads from the connection and then sets TCP_QUICKACK, which sends the ACK the
// kernel may be holding back for what was read and leaves interactive mode. Linux
// clears the option again by itself, hence once per read.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.raw.Control(func(fd uintptr) {
			// An error (the connection closed meanwhile) costs only the early ACK.
			unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
		})
	}
	return n, err
}

// SyscallConn returns the TCP connection's raw connection (for sendfile(2), say).
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.raw, nil }

// Package peeruid tells which local user owns the other end of a TCP connection whose
// two ends are on this host, the way identd (RFC 1413) answers: from the kernel's table
// of TCP sockets, /proc/net/tcp and /proc/net/tcp6, where each socket is listed with its
// two addresses and the uid that owns it. A server uses it to accept, from one local
// program only, a credential that would be worth nothing anywhere else.
package peeruid

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ErrNotLocal is Of's error when no socket of this host is the other end of the
// connection: the client is on another machine (or in another network namespace).
var ErrNotLocal = errors.New("the peer is not a socket of this host")

// tables are the kernel's TCP socket lists, IPv4 then IPv6.
var tables = []string{"/proc/net/tcp", "/proc/net/tcp6"}

// Of returns the uid owning the socket at the other end of c, a TCP connection accepted
// by (or dialed from) this process.
func Of(c net.Conn) (int, error) {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return -1, fmt.Errorf("peer uid: not a TCP connection: %w", ErrNotLocal)
	}
	// The peer's socket is listed with our remote address as its local one.
	want := socket{local: remote.AddrPort(), remote: local.AddrPort()}
	for _, path := range tables {
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // no IPv6 in this kernel
			}
			return -1, fmt.Errorf("peer uid: %w", err)
		}
		uid, err := find(f, want)
		f.Close()
		if err == nil {
			return uid, nil
		}
		if !errors.Is(err, ErrNotLocal) {
			return -1, fmt.Errorf("peer uid: reading %s: %w", path, err)
		}
	}
	return -1, ErrNotLocal
}

// socket is one end of a TCP connection, its addresses unmapped (an IPv4 connection
// may be listed in tcp6 with ::ffff:a.b.c.d addresses).
type socket struct {
	local, remote netip.AddrPort
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// find reads a table in the format of /proc/net/tcp and returns the uid of the socket
// whose addresses are want's.
func find(r io.Reader, want socket) (int, error) {
	want = socket{unmap(want.local), unmap(want.remote)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096)
	first := true
	for sc.Scan() {
		if first { // the heading
			first = false
			continue
		}
		s, uid, err := parseLine(sc.Text())
		if err != nil {
			return -1, err
		}
		if s == want {
			return uid, nil
		}
	}
	if err := sc.Err(); err != nil {
		return -1, err
	}
	return -1, ErrNotLocal
}

// parseLine parses one socket of the table:
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
func parseLine(line string) (socket, int, error) {
	f := strings.Fields(line)
	if len(f) < 8 {
		return socket{}, -1, fmt.Errorf("short line %q", line)
	}
	l, err := parseAddr(f[1])
	if err != nil {
		return socket{}, -1, err
	}
	r, err := parseAddr(f[2])
	if err != nil {
		return socket{}, -1, err
	}
	uid, err := strconv.Atoi(f[7])
	if err != nil || uid < 0 {
		return socket{}, -1, fmt.Errorf("bad uid %q", f[7])
	}
	return socket{l, r}, uid, nil
}

// parseAddr parses HEX:PORT, where HEX is the address as the kernel holds it: 32-bit
// words in the host's byte order (one for IPv4, four for IPv6), and PORT is big-endian
// hex.
func parseAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

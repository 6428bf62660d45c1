// Package journal writes log records to the systemd journal in its native protocol, with
// no library and no cgo: each entry is one datagram of KEY=value fields sent to
// /run/systemd/journal/socket, as systemd.journal-fields(7) and the protocol description
// (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/) define it. Handler is a log/slog handler
// that turns every attribute into a field of its own, so that `journalctl FIELD=value`
// finds the entries about one thing (Postern's daemons: POSTERN_QUEUE_ID=<queue ID>).
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SocketPath is where journald takes native-protocol datagrams.
const SocketPath = "/run/systemd/journal/socket"

// Field is one field of a journal entry. Name is made of A-Z, 0-9 and _ and does not
// start with _ (fields starting with _ are journald's own, which it refuses from
// clients).
type Field struct {
	Name, Value string
}

// Append appends the encoding of f to b: NAME=value and a newline, or, when the value
// holds a newline, the binary form the protocol has for it: NAME, a newline, the
// value's length as a 64-bit little-endian integer, the value, a newline.
func Append(b []byte, f Field) []byte {
	b = append(b, f.Name...)
	if !strings.Contains(f.Value, "\n") {
		b = append(b, '=')
		b = append(b, f.Value...)
		return append(b, '\n')
	}
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(f.Value)))
	b = append(b, f.Value...)
	return append(b, '\n')
}

// Encode returns the datagram of an entry made of fields.
func Encode(fields []Field) []byte {
	var b []byte
	for _, f := range fields {
		b = Append(b, f)
	}
	return b
}

// FieldName turns s into a valid field name: upper case, every character outside
// A-Z, 0-9 and _ made _, a leading _ or digit prefixed by X, at most 64 characters.
func FieldName(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '_' || b[0] >= '0' && b[0] <= '9' {
		b = append([]byte("X"), b...)
	}
	return string(b[:min(len(b), 64)])
}

// Conn sends entries to journald. It is an unconnected datagram socket that names the
// journal's socket at every send, so that a journald restarted meanwhile still gets
// them. It is safe for concurrent use.
type Conn struct {
	fd   int
	addr *unix.SockaddrUnix
}

// Dial returns a Conn that sends to the socket at path (SocketPath for the system's
// journal). The socket must exist.
func Dial(path string) (*Conn, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("journal socket: %w", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("journal socket: %w", err)
	}
	return &Conn{fd: fd, addr: &unix.SockaddrUnix{Name: path}}, nil
}

// Send sends one entry. An entry too large for a datagram goes the way the protocol
// provides for it: written into a sealed memfd whose descriptor is sent instead.
func (c *Conn) Send(fields []Field) error {
	b := Encode(fields)
	err := unix.Sendmsg(c.fd, b, nil, c.addr, 0)
	if errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOBUFS) {
		err = c.sendMemfd(b)
	}
	if err != nil {
		return fmt.Errorf("sending to the journal: %w", err)
	}
	return nil
}

func (c *Conn) sendMemfd(b []byte) error {
	fd, err := unix.MemfdCreate("journal-entry", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for p := b; len(p) > 0; {
		n, err := unix.Write(fd, p)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	// journald takes a memfd only if it is sealed: nobody may change it under it.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return err
	}
	return unix.Sendmsg(c.fd, nil, unix.UnixRights(fd), c.addr, 0)
}

// Close closes the socket.
func (c *Conn) Close() error {
	return unix.Close(c.fd)
}

// StderrIsJournal tells whether standard error is connected to the journal, as systemd
// says in JOURNAL_STREAM (the device and inode numbers of the stream it gave the service,
// see systemd.exec(5)) and the descriptor confirms: a program started from a service's
// shell inherits the variable with another standard error.
func StderrIsJournal() bool {
	return isStream(2, os.Getenv("JOURNAL_STREAM"))
}

// isStream tells whether the descriptor fd is the stream stream ("device:inode") names.
func isStream(fd int, stream string) bool {
	dev, ino, ok := strings.Cut(stream, ":")
	if !ok {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false
	}
	return dev == strconv.FormatUint(uint64(st.Dev), 10) && ino == strconv.FormatUint(st.Ino, 10)
}

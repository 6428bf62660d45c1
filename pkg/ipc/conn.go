// Package ipc is the one framing that every Postern socket speaks.
//
// Daemons talk over Unix stream sockets in <spool>/private and <spool>/control. A frame is
// a six-byte header (payload length, big-endian uint32; kind; number of file descriptors)
// followed by the payload. A KindJSON payload is one JSON value; a KindData payload is raw
// bytes of a stream (a message body), ended by an empty KindData frame. File descriptors
// travel with SCM_RIGHTS in the same sendmsg(2) as their frame's header, so message bodies
// move between daemons as descriptors instead of being copied through the socket.
//
// On top of the framing, Call and Server give request/response: a request is a JSON
// object {"op": ..., "body": ...}, a response {"error": ..., "body": ...}. The server side
// learns the peer's uid from SO_PEERCRED and refuses peers it does not trust.
package ipc

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Frame kinds.
const (
	KindJSON = 1
	KindData = 2
)

const (
	headerSize = 6
	// MaxFrame bounds one frame's payload.
	MaxFrame = 16 << 20
	// maxFiles bounds the descriptors one frame may carry.
	maxFiles = 16
	// dataChunk is the size of the KindData frames WriteStream sends.
	dataChunk = 64 << 10
)

// ErrTooLarge is returned for a frame whose payload exceeds MaxFrame.
var ErrTooLarge = errors.New("ipc: frame too large")

// Conn is one end of a framed Unix stream connection. A Conn is not safe for concurrent
// use by several goroutines, except that Close may be called at any time.
type Conn struct {
	uc *net.UnixConn

	rbuf  []byte // buffered bytes not yet consumed: rbuf[rpos:rend]
	rpos  int
	rend  int
	oob   []byte
	files []*os.File // descriptors received and not yet claimed by a frame

	wbuf []byte
	// broken says that a write failed (WriteFrame): the connection must not go back to
	// a pool.
	broken bool
}

// NewConn wraps an established Unix stream connection.
func NewConn(uc *net.UnixConn) *Conn {
	return &Conn{uc: uc, rbuf: make([]byte, 128<<10), oob: make([]byte, unix.CmsgSpace(maxFiles*4))}
}

// Dial connects to the socket at path.
func Dial(path string) (*Conn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", path, err)
	}
	return NewConn(c), nil
}

// Close closes the connection and any received descriptors nobody claimed.
func (c *Conn) Close() error {
	for _, f := range c.files {
		f.Close()
	}
	c.files = nil
	return c.uc.Close()
}

// SetDeadline sets the read and write deadline of the underlying socket.
func (c *Conn) SetDeadline(t time.Time) error { return c.uc.SetDeadline(t) }

// UnixConn returns the underlying socket.
func (c *Conn) UnixConn() *net.UnixConn { return c.uc }

// PeerGone reports, without waiting, whether the other end has closed the connection or
// died: poll(2) reports POLLHUP, which a Unix stream socket gets when its peer is closed
// (not when this end only shut down reading, as Server.Shutdown does). A peer that is
// waiting for an answer is not gone; one that cannot be asked (an error from poll) is
// taken to be there.
func (c *Conn) PeerGone() bool {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd)}} // POLLHUP and POLLERR need not be asked for
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			gone = fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return gone
}

// WriteFrame sends one frame with the given descriptors.
func (c *Conn) WriteFrame(kind byte, payload []byte, files ...*os.File) error {
	if len(payload) > MaxFrame {
		return ErrTooLarge
	}
	if len(files) > maxFiles {
		return fmt.Errorf("ipc: %d descriptors in one frame, at most %d", len(files), maxFiles)
	}
	n := headerSize + len(payload)
	if cap(c.wbuf) < n {
		c.wbuf = make([]byte, n)
	}
	buf := c.wbuf[:n]
	binary.BigEndian.PutUint32(buf, uint32(len(payload)))
	buf[4] = kind
	buf[5] = byte(len(files))
	copy(buf[headerSize:], payload)
	if err := c.write(buf, files); err != nil {
		// Part of the frame may have gone out: the connection must not be used again.
		c.broken = true
		return err
	}
	return nil
}

// write sends the bytes of one frame with its descriptors.
func (c *Conn) write(buf []byte, files []*os.File) error {
	if len(files) == 0 {
		_, err := c.uc.Write(buf)
		return err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	oob := unix.UnixRights(fds...)
	wn, oobn, err := c.uc.WriteMsgUnix(buf, oob, nil)
	if err != nil {
		return err
	}
	if oobn != len(oob) {
		return errors.New("ipc: descriptors not sent")
	}
	if wn < len(buf) {
		_, err = c.uc.Write(buf[wn:])
	}
	return err
}

// fill reads more bytes from the socket, collecting any descriptors that arrive.
func (c *Conn) fill() error {
	if c.rpos > 0 {
		copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		c.rend -= c.rpos
		c.rpos = 0
	}
	if c.rend == len(c.rbuf) {
		nb := make([]byte, 2*len(c.rbuf))
		copy(nb, c.rbuf[:c.rend])
		c.rbuf = nb
	}
	n, oobn, _, _, err := c.uc.ReadMsgUnix(c.rbuf[c.rend:], c.oob)
	if oobn > 0 {
		c.collect(c.oob[:oobn])
	}
	c.rend += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.EOF
	}
	return err
}

func (c *Conn) collect(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			c.files = append(c.files, os.NewFile(uintptr(fd), "ipc"))
		}
	}
}

// ReadFrame reads one frame. The payload is valid until the next call on c; the caller
// owns the returned descriptors.
func (c *Conn) ReadFrame() (kind byte, payload []byte, files []*os.File, err error) {
	for c.rend-c.rpos < headerSize {
		if err := c.fill(); err != nil {
			if err == io.EOF && c.rend > c.rpos {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, nil, err
		}
	}
	h := c.rbuf[c.rpos : c.rpos+headerSize]
	size := int(binary.BigEndian.Uint32(h))
	kind, nfiles := h[4], int(h[5])
	if size > MaxFrame {
		return 0, nil, nil, ErrTooLarge
	}
	if c.rend-c.rpos < headerSize+size && headerSize+size > len(c.rbuf) {
		nb := make([]byte, headerSize+size)
		copy(nb, c.rbuf[c.rpos:c.rend])
		c.rend -= c.rpos
		c.rpos = 0
		c.rbuf = nb
	}
	for c.rend-c.rpos < headerSize+size {
		if err := c.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, nil, err
		}
	}
	// Descriptors arrive with the first byte of their frame, so they are here by now.
	if nfiles > len(c.files) {
		return 0, nil, nil, fmt.Errorf("ipc: frame announces %d descriptors, %d arrived", nfiles, len(c.files))
	}
	if nfiles > 0 {
		files = append([]*os.File(nil), c.files[:nfiles]...)
		c.files = c.files[nfiles:]
	}
	payload = c.rbuf[c.rpos+headerSize : c.rpos+headerSize+size]
	c.rpos += headerSize + size
	return kind, payload, files, nil
}

// Send writes v as a JSON frame.
func (c *Conn) Send(v any, files ...*os.File) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("ipc: encoding: %w", err)
	}
	return c.WriteFrame(KindJSON, b, files...)
}

// Receive reads a JSON frame into v.
func (c *Conn) Receive(v any) ([]*os.File, error) {
	kind, payload, files, err := c.ReadFrame()
	if err != nil {
		return nil, err
	}
	if kind != KindJSON {
		closeFiles(files)
		return nil, fmt.Errorf("ipc: expected a JSON frame, got kind %d", kind)
	}
	if err := json.Unmarshal(payload, v); err != nil {
		closeFiles(files)
		return nil, fmt.Errorf("ipc: decoding: %w", err)
	}
	return files, nil
}

// WriteStream copies r to the connection as KindData frames followed by the empty frame
// that ends the stream. It returns the number of bytes sent. If reading r fails, the
// stream is still ended, and the error is returned: the peer sees a short stream and the
// caller must tell it by other means that it is not complete.
func (c *Conn) WriteStream(r io.Reader) (int64, error) {
	buf := make([]byte, dataChunk)
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := c.WriteFrame(KindData, buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if err := c.WriteFrame(KindData, nil); err != nil {
				return total, err
			}
			return total, rerr
		}
	}
	return total, c.WriteFrame(KindData, nil)
}

// StreamWriter returns a writer whose writes become KindData frames; Close ends the stream
// (it does not close the connection).
func (c *Conn) StreamWriter() io.WriteCloser { return &streamWriter{c: c} }

type streamWriter struct {
	c   *Conn
	err error
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), dataChunk)]
		if err := w.c.WriteFrame(KindData, chunk); err != nil {
			w.err = err
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

func (w *streamWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	w.err = errors.New("ipc: stream closed")
	return w.c.WriteFrame(KindData, nil)
}

// StreamReader returns a reader of the KindData frames that follow, up to the empty frame
// that ends the stream, where it returns io.EOF. The caller must read it to its end before
// using the connection for anything else.
func (c *Conn) StreamReader() io.Reader { return &streamReader{c: c} }

type streamReader struct {
	c    *Conn
	cur  []byte
	done bool
}

func (r *streamReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.done {
			return 0, io.EOF
		}
		kind, payload, files, err := r.c.ReadFrame()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		closeFiles(files)
		if kind != KindData {
			return 0, fmt.Errorf("ipc: expected a data frame, got kind %d", kind)
		}
		if len(payload) == 0 {
			r.done = true
			return 0, io.EOF
		}
		r.cur = payload
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Cred is the identity of the process at the other end of a socket.
type Cred struct {
	PID int
	UID int
	GID int
}

// Peer returns the credentials of the peer process (SO_PEERCRED).
func (c *Conn) Peer() (Cred, error) { return PeerCred(c.uc) }

// PeerCred returns the credentials of the process at the other end of uc.
func PeerCred(uc *net.UnixConn) (Cred, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return Cred{}, err
	}
	var cred *unix.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return Cred{}, fmt.Errorf("reading peer credentials: %w", err)
	}
	return Cred{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// CloseFiles closes every descriptor in files; handy for deferred cleanup.
func CloseFiles(files []*os.File) { closeFiles(files) }

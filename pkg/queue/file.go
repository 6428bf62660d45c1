// Package queue is the on-disk mail queue: the spool directories, queue IDs, and the
// format of a queue file.
//
// # Spool
//
// <spool>/incoming, active, deferred, hold and corrupt hold one file per message, named by
// its queue ID. A file changes state only by rename(2) between these directories; cleanup
// writes into incoming/, and qmgr alone moves files out of it.
//
// # Queue file format, version 1
//
// A queue file has three parts:
//
//	postern-queue 1 BBBBBBBBBBBB SSSSSSSSSSSS\n   header line, fixed width (42 bytes)
//	{"id":...,"from":...,"rcpt":[...],...}\n        the envelope, one JSON object
//	<message>                                       the message, CRLF lines, as delivered
//	{"rcpt":0,"action":"delivered",...}\n           status records, appended by qmgr
//
// B is the byte offset of the message and S its length, both decimal, zero-padded; the
// writer fills them in last. The owner-execute bit of the file mode marks a complete file
// (as in Postfix): cleanup sets it after the whole message is written, right before it
// fsyncs the file and acknowledges. A file without it is an interrupted write and never
// leaves incoming/.
//
// The writer holds an exclusive flock(2) on the file from its creation until it is
// complete. A file without the bit whose lock nobody holds was left by a writer that died
// (its client never got a 250): RemoveAbandoned removes it, taking the lock first, and a
// writer that finds its new file unlinked under it gives up.
//
// Status records are JSON lines appended with O_APPEND and fsynced. A reader takes the
// last record per recipient; a torn last line (a crash mid-append) is ignored. Unknown
// envelope and record fields are ignored, so later versions can add fields; a change that
// an older reader would misunderstand bumps the version number in the header line.
package queue

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"postern/pkg/dirsync"
)

// Version is the queue file format this package writes.
const Version = 1

const (
	magic       = "postern-queue "
	headerLen   = len(magic) + 1 + 1 + 12 + 1 + 12 + 1 // "postern-queue 1 " + 2 fields + "\n"
	completeBit = 0o100
)

// ErrIncomplete is returned by Open for a file that cleanup has not finished.
var ErrIncomplete = errors.New("queue file incomplete")

// Envelope is what the queue knows about a message besides its content.
type Envelope struct {
	ID string `json:"id"`
	// From is the envelope sender (MAIL FROM); empty for the null reverse-path <>.
	From       string      `json:"from"`
	Recipients []Recipient `json:"rcpt"`
	Arrival    time.Time   `json:"arrival"`
	// Size is the length of the message in the file.
	Size int64 `json:"size"`

	// How the message arrived, for logs, trace headers and bounces.
	ClientAddr string `json:"client_addr,omitempty"`
	ClientName string `json:"client_name,omitempty"`
	Helo       string `json:"helo,omitempty"`
	Protocol   string `json:"protocol,omitempty"`
	AuthUser   string `json:"auth_user,omitempty"`
	// Local marks a message a local user handed to sendmail(1) (<spool>/public/cleanup);
	// LocalUID is that user's uid, as the kernel told cleanup (SO_PEERCRED).
	Local    bool `json:"local,omitempty"`
	LocalUID int  `json:"local_uid,omitempty"`

	// BodyType is 7BIT or 8BITMIME (RFC 6152); SMTPUTF8 records RFC 6531's parameter.
	BodyType string `json:"body_type,omitempty"`
	SMTPUTF8 bool   `json:"smtputf8,omitempty"`
	// EnvID and Ret are the DSN parameters of MAIL FROM (RFC 3461 §4.3, §4.4).
	EnvID string `json:"envid,omitempty"`
	Ret   string `json:"ret,omitempty"`
	// Bounce marks a delivery status notification made by Postern itself.
	Bounce bool `json:"bounce,omitempty"`
	// Spam is spamd's junk verdict: local files the message into Junk.
	Spam bool `json:"spam,omitempty"`
}

// Recipient is one envelope recipient.
type Recipient struct {
	// Addr is the address to deliver to, after alias expansion.
	Addr string `json:"addr"`
	// ORcpt is the address as the client gave it, when expansion changed it.
	ORcpt string `json:"orcpt,omitempty"`
	// Notify is RFC 3461's NOTIFY parameter (comma-separated), empty for the default.
	Notify string `json:"notify,omitempty"`
	// Spam files this recipient's copy into Junk (the recipient's own block list, or
	// spamd's junk verdict when another recipient's allow list keeps theirs out);
	// Envelope.Spam does it for every recipient.
	Spam bool `json:"spam,omitempty"`
	// Forward says this host forwards the message to Addr on its recipient's behalf:
	// an alias that leads there, a Sieve redirect, the bounce to an SRS address. Sent
	// to another host, it goes from the SRS form of the envelope sender (pkg/srs), so
	// that it passes SPF there.
	Forward bool `json:"forward,omitempty"`
}

// Original returns the address the client gave for this recipient.
func (r Recipient) Original() string {
	if r.ORcpt != "" {
		return r.ORcpt
	}
	return r.Addr
}

// Action values of a Status, after RFC 3464 §2.3.3.
const (
	Delivered = "delivered"
	Failed    = "failed"
	Delayed   = "delayed"
)

// Status is one record of the status log: the outcome of one delivery attempt to one
// recipient (Rcpt >= 0), or a message-level record (Rcpt < 0) saying when to try again.
type Status struct {
	Rcpt   int       `json:"rcpt"`
	Action string    `json:"action,omitempty"`
	Code   string    `json:"code,omitempty"` // enhanced status code, e.g. 5.1.1
	Reason string    `json:"reason,omitempty"`
	Relay  string    `json:"relay,omitempty"`
	At     time.Time `json:"at"`
	// Next and Attempts belong to message-level records.
	Next     time.Time `json:"next,omitzero"`
	Attempts int       `json:"attempts,omitempty"`
	// Warned records that a delay warning was sent (message-level).
	Warned bool `json:"warned,omitempty"`
	// Bounced records that the DSN for the failed recipients was queued (message-level).
	Bounced bool `json:"bounced,omitempty"`
}

// Writer writes a new queue file. Call Commit to make it durable and complete, or Abort.
type Writer struct {
	f       *os.File
	dir     string
	path    string
	env     *Envelope
	bodyOff int64
	size    int64
	bw      *bufio.Writer
	done    bool
	// reserved is the room Reserve left in front of the message; prefix what Prepend
	// puts there at Commit.
	reserved int
	prefix   []byte
	// rewrite is the envelope Rewrite asked for, written at Commit.
	rewrite []byte
}

// Create starts a queue file for env in dir (normally <spool>/incoming). env.ID must be
// set, usually from NewID.
func Create(dir string, env *Envelope) (*Writer, error) {
	path := filepath.Join(dir, env.ID)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating queue file: %w", err)
	}
	if err := lockNew(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("creating queue file %s: %w", env.ID, err)
	}
	w := &Writer{f: f, dir: dir, path: path, env: env, bw: bufio.NewWriterSize(f, 64<<10)}
	if err := w.start(); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

func (w *Writer) start() error {
	env, err := json.Marshal(w.env)
	if err != nil {
		return fmt.Errorf("encoding envelope: %w", err)
	}
	w.bw.WriteString(header(0, 0))
	w.bw.Write(env)
	w.bw.WriteByte('\n')
	w.bodyOff = int64(headerLen + len(env) + 1)
	return nil
}

func header(off, size int64) string {
	return fmt.Sprintf("%s%d %012d %012d\n", magic, Version, off, size)
}

// Write appends message content.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.bw.Write(p)
	w.size += int64(n)
	if err != nil {
		err = fmt.Errorf("writing queue file: %w", err)
	}
	return n, err
}

// ReadFrom appends message content from r.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	n, err := w.bw.ReadFrom(r)
	w.size += n
	return n, err
}

// Reserve leaves room for up to n octets in front of the message, which Prepend fills
// at Commit: header fields that can only be computed once the whole message went by,
// such as cleanup's DKIM signatures, without a second copy of the message. Call it
// before the first Write. The room that stays unused is whitespace after the envelope's
// JSON, which readers skip (so the format is unchanged).
func (w *Writer) Reserve(n int) error {
	if w.size > 0 || w.reserved > 0 || n < 1 {
		return errors.New("queue: Reserve must come once, before the message")
	}
	pad := bytes.Repeat([]byte{' '}, n)
	pad[n-1] = '\n'
	if _, err := w.bw.Write(pad); err != nil {
		return fmt.Errorf("writing queue file: %w", err)
	}
	w.bodyOff += int64(n)
	w.reserved = n
	return nil
}

// Prepend sets what goes in front of the message at Commit, within the room Reserve
// left. The message then starts with p.
func (w *Writer) Prepend(p []byte) error {
	if len(p) > w.reserved {
		return fmt.Errorf("queue: %d octets to prepend, room for %d", len(p), w.reserved)
	}
	w.prefix = append([]byte(nil), p...)
	return nil
}

// Rewrite replaces the envelope at Commit, with what was learnt while the message was
// written (spamd's verdict). Its JSON may be longer than the first one by the room that
// Reserve left and Prepend does not use.
func (w *Writer) Rewrite(env *Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encoding envelope: %w", err)
	}
	w.rewrite = b
	return nil
}

// Flush writes what is buffered into the file, so that a reader of the file (spamd,
// through a descriptor) sees the message written so far.
func (w *Writer) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("writing queue file: %w", err)
	}
	return nil
}

// BodyOffset is where the message starts in the file, as long as nothing is prepended.
func (w *Writer) BodyOffset() int64 { return w.bodyOff }

// Path is the file being written.
func (w *Writer) Path() string { return w.path }

// Size is the message length written so far.
func (w *Writer) Size() int64 { return w.size }

// Commit finishes the file: it records the message's offset and size, fsyncs its
// directory, marks the file complete and fsyncs it. Only after Commit returns nil may
// the message be acknowledged, and the caller should do so at once: from the moment the
// file is marked complete qmgr delivers it, so a writer killed before its answer leaves a
// message queued whose client was told it failed (and sends it again). That is why the
// directory's fsync comes before the mark: between the mark and the answer there is only
// the file's fsync.
func (w *Writer) Commit() error { return w.CommitFor(nil) }

// ErrNobodyWaits is the error of CommitFor when nobody waits for the answer any more.
var ErrNobodyWaits = errors.New("nobody waits for the answer")

// CommitFor is Commit for an answer that someone waits for: right before the file is
// marked complete it asks gone, and if gone says that the one waiting has gone (the
// client's connection was lost, smtpd died), it aborts the file and returns an error
// satisfying errors.Is(err, ErrNobodyWaits). A message queued then would be one whose
// client was told it failed, and which it sends again. gone may be nil.
func (w *Writer) CommitFor(gone func() bool) error {
	if w.done {
		return errors.New("queue file already finished")
	}
	w.done = true
	err := w.bw.Flush()
	if err == nil && len(w.prefix) > 0 {
		w.bodyOff -= int64(len(w.prefix))
		w.size += int64(len(w.prefix))
		_, err = w.f.WriteAt(w.prefix, w.bodyOff)
	}
	if err == nil && w.rewrite != nil {
		// The envelope and the blanks after it fill the room up to the message.
		room := int(w.bodyOff) - headerLen
		if len(w.rewrite)+1 > room {
			err = fmt.Errorf("new envelope of %d octets does not fit in %d", len(w.rewrite), room)
		} else {
			env := append(w.rewrite, bytes.Repeat([]byte{' '}, room-len(w.rewrite))...)
			env[room-1] = '\n'
			_, err = w.f.WriteAt(env, int64(headerLen))
		}
	}
	if err == nil {
		_, err = w.f.WriteAt([]byte(header(w.bodyOff, w.size)), 0)
	}
	if err == nil {
		// The file's name has been in the directory since Create.
		err = SyncDir(w.dir)
	}
	if err == nil && gone != nil && gone() {
		err = ErrNobodyWaits
	}
	if err == nil {
		err = w.f.Chmod(0o600 | completeBit)
	}
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(w.path)
		return fmt.Errorf("committing queue file %s: %w", w.env.ID, err)
	}
	return nil
}

// lockNew takes the writer's lock on a file just created, and checks that it is still
// linked: RemoveAbandoned, in qmgr, may have found it unlocked between the creation and
// the lock and removed it (it removes only what it holds the lock of).
func lockNew(f *os.File) error {
	fd := int(f.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("locking: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("locking: %w", err)
	}
	if st.Nlink == 0 {
		return errors.New("removed as abandoned right after its creation")
	}
	return nil
}

// RemoveAbandoned removes the file at path if it is an incomplete queue file (without the
// owner-execute bit) older than minAge whose writer is gone: nobody holds its lock. It
// reports whether it removed the file. Whatever such a file holds was never
// acknowledged. A file being written, complete, or gone is left alone.
func RemoveAbandoned(path string, minAge time.Duration) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("checking queue file %s: %w", path, err)
	}
	defer f.Close()
	incomplete := func() (bool, error) {
		st, err := f.Stat()
		if err != nil {
			return false, fmt.Errorf("checking queue file %s: %w", path, err)
		}
		return st.Mode().Perm()&completeBit == 0 && time.Since(st.ModTime()) >= minAge, nil
	}
	if ok, err := incomplete(); !ok || err != nil {
		return false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, nil // its writer is alive
		}
		return false, fmt.Errorf("locking queue file %s: %w", path, err)
	}
	// Look again under the lock: a writer that completed the file just before
	// releasing it left it complete, and that is final.
	if ok, err := incomplete(); !ok || err != nil {
		return false, err
	}
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("removing abandoned queue file: %w", err)
	}
	return true, nil
}

// Abort removes the unfinished file.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.path)
}

// File is an open, complete queue file.
type File struct {
	Path     string
	Envelope Envelope
	// Statuses is the status log in order of writing.
	Statuses []Status

	f       *os.File // read-only
	w       *os.File // writable, opened by the first Append
	bodyOff int64
	size    int64
	// tail is the offset just past the last complete status record.
	tail int64
}

// Open reads the queue file at path. The file stays open until Close, so that the message
// can be read and status records appended. The descriptor OSFile returns is read-only,
// so it can be handed to a delivery agent as it is; Append opens a writable one when a
// status is first recorded, which most messages, delivered at the first attempt, never
// need.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening queue file: %w", err)
	}
	qf, err := read(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return qf, nil
}

func read(path string, f *os.File) (*File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("queue file %s: %w", path, err)
	}
	if st.Mode().Perm()&completeBit == 0 {
		return nil, fmt.Errorf("queue file %s: %w", path, ErrIncomplete)
	}
	hdr := make([]byte, headerLen)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, fmt.Errorf("queue file %s: reading header: %w", path, err)
	}
	off, size, err := parseHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("queue file %s: %w", path, err)
	}
	if off+size > st.Size() || off <= int64(headerLen) {
		return nil, fmt.Errorf("queue file %s: message at %d+%d past end of file (%d)", path, off, size, st.Size())
	}
	envb := make([]byte, off-int64(headerLen))
	if _, err := io.ReadFull(f, envb); err != nil {
		return nil, fmt.Errorf("queue file %s: reading envelope: %w", path, err)
	}
	qf := &File{Path: path, f: f, bodyOff: off, size: size}
	if err := json.Unmarshal(envb, &qf.Envelope); err != nil {
		return nil, fmt.Errorf("queue file %s: decoding envelope: %w", path, err)
	}
	tail := make([]byte, st.Size()-off-size)
	if _, err := f.ReadAt(tail, off+size); err != nil && err != io.EOF {
		return nil, fmt.Errorf("queue file %s: reading status log: %w", path, err)
	}
	qf.tail = off + size
	for len(tail) > 0 {
		i := bytes.IndexByte(tail, '\n')
		if i < 0 {
			break // a torn record: the crash happened before its fsync
		}
		var s Status
		if err := json.Unmarshal(tail[:i], &s); err != nil {
			break
		}
		qf.Statuses = append(qf.Statuses, s)
		qf.tail += int64(i + 1)
		tail = tail[i+1:]
	}
	return qf, nil
}

func parseHeader(h []byte) (off, size int64, err error) {
	if !bytes.HasPrefix(h, []byte(magic)) || h[len(h)-1] != '\n' {
		return 0, 0, errors.New("not a queue file")
	}
	f := bytes.Fields(h[len(magic):])
	if len(f) != 3 {
		return 0, 0, errors.New("bad header line")
	}
	if v, err := strconv.Atoi(string(f[0])); err != nil || v != Version {
		return 0, 0, fmt.Errorf("unsupported queue file version %q", f[0])
	}
	off, err1 := strconv.ParseInt(string(f[1]), 10, 64)
	size, err2 := strconv.ParseInt(string(f[2]), 10, 64)
	if err1 != nil || err2 != nil || off < 0 || size < 0 {
		return 0, 0, errors.New("bad header line")
	}
	return off, size, nil
}

// Close closes the file.
func (qf *File) Close() error {
	if qf.w != nil {
		qf.w.Close()
	}
	return qf.f.Close()
}

// writable returns a writable descriptor of the file, opening it on first use. It must
// be the same file as the read-only one: a queue file renamed away and another put in
// its place would otherwise receive records that are not its own.
func (qf *File) writable() (*os.File, error) {
	if qf.w != nil {
		return qf.w, nil
	}
	w, err := os.OpenFile(qf.Path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	st1, err1 := qf.f.Stat()
	st2, err2 := w.Stat()
	if err1 != nil || err2 != nil || !os.SameFile(st1, st2) {
		w.Close()
		return nil, fmt.Errorf("%s is no longer the queue file that was opened", qf.Path)
	}
	qf.w = w
	return w, nil
}

// OSFile returns the open file, read-only, for passing to a delivery agent.
func (qf *File) OSFile() *os.File { return qf.f }

// BodyOffset and BodySize locate the message within the file.
func (qf *File) BodyOffset() int64 { return qf.bodyOff }

// BodySize is the length of the message.
func (qf *File) BodySize() int64 { return qf.size }

// Body returns a reader of the message.
func (qf *File) Body() *io.SectionReader { return io.NewSectionReader(qf.f, qf.bodyOff, qf.size) }

// Append writes status records to the log and fsyncs them.
func (qf *File) Append(recs ...Status) error {
	var buf bytes.Buffer
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encoding status record: %w", err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	// Write at the end of the last good record, overwriting a torn one if a crash left it.
	w, err := qf.writable()
	if err != nil {
		return fmt.Errorf("appending to queue file %s: %w", qf.Envelope.ID, err)
	}
	if _, err := w.WriteAt(buf.Bytes(), qf.tail); err != nil {
		return fmt.Errorf("appending to queue file %s: %w", qf.Envelope.ID, err)
	}
	if err := w.Truncate(qf.tail + int64(buf.Len())); err != nil {
		return fmt.Errorf("appending to queue file %s: %w", qf.Envelope.ID, err)
	}
	if err := w.Sync(); err != nil {
		return fmt.Errorf("syncing queue file %s: %w", qf.Envelope.ID, err)
	}
	qf.tail += int64(buf.Len())
	qf.Statuses = append(qf.Statuses, recs...)
	return nil
}

// Last returns the latest record for recipient i, if any.
func (qf *File) Last(i int) (Status, bool) {
	for j := len(qf.Statuses) - 1; j >= 0; j-- {
		if qf.Statuses[j].Rcpt == i {
			return qf.Statuses[j], true
		}
	}
	return Status{}, false
}

// Done reports whether recipient i needs no more delivery attempts: it was delivered, or
// it failed for good.
func (qf *File) Done(i int) bool {
	s, ok := qf.Last(i)
	return ok && (s.Action == Delivered || s.Action == Failed)
}

// Schedule returns the latest message-level record (zero if none).
func (qf *File) Schedule() Status {
	var last Status
	for _, s := range qf.Statuses {
		if s.Rcpt < 0 {
			last = s
		}
	}
	return last
}

// SyncDir fsyncs a directory, making renames and new entries in it durable. Concurrent
// callers share one fsync (see pkg/dirsync): cleanup commits many queue files at once.
func SyncDir(dir string) error { return dirsync.Sync(dir) }

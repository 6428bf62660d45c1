package maildir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Deliver writes the message read from r into the Maildir folder dir (a mailbox root for
// the INBOX, or a folder path from FolderPath) and returns the path of the new file in
// new/ and its size. See DeliverWithPrefix.
func Deliver(dir string, r io.Reader) (path string, size int64, err error) {
	return DeliverWithPrefix(dir, nil, r)
}

// DeliverWithPrefix writes prefix followed by the message read from r into the Maildir
// folder dir, the way the Maildir protocol requires:
//
//  1. create tmp/<unique> with O_EXCL, mode 0600 (a name taken already is retried);
//  2. copy prefix and r into it through a pooled buffer (the message is never held in
//     memory whole) and fsync it;
//  3. rename it to new/<unique>,S=<size> and fsync new/.
//
// The bytes are stored exactly as given. S= is Dovecot's physical size field; since the
// queue keeps messages with CRLF line endings, it is also the RFC822.SIZE an IMAP client
// sees. (No ",W=" virtual size is written: a message with a stray bare LF would make it
// wrong, and Dovecot trusts it.)
// prefix carries the header lines the delivery agent adds in front of the queued message
// (Return-Path:, Delivered-To:); it may be nil.
//
// Once DeliverWithPrefix returns nil the message is durable. On any error the file is
// removed from tmp/ (and from new/ if only the final directory fsync failed, so that a
// retried delivery does not leave two copies) and the error says which step failed; an
// error from r is wrapped as is. A folder without tmp/ gives an error satisfying
// errors.Is(err, fs.ErrNotExist); the caller may then Create the mailbox and retry.
func DeliverWithPrefix(dir string, prefix []byte, r io.Reader) (path string, size int64, err error) {
	return deliverAs(dir, "", prefix, r, "", time.Time{}, nil)
}

// DeliverNamed is DeliverWithPrefix with the name in new/ chosen by the caller: the file
// becomes new/<base>,S=<size>, base normally made by StableName. A delivery repeated
// after a crash then gives its message the name the first one gave it, which Find looks
// for, and a repetition that runs at the same time as the first replaces its file in
// new/ (rename(2) is atomic) instead of adding a second one. The file in tmp/ keeps a
// unique name, so two such deliveries never write into the same file.
func DeliverNamed(dir, base string, prefix []byte, r io.Reader) (path string, size int64, err error) {
	return DeliverNamedKeywords(dir, base, "", nil, prefix, r)
}

// Import is Deliver for a message brought from elsewhere (mailctl import): its file in
// new/ carries the Maildir flags info (system flag letters, such as "FS") after ":2,"
// and the modification time date (its IMAP internal date; zero: now), which imapd
// keeps when it takes the file into cur/.
func Import(dir string, r io.Reader, info string, date time.Time) (path string, size int64, err error) {
	for _, c := range info {
		if !strings.ContainsRune("DFPRST", c) {
			return "", 0, fmt.Errorf("maildir: importing to %s: bad flag %q", dir, c)
		}
	}
	return deliverAs(dir, "", nil, r, info, date, nil)
}

// DeliverNamedKeywords is DeliverNamed for a message that arrives with flags (a Sieve
// script's imap4flags, RFC 5232): the file becomes new/<base>,S=<size>:2,<flags>, the
// info part of the Maildir protocol, which imapd reads when it takes the file. flags
// are the Maildir letters of system flags (D, F, R, S, T) in ASCII order (FlagLetters).
// The IMAP keywords go into new/ in the message's keywords file (see KeywordsPath)
// before the message, for imapd to take with it.
func DeliverNamedKeywords(dir, base, flags string, keywords []string, prefix []byte, r io.Reader) (path string, size int64, err error) {
	if base == "" || strings.ContainsAny(base, "/:,") || base[0] == '.' {
		return "", 0, fmt.Errorf("maildir: delivering to %s: bad file name %q", dir, base)
	}
	for i := 0; i < len(flags); i++ {
		if strings.IndexByte("DFRST", flags[i]) < 0 || i > 0 && flags[i] <= flags[i-1] {
			return "", 0, fmt.Errorf("maildir: delivering to %s: bad flags %q", dir, flags)
		}
	}
	return deliverAs(dir, base, prefix, r, flags, time.Time{}, keywords)
}

// deliverAs is DeliverWithPrefix, DeliverNamedKeywords and Import: base "" names the
// file in new/ after its unique name in tmp/; kws (with a base only) are written to
// the keywords file first.
func deliverAs(dir, base string, prefix []byte, r io.Reader, info string, mtime time.Time, kws []string) (path string, size int64, err error) {
	var nameBuf [160]byte
	var name []byte
	var tmp string
	var f *os.File
	for attempt := 0; ; attempt++ {
		name = appendUniqueName(nameBuf[:0], time.Now())
		tmp = filepath.Join(dir, "tmp", string(name))
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt == 2 {
			return "", 0, fmt.Errorf("maildir: delivering to %s: %w", dir, err)
		}
	}

	size, err = writeMessage(f, prefix, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil && !mtime.IsZero() {
		err = os.Chtimes(tmp, mtime, mtime)
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("maildir: delivering to %s: %w", dir, err)
	}

	var kwPath string
	if len(kws) > 0 && base != "" {
		if kwPath, err = writeKeywords(dir, base, string(name), kws); err != nil {
			os.Remove(tmp)
			return "", 0, fmt.Errorf("maildir: delivering to %s: %w", dir, err)
		}
	}
	if base != "" {
		name = append(name[:0], base...)
	}
	name = append(name, ",S="...)
	name = strconv.AppendInt(name, size, 10)
	if info != "" {
		name = append(name, ":2,"...)
		name = append(name, info...)
	}
	newDir := filepath.Join(dir, "new")
	final := filepath.Join(newDir, string(name))
	// rename(2) itself: os.Rename would lstat(2) the target first (to refuse a
	// directory, which the kernel refuses anyway), one system call more per message.
	if err := unix.Rename(tmp, final); err != nil {
		err = &os.LinkError{Op: "rename", Old: tmp, New: final, Err: err}
		os.Remove(tmp)
		if kwPath != "" {
			os.Remove(kwPath)
		}
		return "", 0, fmt.Errorf("maildir: delivering to %s: %w", dir, err)
	}
	// One fsync of new/ makes both entries durable, the keywords file's included.
	if err := syncDir(newDir); err != nil {
		os.Remove(final)
		if kwPath != "" {
			os.Remove(kwPath)
		}
		return "", 0, fmt.Errorf("maildir: delivering to %s: %w", dir, err)
	}
	return final, size, nil
}

// StableName returns the base name of a message file that is the same every time the
// same delivery is made, for DeliverNamed and Find:
//
//	<seconds>.<tag>.<hostname>
//
// t is when the message arrived (its queue ID says) and tag names the delivery, unique
// on this host: local uses Q<queue ID>R<recipient index>. The name has the form of the
// Maildir protocol's (https://cr.yp.to/proto/maildir.html), time first so that readers
// that sort by it see the mail in order of arrival. tag must consist of ASCII letters
// and digits.
func StableName(t time.Time, tag string) string {
	b := strconv.AppendInt(make([]byte, 0, 24+len(tag)+len(hostname())), t.Unix(), 10)
	b = append(b, '.')
	b = append(b, tag...)
	b = append(b, '.')
	return string(append(b, hostname()...))
}

// Find looks in the folder dir for the message file whose base name is base: in new/
// as DeliverNamed left it (base followed by ",S=<size>"), or in cur/, where a reader such
// as imapd moved it keeping the base name and adding fields or the ":2,<flags>" info.
// It returns the file's path, or an error satisfying errors.Is(err, fs.ErrNotExist)
// when there is none. It reads cur/ whole: it is for a delivery that may have been made
// before, not for every one.
func Find(dir, base string) (string, error) {
	for _, sub := range []string{"new", "cur"} {
		d := filepath.Join(dir, sub)
		names, err := readDirNames(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("maildir: looking for %s in %s: %w", base, d, err)
		}
		for _, n := range names {
			if hasBase(n, base) {
				return filepath.Join(d, n), nil
			}
		}
	}
	return "", fmt.Errorf("maildir: looking for %s in %s: %w", base, dir, fs.ErrNotExist)
}

// hasBase reports whether the file name n has the base name base: base followed by
// nothing, a "," field or the ":" info.
func hasBase(n, base string) bool {
	return strings.HasPrefix(n, base) && (len(n) == len(base) || n[len(base)] == ',' || n[len(base)] == ':')
}

// bufSize is the copy buffer: large enough that a typical message takes one write(2).
const bufSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// readError marks an error returned by the message reader, as opposed to the file.
type readError struct{ err error }

func (e readError) Error() string { return "reading message: " + e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// writeMessage writes prefix and then all of r to w and returns the bytes written. The
// prefix shares the first write with the start of the message.
func writeMessage(w io.Writer, prefix []byte, r io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp

	var total int64
	n := 0
	if len(prefix) < len(buf) {
		n = copy(buf, prefix)
	} else {
		m, err := w.Write(prefix)
		total += int64(m)
		if err != nil {
			return total, err
		}
	}
	for {
		m, rerr := io.ReadFull(r, buf[n:])
		n += m
		if n > 0 {
			m, err := w.Write(buf[:n])
			total += int64(m)
			if err != nil {
				return total, err
			}
			n = 0
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return total, nil
		case rerr != nil:
			return total, readError{rerr}
		}
	}
}

// Unique names.
var (
	pid        = os.Getpid()
	deliveries atomic.Uint64
	hostOnce   sync.Once
	hostPart   string
)

// hostname returns this host's name as it appears in file names. The Maildir spec
// replaces "/" by \057 and ":" by \072 (":" starts the info part of a name); "," is
// replaced by \054 too, because Dovecot reads ",S=" and ",W=" fields from the name.
func hostname() string {
	hostOnce.Do(func() {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		hostPart = strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`).Replace(h)
	})
	return hostPart
}

// UniqueName returns a new file name for a message, unique on this host:
//
//	<seconds>.M<microseconds>P<pid>Q<counter>R<random>.<hostname>
//
// after https://cr.yp.to/proto/maildir.html: seconds and microseconds of the current
// time, the process ID, the number of names this process made so far, 64 random bits in
// hex, and the hostname. Deliver uses it; imapd needs it for APPEND.
func UniqueName() string {
	var b [160]byte
	return string(appendUniqueName(b[:0], time.Now()))
}

func appendUniqueName(b []byte, now time.Time) []byte {
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, ".M"...)
	b = strconv.AppendInt(b, int64(now.Nanosecond()/1000), 10)
	b = append(b, 'P')
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, 'Q')
	b = strconv.AppendUint(b, deliveries.Add(1), 10)
	b = append(b, 'R')
	const hex = "0123456789abcdef"
	x := rand.Uint64()
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hex[(x>>uint(i))&0xf])
	}
	b = append(b, '.')
	return append(b, hostname()...)
}

// NameSize returns the size recorded in a message file name by a ",S=<size>" field (as
// Deliver, Dovecot and Courier write it), ignoring the directory part and any ":2,<flags>"
// info. ok is false when the name has no well-formed S= field.
func NameSize(name string) (size int64, ok bool) {
	name = filepath.Base(name)
	i := strings.Index(name, ",S=")
	if i < 0 {
		return 0, false
	}
	s := name[i+3:]
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == 0 || (end < len(s) && s[end] != ',' && s[end] != ':') {
		return 0, false
	}
	size, err := strconv.ParseInt(s[:end], 10, 64)
	if err != nil {
		return 0, false
	}
	return size, true
}

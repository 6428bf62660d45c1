package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Maildir++ quota, as in https://www.courier-mta.org/imap/README.maildirquota.html and
// Dovecot's "maildir" quota backend, which reads and writes the same file.
//
// root/maildirsize is a cache of the mailbox's usage. Its first line is the quota
// definition ("<bytes>S", "<count>C" or both, comma-separated; 0 means no limit). Every
// further line is "<bytes> <count>": the first such line is the total at the last
// recalculation, later ones are changes appended by whoever added or removed messages
// (negative when removing). The usage is the sum of those lines. The quota is soft: two
// concurrent deliveries may both pass the check, which the spec accepts.
const (
	quotaFile = "maildirsize"
	// maxQuotaFileSize: a larger maildirsize is recalculated and rewritten (Maildir++).
	maxQuotaFileSize = 5120
	// staleAge: an over-quota total is trusted only from a file younger than this.
	staleAge = 15 * time.Minute
)

// Quota is a Maildir++ quota definition. A zero (or negative) limit means no limit.
type Quota struct {
	Bytes int64 // storage limit in bytes, "S" in maildirsize
	Count int64 // message limit, "C" in maildirsize
}

// String returns the quota definition as written in the first line of maildirsize, in
// the form Dovecot writes it: "<bytes>S", ",<count>C" appended when there is a message
// limit, and "0S" when there is no limit at all.
func (q Quota) String() string {
	q = q.norm()
	var b []byte
	if q.Bytes != 0 || q.Count == 0 {
		b = strconv.AppendInt(b, q.Bytes, 10)
		b = append(b, 'S')
	}
	if q.Count != 0 {
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, q.Count, 10)
		b = append(b, 'C')
	}
	return string(b)
}

// Exceeded reports whether a usage of bytes and count messages is over the quota. To
// check a delivery, pass the current usage plus the new message: Exceeded(b+size, n+1).
func (q Quota) Exceeded(bytes, count int64) bool {
	return (q.Bytes > 0 && bytes > q.Bytes) || (q.Count > 0 && count > q.Count)
}

func (q Quota) norm() Quota {
	return Quota{Bytes: max(q.Bytes, 0), Count: max(q.Count, 0)}
}

// Usage returns the bytes and messages stored in the mailbox at root, all folders
// included, from its maildirsize file. It recalculates (see Recalculate) and rewrites the
// file when the file is missing, unreadable as maildirsize, larger than 5120 bytes, or
// defines a quota other than q; and, when the total is over q, unless the file is a
// fresh recalculation (a single usage line, less than 15 minutes old), as the Maildir++
// spec and Dovecot do. A mailbox root that does not exist gives an error satisfying
// errors.Is(err, fs.ErrNotExist).
func Usage(root string, q Quota) (bytes, count int64, err error) {
	q = q.norm()
	bytes, count, ok, err := readUsage(root, q)
	if err != nil {
		return 0, 0, fmt.Errorf("maildir: reading quota of %s: %w", root, err)
	}
	if ok {
		return bytes, count, nil
	}
	return Recalculate(root, q)
}

// readUsage reads maildirsize; ok is false when it must be recalculated.
func readUsage(root string, q Quota) (bytes, count int64, ok bool, err error) {
	f, err := os.Open(filepath.Join(root, quotaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	defer f.Close()

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := (*bp)[:maxQuotaFileSize+1]
	n, err := io.ReadFull(f, buf)
	switch {
	case err == nil:
		return 0, 0, false, nil // larger than maxQuotaFileSize
	case err != io.EOF && err != io.ErrUnexpectedEOF:
		return 0, 0, false, err
	}
	m, ok := parseMaildirsize(buf[:n])
	if !ok || m.quota != q {
		return 0, 0, false, nil
	}
	if q.Exceeded(m.bytes, m.count) {
		if m.lines > 1 {
			return 0, 0, false, nil
		}
		fi, err := f.Stat()
		if err != nil || time.Since(fi.ModTime()) > staleAge {
			return 0, 0, false, nil
		}
	}
	return m.bytes, m.count, true, nil
}

// maildirsize is a parsed maildirsize file.
type maildirsize struct {
	quota        Quota
	bytes, count int64 // sums of the usage lines
	lines        int   // number of usage lines
}

// parseMaildirsize parses the content of a maildirsize file. ok is false when the file is
// unusable and must be recalculated: no header, no usage line, a malformed line, a NUL
// byte, a sum that overflows or is negative. A last line without its newline is a write
// in progress (or torn by a crash) and is ignored, as Dovecot does.
func parseMaildirsize(data []byte) (m maildirsize, ok bool) {
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return m, false
	}
	data = data[:end]
	if bytes.IndexByte(data, 0) >= 0 {
		return m, false
	}
	header, rest, found := bytes.Cut(data, []byte{'\n'})
	if !found {
		return m, false // no usage line
	}
	if m.quota, ok = parseQuota(string(header)); !ok {
		return m, false
	}
	for _, line := range bytes.Split(rest, []byte{'\n'}) {
		f := bytes.Fields(line)
		if len(f) != 2 {
			return m, false
		}
		b, err1 := strconv.ParseInt(string(f[0]), 10, 64)
		c, err2 := strconv.ParseInt(string(f[1]), 10, 64)
		if err1 != nil || err2 != nil {
			return m, false
		}
		var ok1, ok2 bool
		m.bytes, ok1 = addInt64(m.bytes, b)
		m.count, ok2 = addInt64(m.count, c)
		if !ok1 || !ok2 {
			return m, false
		}
		m.lines++
	}
	if m.bytes < 0 || m.count < 0 {
		return m, false
	}
	return m, true
}

// parseQuota parses a quota definition such as "10000000S,1000C". An empty definition is
// no limit. Limits beyond int64 are clamped, as Dovecot does.
func parseQuota(s string) (Quota, bool) {
	var q Quota
	if s == "" {
		return q, true
	}
	for item := range strings.SplitSeq(s, ",") {
		if len(item) < 2 {
			return q, false
		}
		v, err := strconv.ParseUint(item[:len(item)-1], 10, 64)
		if err != nil {
			return q, false
		}
		n := int64(min(v, math.MaxInt64))
		switch item[len(item)-1] {
		case 'S':
			q.Bytes = n
		case 'C':
			q.Count = n
		default:
			return q, false
		}
	}
	return q, true
}

func addInt64(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// AddUsage records that bytes and count messages were added to the mailbox at root
// (negative values: removed) by appending one "<bytes> <count>" line to maildirsize. The
// line goes out in a single write(2) on an O_APPEND descriptor, so concurrent writers
// never interleave. Call it after a successful Deliver with (size, 1); imapd calls it
// with (-size, -1) when it expunges. When maildirsize does not exist AddUsage does
// nothing: the next Usage recalculates from the files themselves.
func AddUsage(root string, bytes, count int64) error {
	if bytes == 0 && count == 0 {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(root, quotaFile), os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maildir: updating quota of %s: %w", root, err)
	}
	var b [48]byte
	line := strconv.AppendInt(b[:0], bytes, 10)
	line = append(line, ' ')
	line = strconv.AppendInt(line, count, 10)
	line = append(line, '\n')
	_, err = f.Write(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("maildir: updating quota of %s: %w", root, err)
	}
	return nil
}

// Recalculate counts the messages of the mailbox at root and rewrites its maildirsize
// with the quota definition q and the total, atomically: the file is written in tmp/ and
// renamed over the old one. It returns the total.
//
// The count covers cur/ and new/ of the INBOX and of every Maildir++ folder (root/.*),
// Trash included, as Dovecot counts without per-folder quota rules. A file's size is
// taken from the S= field of its name when present, from stat(2) otherwise. When a
// directory changes while it is being counted (its mtime moves), the count is repeated,
// up to three times in all; the last count is written either way, since the file is a
// cache that later deliveries correct and the next recalculation fixes.
//
// The new file is not fsynced: after a crash it is at worst empty or torn, which Usage
// detects and recalculates.
func Recalculate(root string, q Quota) (bytes, count int64, err error) {
	q = q.norm()
	for attempt := 1; ; attempt++ {
		var changed bool
		bytes, count, changed, err = sumMailbox(root)
		if err != nil {
			return 0, 0, fmt.Errorf("maildir: recalculating quota of %s: %w", root, err)
		}
		if !changed || attempt == 3 {
			break
		}
	}
	if err := writeMaildirsize(root, q, bytes, count); err != nil {
		return 0, 0, fmt.Errorf("maildir: recalculating quota of %s: %w", root, err)
	}
	return bytes, count, nil
}

// sumMailbox adds up the messages in cur/ and new/ of root and its folders. changed is
// true when one of those directories was modified during the count.
func sumMailbox(root string) (bytes, count int64, changed bool, err error) {
	names, err := readDirNames(root)
	if err != nil {
		return 0, 0, false, err
	}
	folders := []string{root}
	for _, n := range names {
		if len(n) > 1 && n[0] == '.' && n != ".." {
			folders = append(folders, filepath.Join(root, n))
		}
	}
	type seen struct {
		path  string
		mtime time.Time
	}
	var dirs []seen
	for _, folder := range folders {
		for _, sub := range [...]string{"new", "cur"} {
			dir := filepath.Join(folder, sub)
			fi, err := os.Stat(dir)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
					continue // not a Maildir folder, or removed meanwhile
				}
				return 0, 0, false, err
			}
			if !fi.IsDir() {
				continue
			}
			dirs = append(dirs, seen{dir, fi.ModTime()})
			b, c, err := sumDir(dir)
			if err != nil {
				return 0, 0, false, err
			}
			bytes += b
			count += c
		}
	}
	for _, d := range dirs {
		fi, err := os.Stat(d.path)
		if err != nil || !fi.ModTime().Equal(d.mtime) {
			changed = true
			break
		}
	}
	return bytes, count, changed, nil
}

// sumDir adds up the message files in one directory.
func sumDir(dir string) (bytes, count int64, err error) {
	names, err := readDirNames(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") {
			continue // not a message: a keywords file (see KeywordsPath)
		}
		if size, ok := NameSize(n); ok {
			bytes += size
			count++
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // moved or expunged meanwhile
			}
			return 0, 0, err
		}
		bytes += fi.Size()
		count++
	}
	return bytes, count, nil
}

// readDirNames lists a directory, unsorted.
func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return names, err
}

// writeMaildirsize replaces maildirsize with a file holding the quota definition and one
// usage line.
func writeMaildirsize(root string, q Quota, bytes, count int64) error {
	content := q.String() + "\n" + strconv.FormatInt(bytes, 10) + " " +
		strconv.FormatInt(count, 10) + "\n"
	tmp := filepath.Join(root, "tmp", UniqueName())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(root, quotaFile))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"postern/pkg/imap"
	"postern/pkg/mime"
)

// fetchEntry is one message a FETCH answers for.
type fetchEntry struct {
	seq int
	m   *message
}

// fetchNeeds says what a FETCH needs beyond the index.
type fetchNeeds struct {
	cache   bool // ENVELOPE, BODY, BODYSTRUCTURE
	file    bool // sections, RFC822*, BINARY*
	setSeen bool
	modseq  bool
	uid     bool
	flags   bool
	// parse is set when some item needs the MIME structure; without it, whole
	// messages of CRLF files are sent straight from the file.
	parse bool
}

func (s *Session) fetch(c *imap.Command) {
	idx, ok := s.resolve(c.Set, c.UID)
	if !ok {
		s.tagged(c.Tag, "BAD", "Invalid message sequence number")
		return
	}
	f := c.Fetch
	var need fetchNeeds
	need.uid = c.UID
	for _, it := range f.Items {
		switch it.Name {
		case "ENVELOPE", "BODY", "BODYSTRUCTURE":
			need.cache = true
		case "RFC822":
			need.file = true
			need.setSeen = true
		case "RFC822.TEXT":
			need.file, need.parse = true, true
			need.setSeen = true
		case "RFC822.HEADER":
			need.file, need.parse = true, true
		case "BODY[]", "BINARY[]", "BINARY.SIZE[]":
			need.file = true
			if it.Name != "BODY[]" || len(it.Section.Part) > 0 || it.Section.Specifier != "" {
				need.parse = true
			}
			if !it.Section.Peek && !it.Section.Size {
				need.setSeen = true
			}
		case "MODSEQ":
			need.modseq = true
		case "FLAGS":
			need.flags = true
		case "UID":
			need.uid = true
		}
	}
	if f.Vanished && (!c.UID || f.ChangedSince == 0 || !s.qresync) {
		// RFC 7162 §3.2.6: VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC.
		s.tagged(c.Tag, "BAD", "VANISHED needs UID FETCH with CHANGEDSINCE, after ENABLE QRESYNC")
		return
	}
	if f.ChangedSince > 0 || need.modseq {
		// RFC 7162 §3.1: CONDSTORE enabling commands; CHANGEDSINCE implies MODSEQ.
		s.enableCondstore()
		need.modseq = true
	}
	if s.readOnly {
		need.setSeen = false
	}

	mb := s.mb
	if f.Vanished {
		// RFC 7162 §3.2.6: the UIDs of the set expunged since CHANGEDSINCE, before
		// the FETCH responses.
		s.writeVanished(true, mb.vanished(f.ChangedSince, c.Set))
	}
	entries := make([]fetchEntry, 0, len(idx))
	mb.mu.RLock()
	for _, i := range idx {
		if m := mb.lookup(s.view[i]); m != nil {
			if f.ChangedSince > 0 && m.modseq <= f.ChangedSince {
				continue
			}
			entries = append(entries, fetchEntry{seq: i + 1, m: m})
		}
	}
	mb.mu.RUnlock()

	// RFC 3501 §6.4.5: BODY[] and friends set \Seen; the new flags go out in the
	// same FETCH response.
	seenChanged := map[uint32]bool{}
	if need.setSeen {
		var uids []uint32
		for _, e := range entries {
			if e.m.flags&flagSeen == 0 {
				uids = append(uids, e.m.uid)
			}
		}
		if len(uids) > 0 {
			res, err := mb.store(uids, &flagChange{mode: imap.StoreAdd, bits: flagSeen}, 0, false)
			if err != nil {
				s.mailboxError(c, err)
				return
			}
			byUID := map[uint32]*message{}
			for _, m := range res.changed {
				byUID[m.uid] = m
				seenChanged[m.uid] = true
			}
			for i, e := range entries {
				if m := byUID[e.m.uid]; m != nil {
					entries[i].m = m
				}
			}
			if res.before == s.seenModseq {
				s.seenModseq = res.after
			}
			mb.changed(s)
		}
	}

	var cache map[uint32]*cached
	if need.cache {
		cache = s.cacheFor(entries)
	}
	var cur *os.File // cur/, which the message files are opened in (Mailbox.openIn)
	if need.file && len(entries) > 1 {
		if d, err := os.Open(filepath.Join(mb.dir, "cur")); err == nil {
			cur = d
			defer d.Close()
		}
	}
	var failed error
	for _, e := range entries {
		err := s.fetchOne(e, f.Items, need, cache, cur, seenChanged[e.m.uid])
		if s.state == stateLogout {
			// A literal could not be sent as promised: nothing more, the
			// connection closes.
			return
		}
		if err != nil {
			if errors.Is(err, mime.ErrUnknownEncoding) {
				failed = err
				continue
			}
			if errors.Is(err, os.ErrNotExist) {
				continue // expunged meanwhile (RFC 2180 §4.1.2)
			}
			s.log.Warn("FETCH", "folder", mb.name, "uid", e.m.uid, "err", err)
			failed = err
		}
	}
	s.update(c.UID)
	switch {
	case failed == nil:
		s.tagged(c.Tag, "OK", "FETCH completed")
	case errors.Is(failed, mime.ErrUnknownEncoding):
		// RFC 3516 §4.3.
		s.no(c, "[UNKNOWN-CTE] Unknown content-transfer-encoding")
	default:
		s.no(c, "Some messages could not be read")
	}
}

// cacheFor returns the cached ENVELOPE and BODYSTRUCTURE of the entries, computing (in
// parallel) and storing those not cached yet.
func (s *Session) cacheFor(entries []fetchEntry) map[uint32]*cached {
	return s.cacheOf(entries, false)
}

// cacheOf is cacheFor; with keysOnly, the records hold the sent date and the SORT and
// THREAD keys only, and records without keys are computed again.
func (s *Session) cacheOf(entries []fetchEntry, keysOnly bool) map[uint32]*cached {
	mb := s.mb
	uids := make([]uint32, len(entries))
	for i, e := range entries {
		uids[i] = e.m.uid
	}
	var cache map[uint32]*cached
	if keysOnly {
		cache = mb.loadKeys(uids)
	} else {
		cache = mb.loadCache(uids)
	}
	var missing []*message
	for _, e := range entries {
		if cache[e.m.uid] == nil {
			missing = append(missing, e.m)
		}
	}
	if len(missing) == 0 {
		return cache
	}
	recs := make([]*cached, len(missing))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Go(func() {
			for i := range work {
				f, err := mb.open(missing[i])
				if err != nil {
					continue
				}
				if msg, err := parseFile(f); err == nil {
					recs[i] = newCached(msg)
				}
				f.Close()
			}
		})
	}
	for i := range missing {
		work <- i
	}
	close(work)
	wg.Wait()
	save := map[uint32]cacheRecord{}
	for i, m := range missing {
		if recs[i] == nil {
			continue
		}
		save[m.uid] = cacheRecord{fetch: recs[i].marshal()}
		cache[m.uid] = recs[i]
	}
	mb.saveCache(save)
	return cache
}

// fetchOne writes the FETCH response of one message.
func (s *Session) fetchOne(e fetchEntry, items []imap.FetchItem, need fetchNeeds, cache map[uint32]*cached, cur *os.File, flagsChanged bool) error {
	m := e.m
	var msg *mime.Message
	var raw *io.SectionReader // the whole message, straight from a CRLF file
	rawFD := -1
	switch {
	case need.file && !need.parse && m.flags&flagCRLF != 0:
		// The file's bytes are the message's: it is read by descriptor, and its size
		// is the index's (recorded when the file was parsed; a Maildir file never
		// changes, and sendWhole checks it does end there).
		fd, _, err := s.mb.openFD(cur, m)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		rawFD = fd
		raw = io.NewSectionReader(fileReader(fd), 0, m.size)
	case need.file:
		file, err := s.mb.openIn(cur, m)
		if err != nil {
			return err
		}
		defer file.Close()
		if msg, err = parseFile(file); err != nil {
			return err
		}
	}
	// Sections are prepared before anything is written, so that an error leaves no
	// half response.
	type body struct {
		r      io.Reader
		size   int64
		binary bool
		whole  bool // r is the whole file, which may go out by sendfile
	}
	bodies := make([]*body, len(items))
	for i, it := range items {
		var sec mime.Section
		switch it.Name {
		case "RFC822":
		case "RFC822.HEADER":
			sec.Specifier = "HEADER"
		case "RFC822.TEXT":
			sec.Specifier = "TEXT"
		case "BODY[]":
			sec = mime.Section{Path: it.Section.Part, Specifier: it.Section.Specifier, Fields: it.Section.Fields}
		case "BINARY[]", "BINARY.SIZE[]":
			size, err := msg.BinarySize(it.Section.Part)
			if errors.Is(err, mime.ErrNoSection) {
				bodies[i] = &body{r: eofReader{}, binary: true}
				continue
			}
			if err != nil {
				return err
			}
			b := &body{size: size, binary: true}
			if it.Name == "BINARY[]" {
				r, err := msg.Binary(it.Section.Part)
				if err != nil {
					return err
				}
				b.r = r
				if it.Section.Partial {
					off := min(it.Section.Offset, size)
					io.CopyN(io.Discard, r, off)
					b.size = min(size-off, it.Section.Count)
					b.r = io.LimitReader(r, b.size)
				}
			}
			bodies[i] = b
			continue
		default:
			continue
		}
		if raw != nil {
			if it.Section != nil && it.Section.Partial {
				r := mime.Partial(raw, it.Section.Offset, it.Section.Count)
				bodies[i] = &body{r: r, size: r.Size()}
				continue
			}
			bodies[i] = &body{r: raw, size: raw.Size(), whole: true}
			continue
		}
		r, err := msg.Section(sec)
		if errors.Is(err, mime.ErrNoSection) {
			// Dovecot and RFC 3501 §6.4.5 practice: an empty string.
			bodies[i] = &body{r: eofReader{}}
			continue
		}
		if err != nil {
			return err
		}
		if it.Section != nil && it.Section.Partial {
			r = mime.Partial(r, it.Section.Offset, it.Section.Count)
		}
		bodies[i] = &body{r: r, size: r.Size()}
	}

	if need.flags || flagsChanged {
		s.announceKeywords(m.keywords)
	}
	w := s.w
	b := append(s.buf[:0], "* "...)
	b = strconv.AppendInt(b, int64(e.seq), 10)
	b = append(b, " FETCH ("...)
	n := 0
	sep := func() {
		if n > 0 {
			b = append(b, ' ')
		}
		n++
	}
	if need.uid {
		sep()
		b = append(b, "UID "...)
		b = strconv.AppendUint(b, uint64(m.uid), 10)
	}
	if flagsChanged && !need.flags {
		// \Seen was set by this FETCH: the new flags go first (RFC 3501 §6.4.5).
		sep()
		b = append(b, "FLAGS "...)
		b = m.appendFlags(b, !s.rev2 && s.isRecent(m.uid))
	}
	for i, it := range items {
		switch it.Name {
		case "UID":
			// written first
		case "FLAGS":
			sep()
			b = append(b, "FLAGS "...)
			b = m.appendFlags(b, !s.rev2 && s.isRecent(m.uid))
		case "INTERNALDATE":
			sep()
			b = append(b, "INTERNALDATE "...)
			b = imap.AppendDateTime(b, time.Unix(m.idate, 0))
		case "RFC822.SIZE":
			sep()
			b = append(b, "RFC822.SIZE "...)
			size := m.size
			if msg != nil {
				size = msg.Size
			}
			b = strconv.AppendInt(b, size, 10)
		case "MODSEQ":
		case "EMAILID":
			// RFC 8474 §5.1.
			sep()
			b = append(b, "EMAILID ("...)
			b = append(b, emailID(m.base)...)
			b = append(b, ')')
		case "THREADID":
			// RFC 8474 §5.2: NIL, no thread ids are kept.
			sep()
			b = append(b, "THREADID NIL"...)
		case "SAVEDATE":
			// RFC 8514 §4.1: NIL when not known (messages indexed before it was kept).
			sep()
			b = append(b, "SAVEDATE "...)
			if m.saved == 0 {
				b = append(b, "NIL"...)
			} else {
				b = imap.AppendDateTime(b, time.Unix(m.saved, 0))
			}
		case "ENVELOPE", "BODY", "BODYSTRUCTURE":
			sep()
			b = append(b, it.Name...)
			b = append(b, ' ')
			c := cache[m.uid]
			if c == nil && msg != nil {
				c = newCached(msg)
			}
			if c == nil {
				return os.ErrNotExist
			}
			switch it.Name {
			case "ENVELOPE":
				b = append(b, c.envelope...)
			case "BODY":
				b = append(b, c.body...)
			default:
				b = append(b, c.bodystructure...)
			}
		default:
			bd := bodies[i]
			if bd == nil {
				continue
			}
			sep()
			switch it.Name {
			case "RFC822", "RFC822.HEADER", "RFC822.TEXT":
				b = append(b, it.Name...)
			default:
				b = it.Section.AppendName(b)
			}
			b = append(b, ' ')
			if it.Name == "BINARY.SIZE[]" {
				b = strconv.AppendInt(b, bd.size, 10)
				continue
			}
			if bd.binary {
				// RFC 3516 §4.2: literal8, which may carry NUL.
				b = append(b, '~')
			}
			b = append(b, '{')
			b = strconv.AppendInt(b, bd.size, 10)
			b = append(b, "}\r\n"...)
			w.Write(b)
			b = b[:0]
			if bd.whole {
				if err := s.sendWhole(rawFD, bd.size); err != nil {
					// As below: the promised literal cannot be kept.
					s.log.Error("sending message file", "folder", s.mb.name, "uid", m.uid, "err", err)
					s.state = stateLogout
					return nil
				}
				continue
			}
			if _, err := io.CopyN(w, bd.r, bd.size); err != nil {
				// The literal's length is promised and cannot be kept: end the
				// session rather than leave the client out of step.
				s.log.Warn("reading message body", "uid", m.uid, "err", err)
				s.state = stateLogout
				return nil
			}
		}
	}
	if need.modseq {
		sep()
		b = append(b, "MODSEQ ("...)
		b = strconv.AppendUint(b, m.modseq, 10)
		b = append(b, ')')
	}
	b = append(b, ")\r\n"...)
	w.Write(b)
	s.buf = b[:0]
	return nil
}

// errFileSize is a message file whose size is not the one its index record gives.
var errFileSize = errors.New("message file longer than its index record says")

// sendWhole writes the first size bytes of the file fd, which must be all of it, after
// what is buffered. Over a connection without TLS (webmail and other local clients) a
// literal larger than the response buffer goes with sendfile(2), from the page cache to
// the socket; otherwise the file is read straight into the response buffer, one pread
// per buffer's worth.
func (s *Session) sendWhole(fd int, size int64) error {
	w := s.w
	if sc, ok := s.conn.(syscall.Conn); ok && !s.tls && size >= int64(w.Size()) {
		s.flush()
		return sendFile(sc, fd, size)
	}
	var off int64
	for off < size {
		if w.Available() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		// One byte more than is left, when it fits, to see that the file ends there:
		// one pread, which comes back short at the end of the file.
		buf := w.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), size-off+1)]
		n, err := unix.Pread(fd, buf, off)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return io.ErrUnexpectedEOF
		case int64(n) > size-off:
			w.Write(buf[:size-off]) // the literal as promised, then the session ends
			return errFileSize
		}
		w.Write(buf[:n])
		off += int64(n)
	}
	return nil
}

// sendFile sends size bytes of the file fd, from its start, on the connection c with
// sendfile(2), waiting for the socket as a Write does (and under its deadline).
func sendFile(c syscall.Conn, fd int, size int64) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var off int64
	var serr error
	err = rc.Write(func(sock uintptr) bool {
		for off < size {
			n, err := unix.Sendfile(int(sock), fd, &off, int(min(size-off, 1<<30)))
			switch {
			case err == syscall.EAGAIN:
				return false // wait until the socket takes more
			case err == syscall.EINTR:
			case err != nil:
				serr = err
				return true
			case n == 0:
				serr = io.ErrUnexpectedEOF
				return true
			}
		}
		return true
	})
	if err == nil {
		err = serr
	}
	if err == nil {
		// The file must end there, as it does for the buffered copy.
		var one [1]byte
		if n, _ := fileReader(fd).ReadAt(one[:], size); n > 0 {
			err = errFileSize
		}
	}
	return err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

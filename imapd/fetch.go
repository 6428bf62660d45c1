package main

import (
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

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
	if f.ChangedSince > 0 || need.modseq {
		// RFC 7162 §3.1: CONDSTORE enabling commands; CHANGEDSINCE implies MODSEQ.
		s.enableCondstore()
		need.modseq = true
	}
	if s.readOnly {
		need.setSeen = false
	}

	mb := s.mb
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
	var failed error
	for _, e := range entries {
		if err := s.fetchOne(e, f.Items, need, cache, seenChanged[e.m.uid]); err != nil {
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
	mb := s.mb
	uids := make([]uint32, len(entries))
	for i, e := range entries {
		uids[i] = e.m.uid
	}
	cache := mb.loadCache(uids)
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
func (s *Session) fetchOne(e fetchEntry, items []imap.FetchItem, need fetchNeeds, cache map[uint32]*cached, flagsChanged bool) error {
	m := e.m
	var file *os.File
	var msg *mime.Message
	var raw *io.SectionReader // the whole message, straight from a CRLF file
	if need.file {
		var err error
		if file, err = s.mb.open(m); err != nil {
			return err
		}
		defer file.Close()
		if !need.parse && m.flags&flagCRLF != 0 {
			st, err := file.Stat()
			if err != nil {
				return err
			}
			raw = io.NewSectionReader(file, 0, st.Size())
		} else if msg, err = parseFile(file); err != nil {
			return err
		}
	}
	// Sections are prepared before anything is written, so that an error leaves no
	// half response.
	type body struct {
		r      io.Reader
		size   int64
		binary bool
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
			r := raw
			if it.Section != nil && it.Section.Partial {
				r = mime.Partial(r, it.Section.Offset, it.Section.Count)
			}
			bodies[i] = &body{r: r, size: r.Size()}
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

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

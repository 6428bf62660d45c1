package mime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Limits that keep a hostile message from costing unbounded time or memory.
const (
	// MaxDepth is the deepest nesting of multipart and message/rfc822 parts that Parse
	// descends into. A multipart deeper than this has no Parts and a message/rfc822 no
	// Message: their content is one opaque body (Dovecot's default limit is also 100).
	MaxDepth = 100

	// MaxParts is the most parts Parse creates for one message; the content of further
	// parts stays in the body of the part that would have held them.
	MaxParts = 10000
)

// Range is a run of octets of the message file.
type Range struct {
	Offset int64 // first octet, from the start of the file
	Len    int64 // octets in the file
	Size   int64 // octets in the CRLF form that IMAP sends: Len plus one per bare LF
}

// Part is one node of a message's MIME tree: the message itself (the root), a body part
// of a multipart, or the message encapsulated in a message/rfc822 or message/global part.
type Part struct {
	Header      Header
	HeaderRange Range // the header, its blank line included when there is one
	BodyRange   Range // the body, without the line break that precedes a boundary (RFC 2046 §5.1.1)
	Lines       int64 // lines of the body: the LF octets in it, as Dovecot counts

	// Type and Subtype of Content-Type, with the case of the header (compare them with
	// strings.EqualFold, or use MediaType). Without a valid Content-Type they are
	// "text"/"plain", or "message"/"rfc822" inside a multipart/digest
	// (RFC 2045 §5.2, RFC 2046 §5.1.5).
	Type, Subtype string
	// Params are the Content-Type parameters: RFC 2231 continuations merged, charsets
	// and RFC 2047 encoded-words in "name" and "filename" decoded to UTF-8.
	Params []Param

	Encoding    string // Content-Transfer-Encoding as written, "" when absent (7bit)
	ID          string // Content-ID, "" when absent
	Description string // Content-Description, raw, "" when absent
	MD5         string // Content-MD5, "" when absent
	Location    string // Content-Location (RFC 2557), "" when absent

	Disposition       string  // Content-Disposition type as written (RFC 2183), "" when absent
	DispositionParams []Param // its parameters, decoded like Params
	Language          []string

	// Parts are the body parts of a multipart, in order. A multipart without a boundary
	// parameter, or nested deeper than MaxDepth, has none.
	Parts []*Part
	// Message is the encapsulated message of a message/rfc822 or message/global part
	// (RFC 2046 §5.2.1, RFC 6532 §3.5) whose encoding is 7bit, 8bit or binary; nil
	// otherwise. Its HeaderRange and BodyRange together make up this part's BodyRange.
	Message *Part
}

// Param is a Content-Type or Content-Disposition parameter.
type Param struct {
	Name string // as written, without the RFC 2231 "*" suffixes
	// Value is unquoted and in UTF-8: RFC 2231 and (in name and filename) RFC 2047
	// decoded, other octets that are not UTF-8 read as ISO-8859-1. Only boundary is
	// kept exactly as written.
	Value string
}

// MediaType returns "type/subtype" in lower case.
func (p *Part) MediaType() string { return strings.ToLower(p.Type + "/" + p.Subtype) }

// IsMultipart reports whether the part is a multipart (Parts may still be empty).
func (p *Part) IsMultipart() bool { return strings.EqualFold(p.Type, "multipart") }

// IsMessage reports whether the part's type is message/rfc822 or message/global, the
// types whose BODYSTRUCTURE carries an envelope (RFC 3501 §7.4.2, RFC 9051 §7.5.2).
func (p *Part) IsMessage() bool {
	return strings.EqualFold(p.Type, "message") &&
		(strings.EqualFold(p.Subtype, "rfc822") || strings.EqualFold(p.Subtype, "global"))
}

// IsText reports whether the part's type is text/*.
func (p *Part) IsText() bool { return strings.EqualFold(p.Type, "text") }

// Param returns the value of the parameter named name (case-insensitive), "" if absent.
func (p *Part) Param(name string) string { return paramValue(p.Params, name) }

// Charset returns the lowercased charset parameter, "us-ascii" when absent (RFC 2045 §5.2).
func (p *Part) Charset() string {
	if c := p.Param("charset"); c != "" {
		return strings.ToLower(strings.TrimSpace(c))
	}
	return "us-ascii"
}

func paramValue(ps []Param, name string) string {
	for _, p := range ps {
		if strings.EqualFold(p.Name, name) {
			return p.Value
		}
	}
	return ""
}

// Message is a parsed message file: its MIME tree and the file it came from, which must
// stay open and unchanged while the Message is used. A Message keeps a copy of a file of
// up to 32 KiB (most mail), read once by Parse, and reads the file again only when it is
// larger.
type Message struct {
	Root *Part // the message: header, body and, for multiparts, the parts below
	Size int64 // the size of the CRLF form of the whole message (RFC822.SIZE)
	r    io.ReaderAt
	len  int64 // the size of the file
}

// ErrRead wraps the I/O errors of reading the message file.
var ErrRead = errors.New("mime: reading message")

// Parse reads the MIME structure of the message of size octets in r. It never fails on
// malformed content, only when r fails. It reads the file once, sequentially, through a
// small buffer.
func Parse(r io.ReaderAt, size int64) (*Message, error) {
	p := parser{lr: lineReader{r: r, size: size}}
	p.lr.buf = getBuf()
	defer putBuf(p.lr.buf)
	root := p.part(0, false)
	if p.lr.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRead, p.lr.err)
	}
	// Read to the end: the file may be shorter than size said.
	for {
		if _, _, ok := p.lr.next(); !ok {
			break
		}
	}
	if p.lr.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRead, p.lr.err)
	}
	end := p.lr.snap()
	if p.lr.base == 0 && int64(p.lr.end) == end.off && end.off <= bufSize {
		// The whole file was read into the buffer at once: keep a copy, so that
		// sections and searches of small messages need no more reads of the file.
		r = bytes.NewReader(append([]byte(nil), p.lr.buf[:p.lr.end]...))
	}
	return &Message{Root: root, Size: end.off + end.bare, r: r, len: end.off}, nil
}

// bufSize is the size of the read buffer; lines longer than this are read in pieces.
const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuf() []byte { return *(bufPool.Get().(*[]byte)) }

func putBuf(b []byte) {
	b = b[:cap(b)]
	bufPool.Put(&b)
}

// pos is a position in the file with the counts of what lies before it.
type pos struct {
	off   int64 // octets
	lines int64 // LF octets
	bare  int64 // LF octets not preceded by CR
}

func span(a, b pos) Range {
	return Range{Offset: a.off, Len: b.off - a.off, Size: b.off + b.bare - a.off - a.bare}
}

// lineReader returns the lines of a file through a buffer.
type lineReader struct {
	r      io.ReaderAt
	size   int64
	buf    []byte
	base   int64 // file offset of buf[0]
	pos    int   // next unread octet in buf
	end    int   // end of valid data in buf
	err    error
	at     pos  // position of buf[pos]
	midRow bool // the last piece returned did not end a line
	lastCR bool // the last octet returned was CR
	// prevTerm is the length of the line break that ended the last line (2 for CRLF,
	// 1 for LF), 0 when it did not end in one.
	prevTerm int
	prevBare bool // that line break was a bare LF
}

func (lr *lineReader) snap() pos { return lr.at }

// mark is a position at the start of a line with the line break that ended the line
// before it, so that a boundary found on the line can give the body back that break.
type mark struct {
	pos
	term int  // length of that line break, 0 if none
	bare bool // it was a bare LF
}

func (lr *lineReader) mark() mark { return mark{lr.at, lr.prevTerm, lr.prevBare} }

// next returns the next line, its LF included, or a piece of it when it does not fit the
// buffer; start says whether the piece begins a line. ok is false at the end.
func (lr *lineReader) next() (line []byte, start, ok bool) {
	i := -1
	for {
		if lr.pos < lr.end {
			i = indexLF(lr.buf[lr.pos:lr.end])
			if i >= 0 || lr.end-lr.pos == len(lr.buf) || lr.base+int64(lr.end) >= lr.size {
				break
			}
		} else if lr.base+int64(lr.end) >= lr.size || lr.err != nil {
			return nil, false, false
		}
		if !lr.fill() {
			if lr.pos == lr.end {
				return nil, false, false
			}
			break
		}
	}
	var n int
	if i >= 0 {
		n = i + 1
	} else {
		n = lr.end - lr.pos
	}
	line = lr.buf[lr.pos : lr.pos+n]
	lr.pos += n
	start = !lr.midRow
	lr.at.off += int64(n)
	if line[n-1] == '\n' {
		lr.midRow = false
		lr.at.lines++
		switch {
		case n > 1 && line[n-2] == '\r':
			lr.prevTerm, lr.prevBare = 2, false
		case n == 1 && lr.lastCR:
			// A CRLF split between two pieces of an overlong line: the CR ended the
			// piece before, right before this LF in the file.
			lr.prevTerm, lr.prevBare = 2, false
		default:
			lr.prevTerm, lr.prevBare = 1, true
			lr.at.bare++
		}
	} else {
		lr.midRow = true
		lr.prevTerm = 0
	}
	lr.lastCR = line[n-1] == '\r'
	return line, start, true
}

// skipPlain moves over the buffered complete lines that cannot be boundary lines
// because they do not start with "-", in one pass of bytes.IndexByte: the bodies of parts
// are read this way, not line by line.
func (lr *lineReader) skipPlain() {
	if lr.midRow {
		return
	}
	data := lr.buf[lr.pos:lr.end]
	if len(data) == 0 || data[0] == '-' {
		return
	}
	var lines, bare int64
	last, i := -1, 0
	for {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			break
		}
		k := i + j
		lines++
		// At k == 0 the line before ended with an LF, not a CR.
		if k == 0 || data[k-1] != '\r' {
			bare++
		}
		last, i = k, k+1
		if i >= len(data) || data[i] == '-' {
			break
		}
	}
	if last < 0 {
		return
	}
	n := last + 1
	lr.pos += n
	lr.at.off += int64(n)
	lr.at.lines += lines
	lr.at.bare += bare
	lr.prevTerm, lr.prevBare = 1, true
	if last > 0 && data[last-1] == '\r' {
		lr.prevTerm, lr.prevBare = 2, false
	}
	lr.lastCR = false
}

// fill moves unread data to the front of the buffer and reads more. It reports whether
// it read anything.
func (lr *lineReader) fill() bool {
	if lr.err != nil {
		return false
	}
	if lr.pos > 0 {
		copy(lr.buf, lr.buf[lr.pos:lr.end])
		lr.base += int64(lr.pos)
		lr.end -= lr.pos
		lr.pos = 0
	}
	want := len(lr.buf) - lr.end
	if rest := lr.size - lr.base - int64(lr.end); rest < int64(want) {
		want = int(rest)
	}
	if want <= 0 {
		return false
	}
	n, err := lr.r.ReadAt(lr.buf[lr.end:lr.end+want], lr.base+int64(lr.end))
	lr.end += n
	if err != nil && !(err == io.EOF && n == want) {
		if err == io.EOF {
			// The file is shorter than its size said: stop there.
			lr.size = lr.base + int64(lr.end)
		} else {
			lr.err = err
		}
	}
	return n > 0
}

func isBlank(l []byte) bool {
	return len(l) == 1 && l[0] == '\n' || len(l) == 2 && l[0] == '\r' && l[1] == '\n'
}

// parser builds the MIME tree from the lines of a lineReader.
type parser struct {
	lr     lineReader
	bounds []string // boundaries of the open multiparts, innermost last
	nparts int

	// The boundary line that ended the last body read, when hit is set.
	hit      bool
	hitIdx   int  // index in bounds
	hitFinal bool // a close-delimiter ("--boundary--")
	hitEnd   pos  // where that body ends: before the line break preceding the boundary
}

// part parses one part (header and body) starting at the current line.
func (p *parser) part(depth int, digest bool) *Part {
	pt := &Part{}
	p.nparts++
	hstart := p.lr.snap()
	pt.Header.data = make([]byte, 0, 512)
	hb := headerBuilder{h: &pt.Header}
	hend := pos{}
	eof := false
	p.hit = false
	for {
		before := p.lr.mark()
		line, start, ok := p.lr.next()
		if !ok {
			hend, eof = p.lr.snap(), true
			break
		}
		if start && p.boundary(line, before) {
			// A boundary inside the header: the part has no body.
			hend = p.hitEnd
			if hend.off < hstart.off {
				hend = hstart
			}
			break
		}
		if start && isBlank(line) {
			hend = p.lr.snap()
			break
		}
		hb.line(line, start)
	}
	hb.finish()
	pt.HeaderRange = span(hstart, hend)
	setContent(pt, digest)
	if p.hit || eof {
		// Ended by a boundary or by the end of the file: no body.
		pt.BodyRange = Range{Offset: hend.off}
		return pt
	}
	bstart := p.lr.snap()

	boundary := ""
	if pt.IsMultipart() {
		boundary = pt.Param("boundary")
	}
	switch {
	case pt.IsMultipart() && depth < MaxDepth:
		if boundary == "" {
			// RFC 2046 §5.1.1 makes the parameter mandatory: without it the body is
			// one opaque preamble.
			p.skipToBoundary()
			break
		}
		p.bounds = append(p.bounds, boundary)
		my := len(p.bounds) - 1
		p.skipToBoundary() // preamble
		sub := strings.EqualFold(pt.Subtype, "digest")
		for p.hit && p.hitIdx == my && !p.hitFinal {
			if p.nparts >= MaxParts {
				p.skipToBoundary()
				continue
			}
			pt.Parts = append(pt.Parts, p.part(depth+1, sub))
		}
		p.bounds = p.bounds[:my]
		if p.hit && p.hitIdx == my {
			p.skipToBoundary() // epilogue, up to an enclosing boundary or the end
		}
	case pt.IsMessage() && depth < MaxDepth && p.nparts < MaxParts && encodingOf(pt.Encoding) == encIdentity:
		// Only an encapsulated message that is not encoded can be parsed in place
		// (RFC 2046 §5.2.1).
		pt.Message = p.part(depth+1, false)
	default:
		p.skipToBoundary()
	}
	bend := p.lr.snap()
	if p.hit {
		bend = p.hitEnd
	}
	if bend.off < bstart.off {
		bend = bstart
	}
	pt.BodyRange = span(bstart, bend)
	pt.Lines = bend.lines - bstart.lines
	return pt
}

// skipToBoundary reads lines up to and including the next boundary line of an open
// multipart, or to the end of the file.
func (p *parser) skipToBoundary() {
	p.hit = false
	if len(p.bounds) == 0 {
		// Nothing can end the body but the end of the file.
		for {
			if _, _, ok := p.lr.next(); !ok {
				return
			}
		}
	}
	for {
		p.lr.skipPlain()
		before := p.lr.mark()
		line, start, ok := p.lr.next()
		if !ok {
			return
		}
		if start && p.boundary(line, before) {
			return
		}
	}
}

// boundary reports whether line, which starts at before, is the delimiter line of an
// open multipart (RFC 2046 §5.1.1: "--" boundary ["--"] *LWSP CRLF), the innermost
// first, and if so records it in p.hit*. An enclosing boundary also ends the inner
// parts, as in every lenient parser.
func (p *parser) boundary(line []byte, before mark) bool {
	if len(line) < 3 || line[0] != '-' || line[1] != '-' || len(p.bounds) == 0 {
		return false
	}
	rest := line[2:]
	for i := len(p.bounds) - 1; i >= 0; i-- {
		b := p.bounds[i]
		if len(rest) < len(b) || string(rest[:len(b)]) != b {
			continue
		}
		r := rest[len(b):]
		final := len(r) >= 2 && r[0] == '-' && r[1] == '-'
		if final {
			r = r[2:]
		}
		ok := true
		for _, c := range r {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		p.hit, p.hitIdx, p.hitFinal = true, i, final
		end := before.pos
		if before.term > 0 {
			end.off -= int64(before.term)
			end.lines--
			if before.bare {
				end.bare--
			}
		}
		p.hitEnd = end
		return true
	}
	return false
}

// setContent fills the Content-* fields of pt from its header, in one pass over the
// fields (the first of repeated fields counts).
func setContent(pt *Part, digest bool) {
	h := &pt.Header
	pt.Type, pt.Subtype = "text", "plain"
	if digest {
		pt.Type, pt.Subtype = "message", "rfc822"
	}
	// first reports whether field k (a case below) is seen for the first time.
	var seen [8]bool
	first := func(k int) bool {
		ok := !seen[k]
		seen[k] = true
		return ok
	}
	for _, f := range h.fields {
		name := h.data[f.name:f.nameEnd]
		if len(name) < 10 || !equalFoldString(name[:8], "content-") {
			continue
		}
		v := h.data[f.val:f.end]
		switch rest := name[8:]; {
		case equalFoldString(rest, "type") && first(0):
			if t, s, ps, ok := parseContentType(v); ok {
				pt.Type, pt.Subtype, pt.Params = t, s, ps
			} else {
				// RFC 2045 §5.2: an invalid Content-Type means text/plain; charset=us-ascii.
				pt.Type, pt.Subtype = "text", "plain"
			}
		case equalFoldString(rest, "transfer-encoding") && first(1):
			pt.Encoding = strings.TrimSpace(stripComments(string(v)))
		case equalFoldString(rest, "id") && first(2):
			pt.ID = string(v)
		case equalFoldString(rest, "description") && first(3):
			pt.Description = string(v)
		case equalFoldString(rest, "md5") && first(4):
			pt.MD5 = string(v)
		case equalFoldString(rest, "location") && first(5):
			pt.Location = string(v)
		case equalFoldString(rest, "disposition") && first(6):
			pt.Disposition, pt.DispositionParams = parseDisposition(v)
		case equalFoldString(rest, "language") && first(7):
			for _, l := range strings.Split(stripComments(string(v)), ",") {
				if l = strings.TrimSpace(l); l != "" {
					pt.Language = append(pt.Language, l)
				}
			}
		}
	}
}

func indexLF(b []byte) int { return bytes.IndexByte(b, '\n') }

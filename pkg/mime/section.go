package mime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// Section names what FETCH BODY[section] returns (RFC 3501 §6.4.5, RFC 9051 §6.4.5).
type Section struct {
	// Path is the part number, 1.2.3 as {1, 2, 3}; empty for the whole message. Part 1 of
	// a message that is not multipart is its body; the parts of the message of a
	// message/rfc822 part are numbered below that part's number.
	Path []int
	// Specifier is "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME"
	// (upper case). HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT and TEXT apply to the
	// message itself when Path is empty, else to the message of the message/rfc822 part
	// at Path; MIME needs a Path and returns that part's own header.
	Specifier string
	// Fields are the field names of HEADER.FIELDS and HEADER.FIELDS.NOT.
	Fields []string
}

// String returns the section in the syntax of a FETCH response, without brackets:
// "1.2.HEADER.FIELDS (FROM TO)". Field names are written as atoms when they can be,
// else as quoted strings.
func (s Section) String() string {
	var b strings.Builder
	for i, n := range s.Path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	if s.Specifier != "" {
		if len(s.Path) > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.Specifier)
	}
	if s.Specifier == "HEADER.FIELDS" || s.Specifier == "HEADER.FIELDS.NOT" {
		b.WriteString(" (")
		for i, f := range s.Fields {
			if i > 0 {
				b.WriteByte(' ')
			}
			if isAtomString(f) {
				b.WriteString(f)
			} else {
				b.WriteString(strconv.Quote(f))
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

// isAtomString reports whether s can be written as an IMAP atom (RFC 3501 §9, ASTRING-CHAR
// minus "]" which would end the section).
func isAtomString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// ErrNoSection is returned, wrapped, for a section that does not exist in the message:
// a part number out of range, or HEADER/TEXT of a part that is not a message/rfc822.
// RFC 3501 §6.4.5 leaves the answer to the server; Dovecot sends an empty string.
var ErrNoSection = errors.New("mime: no such section")

// Part returns the part with section number path (see Section.Path); the root for an
// empty path.
func (m *Message) Part(path []int) (*Part, error) {
	cur, isMsg := m.Root, true
	for i, n := range path {
		if !isMsg && cur.Message != nil {
			cur, isMsg = cur.Message, true
		}
		switch {
		case cur.IsMultipart() && n >= 1 && n <= len(cur.Parts):
			cur = cur.Parts[n-1]
		case !cur.IsMultipart() && n == 1:
			// The body of a message that is not multipart is its part 1
			// (RFC 3501 §6.4.5). Like Dovecot, N.1 of any other part that is not
			// multipart is that part too: clients ask for it.
		default:
			return nil, fmt.Errorf("%w: part %s", ErrNoSection, Section{Path: path[:i+1]})
		}
		isMsg = false
	}
	return cur, nil
}

// Section returns the octets of BODY[s] in CRLF form, as a reader over the message file
// where it can be (the caller applies <partial> with Partial). The file must stay open
// while the reader is used.
func (m *Message) Section(s Section) (*io.SectionReader, error) {
	p, err := m.Part(s.Path)
	if err != nil {
		return nil, err
	}
	msg := p // the message that HEADER and TEXT refer to
	if len(s.Path) > 0 {
		msg = p.Message
	}
	switch s.Specifier {
	case "":
		if len(s.Path) == 0 {
			return m.rangeReader(Range{Offset: 0, Len: m.len, Size: m.Size}), nil
		}
		return m.rangeReader(p.BodyRange), nil
	case "MIME":
		if len(s.Path) == 0 {
			return nil, fmt.Errorf("%w: MIME without a part number", ErrNoSection)
		}
		return m.rangeReader(p.HeaderRange), nil
	case "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		if msg == nil {
			return nil, fmt.Errorf("%w: %s of a part that is not a message", ErrNoSection, s)
		}
		switch s.Specifier {
		case "HEADER":
			return m.rangeReader(msg.HeaderRange), nil
		case "TEXT":
			return m.rangeReader(msg.BodyRange), nil
		}
		b, err := m.headerFields(msg.HeaderRange, s.Fields, s.Specifier == "HEADER.FIELDS.NOT")
		if err != nil {
			return nil, err
		}
		return io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b))), nil
	}
	return nil, fmt.Errorf("%w: unknown specifier %q", ErrNoSection, s.Specifier)
}

// Partial returns the octets <offset.count> of r (RFC 3501 §6.4.5): empty when offset is
// past the end, shorter when fewer octets remain.
func Partial(r *io.SectionReader, offset, count int64) *io.SectionReader {
	size := r.Size()
	if offset < 0 || offset > size {
		offset = size
	}
	if count < 0 || count > size-offset {
		count = size - offset
	}
	return io.NewSectionReader(r, offset, count)
}

// rangeReader returns a reader of the CRLF form of rg.
func (m *Message) rangeReader(rg Range) *io.SectionReader {
	if rg.Size == rg.Len {
		return io.NewSectionReader(m.r, rg.Offset, rg.Len)
	}
	return io.NewSectionReader(&crlfReaderAt{r: m.r, rg: rg, rpos: rg.Offset}, 0, rg.Size)
}

// headerFields returns the fields of the header in rg whose names are (not, when not is
// set) in names, in CRLF form, followed by the blank line (RFC 3501 §6.4.5: "the blank
// line is included in all header fetches").
func (m *Message) headerFields(rg Range, names []string, not bool) ([]byte, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(m.r, rg.Offset, rg.Len), 4096)
	var out []byte
	keep := false
	lineStart := true
	for {
		piece, err := br.ReadSlice('\n')
		if len(piece) > 0 {
			complete := piece[len(piece)-1] == '\n'
			body := trimEOL(piece)
			if lineStart {
				switch {
				case len(body) > 0 && (body[0] == ' ' || body[0] == '\t'):
					// A continuation line goes with its field.
				case len(body) == 0 && complete:
					keep = false // the blank line, added at the end
				default:
					// A line that is not a field is not among the names: it goes
					// with HEADER.FIELDS.NOT (as in Dovecot).
					keep = not
					if i := bytes.IndexByte(body, ':'); i > 0 {
						keep = hasFieldName(names, trimWSPRight(body[:i])) != not
					}
				}
			}
			if keep {
				out = append(out, body...)
				if complete {
					out = append(out, '\r', '\n')
				}
			}
			lineStart = complete
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return nil, fmt.Errorf("%w: %w", ErrRead, err)
		}
	}
	if n := len(out); n > 0 && out[n-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	return append(out, '\r', '\n'), nil
}

// crlfReaderAt reads the CRLF form of a range whose lines may end in a bare LF. Sequential
// reads cost linear time in total; a read elsewhere starts again from the beginning of
// the range.
type crlfReaderAt struct {
	r  io.ReaderAt
	rg Range

	mu        sync.Mutex
	vpos      int64 // position in the CRLF form of the state below
	rpos      int64 // next octet of the file to convert
	prevCR    bool  // the last octet converted was CR
	lfPending bool  // a CR was inserted and its LF not yet returned
	buf       [4096]byte
}

func (c *crlfReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if off >= c.rg.Size {
		return 0, io.EOF
	}
	if off < c.vpos {
		c.vpos, c.rpos, c.prevCR, c.lfPending = 0, c.rg.Offset, false, false
	}
	var skip [512]byte
	for c.vpos < off {
		k := min(int64(len(skip)), off-c.vpos)
		n, err := c.convert(skip[:k])
		if n == 0 && err != nil {
			return 0, err
		}
	}
	total := 0
	for total < len(p) {
		n, err := c.convert(p[total:])
		total += n
		if err != nil {
			if err == io.EOF && total == len(p) {
				err = nil
			}
			return total, err
		}
	}
	return total, nil
}

// convert fills dst with the next octets of the CRLF form.
func (c *crlfReaderAt) convert(dst []byte) (int, error) {
	n := 0
	if c.lfPending && len(dst) > 0 {
		dst[0] = '\n'
		n = 1
		c.lfPending = false
	}
	end := c.rg.Offset + c.rg.Len
	for n < len(dst) && c.rpos < end {
		k := min(int64(len(c.buf)), end-c.rpos, int64(len(dst)-n))
		got, err := c.r.ReadAt(c.buf[:k], c.rpos)
		used := 0
		for _, b := range c.buf[:got] {
			if n == len(dst) {
				break
			}
			used++
			if b == '\n' && !c.prevCR {
				dst[n] = '\r'
				n++
				if n == len(dst) {
					c.lfPending = true
					c.prevCR = false
					break
				}
			}
			dst[n] = b
			n++
			c.prevCR = b == '\r'
		}
		c.rpos += int64(used)
		if got < int(k) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			c.vpos += int64(n)
			return n, fmt.Errorf("%w: %w", ErrRead, err)
		}
	}
	c.vpos += int64(n)
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}

// Binary returns the content of BINARY[path] (RFC 3516 §4.2): the body of the part with
// its Content-Transfer-Encoding undone. For the whole message (an empty path), a
// multipart or a message/rfc822 part, every part inside is decoded and its header says
// "Content-Transfer-Encoding: binary", as Dovecot does. An encoding this package does
// not know, anywhere in what is asked for, gives an error wrapping ErrUnknownEncoding.
func (m *Message) Binary(path []int) (io.Reader, error) {
	p, err := m.Part(path)
	if err != nil {
		return nil, err
	}
	var rs []io.Reader
	switch {
	case len(path) == 0:
		rs, err = m.binaryParts(p, true, nil)
	case p.Message != nil:
		rs, err = m.binaryParts(p.Message, true, nil)
	default:
		rs, err = m.binaryParts(p, false, nil)
	}
	if err != nil {
		return nil, err
	}
	return io.MultiReader(rs...), nil
}

// binaryParts appends the readers that make up the decoded form of p: its header when
// header is set (rewritten for a decoded leaf), then its body with every leaf decoded.
// Decoders are created only when read, so that a message of many parts costs little.
func (m *Message) binaryParts(p *Part, header bool, out []io.Reader) ([]io.Reader, error) {
	leaf := !p.IsMultipart() && p.Message == nil
	enc := encodingOf(p.Encoding)
	decode := leaf && enc != encIdentity
	if decode && enc == encUnknown {
		return nil, fmt.Errorf("%w %q", ErrUnknownEncoding, p.Encoding)
	}
	if header {
		if decode {
			out = append(out, &lazyReader{open: func() (io.Reader, error) {
				h, err := io.ReadAll(m.rangeReader(p.HeaderRange))
				if err != nil {
					return nil, err
				}
				return bytes.NewReader(binaryHeader(h)), nil
			}})
		} else {
			out = append(out, m.rangeReader(p.HeaderRange))
		}
	}
	var err error
	switch {
	case p.Message != nil:
		return m.binaryParts(p.Message, true, out)
	case p.IsMultipart() && len(p.Parts) > 0:
		// The preamble, the delimiter lines and the epilogue as they are.
		at := p.BodyRange.Offset
		for _, c := range p.Parts {
			out = append(out, m.spanReader(at, c.HeaderRange.Offset))
			if out, err = m.binaryParts(c, true, out); err != nil {
				return nil, err
			}
			at = c.BodyRange.Offset + c.BodyRange.Len
		}
		out = append(out, m.spanReader(at, p.BodyRange.Offset+p.BodyRange.Len))
	case decode:
		out = append(out, &lazyReader{open: func() (io.Reader, error) {
			return NewDecoder(m.rangeReader(p.BodyRange), p.Encoding)
		}})
	default:
		out = append(out, m.rangeReader(p.BodyRange))
	}
	return out, nil
}

// binaryHeader returns header h (CRLF form) with its Content-Transfer-Encoding field
// replaced by "Content-Transfer-Encoding: binary".
func binaryHeader(h []byte) []byte {
	out := make([]byte, 0, len(h)+16)
	skipping := false
	for len(h) > 0 {
		i := bytes.IndexByte(h, '\n')
		line := h
		if i >= 0 {
			line = h[:i+1]
		}
		h = h[len(line):]
		if skipping && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			continue // a continuation of the field replaced
		}
		skipping = false
		if c := bytes.IndexByte(line, ':'); c > 0 && equalFoldString(trimWSPRight(line[:c]), "Content-Transfer-Encoding") {
			out = append(out, "Content-Transfer-Encoding: binary\r\n"...)
			skipping = true
			continue
		}
		out = append(out, line...)
	}
	return out
}

// lazyReader opens its reader on the first Read.
type lazyReader struct {
	open func() (io.Reader, error)
	r    io.Reader
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.r == nil {
		r, err := l.open()
		if err != nil {
			return 0, err
		}
		l.r = r
	}
	return l.r.Read(p)
}

// spanReader returns a reader of the CRLF form of the octets [from, to) of the file.
func (m *Message) spanReader(from, to int64) io.Reader {
	if to <= from {
		return bytes.NewReader(nil)
	}
	rg := Range{Offset: from, Len: to - from, Size: 2 * (to - from)} // Size: a bound
	return io.NewSectionReader(&crlfReaderAt{r: m.r, rg: rg, rpos: from}, 0, rg.Size)
}

// BinarySize returns the size of BINARY[path], for BINARY.SIZE and for the literal that
// carries BINARY[path]. It decodes the content to count it, without keeping it.
func (m *Message) BinarySize(path []int) (int64, error) {
	r, err := m.Binary(path)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrRead, err)
	}
	return n, nil
}

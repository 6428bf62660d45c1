package mime

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/transform"
)

// Case-insensitive matching (RFC 3501 §6.4.4: "case-insensitive substring match") folds
// both sides rune by rune to lower(upper(r)), which equates the members of the usual
// Unicode simple case-folding orbits (k K, ß, σ ς Σ, ...). The fast path for needles in
// ASCII compares ASCII letters only, so it does not see the rare non-ASCII letters that
// fold to ASCII ones (KELVIN SIGN, LONG S).

// foldRune returns the folded form of r.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	return unicode.ToLower(unicode.ToUpper(r))
}

// Fold appends the folded form of the UTF-8 text src to dst, as ExtractText stores text
// and as Matcher.MatchFolded expects it. Octets that are not UTF-8 are copied as is.
func Fold(dst, src []byte) []byte { return appendFold(dst, src) }

func appendFold(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		c := src[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n <= 1 {
			dst = append(dst, c)
			i++
			continue
		}
		dst = utf8.AppendRune(dst, foldRune(r))
		i += n
	}
	return dst
}

// Matcher finds one SEARCH string in text, case-insensitively. It is safe for concurrent
// use.
type Matcher struct {
	needle []byte // folded
	ascii  bool
	anchor int  // index in needle of the octet looked for first (the rarest)
	lo, up byte // that octet in both cases (equal when it is not a letter)
}

// NewMatcher prepares s, in UTF-8 (the server converts from the SEARCH CHARSET first).
func NewMatcher(s string) *Matcher {
	m := &Matcher{needle: appendFold(nil, []byte(s))}
	m.ascii = isASCIIBytes(m.needle)
	if m.ascii && len(m.needle) > 0 {
		best := 0
		for i, c := range m.needle {
			if byteFreq[c] < byteFreq[m.needle[best]] {
				best = i
			}
		}
		m.anchor = best
		m.lo = m.needle[best]
		m.up = m.lo
		if 'a' <= m.lo && m.lo <= 'z' {
			m.up = m.lo - ('a' - 'A')
		}
	}
	return m
}

// byteFreq ranks octets by how often they occur in mail text (English letter frequency),
// so that the ASCII search looks first for the rarest octet of the needle.
var byteFreq = func() (t [256]uint8) {
	for i := range t {
		t[i] = 30
	}
	const order = "etaoinsrhldcumfpgwybvkxjqz" // most to least frequent
	for i := 0; i < len(order); i++ {
		t[order[i]] = uint8(200 - 7*i)
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 60
	}
	t[' '], t['\n'], t['\r'], t['='], t['-'], t['.'], t[','] = 255, 250, 250, 120, 100, 110, 90
	return t
}()

// Match reports whether text, UTF-8 in any case, contains the string. An empty string
// matches everything.
func (m *Matcher) Match(text []byte) bool {
	if len(m.needle) == 0 {
		return true
	}
	if m.ascii {
		return m.indexASCII(text)
	}
	bp := foldPool.Get().(*[]byte)
	f := appendFold((*bp)[:0], text)
	ok := bytes.Contains(f, m.needle)
	*bp = f
	foldPool.Put(bp)
	return ok
}

// MatchFolded reports whether text, already folded (Fold, Text), contains the string.
func (m *Matcher) MatchFolded(text []byte) bool { return bytes.Contains(text, m.needle) }

var foldPool = sync.Pool{New: func() any { b := make([]byte, 0, bufSize); return &b }}

// indexASCII finds the ASCII needle in h, ignoring the case of ASCII letters, by looking
// for the rarest octet of the needle with bytes.IndexByte (vectorised) in both cases.
func (m *Matcher) indexASCII(h []byte) bool {
	n, k := m.needle, m.anchor
	last := len(h) - len(n) + k // the last position where the anchor can be
	if last < k {
		return false
	}
	nextLo, nextUp := -1, -1
	if m.lo == m.up {
		nextUp = len(h)
	}
	for i := k; i <= last; {
		if nextLo < i {
			j := bytes.IndexByte(h[i:last+1], m.lo)
			if j < 0 {
				nextLo = len(h)
			} else {
				nextLo = i + j
			}
		}
		if nextUp < i {
			j := bytes.IndexByte(h[i:last+1], m.up)
			if j < 0 {
				nextUp = len(h)
			} else {
				nextUp = i + j
			}
		}
		p := min(nextLo, nextUp)
		if p > last {
			return false
		}
		if equalFoldASCII(h[p-k:p-k+len(n)], n) {
			return true
		}
		i = p + 1
	}
	return false
}

// equalFoldASCII reports whether a equals the folded ASCII b, ignoring the case of a's
// ASCII letters.
func equalFoldASCII(a, b []byte) bool {
	for i, c := range a {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != b[i] {
			return false
		}
	}
	return true
}

// The segments of a message that SEARCH looks at.
type segKind int

const (
	segTopHeader  segKind = iota // the message's own header (TEXT only)
	segMIMEHeader                // the header of a body part (TEXT only)
	segMsgHeader                 // the header of an encapsulated message (TEXT only)
	segBody                      // the decoded body of a text/* or message/* leaf (BODY and TEXT)
)

// segments calls fn for each segment of p in order until fn returns false or an error.
func segments(p *Part, isMsg, top bool, fn func(segKind, *Part) (bool, error)) (bool, error) {
	kind := segMIMEHeader
	switch {
	case top:
		kind = segTopHeader
	case isMsg:
		kind = segMsgHeader
	}
	if more, err := fn(kind, p); !more || err != nil {
		return more, err
	}
	switch {
	case p.Message != nil:
		return segments(p.Message, true, false, fn)
	case p.IsMultipart() && len(p.Parts) == 0:
		// No boundary found (or none given): the body is searched as text, since
		// the content is there and no reader shows it otherwise.
		return fn(segBody, p)
	case p.IsMultipart():
		for _, c := range p.Parts {
			if more, err := segments(c, false, false, fn); !more || err != nil {
				return more, err
			}
		}
	case p.IsText() || strings.EqualFold(p.Type, "message"):
		// Text, and the message/* parts that are not parsed (delivery-status,
		// external-body ...), as Dovecot searches them; not images or applications.
		return fn(segBody, p)
	}
	return true, nil
}

// Contains reports whether the message contains mt's string, for SEARCH TEXT (text set:
// the header and the body) or SEARCH BODY (RFC 3501 §6.4.4). The body is the decoded text
// of its text/* (and unparsed message/*) parts, transfer encoding undone and charset
// converted to UTF-8; TEXT adds the header of the message, those of the body parts (with
// their decoded parameters) and those of encapsulated messages. This is what Dovecot
// searches, checked on the same messages. Header values are searched with their
// encoded-words decoded, as "name: value" lines. Parts in 7bit/8bit UTF-8 or a
// single-octet charset are searched in the file's own octets, read in 32 KiB chunks.
func (m *Message) Contains(mt *Matcher, text bool) (bool, error) {
	if len(mt.needle) == 0 {
		return true, nil
	}
	buf := getBuf()
	defer putBuf(buf)
	found := false
	_, err := segments(m.Root, true, true, func(k segKind, p *Part) (bool, error) {
		switch k {
		case segTopHeader, segMIMEHeader:
			if text && (headerMatch(&p.Header, "", mt, buf) || paramsMatch(p, mt)) {
				found = true
			}
		case segMsgHeader:
			found = text && headerMatch(&p.Header, "", mt, buf)
		case segBody:
			ok, err := m.bodyMatch(p, mt, buf)
			if err != nil {
				return false, err
			}
			found = ok
		}
		return !found, nil
	})
	return found, err
}

// HeaderContains reports whether a field of the message's header named name
// (case-insensitive) contains mt's string in its decoded value, for SEARCH HEADER, FROM,
// TO, CC, BCC and SUBJECT (RFC 3501 §6.4.4). An empty string matches every message that
// has the field.
func (m *Message) HeaderContains(name string, mt *Matcher) bool {
	buf := getBuf()
	defer putBuf(buf)
	return headerMatch(&m.Root.Header, name, mt, buf)
}

// headerMatch searches the fields named name of h, in their decoded values; with name
// "", every field as a line "name: value", as ExtractText keeps them.
func headerMatch(h *Header, name string, mt *Matcher, scratch []byte) bool {
	for _, f := range h.fields {
		fname := h.data[f.name:f.nameEnd]
		if name != "" && !equalFoldString(fname, name) {
			continue
		}
		if len(mt.needle) == 0 {
			return true
		}
		line := scratch[:0]
		if name == "" {
			line = append(line, fname...)
			line = append(line, ':', ' ')
		}
		v := h.data[f.val:f.end]
		if bytes.Contains(v, []byte("=?")) || !utf8.Valid(v) {
			line = appendDecodedHeader(line, v)
		} else {
			line = append(line, v...)
		}
		if mt.Match(line) {
			return true
		}
		if name != "" && isAddressField(name) && addressesMatch(v, mt, scratch) {
			return true
		}
	}
	return false
}

// isAddressField reports whether the field name holds an address list (RFC 5322 §3.6.2,
// §3.6.3).
func isAddressField(name string) bool {
	switch strings.ToLower(name) {
	case "from", "sender", "reply-to", "to", "cc", "bcc":
		return true
	}
	return false
}

// addressesMatch searches the addresses of an address field as ENVELOPE shows them,
// each as "Name <mailbox@host>": SEARCH FROM user@domain finds a From written with
// comments or folding inside the address ("<user (c)@ (c) domain>"), which the raw
// text does not hold as one string, as Dovecot finds it.
func addressesMatch(v []byte, mt *Matcher, scratch []byte) bool {
	for _, a := range ParseAddressList(string(v)) {
		if a.Group {
			continue
		}
		line := scratch[:0]
		if a.Name != "" {
			line = appendDecodedHeader(line, []byte(a.Name))
			line = append(line, ' ')
		}
		line = append(line, '<')
		line = append(line, a.Mailbox...)
		if a.Host != "" {
			line = append(line, '@')
			line = append(line, a.Host...)
		}
		line = append(line, '>')
		if mt.Match(line) {
			return true
		}
	}
	return false
}

// paramsMatch searches the decoded parameters of p, where RFC 2231 file names are
// readable.
func paramsMatch(p *Part, mt *Matcher) bool {
	for _, ps := range [][]Param{p.Params, p.DispositionParams} {
		for _, q := range ps {
			if mt.Match([]byte(q.Value)) {
				return true
			}
		}
	}
	return false
}

// TextReader returns a reader of the decoded text of the body of the part p: transfer
// encoding undone and charset converted to UTF-8, as SEARCH reads it (an unknown transfer
// encoding or charset is read as is). Call release when done, to return the decoders to
// their pools. The spam classifier (pkg/junk) tokenizes mail through it.
func (m *Message) TextReader(p *Part) (r io.Reader, release func()) {
	return m.bodyReader(p, false)
}

// bodyReader returns a reader of the decoded UTF-8 text of the body of p. An unknown
// transfer encoding or charset is read as is. With asciiOnly set (the caller searches
// for ASCII text only), the charset is not converted when its ASCII octets stand for
// themselves and nothing else does (UTF-8 and the single-octet charsets): the same
// matches, without the conversion. release returns the decoders to their pools.
func (m *Message) bodyReader(p *Part, asciiOnly bool) (r io.Reader, release func()) {
	src := io.NewSectionReader(m.r, p.BodyRange.Offset, p.BodyRange.Len)
	r, release = src, func() {}
	switch encodingOf(p.Encoding) {
	case encBase64:
		d := b64Pool.Get().(*base64Reader)
		*d = base64Reader{r: src}
		r, release = d, func() { d.r = nil; b64Pool.Put(d) }
	case encQP:
		d := qpPool.Get().(*qpReader)
		d.reset(src)
		r, release = d, func() { d.r = nil; qpPool.Put(d) }
	}
	if enc := lookupCharset(p.Charset()); enc != nil && !(asciiOnly && asciiCompatible(enc)) {
		r = transform.NewReader(r, enc.NewDecoder())
	}
	return r, release
}

var (
	b64Pool = sync.Pool{New: func() any { return new(base64Reader) }}
	qpPool  = sync.Pool{New: func() any { return new(qpReader) }}
)

// asciiCompatible reports whether enc is a single-octet charset whose octets below 128
// are ASCII, so that an ASCII string matches its text where it matches the raw octets.
func asciiCompatible(enc encoding.Encoding) bool {
	cm, ok := enc.(*charmap.Charmap)
	if !ok {
		return false
	}
	switch cm {
	case charmap.CodePage037, charmap.CodePage1047, charmap.CodePage1140: // EBCDIC
		return false
	}
	return true
}

// bodyMatch searches the decoded body of the text part p, in chunks that overlap by
// enough octets for a match across two chunks.
func (m *Message) bodyMatch(p *Part, mt *Matcher, buf []byte) (bool, error) {
	r, release := m.bodyReader(p, mt.ascii)
	defer release()
	overlap := min(3*len(mt.needle)+4, len(buf)/2)
	keep := 0
	for {
		n, err := io.ReadFull(r, buf[keep:])
		data := buf[:keep+n]
		if mt.Match(data) {
			return true, nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		keep = min(overlap, len(data))
		copy(buf, data[len(data)-keep:])
	}
}

// Text is the searchable text of a message, extracted once by ExtractText so that a
// server can keep it (in memory or an index) and answer SEARCH BODY and TEXT from it.
// Both parts are folded (see Fold): search them with Matcher.MatchFolded.
type Text struct {
	// Header holds the headers of the message, of its body parts and of encapsulated
	// messages, one field per line ("name: decoded value\n"), and the decoded
	// parameters of the body parts.
	Header []byte
	// Body holds the decoded text of the text/* and unparsed message/* parts.
	Body []byte
	// Truncated is set when the text was longer than the limit given to ExtractText
	// and was cut: search the message itself (Contains) when nothing matches.
	Truncated bool
}

// Contains reports whether the text contains mt's string, with the rules of
// Message.Contains.
func (t *Text) Contains(mt *Matcher, text bool) bool {
	return text && mt.MatchFolded(t.Header) || mt.MatchFolded(t.Body)
}

// ExtractText returns the searchable text of the message, at most limit octets of it
// (limit <= 0: no limit).
func (m *Message) ExtractText(limit int) (*Text, error) {
	t := &Text{}
	buf := getBuf()
	defer putBuf(buf)
	room := func() int {
		if limit <= 0 {
			return int(^uint(0) >> 1)
		}
		return limit - len(t.Header) - len(t.Body)
	}
	_, err := segments(m.Root, true, true, func(k segKind, p *Part) (bool, error) {
		switch k {
		case segTopHeader, segMIMEHeader, segMsgHeader:
			dst := &t.Header
			h := &p.Header
			for _, f := range h.fields {
				line := append(buf[:0], h.data[f.name:f.nameEnd]...)
				line = append(line, ':', ' ')
				line = appendDecodedHeader(line, h.data[f.val:f.end])
				line = append(line, '\n')
				if len(line) > room() {
					t.Truncated = true
					return false, nil
				}
				*dst = appendFold(*dst, line)
			}
			if k != segMsgHeader {
				// The decoded parameters, where RFC 2231 file names are readable.
				for _, ps := range [][]Param{p.Params, p.DispositionParams} {
					for _, q := range ps {
						if len(q.Value)+1 > room() {
							t.Truncated = true
							return false, nil
						}
						t.Header = appendFold(t.Header, []byte(q.Value))
						t.Header = append(t.Header, '\n')
					}
				}
			}
		case segBody:
			r, release := m.bodyReader(p, false)
			defer release()
			keep := 0
			for {
				n, err := r.Read(buf[keep:])
				data := buf[:keep+n]
				// Hold back a rune cut by the end of the chunk.
				keep = 0
				if err == nil {
					keep = incompleteRune(data)
				}
				chunk := data[:len(data)-keep]
				if len(chunk) > room() {
					t.Body = appendFold(t.Body, chunk[:max(room(), 0)])
					t.Truncated = true
					return false, nil
				}
				t.Body = appendFold(t.Body, chunk)
				copy(buf, data[len(data)-keep:])
				if err == io.EOF {
					break
				}
				if err != nil {
					return false, err
				}
			}
			t.Body = append(t.Body, '\n')
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// incompleteRune returns how many octets at the end of b begin a UTF-8 sequence that b
// does not complete.
func incompleteRune(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			return 0
		}
		if utf8.RuneStart(c) {
			if utf8.FullRune(b[len(b)-i:]) {
				return 0
			}
			return i
		}
	}
	return 0
}

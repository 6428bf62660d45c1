package mime

import "bytes"

// maxHeaderData bounds the bytes of parsed fields kept for one header. Longer headers
// are still delimited correctly (their Range covers them whole, so FETCH returns them
// whole) but fields past the limit are not parsed.
const maxHeaderData = 1 << 20

// Header is the parsed header of a message or body part: its fields in order, each value
// unfolded (RFC 5322 §2.2.3: the CR and LF of folded lines removed, the white space kept)
// and trimmed of white space at both ends, but not otherwise decoded. Lines that are not
// fields (no colon) are skipped. The zero Header is empty.
type Header struct {
	data   []byte
	fields []hfield
}

type hfield struct{ name, nameEnd, val, end int } // name data[name:nameEnd], value data[val:end]

// Len returns the number of fields.
func (h *Header) Len() int { return len(h.fields) }

// Field returns the name (as written) and unfolded value of field i, 0 <= i < Len().
func (h *Header) Field(i int) (name, value string) {
	f := h.fields[i]
	return string(h.data[f.name:f.nameEnd]), string(h.data[f.val:f.end])
}

// Get returns the value of the first field named name (case-insensitive) and whether
// there is one.
func (h *Header) Get(name string) (string, bool) {
	if v := h.value(name); v != nil {
		return string(v), true
	}
	return "", false
}

// Values returns the values of every field named name (case-insensitive), in order.
func (h *Header) Values(name string) []string {
	var vs []string
	for _, f := range h.fields {
		if equalFoldString(h.data[f.name:f.nameEnd], name) {
			vs = append(vs, string(h.data[f.val:f.end]))
		}
	}
	return vs
}

// value returns the first value named name, or nil if there is none (an empty value is
// a non-nil empty slice).
func (h *Header) value(name string) []byte {
	for _, f := range h.fields {
		if equalFoldString(h.data[f.name:f.nameEnd], name) {
			return h.data[f.val:f.end:f.end]
		}
	}
	return nil
}

// headerBuilder collects the lines of one header into a Header.
type headerBuilder struct {
	h    *Header
	open bool // the last field may still be continued
	full bool // maxHeaderData reached
}

// line adds one header line (terminator included). A line starting with white space
// continues the last field (RFC 5322 §2.2.3).
func (b *headerBuilder) line(l []byte, lineStart bool) {
	if b.full {
		return
	}
	l = trimEOL(l)
	h := b.h
	if len(h.data)+len(l) > maxHeaderData {
		b.finish()
		b.full = true
		return
	}
	if !lineStart || (len(l) > 0 && (l[0] == ' ' || l[0] == '\t')) {
		// Continuation (or the rest of an overlong line).
		if b.open {
			h.data = append(h.data, l...)
			h.fields[len(h.fields)-1].end = len(h.data)
		}
		return
	}
	b.finish()
	i := bytes.IndexByte(l, ':')
	if i <= 0 {
		return // not a field: skipped, and so are its continuations
	}
	name := trimWSPRight(l[:i])
	if len(name) == 0 {
		return
	}
	start := len(h.data)
	h.data = append(h.data, name...)
	nameEnd := len(h.data)
	h.data = append(h.data, trimWSPLeft(l[i+1:])...)
	h.fields = append(h.fields, hfield{start, nameEnd, nameEnd, len(h.data)})
	b.open = true
}

// finish trims the trailing white space of the last field.
func (b *headerBuilder) finish() {
	if !b.open {
		return
	}
	b.open = false
	h := b.h
	f := &h.fields[len(h.fields)-1]
	for f.end > f.val && isWSP(h.data[f.end-1]) {
		f.end--
	}
	// The value starts with white space when its first line was empty.
	for f.val < f.end && isWSP(h.data[f.val]) {
		f.val++
	}
	h.data = h.data[:f.end]
}

// trimWSPLeft and trimWSPRight trim spaces and tabs (bytes.Trim builds a set each call).
func trimWSPLeft(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func trimWSPRight(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// trimEOL removes a trailing LF or CRLF.
func trimEOL(l []byte) []byte {
	if n := len(l); n > 0 && l[n-1] == '\n' {
		l = l[:n-1]
		if n > 1 && l[n-2] == '\r' {
			l = l[:n-2]
		}
	}
	return l
}

// equalFoldString reports whether b and s are equal under ASCII case folding, which is
// how header field names compare (RFC 5322 §1.2.2).
func equalFoldString(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z' {
			return false
		}
	}
	return true
}

// hasFieldName reports whether name is in names, case-insensitively.
func hasFieldName(names []string, name []byte) bool {
	for _, n := range names {
		if equalFoldString(name, n) {
			return true
		}
	}
	return false
}

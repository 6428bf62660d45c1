package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// maxHeader bounds the header section sendmail holds in memory (to find -t's
// recipients before the message goes out); past it the rest is body, as with Postfix's
// header_size_limit.
const maxHeader = 1 << 20

// reader turns standard input into message content for the queue: every line ending a
// CRLF (RFC 5322 §2.1), and, unless -i, the end of input at a line holding only a dot,
// as Sendmail and Postfix read it.
type reader struct {
	in         *bufio.Reader
	ignoreDots bool
	done       bool
	pending    []byte // content read but not yet returned
}

func newReader(in io.Reader, ignoreDots bool) *reader {
	return &reader{in: bufio.NewReaderSize(in, 64<<10), ignoreDots: ignoreDots}
}

// line returns the next line with a CRLF ending (a line longer than the buffer comes in
// pieces, only the last with the ending), or io.EOF at the end of the message.
func (r *reader) line() ([]byte, error) {
	if r.done {
		return nil, io.EOF
	}
	b, err := r.in.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return b, nil
	case errors.Is(err, io.EOF):
		r.done = true
		if len(b) == 0 {
			return nil, io.EOF
		}
		// The last line has no line ending: it gets one.
		b = bytes.TrimSuffix(b, []byte("\r"))
		return append(append([]byte(nil), b...), '\r', '\n'), nil
	case err != nil:
		return nil, &readError{err}
	}
	text := bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	if !r.ignoreDots && len(text) == 1 && text[0] == '.' {
		r.done = true
		return nil, io.EOF
	}
	if len(text) == len(b)-2 {
		return b, nil // already CRLF
	}
	return append(append([]byte(nil), text...), '\r', '\n'), nil
}

// Read returns the content, line by line.
func (r *reader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		l, err := r.line()
		if err != nil {
			return 0, err
		}
		r.pending = l
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// readError is a failure to read standard input, told apart from a failure to write to
// cleanup.
type readError struct{ err error }

func (e *readError) Error() string { return "reading the message: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// header is the header section of a message as read, each field with its continuation
// lines and CRLFs.
type header struct {
	fields [][]byte
	// end is what follows the fields: the empty line, or the first line of a body that
	// has no empty line before it (then it is not a field), or nothing at the end of
	// input or past maxHeader.
	end []byte
}

// readHeader reads the header section (RFC 5322 §2.2): fields up to the empty line.
func readHeader(r *reader) (*header, error) {
	h := &header{}
	size := 0
	for size < maxHeader {
		l, err := r.line()
		if errors.Is(err, io.EOF) {
			return h, nil
		}
		if err != nil {
			return nil, err
		}
		size += len(l)
		continuation := l[0] == ' ' || l[0] == '\t'
		switch {
		case string(l) == "\r\n":
			h.end = l
			return h, nil
		case continuation && len(h.fields) > 0:
			h.fields[len(h.fields)-1] = append(h.fields[len(h.fields)-1], l...)
		case !continuation && isField(l):
			h.fields = append(h.fields, append([]byte(nil), l...))
		default:
			// Not a header field: the body starts here (the message had no empty line).
			h.end = append([]byte(nil), l...)
			return h, nil
		}
	}
	return h, nil
}

// isField says whether a line starts a header field: a name of printable characters but
// the colon, then a colon (RFC 5322 §2.2).
func isField(l []byte) bool {
	i := bytes.IndexByte(l, ':')
	if i <= 0 {
		return false
	}
	for _, c := range l[:i] {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// name returns a field's name, lower-cased.
func fieldName(f []byte) string {
	return strings.ToLower(string(f[:bytes.IndexByte(f, ':')]))
}

// value returns a field's unfolded value (RFC 5322 §2.2.3).
func fieldValue(f []byte) string {
	v := f[bytes.IndexByte(f, ':')+1:]
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
	return strings.TrimSpace(string(v))
}

// extract implements -t: it returns the addresses of the To:, Cc: and Bcc: fields and
// removes the Bcc: fields from the message (they must not reach the recipients,
// RFC 5322 §3.6.3). When the message has Resent- fields, it was resent and the
// Resent-To:, Resent-Cc: and Resent-Bcc: fields name its recipients instead (§3.6.6), as
// Postfix reads them.
func (h *header) extract() ([]string, error) {
	resent := false
	for _, f := range h.fields {
		if strings.HasPrefix(fieldName(f), "resent-") {
			resent = true
			break
		}
	}
	want := map[string]bool{"to": true, "cc": true, "bcc": true}
	bcc := "bcc"
	if resent {
		want = map[string]bool{"resent-to": true, "resent-cc": true, "resent-bcc": true}
		bcc = "resent-bcc"
	}
	var out []string
	kept := h.fields[:0]
	for _, f := range h.fields {
		name := fieldName(f)
		if want[name] {
			addrs, err := addressList(fieldValue(f))
			if err != nil {
				return nil, fmt.Errorf("the %s: field: %w", f[:len(name)], err)
			}
			out = append(out, addrs...)
		}
		if name != bcc {
			kept = append(kept, f)
		}
	}
	h.fields = kept
	return out, nil
}

// addressList parses an address list (RFC 5322 §3.4), groups included; "undisclosed-
// recipients:;" is an empty one. A bare user name ("root", as scripts write it) is kept
// as it is, for cleanup to qualify with the host name.
func addressList(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	list, err := p.ParseList(v)
	if err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, a.Address)
		}
		return out, nil
	}
	var out []string
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if a, perr := p.Parse(part); perr == nil {
			out = append(out, a.Address)
			continue
		}
		if !isUserName(part) {
			return nil, fmt.Errorf("cannot parse %q: %w", part, err)
		}
		out = append(out, part)
	}
	return out, nil
}

// isUserName says whether s looks like a local user name: letters, digits and ._-.
func isUserName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// WriteTo writes the header section as it now is.
func (h *header) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, f := range h.fields {
		m, err := w.Write(f)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	m, err := w.Write(h.end)
	return n + int64(m), err
}

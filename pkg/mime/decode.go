package mime

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrUnknownEncoding is returned, wrapped, by NewDecoder and Message.Binary for a
// Content-Transfer-Encoding this package cannot undo; an IMAP server answers
// NO [UNKNOWN-CTE] (RFC 3516 §4.3).
var ErrUnknownEncoding = errors.New("mime: unknown Content-Transfer-Encoding")

// NewDecoder returns a reader of the content of r with the Content-Transfer-Encoding enc
// undone (RFC 2045 §6): r itself for 7bit, 8bit, binary and no encoding, a lenient
// decoder for base64 and quoted-printable. The names compare case-insensitively.
func NewDecoder(r io.Reader, enc string) (io.Reader, error) {
	switch encodingOf(enc) {
	case encIdentity:
		return r, nil
	case encBase64:
		return &base64Reader{r: r}, nil
	case encQP:
		d := &qpReader{}
		d.reset(r)
		return d, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownEncoding, enc)
}

// transferEncoding is a Content-Transfer-Encoding as this package handles it.
type transferEncoding int

const (
	encIdentity transferEncoding = iota // 7bit, 8bit, binary or none: the content as is
	encBase64
	encQP
	encUnknown
)

// encodingOf classifies a Content-Transfer-Encoding value; the names compare
// case-insensitively (RFC 2045 §6.1). NewDecoder, the parser, BINARY and SEARCH all
// decide with it, so that they agree on what can be decoded.
func encodingOf(e string) transferEncoding {
	switch strings.ToLower(strings.TrimSpace(e)) {
	case "", "7bit", "8bit", "binary":
		return encIdentity
	case "base64":
		return encBase64
	case "quoted-printable":
		return encQP
	}
	return encUnknown
}

// base64Reader decodes base64 (RFC 2045 §6.8) leniently, like appendBase64: octets
// outside the alphabet (line breaks, white space, garbage) are skipped and decoding goes
// on after padding.
type base64Reader struct {
	r   io.Reader
	in  [4096]byte
	out []byte // decoded, not yet returned
	acc uint32
	n   int
	err error
}

func (d *base64Reader) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		k, err := d.r.Read(d.in[:])
		d.err = err
		// Decode in place: 4 input octets never make more than 3 output octets.
		out := d.in[:0]
		acc, n := d.acc, d.n
		for _, c := range d.in[:k] {
			v := base64Value[c]
			if v == 0xff {
				if c == '=' {
					acc, n = 0, 0
				}
				continue
			}
			acc = acc<<6 | uint32(v)
			n++
			switch n {
			case 2:
				out = append(out, byte(acc>>4))
			case 3:
				out = append(out, byte(acc>>2))
			case 4:
				out = append(out, byte(acc))
				acc, n = 0, 0
			}
		}
		d.acc, d.n = acc, n
		d.out = out
	}
	c := copy(p, d.out)
	d.out = d.out[c:]
	return c, nil
}

// qpReader decodes quoted-printable (RFC 2045 §6.7) leniently: soft line breaks
// ("=" before CRLF or LF, white space allowed between) are removed, "=XX" in either case
// is decoded, any other "=" is kept as is, and white space at the end of a line is
// dropped (rule 3).
type qpReader struct {
	r     io.Reader
	in    [4096]byte
	out   []byte
	buf   []byte // decode buffer
	state int
	hex1  byte
	ws    []byte // trailing white space not yet known to be followed by text
	err   error
}

const (
	qpNormal = iota
	qpEq     // after "="
	qpEqHex  // after "=" and one hex digit
	qpEqWS   // after "=" and white space
	qpEqCR   // after "=" [white space] CR
)

// reset prepares d to decode r, keeping its buffers.
func (d *qpReader) reset(r io.Reader) {
	d.r, d.out, d.state, d.err = r, nil, qpNormal, nil
	d.ws = d.ws[:0]
	if d.buf == nil {
		d.buf = make([]byte, 0, 2*len(d.in))
	}
}

func (d *qpReader) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		k, err := d.r.Read(d.in[:])
		d.buf = d.decode(d.buf[:0], d.in[:k])
		if err != nil {
			d.err = err
			d.buf = d.flushEOF(d.buf)
		}
		d.out = d.buf
	}
	c := copy(p, d.out)
	d.out = d.out[c:]
	return c, nil
}

// qpPlain marks the octets that quoted-printable decoding copies as they are.
var qpPlain = func() (t [256]bool) {
	for i := range t {
		t[i] = true
	}
	for _, c := range "= \t\r\n" {
		t[c] = false
	}
	return t
}()

func (d *qpReader) decode(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		if d.state == qpNormal && len(d.ws) == 0 && qpPlain[src[i]] {
			// A run of plain text, copied at once.
			j := i + 1
			for j < len(src) && qpPlain[src[j]] {
				j++
			}
			dst = append(dst, src[i:j]...)
			if i = j; i >= len(src) {
				break
			}
		}
		c := src[i]
		switch d.state {
		case qpEq:
			switch {
			case isHex(c):
				d.hex1, d.state = c, qpEqHex
			case c == '\n':
				d.state = qpNormal // soft line break
			case c == '\r':
				d.state = qpEqCR
			case c == ' ' || c == '\t':
				d.ws = append(d.ws[:0], c)
				d.state = qpEqWS
			default:
				dst = append(dst, '=')
				d.state = qpNormal
				i--
			}
			continue
		case qpEqHex:
			d.state = qpNormal
			if isHex(c) {
				h, _ := unhex(d.hex1)
				l, _ := unhex(c)
				dst = append(dst, h<<4|l)
				continue
			}
			dst = append(dst, '=', d.hex1)
			i--
			continue
		case qpEqWS:
			switch c {
			case ' ', '\t':
				if len(d.ws) < 1024 {
					d.ws = append(d.ws, c)
				}
			case '\r':
				d.ws = d.ws[:0]
				d.state = qpEqCR
			case '\n':
				d.ws = d.ws[:0]
				d.state = qpNormal
			default:
				// Not a soft line break: the "=" and the white space are text.
				dst = append(dst, '=')
				dst = append(dst, d.ws...)
				d.ws = d.ws[:0]
				d.state = qpNormal
				i--
			}
			continue
		case qpEqCR:
			d.state = qpNormal
			if c == '\n' {
				continue
			}
			i--
			continue
		}
		switch c {
		case '=':
			dst = append(dst, d.ws...)
			d.ws = d.ws[:0]
			d.state = qpEq
		case ' ', '\t':
			if len(d.ws) >= 1024 {
				dst = append(dst, d.ws...)
				d.ws = d.ws[:0]
			}
			d.ws = append(d.ws, c)
		case '\r', '\n':
			d.ws = d.ws[:0]
			dst = append(dst, c)
		default:
			if len(d.ws) > 0 {
				dst = append(dst, d.ws...)
				d.ws = d.ws[:0]
			}
			dst = append(dst, c)
		}
	}
	return dst
}

func (d *qpReader) flushEOF(dst []byte) []byte {
	switch d.state {
	case qpEq, qpEqWS:
		dst = append(dst, '=')
	case qpEqHex:
		dst = append(dst, '=', d.hex1)
	}
	d.state = qpNormal
	d.ws = d.ws[:0]
	return dst
}

func isHex(c byte) bool { _, ok := unhex(c); return ok }

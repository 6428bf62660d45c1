package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DataOptions are the limits applied to message content by DataReader and
// LineNormalizer. Both count content after normalization: dot-unstuffed, every line
// ending a CRLF.
type DataOptions struct {
	// MaxSize is the largest message in octets, line endings included; 0 means no limit.
	// Beyond it the content is discarded and the error is ErrMessageTooLarge.
	MaxSize int64
	// MaxLineLength is the longest line in octets, CRLF excluded (usually
	// MaxTextLineLength); 0 means no limit. Beyond it the content is discarded and the
	// error is ErrLineTooLong.
	MaxLineLength int
}

// limits counts content against DataOptions.
type limits struct {
	opts    DataOptions
	size    int64
	lineLen int64
	err     error // the first limit exceeded; content is discarded from then on
}

// content counts n octets of content on the current line and reports whether they may
// still be passed on.
func (l *limits) content(n int) bool {
	l.size += int64(n)
	l.lineLen += int64(n)
	if l.err == nil {
		if l.opts.MaxLineLength > 0 && l.lineLen > int64(l.opts.MaxLineLength) {
			l.err = fmt.Errorf("%w: content line over %d octets", ErrLineTooLong, l.opts.MaxLineLength)
		} else if l.opts.MaxSize > 0 && l.size > l.opts.MaxSize {
			l.err = fmt.Errorf("%w: over %d octets", ErrMessageTooLarge, l.opts.MaxSize)
		}
	}
	return l.err == nil
}

// fits reports whether n more octets of content and a CRLF stay within the limits.
func (l *limits) fits(n int) bool {
	return (l.opts.MaxLineLength <= 0 || l.lineLen+int64(n) <= int64(l.opts.MaxLineLength)) &&
		(l.opts.MaxSize <= 0 || l.size+int64(n)+2 <= l.opts.MaxSize)
}

// lineEnd counts a CRLF and reports whether it may still be passed on.
func (l *limits) lineEnd() bool {
	l.size += 2
	l.lineLen = 0
	if l.err == nil && l.opts.MaxSize > 0 && l.size > l.opts.MaxSize {
		l.err = fmt.Errorf("%w: over %d octets", ErrMessageTooLarge, l.opts.MaxSize)
	}
	return l.err == nil
}

// dataState is where a DataReader stands in the raw input.
type dataState uint8

const (
	dsLineStart dataState = iota // at the start of a line
	dsDot                        // read "." at the start of a line
	dsDotCR                      // read "." CR at the start of a line
	dsMid                        // inside a line
	dsCR                         // read a CR that is not (yet) part of a CRLF
	dsDone                       // read the end of data
)

// DataReader reads the message content that follows a DATA command (RFC 5321
// §4.1.1.4), from the reader that holds the connection's input, up to and including the
// end-of-data line. It implements io.Reader.
//
// What it yields is the content dot-unstuffed (RFC 5321 §4.5.2: a line that starts with
// "." and has more characters loses that first ".") with every line ending written as
// CRLF: a bare CR or a bare LF ends a line too, and comes out as CRLF.
//
// The end of data is recognised only on the exact input CRLF "." CRLF, where the first
// CRLF may be the one that ended the DATA command (a "." CRLF first line is an empty
// message). A line made of a lone "." that is ended or preceded by a bare CR or LF
// ("\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r" ...) is not an end of data, and comes out as
// the content line "." CRLF: this defeats "SMTP smuggling" (CVE-2023-51764 and
// siblings), where the sender hides a second message behind an end of data that the
// next server would see and Postern would not, or the reverse. The messages Postern
// sends on are normalized, so every server down the line reads them the same way.
//
// When the content passes a limit of DataOptions, DataReader stops yielding content
// but goes on reading, and discarding, up to the end of data, so the session stays in
// step with the client; then Read returns ErrMessageTooLarge or ErrLineTooLong instead
// of io.EOF. Input that ends before the end of data gives io.ErrUnexpectedEOF. Memory
// use is bounded by the bufio.Reader's buffer whatever the input.
//
// The usual use is io.Copy(spoolFile, dr) followed by a look at the error.
type DataReader struct {
	r     *bufio.Reader
	lim   limits
	state dataState
	// crlfBefore: the line ending before the current line start was a real CRLF, or
	// the current line is the first one. Only then does "." CRLF end the data.
	crlfBefore bool
	pend       [3]byte // output that did not fit the caller's buffer
	pendOff    int
	pendN      int
	err        error // sticky: io.EOF, a limit error, or a read error
}

// NewDataReader returns a DataReader that reads the message content from r. It reads
// nothing from r beyond the end-of-data line, so pipelined commands that follow it stay
// in r.
func NewDataReader(r *bufio.Reader, opts DataOptions) *DataReader {
	return &DataReader{r: r, lim: limits{opts: opts}, state: dsLineStart, crlfBefore: true}
}

// Size returns the number of octets of content read so far, after normalization. After
// a limit was exceeded it goes on counting the content that is discarded, so that it
// tells, in the end, the size of the whole message.
func (d *DataReader) Size() int64 { return d.lim.size }

// Read reads message content into p. See DataReader for the errors.
func (d *DataReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := copy(p, d.pend[d.pendOff:d.pendN])
	d.pendOff += n
	for {
		discarding := d.lim.err != nil
		if !discarding && (n == len(p) || d.pendOff < d.pendN) {
			return n, nil
		}
		if d.state == dsDone {
			d.err = io.EOF
			if discarding {
				d.err = d.lim.err
			}
			return n, d.err
		}
		if d.r.Buffered() == 0 {
			if n > 0 && !discarding {
				return n, nil // do not block while holding content
			}
			if _, err := d.r.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					d.err = io.ErrUnexpectedEOF
				} else {
					d.err = fmt.Errorf("smtp: reading message data: %w", err)
				}
				return n, d.err
			}
		}
		buf, _ := d.r.Peek(d.r.Buffered())
		consumed, produced := d.process(buf, p[n:])
		_, _ = d.r.Discard(consumed) // cannot fail: consumed <= Buffered()
		n += produced
	}
}

// process runs the state machine over in, the buffered input, writing content to out.
// It stops at the end of data, when out is full, or when output had to be held back in
// d.pend; but while discarding, only at the end of in or of data.
func (d *DataReader) process(in, out []byte) (consumed, produced int) {
	i, o := 0, 0
	// Positions of the next LF and CR at or after i, len(in) when there is none:
	// searched once per occurrence, so the scan is linear in len(in).
	nextLF, nextCR := -1, -1
	for i < len(in) && d.state != dsDone {
		if d.lim.err == nil && (o == len(out) || d.pendOff < d.pendN) {
			break
		}
		c := in[i]
		switch d.state {
		case dsMid:
			// Fast path: whole lines ending in CRLF go through unchanged, so as many
			// as fit (in out and within the limits) are copied in one go.
			first := i
			for {
				if nextLF < i {
					nextLF = indexByteFrom(in, i, '\n')
				}
				if nextCR < i {
					nextCR = indexByteFrom(in, i, '\r')
				}
				j := min(nextLF, nextCR)
				if j+1 >= len(in) || in[j] != '\r' || in[j+1] != '\n' {
					break
				}
				if d.lim.err == nil && (j+2-first > len(out)-o || !d.lim.fits(j-i)) {
					break
				}
				d.lim.size += int64(j - i + 2)
				d.lim.lineLen = 0
				i = j + 2
				if i == len(in) || in[i] == '.' {
					break
				}
			}
			if i > first {
				if d.lim.err == nil {
					o += copy(out[o:], in[first:i])
				}
				d.state, d.crlfBefore = dsLineStart, true
				continue
			}
			// Slow path: content up to a CR or LF that is not a plain CRLF, or up
			// to the end of in or of out.
			j := min(nextLF, nextCR)
			if j > i {
				run := in[i:j]
				if d.lim.err == nil {
					run = run[:min(len(run), len(out)-o)]
				}
				if d.lim.content(len(run)) {
					o += copy(out[o:], run)
				}
				i += len(run)
				continue
			}
			i++
			if c == '\r' {
				d.state = dsCR
			} else {
				o = d.endLine(out, o, false) // bare LF
			}
		case dsLineStart:
			switch c {
			case '.':
				d.state = dsDot
				i++
			case '\r':
				d.state = dsCR
				i++
			case '\n':
				o = d.endLine(out, o, false) // bare LF
				i++
			default:
				d.state = dsMid
			}
		case dsDot:
			switch c {
			case '\r':
				d.state = dsDotCR
				i++
			case '\n':
				o = d.dotLine(out, o, false) // "." bare LF: content, never the end
				i++
			default:
				// RFC 5321 §4.5.2: the line has more characters, so its first "."
				// is deleted; c is content, processed in dsMid.
				d.state = dsMid
			}
		case dsDotCR:
			if c == '\n' {
				i++
				if d.crlfBefore {
					d.state = dsDone // CRLF "." CRLF, RFC 5321 §4.1.1.4
				} else {
					o = d.dotLine(out, o, true)
				}
			} else {
				o = d.dotLine(out, o, false) // "." bare CR; c starts the next line
			}
		case dsCR:
			if c == '\n' {
				i++
				o = d.endLine(out, o, true)
			} else {
				o = d.endLine(out, o, false) // bare CR; c starts the next line
			}
		}
	}
	return i, o
}

// endLine ends the current line: a CRLF in the output. crlf tells whether the input had
// a real CRLF there.
func (d *DataReader) endLine(out []byte, o int, crlf bool) int {
	d.state, d.crlfBefore = dsLineStart, crlf
	if d.lim.lineEnd() {
		o = d.put(out, o, "\r\n")
	}
	return o
}

// dotLine ends a line made of a lone "." that is not the end of data; it is content.
func (d *DataReader) dotLine(out []byte, o int, crlf bool) int {
	d.state, d.crlfBefore = dsLineStart, crlf
	ok := d.lim.content(1)
	if d.lim.lineEnd() && ok {
		o = d.put(out, o, ".\r\n")
	}
	return o
}

// put writes s to out at o, holding back in d.pend what does not fit.
func (d *DataReader) put(out []byte, o int, s string) int {
	c := copy(out[o:], s)
	if c < len(s) {
		d.pendOff, d.pendN = 0, copy(d.pend[:], s[c:])
	}
	return o + c
}

// indexByteFrom returns the index of the first c in b at or after i, or len(b).
func indexByteFrom(b []byte, i int, c byte) int {
	if j := bytes.IndexByte(b[i:], c); j >= 0 {
		return i + j
	}
	return len(b)
}

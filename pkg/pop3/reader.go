package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Reader reads the lines a client sends: commands and SASL responses.
type Reader struct {
	br  *bufio.Reader
	max int
}

// NewReader returns a Reader on br that refuses lines longer than max octets (CRLF
// included); br's buffer must hold at least max octets.
func NewReader(br *bufio.Reader, max int) *Reader { return &Reader{br: br, max: max} }

// Reset makes the Reader read from br (after STLS, from the TLS connection).
func (r *Reader) Reset(br *bufio.Reader) { r.br = br }

// Buffered returns the number of octets received but not read yet: after STLS, any is
// an attempt to inject commands into the TLS session.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadLine returns the next line without its line ending (CRLF, or a bare LF that some
// clients send). A line longer than the limit is read to its end and dropped, and
// ErrLineTooLong returned, so that the session can answer and go on with the next.
func (r *Reader) ReadLine() (string, error) {
	line, err := r.br.ReadSlice('\n')
	if err == nil && len(line) <= r.max {
		line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
		return string(line), nil
	}
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	// Too long: skip to the end of the line.
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = r.br.ReadSlice('\n')
	}
	if err != nil {
		return "", err
	}
	return "", ErrLineTooLong
}

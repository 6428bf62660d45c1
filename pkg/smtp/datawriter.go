package smtp

import "io"

// DataWriter writes message content for the DATA command, on the client side.
//
// It dot-stuffs (RFC 5321 §4.5.2: a line that starts with "." gets another one in
// front), writes every line ending as CRLF (a bare CR or bare LF becomes CRLF, as
// DataReader reads them), and on Close ends the data with "." CRLF, after a CRLF if the
// content did not end with a line ending (RFC 5321 §4.1.1.4).
type DataWriter struct {
	out       outBuf
	lineStart bool // the next octet starts a line
	pendingCR bool // the last octet written was a CR whose fate hangs on the next one
	closed    bool
}

var _ io.WriteCloser = (*DataWriter)(nil)

// NewDataWriter returns a DataWriter that writes to w, typically a bufio.Writer on the
// connection. It does not flush or close w.
func NewDataWriter(w io.Writer) *DataWriter {
	return &DataWriter{out: outBuf{w: w}, lineStart: true}
}

// Write writes p, dot-stuffed and with CRLF line endings, before returning (but for a
// final CR, held until the next Write or Close). Errors of the underlying writer are
// sticky.
func (d *DataWriter) Write(p []byte) (int, error) {
	if d.closed {
		return 0, ErrClosed
	}
	if d.out.err != nil {
		return 0, d.out.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	i := 0
	if d.pendingCR {
		d.pendingCR = false
		if p[0] == '\n' {
			i = 1
		}
		d.out.writeString("\r\n")
		d.lineStart = true
	}
	start := i // start of the run of input not yet written on
	nextLF, nextCR := -1, -1
	for i < len(p) {
		if d.lineStart {
			d.lineStart = false
			if p[i] == '.' {
				d.out.write(p[start:i])
				d.out.writeString(".") // the line's own "." follows in the run
				start = i
			}
		}
		if nextLF < i {
			nextLF = indexByteFrom(p, i, '\n')
		}
		if nextCR < i {
			nextCR = indexByteFrom(p, i, '\r')
		}
		j := min(nextLF, nextCR)
		switch {
		case j == len(p):
			i = j
		case p[j] == '\n': // bare LF
			d.out.write(p[start:j])
			d.out.writeString("\r\n")
			i, start = j+1, j+1
			d.lineStart = true
		case j+1 == len(p): // CR at the end: wait for the next octet
			d.out.write(p[start:j])
			d.pendingCR = true
			i, start = j+1, j+1
		case p[j+1] == '\n': // CRLF: goes through as it is
			i = j + 2
			d.lineStart = true
		default: // bare CR
			d.out.write(p[start:j])
			d.out.writeString("\r\n")
			i, start = j+1, j+1
			d.lineStart = true
		}
	}
	d.out.write(p[start:])
	if err := d.out.flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends the data: a CRLF unless the content ended with a line ending, then
// "." CRLF. It does not close the underlying writer. A second Close does nothing.
func (d *DataWriter) Close() error {
	if d.closed {
		return d.out.err
	}
	d.closed = true
	if d.pendingCR {
		d.pendingCR = false
		d.lineStart = true
		d.out.writeString("\r\n")
	}
	if !d.lineStart {
		d.out.writeString("\r\n")
	}
	d.out.writeString(".\r\n")
	return d.out.flush()
}

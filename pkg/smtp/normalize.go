package smtp

import (
	"io"
)

// outBufSize is the size of the buffer in which LineNormalizer and DataWriter gather
// small pieces of output before writing them.
const outBufSize = 4096

// outBuf gathers output for an io.Writer, so that inserted line endings and dots do not
// each cost a write. Pieces of outBufSize or more go straight through.
type outBuf struct {
	w   io.Writer
	buf []byte
	err error // sticky write error
}

func (b *outBuf) write(p []byte) {
	if b.err != nil || len(p) == 0 {
		return
	}
	if b.buf == nil {
		b.buf = make([]byte, 0, outBufSize)
	}
	if len(b.buf)+len(p) > cap(b.buf) {
		b.flush()
		if len(p) >= cap(b.buf) {
			if b.err == nil {
				_, b.err = b.w.Write(p)
			}
			return
		}
	}
	b.buf = append(b.buf, p...)
}

func (b *outBuf) writeString(s string) {
	if b.err != nil {
		return
	}
	if len(b.buf)+len(s) > cap(b.buf) {
		b.flush()
	}
	if b.buf == nil {
		b.buf = make([]byte, 0, outBufSize)
	}
	b.buf = append(b.buf, s...)
}

func (b *outBuf) flush() error {
	if b.err == nil && len(b.buf) > 0 {
		_, b.err = b.w.Write(b.buf)
	}
	b.buf = b.buf[:0]
	return b.err
}

// LineNormalizer is an io.Writer that passes message content on to another writer with
// every line ending made a CRLF: a bare CR or a bare LF becomes CRLF. It is meant for the
// chunks of a BDAT transfer (RFC 3030 §2), which carry the message as is, with no
// dot-stuffing: write every chunk of one message to the same LineNormalizer, and Close it
// after the LAST one. A CR that ends one chunk and an LF that starts the next are one
// CRLF.
//
// It counts the content against DataOptions like DataReader: past a limit it goes on
// accepting writes, and counting, but passes nothing more on; Err then tells which limit
// was passed, so the server can read the remaining chunks and answer once.
type LineNormalizer struct {
	out       outBuf
	lim       limits
	pendingCR bool // the last octet written was a CR whose fate hangs on the next one
}

// NewLineNormalizer returns a LineNormalizer that writes to w.
func NewLineNormalizer(w io.Writer, opts DataOptions) *LineNormalizer {
	return &LineNormalizer{out: outBuf{w: w}, lim: limits{opts: opts}}
}

// Write normalizes p and writes it on before returning (but for a final CR, held until
// the next Write or Close). It returns an error only when the underlying writer failed;
// that error is sticky.
func (n *LineNormalizer) Write(p []byte) (int, error) {
	if n.out.err != nil {
		return 0, n.out.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	i := 0
	if n.pendingCR {
		n.pendingCR = false
		if p[0] == '\n' {
			i = 1
		}
		n.lineEnd()
	}
	start := i // start of the run of input not yet written on
	nextLF, nextCR := -1, -1
	for i < len(p) {
		if nextLF < i {
			nextLF = indexByteFrom(p, i, '\n')
		}
		if nextCR < i {
			nextCR = indexByteFrom(p, i, '\r')
		}
		j := min(nextLF, nextCR)
		n.lim.content(j - i)
		switch {
		case j == len(p):
			i = j
		case p[j] == '\n': // bare LF
			n.emit(p[start:j])
			n.lineEnd()
			i, start = j+1, j+1
		case j+1 == len(p): // CR at the end: wait for the next octet
			n.emit(p[start:j])
			n.pendingCR = true
			i, start = j+1, j+1
		case p[j+1] == '\n': // CRLF: goes through as it is
			n.lim.lineEnd()
			i = j + 2
		default: // bare CR
			n.emit(p[start:j])
			n.lineEnd()
			i, start = j+1, j+1
		}
	}
	n.emit(p[start:])
	if err := n.out.flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// emit writes content on, unless a limit was passed.
func (n *LineNormalizer) emit(p []byte) {
	if n.lim.err == nil {
		n.out.write(p)
	}
}

// lineEnd counts and writes a CRLF.
func (n *LineNormalizer) lineEnd() {
	if n.lim.lineEnd() {
		n.out.writeString("\r\n")
	}
}

// Close writes a CR held back by the last Write as a CRLF (a bare CR at the end of the
// message). It does not close the underlying writer, and does not ensure that the
// content ends with a line ending. It returns the underlying writer's error, if any.
func (n *LineNormalizer) Close() error {
	if n.pendingCR {
		n.pendingCR = false
		n.lineEnd()
	}
	return n.out.flush()
}

// Err returns ErrMessageTooLarge or ErrLineTooLong (wrapped) once the content has passed
// a limit, else nil.
func (n *LineNormalizer) Err() error { return n.lim.err }

// Size returns the number of octets of content written so far, after normalization,
// including the content discarded after a limit was passed.
func (n *LineNormalizer) Size() int64 { return n.lim.size }

// Writer and Read: mailboxes in the mboxrd format, where each message starts
// with a "From " separator line, its lines end in LF, and every line of the message
// that matches />*From / gets one more ">" in front, which the reader takes away again,
// so that any message survives the round trip (RFC 4155 describes the mbox family; the
// "rd" quoting is the reversible one).
//
// The writer streams: a message is read and written a buffer at a time, so a message or
// a mailbox of any size takes constant memory. Read, which takes a whole mbox in
// memory, is for tests and small files; Scanner reads any size.

package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Writer writes messages to an mbox.
type Writer struct {
	w *bufio.Writer
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 32<<10)}
}

// fromLine is the separator line before a message: "From SENDER DATE", with the date
// in the asctime layout (RFC 4155 §2).
func fromLine(sender string, date time.Time) string {
	if sender == "" || strings.ContainsAny(sender, " \t\r\n") {
		sender = "MAILER-DAEMON"
	}
	if date.IsZero() {
		date = time.Unix(0, 0)
	}
	return "From " + sender + " " + date.UTC().Format(time.ANSIC) + "\n"
}

// WriteMessage writes one message read from r (CRLF or LF line endings) with its
// separator line naming sender (the envelope sender; "" is MAILER-DAEMON) and date (when
// it arrived), quoting its From lines, and ends it with a blank line.
func (w *Writer) WriteMessage(sender string, date time.Time, r io.Reader) error {
	if _, err := w.w.WriteString(fromLine(sender, date)); err != nil {
		return fmt.Errorf("writing the mbox: %w", err)
	}
	br := bufio.NewReaderSize(r, 32<<10)
	q := quoter{w: w.w, start: true}
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if werr := q.write(chunk); werr != nil {
				return fmt.Errorf("writing the mbox: %w", werr)
			}
		}
		if err == nil || errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != io.EOF {
			return fmt.Errorf("reading the message for the mbox: %w", err)
		}
		break
	}
	if err := q.end(); err != nil {
		return fmt.Errorf("writing the mbox: %w", err)
	}
	return nil
}

// Flush writes what is buffered.
func (w *Writer) Flush() error { return w.w.Flush() }

// quoter copies a message's bytes, CRLF turned to LF, with one ">" added before each line
// that matches />*From /. At the start of a line it holds back the ">"s and the part of
// "From " seen so far (gts and from) until it knows whether the line needs the quote.
type quoter struct {
	w     *bufio.Writer
	start bool // at the start of a line (or in its held-back prefix)
	gts   int  // ">" held back
	from  int  // bytes of "From " held back after them
	cr    bool // a CR held back, which a LF may follow
	last  byte // the last byte written, to end the message with a newline
	any   bool // a byte was written
}

const fromPrefix = "From "

func (q *quoter) put(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	q.last, q.any = b[len(b)-1], true
	_, err := q.w.Write(b)
	return err
}

// flushPrefix writes the held-back prefix as it was, quoted when quote.
func (q *quoter) flushPrefix(quote bool) error {
	var p []byte
	if quote {
		p = append(p, '>')
	}
	p = append(p, bytes.Repeat([]byte{'>'}, q.gts)...)
	p = append(p, fromPrefix[:q.from]...)
	q.gts, q.from, q.start = 0, 0, false
	return q.put(p)
}

func (q *quoter) write(b []byte) error {
	for len(b) > 0 {
		if q.cr {
			q.cr = false
			if b[0] != '\n' {
				if err := q.put([]byte{'\r'}); err != nil {
					return err
				}
			}
		}
		if q.start {
			c := b[0]
			switch {
			case q.from == 0 && c == '>':
				q.gts++
				b = b[1:]
				continue
			case c == fromPrefix[q.from]:
				q.from++
				b = b[1:]
				if q.from == len(fromPrefix) {
					if err := q.flushPrefix(true); err != nil {
						return err
					}
				}
				continue
			default:
				if err := q.flushPrefix(false); err != nil {
					return err
				}
			}
		}
		// The rest of the line, or of the chunk.
		i := bytes.IndexByte(b, '\n')
		line := b
		if i >= 0 {
			line = b[:i+1]
		}
		b = b[len(line):]
		switch {
		case bytes.HasSuffix(line, []byte("\r\n")):
			line = append(line[:len(line)-2:len(line)-2], '\n')
		case line[len(line)-1] == '\r':
			q.cr, line = true, line[:len(line)-1]
		}
		if err := q.put(line); err != nil {
			return err
		}
		if i >= 0 {
			q.start = true
		}
	}
	return nil
}

// end writes what is held back, a newline if the message did not end with one, and
// the blank line that ends the message in the mbox.
func (q *quoter) end() error {
	if q.start && (q.gts > 0 || q.from > 0) {
		if err := q.flushPrefix(false); err != nil {
			return err
		}
	}
	if q.cr {
		if err := q.put([]byte{'\r'}); err != nil {
			return err
		}
	}
	if q.any && q.last != '\n' {
		if err := q.put([]byte{'\n'}); err != nil {
			return err
		}
	}
	_, err := q.w.WriteString("\n")
	return err
}

// Entry is one message read from an mbox.
type Entry struct {
	// Separator is the "From " line, without its newline.
	Separator string
	// Body is the message, LF line endings, From lines unquoted.
	Body []byte
}

// Read parses a whole mbox (the tests read back what Writer wrote) with Scanner, and
// unquotes each message as Content does, keeping its line endings.
func Read(r io.Reader) ([]Entry, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading the mbox: %w", err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		return nil, errors.New("the mbox does not end with a blank line")
	}
	var msgs []Entry
	sc := NewScanner(bytes.NewReader(data))
	for {
		m, err := sc.Next()
		if err == io.EOF {
			return msgs, nil
		}
		if err != nil {
			return nil, err
		}
		sep := data[:m.Offset-1] // the "From " line ends just before the message
		sep = sep[bytes.LastIndexByte(sep, '\n')+1:]
		c := &content{br: bufio.NewReader(bytes.NewReader(data[m.Offset : m.Offset+m.Size])), unescape: true, asIs: true}
		body, err := io.ReadAll(c)
		if err != nil {
			return nil, fmt.Errorf("reading message %d of the mbox: %w", len(msgs)+1, err)
		}
		msgs = append(msgs, Entry{Separator: string(sep), Body: body})
	}
}

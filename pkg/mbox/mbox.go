// Package mbox reads and writes mbox files (RFC 4155). Writer writes mboxrd, streaming.
// Scanner reads as a stream: Scanner finds the messages one
// after the other, with their offsets, envelope date and flags, holding one line at a
// time, so that a file of any size is read in constant memory; Content turns a
// message's octets into what a Maildir file holds (mboxrd's ">From " unescaped, lines
// ended by CRLF).
package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"postern/pkg/maildir"
)

// Message is one message of an mbox file.
type Message struct {
	// Offset and Size locate the message's octets in the file: after its "From " line,
	// without the empty line that separates it from the next one.
	Offset, Size int64
	// Line is the line number of its "From " line, for errors.
	Line int
	// Date is the date of the "From " line (the delivery date), zero when it has none
	// that parses.
	Date time.Time
	// Flags are the Maildir flag letters (maildir.FlagLetters: in ASCII order) of the
	// IMAP flags that the Status and X-Status header fields give (statusFlags).
	Flags string
}

// ErrNotMbox says that the data does not begin with a "From " line.
var ErrNotMbox = errors.New("not an mbox file: it does not begin with a \"From \" line")

// maxLine bounds the line Scanner holds; longer lines are read in parts.
const maxLine = 64 << 10

// Scanner finds the messages of an mbox.
type Scanner struct {
	br       *bufio.Reader
	pos      int64
	line     int
	cur      *Message
	inHeader bool
	prevNL   int64 // length of the line ending of the previous line if it was empty, else 0
	partial  bool
	flags    []string // the IMAP flags of the current message's header so far
	err      error
}

// NewScanner returns a scanner of r, read from its current position (offset 0).
func NewScanner(r io.Reader) *Scanner {
	return &Scanner{br: bufio.NewReaderSize(r, maxLine), prevNL: -1}
}

// Next returns the next message, or io.EOF after the last one. A file that does not
// start with "From " gives ErrNotMbox; a read error is returned as it is, wrapped.
func (s *Scanner) Next() (Message, error) {
	for s.err == nil {
		chunk, err := s.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) && err != io.EOF {
			s.err = fmt.Errorf("reading the mbox at line %d: %w", s.line+1, err)
			break
		}
		if len(chunk) > 0 {
			start := s.pos
			s.pos += int64(len(chunk))
			whole := !s.partial
			s.partial = errors.Is(err, bufio.ErrBufferFull)
			if whole {
				s.line++
			}
			if whole && s.prevNL != 0 && bytes.HasPrefix(chunk, []byte("From ")) {
				// RFC 4155 §2: a "From " line at the start or after an empty line
				// begins a message.
				var done *Message
				if s.cur != nil {
					s.cur.Size = start - max(s.prevNL, 0) - s.cur.Offset
					s.finishFlags()
					done = s.cur
				}
				s.cur = &Message{Offset: s.pos, Line: s.line, Date: envelopeDate(string(chunk))}
				s.inHeader, s.flags = true, s.flags[:0]
				s.prevNL = 0
				if done != nil {
					return *done, nil
				}
				continue
			}
			if s.cur == nil {
				s.err = ErrNotMbox
				break
			}
			if whole && s.inHeader {
				s.header(chunk)
			}
			s.prevNL = 0
			if whole && !s.partial {
				if t := bytes.TrimRight(chunk, "\r\n"); len(t) == 0 {
					s.prevNL = int64(len(chunk))
				}
			}
		}
		if err == io.EOF {
			s.err = io.EOF
		}
	}
	if s.cur != nil && s.err == io.EOF {
		s.cur.Size = s.pos - max(s.prevNL, 0) - s.cur.Offset
		s.finishFlags()
		done := s.cur
		s.cur = nil
		return *done, nil
	}
	if s.cur == nil && s.line == 0 && s.err == io.EOF {
		return Message{}, io.EOF // an empty file: no messages
	}
	return Message{}, s.err
}

// header looks at one line of the current message's header section.
func (s *Scanner) header(line []byte) {
	t := bytes.TrimRight(line, "\r\n")
	if len(t) == 0 {
		s.inHeader = false
		return
	}
	name, value, ok := bytes.Cut(t, []byte(":"))
	if !ok {
		return
	}
	field := strings.ToLower(string(bytes.TrimSpace(name)))
	for _, c := range bytes.TrimSpace(value) {
		for _, sf := range statusFlags {
			if sf.field == field && sf.letter == c {
				s.flags = append(s.flags, sf.flag)
			}
		}
	}
}

// statusFlags are the letters of the Status and X-Status header fields that mutt,
// Thunderbird and Dovecot write, with the IMAP flag each stands for; pkg/maildir has the
// Maildir letter of each IMAP flag.
var statusFlags = [...]struct {
	field  string // lower case
	letter byte
	flag   string
}{
	{"status", 'R', `\Seen`}, // read
	{"x-status", 'A', `\Answered`},
	{"x-status", 'F', `\Flagged`},
	{"x-status", 'D', `\Deleted`},
	{"x-status", 'T', `\Draft`},
}

// StatusFields returns the values of the Status and X-Status header fields that stand
// for the flags of a Maildir file's info letters (the reverse of Message.Flags): Status
// "RO" for a message seen, else "O"; X-Status the letters of the other flags, in the
// order of info, "" when there are none.
func StatusFields(info string) (status, xstatus string) {
	status = "O"
	var x []byte
	for _, c := range []byte(info) {
		for _, mf := range maildir.SystemFlags {
			if mf.Letter != c || mf.IMAP == "" {
				continue
			}
			for _, sf := range statusFlags {
				switch {
				case sf.flag != mf.IMAP:
				case sf.field == "status":
					status = string(sf.letter) + "O"
				default:
					x = append(x, sf.letter)
				}
			}
		}
	}
	return status, string(x)
}

func (s *Scanner) finishFlags() {
	s.cur.Flags, _ = maildir.FlagLetters(s.flags)
}

// envelopeDate parses the date of a "From sender date" line: asctime's layout, as
// RFC 4155 §2 says, possibly with a time zone.
func envelopeDate(line string) time.Time {
	f := strings.Fields(strings.TrimSpace(line))
	if len(f) < 3 {
		return time.Time{}
	}
	rest := strings.Join(f[2:], " ")
	for _, layout := range []string{time.ANSIC, "Mon Jan _2 15:04:05 MST 2006", "Mon Jan _2 15:04:05 -0700 2006", time.UnixDate} {
		if t, err := time.Parse(layout, rest); err == nil {
			return t
		}
	}
	return time.Time{}
}

// Content returns what a Maildir file should hold for the octets r gives: every line
// ended by CRLF and, when mboxrd is true, one '>' taken from lines that match
// ">+From " (the mboxrd escaping; RFC 4155 §2 describes the variants).
func Content(r io.Reader, mboxrd bool) io.Reader {
	return &content{br: bufio.NewReaderSize(r, 32<<10), unescape: mboxrd}
}

type content struct {
	br       *bufio.Reader
	unescape bool
	asIs     bool // keep the line endings (for Read)
	buf      []byte
	out      []byte
	midline  bool
	lastCR   bool
	err      error
}

func (c *content) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		chunk, err := c.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			c.err = err
		}
		if len(chunk) == 0 {
			continue
		}
		c.out = c.out[:0]
		if !c.midline && c.unescape && len(chunk) > 5 && chunk[0] == '>' {
			i := 0
			for i < len(chunk) && chunk[i] == '>' {
				i++
			}
			if bytes.HasPrefix(chunk[i:], []byte("From ")) {
				chunk = chunk[1:]
			}
		}
		if c.asIs {
			c.out = append(c.out, chunk...)
			c.midline = chunk[len(chunk)-1] != '\n'
		} else if chunk[len(chunk)-1] == '\n' {
			body := chunk[:len(chunk)-1]
			cr := len(body) > 0 && body[len(body)-1] == '\r' || len(body) == 0 && c.lastCR
			c.out = append(c.out, body...)
			if cr {
				c.out = append(c.out, '\n')
			} else {
				c.out = append(c.out, '\r', '\n')
			}
			c.midline, c.lastCR = false, false
		} else {
			c.out = append(c.out, chunk...)
			c.midline, c.lastCR = true, chunk[len(chunk)-1] == '\r'
		}
		c.buf = c.out
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

package smtp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits that ReadReply applies to what a server sends. They are well above what
// RFC 5321 §4.5.3.1.5 allows, to be lenient, and bound the memory a reply can take.
const (
	maxReplyLineRead = 2048
	maxReplyLines    = 256
)

// Reply is an SMTP reply (RFC 5321 §4.2).
type Reply struct {
	// Code is the three-digit reply code, such as 250.
	Code int
	// Enhanced is the enhanced status code (RFC 3463), such as "5.1.1", or "".
	Enhanced string
	// Lines is the text, one element per line, without code, enhanced code or CRLF.
	Lines []string
}

// NewReply returns a reply whose text is fmt.Sprintf(format, args...). Newlines in the
// text start new lines of a multi-line reply.
func NewReply(code int, enhanced, format string, args ...any) Reply {
	text := fmt.Sprintf(format, args...)
	text = strings.ReplaceAll(text, "\r\n", "\n")
	return Reply{Code: code, Enhanced: enhanced, Lines: strings.Split(text, "\n")}
}

// String formats r for the wire: every line but the last as "250-text", the last as
// "250 text" (RFC 5321 §4.2.1), each prefixed with the enhanced code when there is one
// (RFC 2034 §4), and each ending in CRLF.
//
// CR and LF inside an element of Lines start a new line, and other control characters
// but HTAB become "?", so no text can inject a reply line. A reply without lines is one
// line with no text. The last line always has its space after the code ("250 "), as
// some clients (Go's net/textproto among them) require.
func (r Reply) String() string {
	var lines []string
	for _, l := range r.Lines {
		l = strings.ReplaceAll(l, "\r\n", "\n")
		l = strings.ReplaceAll(l, "\r", "\n")
		lines = append(lines, strings.Split(l, "\n")...)
	}
	if len(lines) == 0 {
		lines = []string{""}
	}
	code := fmt.Sprintf("%03d", r.Code)
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(code)
		if i < len(lines)-1 {
			b.WriteByte('-')
		} else {
			b.WriteByte(' ')
		}
		if r.Enhanced != "" {
			b.WriteString(r.Enhanced)
			if l != "" {
				b.WriteByte(' ')
			}
		}
		b.WriteString(sanitizeReplyText(l))
		b.WriteString("\r\n")
	}
	return b.String()
}

// sanitizeReplyText replaces control characters other than HTAB by "?"; textstring is
// 1*(%d09 / %d32-126) (RFC 5321 §4.2).
func sanitizeReplyText(s string) string {
	if strings.IndexFunc(s, isReplyControl) < 0 {
		return s
	}
	return strings.Map(func(c rune) rune {
		if isReplyControl(c) {
			return '?'
		}
		return c
	}, s)
}

func isReplyControl(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f }

// ReadReply reads one reply, single or multi-line, from a server (RFC 5321 §4.2.1).
//
// Lines may end in CRLF or a bare LF. Every line must carry the same code. When the first
// line's text starts with an enhanced status code whose class matches the reply code
// (RFC 3463 §2), it goes into Enhanced and is removed from the start of every line that
// repeats it (RFC 2034 §4). Control characters in the text become "?".
//
// A line over 2048 octets gives ErrLineTooLong, a reply of more than 256 lines or a
// malformed line ErrSyntax. The end of input before any octet gives io.EOF, within a
// reply io.ErrUnexpectedEOF.
func ReadReply(r *bufio.Reader) (Reply, error) {
	var rep Reply
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return Reply{}, fmt.Errorf("%w: reply of more than %d lines", ErrSyntax, maxReplyLines)
		}
		line, err := ReadLine(r, maxReplyLineRead)
		if err != nil {
			if n > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Reply{}, err
		}
		code, last, text, err := parseReplyLine(line)
		if err != nil {
			return Reply{}, err
		}
		if n == 0 {
			rep.Code = code
			if ec, rest, ok := cutEnhanced(text, code); ok {
				rep.Enhanced, text = ec, rest
			}
		} else {
			if code != rep.Code {
				return Reply{}, fmt.Errorf("%w: reply code %d changes to %d within a reply", ErrSyntax, rep.Code, code)
			}
			if ec, rest, ok := cutEnhanced(text, code); ok && ec == rep.Enhanced {
				text = rest
			}
		}
		rep.Lines = append(rep.Lines, sanitizeReplyText(text))
		if last {
			return rep, nil
		}
	}
}

// parseReplyLine splits a reply line: Reply-code [ ( SP / "-" ) textstring ]
// (RFC 5321 §4.2). Reply-code = %x32-35 %x30-35 %x30-39.
func parseReplyLine(line []byte) (code int, last bool, text string, err error) {
	if len(line) < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
		line[2] < '0' || line[2] > '9' {
		return 0, false, "", fmt.Errorf("%w: malformed reply code", ErrSyntax)
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, true, "", nil
	}
	switch line[3] {
	case ' ':
		last = true
	case '-':
	default:
		return 0, false, "", fmt.Errorf("%w: malformed reply line", ErrSyntax)
	}
	return code, last, string(line[4:]), nil
}

// cutEnhanced removes an enhanced status code from the start of text:
// class "." subject "." detail, followed by a space or the end (RFC 3463 §2,
// RFC 2034 §4). The class must be the first digit of code.
func cutEnhanced(text string, code int) (ec, rest string, ok bool) {
	end := strings.IndexByte(text, ' ')
	if end < 0 {
		end = len(text)
	}
	ec = text[:end]
	parts := strings.Split(ec, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return "", text, false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return "", text, false
		}
	}
	rest = text[end:]
	if rest != "" {
		rest = rest[1:]
	}
	return ec, rest, true
}

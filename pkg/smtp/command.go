package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Command is one parsed SMTP command line.
type Command struct {
	// Verb is the command word, upper-cased ("MAIL", "EHLO"); verbs are
	// case-insensitive (RFC 5321 §2.4).
	Verb string
	// Arg is everything after the first space, inner spaces kept and trailing spaces
	// and tabs removed; "" when the command has no argument.
	Arg string
}

// ParseCommand parses a command line given without its line ending.
//
// The line may be at most MaxCommandLine octets with its CRLF (RFC 5321 §4.5.3.1.4), or
// MaxExtendedCommandLine for MAIL and RCPT, whose parameters extensions lengthen;
// longer lines give ErrLineTooLong. NUL, CR, LF and other control characters (HTAB
// aside) give ErrSyntax, as does a verb that is not made of letters, digits and hyphens.
func ParseCommand(line []byte) (Command, error) {
	if len(line) > MaxExtendedCommandLine-2 {
		return Command{}, fmt.Errorf("%w: command line of %d octets", ErrLineTooLong, len(line)+2)
	}
	for _, c := range line {
		if c < ' ' && c != '\t' || c == 0x7f {
			return Command{}, fmt.Errorf("%w: control character 0x%02x in command line", ErrSyntax, c)
		}
	}
	verb, arg, _ := bytes.Cut(line, []byte{' '})
	if len(verb) == 0 {
		return Command{}, fmt.Errorf("%w: empty command", ErrSyntax)
	}
	for _, c := range verb {
		if !isAlnum(c) && c != '-' {
			return Command{}, fmt.Errorf("%w: invalid command word", ErrSyntax)
		}
	}
	cmd := Command{
		Verb: strings.ToUpper(string(verb)),
		Arg:  string(bytes.TrimRight(arg, " \t")),
	}
	if cmd.Verb != "MAIL" && cmd.Verb != "RCPT" && len(line) > MaxCommandLine-2 {
		return Command{}, fmt.Errorf("%w: command line of %d octets", ErrLineTooLong, len(line)+2)
	}
	return cmd, nil
}

// ReadLine reads one line from r and returns it without its line ending, in a new slice.
//
// A line ends at LF; one CR just before the LF is removed too, so both CRLF and a bare LF
// end a line (a CR elsewhere is left in the line, for the parser to reject). A line longer
// than max octets (line ending excluded) is read to its end and discarded, and ReadLine
// returns ErrLineTooLong, so the caller can answer and carry on in step with the peer.
// At the end of input ReadLine returns io.EOF if no byte of a line was read, else
// io.ErrUnexpectedEOF; other read errors are returned wrapped.
func ReadLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			// Room for max octets and a CRLF; the exact check is made at the LF.
			if len(line)+len(chunk) > max+2 {
				tooLong = true
				line = nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, fmt.Errorf("%w: more than %d octets", ErrLineTooLong, max)
			}
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) > max {
				return nil, fmt.Errorf("%w: more than %d octets", ErrLineTooLong, max)
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) == 0 && len(chunk) == 0 && !tooLong {
				return nil, io.EOF
			}
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, fmt.Errorf("smtp: reading line: %w", err)
		}
	}
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

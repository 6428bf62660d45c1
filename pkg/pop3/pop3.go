// Package pop3 is the wire format of the Post Office Protocol, version 3: the command
// lines a client sends (RFC 1939 §3, with CAPA from RFC 2449, STLS from RFC 2595 and
// AUTH from RFC 5034), the reading of those lines within a length limit, and the
// multi-line responses of RETR and TOP, byte-stuffed and cut after a number of body
// lines. The session logic lives with the mail store it serves (imapd).
package pop3

import (
	"errors"
	"strconv"
	"strings"
)

// MaxLine bounds a command line or a SASL response line, CRLF included. RFC 2449 §4
// bounds a client's command lines at 255 octets; the server takes more, so that a long
// password after PASS or in a SASL PLAIN response still fits.
const MaxLine = 2048

// Command is one parsed command line.
type Command struct {
	// Name is the keyword in upper case (RFC 1939 §3: keywords are case-insensitive).
	Name string
	// Arg is the argument of USER and PASS (the rest of the line after PASS, spaces
	// included, RFC 1939 §7), and the mechanism of AUTH (upper case).
	Arg string
	// Initial is the initial response of AUTH (RFC 5034 §4), base64 or "=" for an
	// empty one; HasInitial says whether one was given.
	Initial    string
	HasInitial bool
	// Msg is the message number of LIST, UIDL, RETR, DELE and TOP; 0 when LIST or UIDL
	// has none.
	Msg int
	// Lines is the number of body lines of TOP.
	Lines int
}

// SyntaxError is a command line that cannot be parsed; its text is meant for the -ERR
// answer.
type SyntaxError struct{ Msg string }

func (e *SyntaxError) Error() string { return e.Msg }

// ErrLineTooLong is a line longer than the Reader's limit.
var ErrLineTooLong = errors.New("line too long")

func syntax(msg string) error { return &SyntaxError{Msg: msg} }

// argCount gives, for each command, the fewest and the most arguments it takes (PASS
// takes the rest of the line as one).
var argCount = map[string][2]int{
	"USER": {1, 1}, "PASS": {1, 1}, "AUTH": {0, 2}, "CAPA": {0, 0}, "STLS": {0, 0},
	"QUIT": {0, 0}, "STAT": {0, 0}, "LIST": {0, 1}, "UIDL": {0, 1}, "RETR": {1, 1},
	"DELE": {1, 1}, "NOOP": {0, 0}, "RSET": {0, 0}, "TOP": {2, 2},
}

// ParseCommand parses one command line, without its CRLF.
func ParseCommand(line string) (Command, error) {
	var c Command
	if strings.ContainsAny(line, "\x00\r\n") {
		return c, syntax("NUL, CR or LF inside a command line")
	}
	name, rest, hasArgs := strings.Cut(line, " ")
	// RFC 1939 §3: a keyword is three or four characters.
	if len(name) < 3 || len(name) > 4 {
		return c, syntax("Unknown command")
	}
	c.Name = strings.ToUpper(name)
	n, ok := argCount[c.Name]
	if !ok {
		return c, syntax("Unknown command")
	}
	if c.Name == "PASS" {
		// RFC 1939 §7: the server may treat spaces in the argument as part of the
		// password, since PASS has exactly one argument.
		if !hasArgs || rest == "" {
			return c, syntax("PASS needs a password")
		}
		c.Arg = rest
		return c, nil
	}
	var args []string
	if hasArgs {
		args = strings.Split(strings.TrimRight(rest, " "), " ")
		if len(args) == 1 && args[0] == "" {
			args = nil
		}
		for _, a := range args {
			if a == "" {
				return c, syntax("Arguments are separated by a single space")
			}
		}
	}
	if len(args) < n[0] || len(args) > n[1] {
		return c, syntax(c.Name + ": wrong number of arguments")
	}
	var err error
	switch c.Name {
	case "USER":
		c.Arg = args[0]
	case "AUTH":
		if len(args) > 0 {
			c.Arg = strings.ToUpper(args[0])
		}
		if len(args) > 1 {
			c.Initial, c.HasInitial = args[1], true
		}
	case "LIST", "UIDL":
		if len(args) == 1 {
			c.Msg, err = msgNumber(args[0])
		}
	case "RETR", "DELE":
		c.Msg, err = msgNumber(args[0])
	case "TOP":
		if c.Msg, err = msgNumber(args[0]); err == nil {
			c.Lines, err = number(args[1], "line count")
		}
	}
	return c, err
}

// msgNumber parses a message number (RFC 1939 §3: 1 for the first message).
func msgNumber(s string) (int, error) {
	n, err := number(s, "message number")
	if err == nil && n == 0 {
		return 0, syntax("Invalid message number")
	}
	return n, err
}

func number(s, what string) (int, error) {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, syntax("Invalid " + what)
		}
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, syntax("Invalid " + what)
	}
	return int(n), nil
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"postern/pkg/config"
)

// Limits of the command reader.
const (
	maxLine    = 8 << 10                   // a command line without its literals
	maxLiteral = config.MaxSieveScriptSize // a literal (a script is limited further by sieve.max_script_size)
	maxArgs    = 8
)

// errProtocol is a command that cannot be read: the answer is NO, or BYE when the
// stream cannot be resynchronised.
var errProtocol = errors.New("syntax error")

// command is a ManageSieve command (RFC 5804 §4): a case-insensitive name and its
// arguments, strings (quoted or literal) or numbers (kept as their digits).
type command struct {
	name  string
	first string // the first token as sent, for a SASL response
	args  []string
}

// raw returns the first token as the client sent it.
func (c *command) raw() string { return c.first }

// readCommand reads one command: atoms, quoted strings and literals ({n+} or {n},
// RFC 5804 §4), separated by spaces, ending with CRLF. A literal's octets follow its
// line; no continuation is sent (clients use the non-synchronizing form).
func readCommand(r *bufio.Reader) (*command, error) {
	var toks []string
	for {
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		i := 0
		for i < len(line) {
			switch c := line[i]; {
			case c == ' ':
				i++
			case c == '"':
				var b strings.Builder
				j := i + 1
				for ; j < len(line) && line[j] != '"'; j++ {
					if line[j] == '\\' {
						j++
						if j >= len(line) || line[j] != '\\' && line[j] != '"' {
							return nil, fmt.Errorf("%w: bad escape in quoted string", errProtocol)
						}
					}
					b.WriteByte(line[j])
				}
				if j >= len(line) {
					return nil, fmt.Errorf("%w: unterminated quoted string", errProtocol)
				}
				toks = append(toks, b.String())
				i = j + 1
			case c == '{':
				end := strings.IndexByte(line[i:], '}')
				if end < 0 || i+end+1 != len(line) {
					return nil, fmt.Errorf("%w: a literal's {n} ends its line", errProtocol)
				}
				num := strings.TrimSuffix(line[i+1:i+end], "+")
				n, err := strconv.Atoi(num)
				if err != nil || n < 0 || num == "" || num[0] == '+' || num[0] == '-' {
					return nil, fmt.Errorf("%w: bad literal length", errProtocol)
				}
				if n > maxLiteral {
					return nil, fmt.Errorf("%w: literal too large", errTooLarge)
				}
				b := make([]byte, n)
				if _, err := io.ReadFull(r, b); err != nil {
					return nil, err
				}
				toks = append(toks, string(b))
				i = len(line)
				if len(toks) > maxArgs+1 {
					return nil, fmt.Errorf("%w: too many arguments", errProtocol)
				}
				goto more
			default:
				j := i
				for j < len(line) && line[j] != ' ' && line[j] != '"' && line[j] != '{' {
					j++
				}
				toks = append(toks, line[i:j])
				i = j
			}
			if len(toks) > maxArgs+1 {
				return nil, fmt.Errorf("%w: too many arguments", errProtocol)
			}
		}
		break
	more:
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%w: empty command", errProtocol)
	}
	return &command{name: strings.ToUpper(toks[0]), first: toks[0], args: toks[1:]}, nil
}

// errTooLarge is a literal larger than any command needs: the stream cannot be
// resynchronised, and the session ends.
var errTooLarge = errors.New("too large")

// readLine reads a line ending in CRLF (or LF), without it.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > maxLine {
			return "", fmt.Errorf("%w: line too long", errTooLarge)
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// quote writes s as a ManageSieve string: quoted when it can be, else a literal.
func quote(s string) string {
	if len(s) < 1024 && !strings.ContainsAny(s, "\r\n\x00") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
}

// Package sieve is the Sieve mail filtering language (RFC 5228): a parser that checks a
// script's grammar, its require lines and the arguments of every command and test,
// answering errors with their line and column, and an interpreter that runs a parsed
// script against a message's header and envelope and returns the actions to take.
//
// Extensions: fileinto, reject and ereject (RFC 5429), envelope, imap4flags (RFC 5232),
// copy (RFC 3894), subaddress (RFC 5233), vacation (RFC 5230) with vacation-seconds
// (RFC 6131), variables (RFC 5229, variables.go), body (RFC 5173, body.go), relational
// (RFC 5231, relational.go), date and index (RFC 5260, date.go, index.go) and the
// comparators i;octet, i;ascii-casemap (RFC 5228 §2.7.3) and i;ascii-numeric
// (RFC 4790 §9.1).
package sieve

import (
	"fmt"
	"strconv"
	"strings"
)

// Limits on what a script may be and do: the defaults of Limits.
const (
	// MaxScriptSize is the largest script accepted, in octets.
	MaxScriptSize = 64 << 10
	// MaxDepth bounds the nesting of blocks and tests, which keeps the parser's
	// recursion small.
	MaxDepth = 32
	// MaxActions bounds the actions one run may take; MaxRedirects the redirects.
	MaxActions   = 32
	MaxRedirects = 4
)

// Limits are what a script may be and do, set in postern.toml's [sieve] table.
type Limits struct {
	ScriptSize int // octets of the script
	Actions    int // actions of one run
	Redirects  int // redirects of one run
}

// DefaultLimits returns MaxScriptSize, MaxActions and MaxRedirects.
func DefaultLimits() Limits {
	return Limits{ScriptSize: MaxScriptSize, Actions: MaxActions, Redirects: MaxRedirects}
}

// Error is a fault of a script, at a line and column (both from 1).
type Error struct {
	Line, Col int
	Msg       string
}

func (e *Error) Error() string { return fmt.Sprintf("line %d:%d: %s", e.Line, e.Col, e.Msg) }

// Pos is a place in a script.
type Pos struct{ Line, Col int }

func errAt(p Pos, format string, args ...any) *Error {
	return &Error{Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)}
}

// Arg is a positional or tagged argument (RFC 5228 §2.6).
type Arg struct {
	Pos  Pos
	Tag  string   // ":name" lower-cased, for a tag
	Num  int64    // for a number
	Strs []string // for a string or string list
	Kind ArgKind
}

// ArgKind says what an Arg holds.
type ArgKind int

// The kinds of argument.
const (
	ArgTag ArgKind = iota
	ArgNum
	ArgString     // one string
	ArgStringList // a bracketed list
)

// Test is a test (RFC 5228 §2.9... §5).
type Test struct {
	Pos   Pos
	Name  string
	Args  []Arg
	Tests []*Test
	// filled by validation
	comparator, match, part string
	rel                     string // the relation of :value and :count (RFC 5231)
	over                    bool
	headers, keys           []string
	num                     int64
	index                   int      // :index, 0 when absent (RFC 5260 §6)
	last                    bool     // :last
	vars                    []string // hasflag's variable list (RFC 5232 §4)
	body                    *bodyArgs
	date                    *dateArgs
}

// Command is a command with its arguments, its test (if, elsif) and block.
type Command struct {
	Pos   Pos
	Name  string
	Args  []Arg
	Tests []*Test
	Block []*Command
	// filled by validation
	copy  bool
	flags []string
	has   bool // :flags given
	str   string
	strs  []string
	// flagVar is the variable of setflag, addflag and removeflag (RFC 5232 §3), ""
	// for the internal one.
	flagVar string
	set     *setArgs
	// vacation holds a vacation command's arguments (vacation.go).
	vacation *Vacation
}

// Script is a parsed and validated script.
type Script struct {
	Commands []*Command
	Requires map[string]bool
	varNames map[string]bool // the variables set names (RFC 5229), for MaxVariables
	limits   Limits
}

// Extensions lists the capabilities Parse accepts in require, as ManageSieve's SIEVE
// capability announces them (RFC 5804 §1.7).
var Extensions = []string{"fileinto", "reject", "ereject", "envelope", "imap4flags", "copy", "subaddress",
	"vacation", "vacation-seconds", "variables", "body", "relational", "date", "index",
	"comparator-i;octet", "comparator-i;ascii-casemap", "comparator-i;ascii-numeric"}

// token kinds
const (
	tEOF = iota
	tIdent
	tTag
	tString
	tNum
	tPunct
)

type token struct {
	kind int
	pos  Pos
	text string // identifier/tag (lower case), punct char, string value
	num  int64
}

type lexer struct {
	src       string
	i         int
	line, col int
}

func (l *lexer) pos() Pos { return Pos{l.line, l.col} }

func (l *lexer) advance(n int) {
	for k := 0; k < n && l.i < len(l.src); k++ {
		if l.src[l.i] == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
		l.i++
	}
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// next returns the next token, skipping white space and comments (RFC 5228 §2.3).
func (l *lexer) next() (token, error) {
	for l.i < len(l.src) {
		c := l.src[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			l.advance(1)
		case c == '#':
			for l.i < len(l.src) && l.src[l.i] != '\n' {
				l.advance(1)
			}
		case c == '/' && strings.HasPrefix(l.src[l.i:], "/*"):
			p := l.pos()
			end := strings.Index(l.src[l.i+2:], "*/")
			if end < 0 {
				return token{}, errAt(p, "unterminated comment")
			}
			l.advance(end + 4)
		default:
			return l.token()
		}
	}
	return token{kind: tEOF, pos: l.pos()}, nil
}

func (l *lexer) token() (token, error) {
	p := l.pos()
	c := l.src[l.i]
	switch {
	case isAlpha(c):
		j := l.i
		for j < len(l.src) && (isAlpha(l.src[j]) || isDigit(l.src[j])) {
			j++
		}
		if strings.HasPrefix(l.src[l.i:], "text:") && j == l.i+4 {
			return l.multiline()
		}
		t := token{kind: tIdent, pos: p, text: strings.ToLower(l.src[l.i:j])}
		l.advance(j - l.i)
		return t, nil
	case c == ':':
		j := l.i + 1
		if j >= len(l.src) || !isAlpha(l.src[j]) {
			return token{}, errAt(p, "a tag needs a name after ':'")
		}
		for j < len(l.src) && (isAlpha(l.src[j]) || isDigit(l.src[j])) {
			j++
		}
		t := token{kind: tTag, pos: p, text: strings.ToLower(l.src[l.i:j])}
		l.advance(j - l.i)
		return t, nil
	case isDigit(c):
		j := l.i
		for j < len(l.src) && isDigit(l.src[j]) {
			j++
		}
		n, err := strconv.ParseInt(l.src[l.i:j], 10, 64)
		if err != nil || n > 1<<40 {
			return token{}, errAt(p, "number too large")
		}
		// RFC 5228 §2.4.1: the quantifiers K, M and G.
		if j < len(l.src) {
			switch l.src[j] {
			case 'K', 'k':
				n <<= 10
				j++
			case 'M', 'm':
				n <<= 20
				j++
			case 'G', 'g':
				n <<= 30
				j++
			}
		}
		l.advance(j - l.i)
		return token{kind: tNum, pos: p, num: n}, nil
	case c == '"':
		var b strings.Builder
		j := l.i + 1
		for {
			if j >= len(l.src) {
				return token{}, errAt(p, "unterminated string")
			}
			c := l.src[j]
			if c == '"' {
				break
			}
			if c == '\\' && j+1 < len(l.src) {
				// RFC 5228 §2.4.2: backslash quotes the next character.
				j++
				c = l.src[j]
			}
			b.WriteByte(c)
			j++
		}
		l.advance(j + 1 - l.i)
		return token{kind: tString, pos: p, text: b.String()}, nil
	case strings.IndexByte("[](){};,", c) >= 0:
		l.advance(1)
		return token{kind: tPunct, pos: p, text: string(c)}, nil
	}
	return token{}, errAt(p, "unexpected character %q", c)
}

// multiline reads "text:" ... "." (RFC 5228 §2.4.2): the rest of the first line may hold
// white space and a comment; lines starting with "." have it doubled.
func (l *lexer) multiline() (token, error) {
	p := l.pos()
	l.advance(5)
	for l.i < len(l.src) && (l.src[l.i] == ' ' || l.src[l.i] == '\t') {
		l.advance(1)
	}
	if l.i < len(l.src) && l.src[l.i] == '#' {
		for l.i < len(l.src) && l.src[l.i] != '\n' {
			l.advance(1)
		}
	}
	if strings.HasPrefix(l.src[l.i:], "\r\n") {
		l.advance(2)
	} else if strings.HasPrefix(l.src[l.i:], "\n") {
		l.advance(1)
	} else {
		return token{}, errAt(l.pos(), "text: must end its line")
	}
	var b strings.Builder
	for {
		if l.i >= len(l.src) {
			return token{}, errAt(p, "unterminated multi-line string (no line with a single '.')")
		}
		end := strings.IndexByte(l.src[l.i:], '\n')
		var line string
		if end < 0 {
			line = l.src[l.i:]
			end = len(line)
		} else {
			line = l.src[l.i : l.i+end+1]
			end++
		}
		body := strings.TrimRight(line, "\r\n")
		if body == "." {
			l.advance(end)
			return token{kind: tString, pos: p, text: b.String()}, nil
		}
		if strings.HasPrefix(line, "..") {
			line = line[1:]
		}
		b.WriteString(line)
		l.advance(end)
	}
}

type parser struct {
	lx   lexer
	tok  token
	peek bool
}

func (p *parser) next() (token, error) {
	if p.peek {
		p.peek = false
		return p.tok, nil
	}
	t, err := p.lx.next()
	p.tok = t
	return t, err
}

func (p *parser) unread() { p.peek = true }

// Parse parses and validates a script with the default limits. Its error is an *Error
// with the line and column.
func Parse(src []byte) (*Script, error) { return ParseLimits(src, DefaultLimits()) }

// ParseLimits is Parse with limits, which bound the script's size here and its runs.
func ParseLimits(src []byte, l Limits) (*Script, error) {
	if len(src) > l.ScriptSize {
		return nil, &Error{Line: 1, Col: 1, Msg: fmt.Sprintf("script larger than %d octets", l.ScriptSize)}
	}
	p := &parser{lx: lexer{src: string(src), line: 1, col: 1}}
	cmds, err := p.commands(0, false)
	if err != nil {
		return nil, err
	}
	s := &Script{Commands: cmds, Requires: map[string]bool{}, limits: l}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// commands = *command (RFC 5228 §8.2); inBlock ends at "}".
func (p *parser) commands(depth int, inBlock bool) ([]*Command, error) {
	var out []*Command
	for {
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		switch {
		case t.kind == tEOF:
			if inBlock {
				return nil, errAt(t.pos, "missing '}'")
			}
			return out, nil
		case t.kind == tPunct && t.text == "}":
			if !inBlock {
				return nil, errAt(t.pos, "unexpected '}'")
			}
			return out, nil
		case t.kind != tIdent:
			return nil, errAt(t.pos, "expected a command")
		}
		c := &Command{Pos: t.pos, Name: t.text}
		if c.Args, c.Tests, err = p.arguments(depth); err != nil {
			return nil, err
		}
		t, err = p.next()
		if err != nil {
			return nil, err
		}
		switch {
		case t.kind == tPunct && t.text == ";":
		case t.kind == tPunct && t.text == "{":
			if depth >= MaxDepth {
				return nil, errAt(t.pos, "blocks nested too deeply")
			}
			if c.Block, err = p.commands(depth+1, true); err != nil {
				return nil, err
			}
			if c.Block == nil {
				c.Block = []*Command{}
			}
		default:
			return nil, errAt(t.pos, "expected ';' or '{' after %s", c.Name)
		}
		out = append(out, c)
	}
}

// arguments = *argument [ test / test-list ]
func (p *parser) arguments(depth int) ([]Arg, []*Test, error) {
	var args []Arg
	for {
		t, err := p.next()
		if err != nil {
			return nil, nil, err
		}
		switch {
		case t.kind == tTag:
			args = append(args, Arg{Pos: t.pos, Kind: ArgTag, Tag: t.text})
		case t.kind == tNum:
			args = append(args, Arg{Pos: t.pos, Kind: ArgNum, Num: t.num})
		case t.kind == tString:
			args = append(args, Arg{Pos: t.pos, Kind: ArgString, Strs: []string{t.text}})
		case t.kind == tPunct && t.text == "[":
			a := Arg{Pos: t.pos, Kind: ArgStringList}
			for {
				s, err := p.next()
				if err != nil {
					return nil, nil, err
				}
				if s.kind != tString {
					return nil, nil, errAt(s.pos, "expected a string in the list")
				}
				a.Strs = append(a.Strs, s.text)
				s, err = p.next()
				if err != nil {
					return nil, nil, err
				}
				if s.kind == tPunct && s.text == "]" {
					break
				}
				if s.kind != tPunct || s.text != "," {
					return nil, nil, errAt(s.pos, "expected ',' or ']'")
				}
			}
			args = append(args, a)
		case t.kind == tIdent:
			p.unread()
			tt, err := p.test(depth + 1)
			if err != nil {
				return nil, nil, err
			}
			return args, []*Test{tt}, nil
		case t.kind == tPunct && t.text == "(":
			var tests []*Test
			for {
				tt, err := p.test(depth + 1)
				if err != nil {
					return nil, nil, err
				}
				tests = append(tests, tt)
				s, err := p.next()
				if err != nil {
					return nil, nil, err
				}
				if s.kind == tPunct && s.text == ")" {
					break
				}
				if s.kind != tPunct || s.text != "," {
					return nil, nil, errAt(s.pos, "expected ',' or ')'")
				}
			}
			return args, tests, nil
		default:
			p.unread()
			return args, nil, nil
		}
	}
}

// test = identifier arguments
func (p *parser) test(depth int) (*Test, error) {
	if depth > MaxDepth {
		return nil, errAt(p.lx.pos(), "tests nested too deeply")
	}
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tIdent {
		return nil, errAt(t.pos, "expected a test")
	}
	tt := &Test{Pos: t.pos, Name: t.text}
	if tt.Args, tt.Tests, err = p.arguments(depth); err != nil {
		return nil, err
	}
	return tt, nil
}

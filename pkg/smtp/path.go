package smtp

import (
	"fmt"
	"strings"
)

// ParseMailFrom parses the argument of a MAIL command: "FROM:<reverse-path> [params]"
// (RFC 5321 §4.1.1.2). It returns the zero Address for the null reverse-path "<>".
//
// smtputf8 tells whether the server offers SMTPUTF8: a non-ASCII reverse-path is
// accepted only when it does and the command carries the SMTPUTF8 parameter
// (RFC 6531 §3.4); otherwise it gives ErrNonASCII. Parameter values may be non-ASCII
// only when smtputf8 is true.
//
// Space after the colon is tolerated; the angle brackets are required. A source route
// ("<@a,@b:user@example.com>") is accepted and dropped (RFC 5321 §4.1.1.3, Appendix C).
// Parameters are only checked for syntax; see Params for their values.
func ParseMailFrom(arg string, smtputf8 bool) (Address, Params, error) {
	rest, ok := cutPrefixFold(arg, "FROM:")
	if !ok {
		return Address{}, nil, fmt.Errorf("%w: expected FROM:", ErrSyntax)
	}
	path, paramText, err := splitPath(rest)
	if err != nil {
		return Address{}, nil, err
	}
	params, err := parseParams(paramText, smtputf8)
	if err != nil {
		return Address{}, nil, err
	}
	if path == "" {
		return Address{}, params, nil
	}
	v, ok := params.Get("SMTPUTF8")
	addr, err := parsePath(path, smtputf8 && ok && v == "")
	if err != nil {
		return Address{}, nil, err
	}
	return addr, params, nil
}

// ParseRcptTo parses the argument of a RCPT command: "TO:<forward-path> [params]"
// (RFC 5321 §4.1.1.3).
//
// smtputf8 tells whether the transaction is an SMTPUTF8 one (its MAIL command carried the
// SMTPUTF8 parameter); only then may the path and parameter values be non-ASCII
// (RFC 6531 §3.4). The null path "<>" is refused; "<postmaster>" without a domain, in
// any case, is accepted as Address{Local: "postmaster"} (RFC 5321 §4.5.1). Space after
// the colon, the angle brackets and source routes are treated as in ParseMailFrom.
func ParseRcptTo(arg string, smtputf8 bool) (Address, Params, error) {
	rest, ok := cutPrefixFold(arg, "TO:")
	if !ok {
		return Address{}, nil, fmt.Errorf("%w: expected TO:", ErrSyntax)
	}
	path, paramText, err := splitPath(rest)
	if err != nil {
		return Address{}, nil, err
	}
	if path == "" {
		return Address{}, nil, fmt.Errorf("%w: null forward-path", ErrSyntax)
	}
	params, err := parseParams(paramText, smtputf8)
	if err != nil {
		return Address{}, nil, err
	}
	if equalFoldASCII(path, "postmaster") {
		return Address{Local: "postmaster"}, params, nil
	}
	addr, err := parsePath(path, smtputf8)
	if err != nil {
		return Address{}, nil, err
	}
	return addr, params, nil
}

// splitPath splits "<path> params" into the text between the angle brackets and the
// text after the closing one. Leading spaces are tolerated: many clients write
// "MAIL FROM: <a@example.com>", against RFC 5321 §4.1.2.
func splitPath(s string) (path, params string, err error) {
	s = strings.TrimLeft(s, " ")
	if !strings.HasPrefix(s, "<") {
		return "", "", fmt.Errorf("%w: path must be in angle brackets", ErrSyntax)
	}
	inQuote := false
	for i := 1; i < len(s); i++ {
		if i >= MaxPath {
			return "", "", fmt.Errorf("%w: path longer than %d octets", ErrPathTooLong, MaxPath)
		}
		c := s[i]
		switch {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '>':
			rest := s[i+1:]
			if rest != "" && rest[0] != ' ' {
				return "", "", fmt.Errorf("%w: expected space after path", ErrSyntax)
			}
			return s[1:i], rest, nil
		}
	}
	return "", "", fmt.Errorf("%w: missing '>' at the end of the path", ErrSyntax)
}

// parsePath parses the inside of a non-null path: [ A-d-l ":" ] Mailbox (RFC 5321
// §4.1.2). The source route A-d-l is checked and dropped (RFC 5321 §4.1.1.3).
func parsePath(path string, smtputf8 bool) (Address, error) {
	if strings.HasPrefix(path, "@") {
		rest := path
		for {
			if !strings.HasPrefix(rest, "@") {
				return Address{}, fmt.Errorf("%w: malformed source route", ErrSyntax)
			}
			rest = rest[1:]
			var end int
			if strings.HasPrefix(rest, "[") {
				end = strings.IndexByte(rest, ']') + 1
			} else {
				end = strings.IndexAny(rest, ",:")
			}
			if end <= 0 {
				return Address{}, fmt.Errorf("%w: malformed source route", ErrSyntax)
			}
			if _, err := ParseDomain(rest[:end], smtputf8); err != nil {
				return Address{}, fmt.Errorf("source route: %w", err)
			}
			rest = rest[end:]
			if strings.HasPrefix(rest, ":") {
				path = rest[1:]
				break
			}
			if !strings.HasPrefix(rest, ",") {
				return Address{}, fmt.Errorf("%w: malformed source route", ErrSyntax)
			}
			rest = rest[1:]
		}
	}
	return ParseAddress(path, smtputf8)
}

// cutPrefixFold is strings.CutPrefix, ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !equalFoldASCII(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// equalFoldASCII is strings.EqualFold for ASCII case only: SMTP keywords are ASCII, and
// Unicode folding would let "ſ" (U+017F) pass for "s" or "K" (U+212A) for "k".
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerByte(a[i]) != lowerByte(b[i]) {
			return false
		}
	}
	return true
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

package mime

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseContentType parses a Content-Type value (RFC 2045 §5.1): type "/" subtype
// *(";" parameter). It is lenient about white space, comments, missing semicolons and
// unquoted values with special characters, as mail in the wild needs.
func parseContentType(v []byte) (typ, sub string, params []Param, ok bool) {
	s := string(v)
	i := skipCFWS(s, 0)
	j := i
	for j < len(s) && isTokenChar(s[j]) {
		j++
	}
	typ = s[i:j]
	i = skipCFWS(s, j)
	if typ == "" || i >= len(s) || s[i] != '/' {
		return "", "", nil, false
	}
	i = skipCFWS(s, i+1)
	j = i
	for j < len(s) && isTokenChar(s[j]) {
		j++
	}
	sub = s[i:j]
	if sub == "" {
		return "", "", nil, false
	}
	return typ, sub, parseParams(s[j:]), true
}

// parseDisposition parses a Content-Disposition value (RFC 2183 §2).
func parseDisposition(v []byte) (string, []Param) {
	s := string(v)
	i := skipCFWS(s, 0)
	j := i
	for j < len(s) && isTokenChar(s[j]) {
		j++
	}
	return s[i:j], parseParams(s[j:])
}

// isTokenChar reports whether c may appear in an RFC 2045 token; octets above 127 are
// let through.
func isTokenChar(c byte) bool {
	if c <= ' ' || c == 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// skipCFWS skips white space and comments (RFC 5322 §3.2.2) from s[i].
func skipCFWS(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
			i++
		case '(':
			i = skipComment(s, i)
		default:
			return i
		}
	}
	return i
}

// skipComment skips the (possibly nested) comment starting at s[i] == '('.
func skipComment(s string, i int) int {
	depth := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(s) // unterminated: the comment runs to the end
}

// stripComments removes the comments outside quoted strings of a structured value.
func stripComments(s string) string {
	if !strings.Contains(s, "(") {
		return s
	}
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			b.WriteByte(c)
			i++
			c = s[i]
		case c == '"':
			quoted = !quoted
		case c == '(' && !quoted:
			i = skipComment(s, i) - 1
			b.WriteByte(' ')
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// rawParam is a parameter as written, before RFC 2231 merging.
type rawParam struct {
	name  string
	value string
	ext   bool // the value is an RFC 2231 extended value (charset'lang'%XX)
	sect  int  // continuation number, -1 when none
}

// Limits on parameters: RFC 2231 continuation numbers and parameters per field.
const (
	maxSections = 1000
	maxParams   = 1000
)

// parseParams parses a parameter list (RFC 2045 §5.1) and merges and decodes RFC 2231
// continuations and extended values.
func parseParams(s string) []Param {
	var raw []rawParam
	i := 0
	for i < len(s) {
		// Up to the next ";" (a missing one is tolerated before an attribute).
		i = skipCFWS(s, i)
		if i < len(s) && s[i] == ';' {
			i = skipCFWS(s, i+1)
		}
		j := i
		for j < len(s) && s[j] != '=' && s[j] != ';' && s[j] != ' ' && s[j] != '\t' && s[j] != '(' && s[j] != '"' {
			j++
		}
		name := s[i:j]
		i = skipCFWS(s, j)
		if i >= len(s) || s[i] != '=' {
			// An attribute without value: skip to the next parameter.
			for i < len(s) && s[i] != ';' {
				if s[i] == '"' {
					_, i = readQuoted(s, i)
					continue
				}
				i++
			}
			continue
		}
		i = skipCFWS(s, i+1)
		var value string
		if i < len(s) && s[i] == '"' {
			value, i = readQuoted(s, i)
		} else {
			j := i
			for j < len(s) && s[j] != ';' {
				if s[j] == '(' && j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
					break // a comment after an unquoted value
				}
				j++
			}
			value = strings.TrimRight(s[i:j], " \t\r\n")
			i = j
		}
		if name == "" {
			continue
		}
		raw = append(raw, splitParamName(name, value))
		if len(raw) >= maxParams {
			break
		}
	}
	return mergeParams(raw)
}

// readQuoted reads the quoted-string at s[i] == '"' and returns its content and the
// index after it; an unterminated string runs to the end.
func readQuoted(s string, i int) (string, int) {
	var b strings.Builder
	for i++; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), i + 1
		case '\r', '\n':
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), i
}

// splitParamName recognises the RFC 2231 forms name*, name*N and name*N*.
func splitParamName(name, value string) rawParam {
	p := rawParam{name: name, value: value, sect: -1}
	k := strings.IndexByte(name, '*')
	if k <= 0 {
		return p
	}
	rest := name[k+1:]
	if rest == "" {
		p.name, p.ext = name[:k], true
		return p
	}
	ext := strings.HasSuffix(rest, "*")
	rest = strings.TrimSuffix(rest, "*")
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n >= maxSections || (len(rest) > 1 && rest[0] == '0') {
		return p // not RFC 2231: keep the name as written
	}
	p.name, p.ext, p.sect = name[:k], ext, n
	return p
}

// mergeParams joins the continuations of each parameter (RFC 2231 §3), decodes the
// extended values (§4) and the encoded-words of file names, in the order of first
// appearance.
func mergeParams(raw []rawParam) []Param {
	var out []Param
	done := map[string]bool{}
	for idx, r := range raw {
		key := strings.ToLower(r.name)
		if done[key] {
			continue
		}
		done[key] = true
		// Collect every piece of this parameter.
		var pieces []rawParam
		var plain *rawParam
		for k := idx; k < len(raw); k++ {
			if !strings.EqualFold(raw[k].name, r.name) {
				continue
			}
			if raw[k].sect >= 0 || raw[k].ext {
				pieces = append(pieces, raw[k])
			} else if plain == nil {
				plain = &raw[k]
			}
		}
		var value string
		switch {
		case len(pieces) > 0:
			value = joinSections(pieces)
		default:
			value = plain.value
			switch n := strings.ToLower(r.name); {
			case n == "boundary":
				// Compared octet for octet with the body: left as is.
			case (n == "name" || n == "filename") && strings.Contains(value, "=?"):
				value = DecodeHeader(value)
			case !utf8.ValidString(value):
				value = string(appendValidUTF8(nil, []byte(value)))
			}
		}
		out = append(out, Param{Name: r.name, Value: value})
	}
	return out
}

// joinSections decodes RFC 2231 pieces of one parameter into UTF-8.
func joinSections(pieces []rawParam) string {
	sort.SliceStable(pieces, func(a, b int) bool { return pieces[a].sect < pieces[b].sect })
	var b []byte
	charset := ""
	last := -2
	for i, p := range pieces {
		if p.sect == last {
			continue // a duplicate section
		}
		last = p.sect
		v := p.value
		if p.ext {
			if i == 0 {
				// charset'language'value
				if q := strings.IndexByte(v, '\''); q >= 0 {
					charset = v[:q]
					v = v[q+1:]
					if q := strings.IndexByte(v, '\''); q >= 0 {
						v = v[q+1:]
					}
				}
			}
			b = appendPercentDecoded(b, v)
		} else {
			b = append(b, v...)
		}
	}
	return string(appendUTF8(nil, b, charset))
}

func appendPercentDecoded(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if h, ok := unhex(s[i+1]); ok {
				if l, ok := unhex(s[i+2]); ok {
					dst = append(dst, h<<4|l)
					i += 2
					continue
				}
			}
		}
		dst = append(dst, s[i])
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

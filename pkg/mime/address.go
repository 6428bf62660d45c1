package mime

import "strings"

// Address is one element of an IMAP address list (RFC 3501 §7.4.2): a mailbox, or a
// marker that opens or closes a group (RFC 5322 §3.4).
type Address struct {
	// Name is the display name as written: quoted-string quotes and escapes removed,
	// words joined by one space, encoded-words left encoded (IMAP sends them so). When
	// there is no display name, the text of the last comment, as Dovecot does.
	Name string
	// Route is the obsolete source route of RFC 5322 §4.4 ("@a.example,@b.example"),
	// usually "".
	Route string
	// Mailbox is the local part; for the marker that opens a group, the group's name;
	// for the marker that closes a group, "".
	Mailbox string
	// Host is the domain; "" when the address has none.
	Host string
	// Group is set on group markers. IMAP writes them with a NIL host.
	Group bool
}

// Limits of ParseAddressList: addresses returned, and how far a source route's ":" is
// looked for (which keeps "<@<@<@..." linear).
const (
	maxAddresses = 10000
	maxRoute     = 1024
)

// ParseAddressList parses an address list such as the value of From, To or Cc
// (RFC 5322 §3.4), leniently: it never fails, it skips what it cannot read, and accepts
// addresses without a domain, bare words, unquoted dots and special characters in
// display names, missing closing brackets, and unterminated groups (closed at the end).
func ParseAddressList(s string) []Address {
	p := addrParser{s: s}
	var out []Address
	inGroup := false
	for len(out) < maxAddresses {
		p.skipCFWS()
		if p.i >= len(s) {
			break
		}
		start := p.i
		switch s[p.i] {
		case ',':
			p.i++
			continue
		case ';':
			p.i++
			if inGroup {
				out = append(out, Address{Group: true})
				inGroup = false
			}
			continue
		}
		p.comment = ""
		words := p.phrase()
		p.skipCFWS()
		c := byte(0)
		if p.i < len(s) {
			c = s[p.i]
		}
		switch {
		case c == ':' && !inGroup && joinWords(words, " ") != "":
			p.i++
			out = append(out, Address{Group: true, Mailbox: joinWords(words, " ")})
			inGroup = true
		case c == '<':
			p.i++
			a := p.angleAddr()
			a.Name = joinWords(words, " ")
			if a.Name == "" {
				a.Name = p.comment
			}
			out = append(out, a)
		case c == '@':
			p.i++
			a := Address{Mailbox: joinWords(words, ""), Host: p.domain()}
			p.skipCFWS()
			a.Name = p.comment
			out = append(out, a)
		default:
			switch {
			case len(words) == 1 && !words[0].quoted:
				// A bare word: a local part without a domain.
				out = append(out, Address{Mailbox: words[0].text, Name: p.comment})
			case len(words) > 0:
				// A display name without an address, as Dovecot reads it.
				out = append(out, Address{Name: joinWords(words, " ")})
			}
			if p.i == start {
				p.i++ // a stray special character: skip it
			}
		}
	}
	if inGroup {
		out = append(out, Address{Group: true})
	}
	return out
}

type addrParser struct {
	s       string
	i       int
	comment string // the text of the last comment skipped
}

type word struct {
	text   string
	quoted bool
}

func joinWords(ws []word, sep string) string {
	switch len(ws) {
	case 0:
		return ""
	case 1:
		if sep == "" && ws[0].quoted {
			return quoteLocal(ws[0].text)
		}
		return ws[0].text
	}
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			b.WriteString(sep)
		}
		if sep == "" && w.quoted {
			b.WriteString(quoteLocal(w.text))
		} else {
			b.WriteString(w.text)
		}
	}
	return b.String()
}

// quoteLocal writes a quoted local part back in quoted-string form.
func quoteLocal(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func (p *addrParser) skipCFWS() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		case '(':
			end := skipComment(p.s, p.i)
			c := p.s[p.i+1 : end]
			c = strings.TrimSuffix(c, ")")
			if c = strings.TrimSpace(c); c != "" {
				p.comment = c
			}
			p.i = end
		default:
			return
		}
	}
}

// isAtomChar reports whether c belongs to an atom, counting "." in (obs-phrase,
// dot-atom) and octets above 127 (RFC 6532).
func isAtomChar(c byte) bool {
	if c <= ' ' || c == 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>[]:;@\,"`, rune(c))
}

// phrase reads words (atoms and quoted-strings) up to a special character.
func (p *addrParser) phrase() []word {
	var ws []word
	for {
		p.skipCFWS()
		if p.i >= len(p.s) {
			return ws
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			t, end := readQuoted(p.s, p.i)
			p.i = end
			ws = append(ws, word{text: t, quoted: true})
		case isAtomChar(c) || c == '\\':
			j := p.i
			for j < len(p.s) && (isAtomChar(p.s[j]) || p.s[j] == '\\') {
				j++
			}
			ws = append(ws, word{text: p.s[p.i:j]})
			p.i = j
		default:
			return ws
		}
	}
}

// angleAddr reads the rest of "<" [route ":"] local "@" domain ">".
func (p *addrParser) angleAddr() Address {
	var a Address
	p.skipCFWS()
	if p.i < len(p.s) && p.s[p.i] == '@' {
		// obs-route: 1*("@" domain) separated by commas, then ":".
		j := strings.IndexAny(p.s[p.i:min(len(p.s), p.i+maxRoute)], ":>")
		if j >= 0 && p.s[p.i+j] == ':' {
			a.Route = strings.Map(func(r rune) rune {
				if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
					return -1
				}
				return r
			}, p.s[p.i:p.i+j])
			p.i += j + 1
		}
	}
	a.Mailbox = joinWords(p.phrase(), "")
	p.skipCFWS()
	if p.i < len(p.s) && p.s[p.i] == '@' {
		p.i++
		a.Host = p.domain()
	}
	// Up to the closing ">", when it comes before the next address.
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '>' {
			p.i++
			break
		}
		if c == ',' || c == ';' {
			break
		}
		if c == '"' {
			_, p.i = readQuoted(p.s, p.i)
			continue
		}
		p.i++
	}
	return a
}

// domain reads a dot-atom or a domain literal ("[...]").
func (p *addrParser) domain() string {
	p.skipCFWS()
	if p.i < len(p.s) && p.s[p.i] == '[' {
		j := strings.IndexByte(p.s[p.i:], ']')
		if j < 0 {
			d := p.s[p.i:]
			p.i = len(p.s)
			return d
		}
		d := p.s[p.i : p.i+j+1]
		p.i += j + 1
		return d
	}
	var b strings.Builder
	for {
		j := p.i
		for j < len(p.s) && isAtomChar(p.s[j]) {
			j++
		}
		b.WriteString(p.s[p.i:j])
		p.i = j
		// obs-domain allows CFWS around the dots.
		save := p.i
		p.skipCFWS()
		if p.i > save && p.i < len(p.s) && (p.s[p.i] == '.' || strings.HasSuffix(b.String(), ".") && isAtomChar(p.s[p.i])) {
			continue // the next atom always makes progress: "." is an atom character
		}
		p.i = save
		return b.String()
	}
}

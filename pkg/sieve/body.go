package sieve

import (
	"html"
	"io"
	"strings"

	"postern/pkg/mime"
)

// The body extension (RFC 5173): the body test on the raw body, on the decoded
// content of the MIME parts of given types, or on the text of the message.

// MaxBodySize bounds the octets the body test reads of one message (over all its
// parts): a filter looks at the start of a large message, not at all of it.
const MaxBodySize = 1 << 20

// bodyArgs are the BODY-TRANSFORM of a body test: ":raw", ":content" with its types,
// or ":text" (the default, RFC 5173 §5).
type bodyArgs struct {
	transform string
	types     []string
}

// validateBody checks body [COMPARATOR] [MATCH-TYPE] [BODY-TRANSFORM]
// <key-list: string-list> (RFC 5173 §4).
func (s *Script) validateBody(t *Test) error {
	if err := s.need(t.Pos, "body", "body"); err != nil {
		return err
	}
	tags := map[string]ArgKind{":content": ArgStringList}
	for k, v := range matchValueTags {
		tags[k] = v
	}
	a, err := splitArgs(t.Args, tags)
	if err != nil {
		return err
	}
	b := &bodyArgs{transform: ":text"}
	n := 0
	for _, tr := range []string{":raw", ":content", ":text"} {
		if x, ok := a.tags[tr]; ok {
			n++
			b.transform = tr
			if tr == ":content" {
				b.types = x.Strs
			}
			delete(a.tags, tr)
		}
	}
	if n > 1 {
		return errAt(t.Pos, "body takes one of :raw, :content and :text")
	}
	if err := s.matchArgs(t, a, false); err != nil {
		return err
	}
	if err := wantStrings(t.Pos, a.pos, 1, t.Name); err != nil {
		return err
	}
	t.keys, t.body = a.pos[0].Strs, b
	return nil
}

// bodyTest runs the body test: each text it extracts is a value. It does not set the
// match variables (RFC 5173 updates RFC 5229 so: a body is no place to cut values out
// of).
func (r *runner) bodyTest(t *Test) bool {
	types := r.expandList(t.body.types)
	key := t.body.transform + "\x00" + strings.Join(types, "\x00")
	if r.body == nil {
		r.body = map[string][]string{}
	}
	vals, ok := r.body[key]
	if !ok {
		vals = bodyTexts(r.msg.MIME, t.body.transform, types)
		r.body[key] = vals
	}
	saved := r.matched
	ok = r.compare(t, vals)
	r.matched = saved
	return ok
}

// bodyTexts extracts the texts a body transform tests, at most MaxBodySize octets in
// all.
func bodyTexts(m *mime.Message, transform string, types []string) []string {
	if m == nil {
		return nil
	}
	budget := int64(MaxBodySize)
	read := func(r io.Reader) string {
		if budget <= 0 {
			return ""
		}
		b, _ := io.ReadAll(io.LimitReader(r, budget))
		budget -= int64(len(b))
		return string(b)
	}
	if transform == ":raw" {
		// RFC 5173 §5.1: the body as it is, no decoding.
		sec, err := m.Section(mime.Section{Specifier: "TEXT"})
		if err != nil {
			return nil
		}
		return []string{read(sec)}
	}
	var out []string
	// walk visits p, whose section number is path; msgRoot tells that p is the root
	// of a message (the whole one, or the one a message/rfc822 part at path holds).
	var walk func(p *mime.Part, path []int, msgRoot bool)
	walk = func(p *mime.Part, path []int, msgRoot bool) {
		switch {
		case p.IsMultipart() && len(p.Parts) > 0:
			if transform == ":content" && typeMatches(p, types) {
				// RFC 5173 §5.2: of a multipart, the prologue and the epilogue.
				sec := mime.Section{Path: path}
				if msgRoot {
					sec.Specifier = "TEXT"
				}
				if r, err := m.Section(sec); err == nil {
					out = append(out, outside(read(r), p.Param("boundary"))...)
				}
			}
			for i, c := range p.Parts {
				walk(c, append(path[:len(path):len(path)], i+1), false)
			}
			return
		case p.Message != nil:
			// RFC 5173 §5.2: for a message/rfc822 part of a type asked for, the
			// header of the enclosed message is tested; its body parts are parts too.
			if transform == ":content" && typeMatches(p, types) {
				var h strings.Builder
				for i := 0; i < p.Message.Header.Len(); i++ {
					name, value := p.Message.Header.Field(i)
					h.WriteString(name + ": " + value + "\r\n")
				}
				out = append(out, read(strings.NewReader(h.String())))
			}
			walk(p.Message, path, true)
			return
		}
		if transform == ":text" && !p.IsText() || transform == ":content" && !typeMatches(p, types) {
			return
		}
		// RFC 5173 §5.2: the content is decoded (transfer encoding, and charset to
		// UTF-8 for text).
		tr, release := m.TextReader(p)
		s := read(tr)
		release()
		if transform == ":text" && strings.EqualFold(p.Subtype, "html") {
			s = htmlText(s)
		}
		out = append(out, s)
	}
	walk(m.Root, nil, true)
	return out
}

// outside returns the prologue and the epilogue of a multipart body: the text before
// its first boundary line and after its closing one (RFC 2046 §5.1.1).
func outside(body, boundary string) []string {
	if boundary == "" {
		return nil
	}
	delim := "--" + boundary
	var pro, epi strings.Builder
	state := 0 // 0 prologue, 1 parts, 2 epilogue
	for _, line := range strings.SplitAfter(body, "\n") {
		l := strings.TrimRight(line, " \t\r\n")
		switch {
		case state == 0 && l == delim:
			state = 1
		case state < 2 && l == delim+"--":
			state = 2
		case state == 0:
			pro.WriteString(line)
		case state == 2:
			epi.WriteString(line)
		}
	}
	return []string{pro.String(), epi.String()}
}

// typeMatches tells whether the part's type is one of types (RFC 5173 §5.2): "" is
// every type, "type" every subtype of it, "type/subtype" that one; a type that starts
// or ends with "/" or holds two is none.
func typeMatches(p *mime.Part, types []string) bool {
	for _, ty := range types {
		switch {
		case ty == "":
			return true
		case strings.HasPrefix(ty, "/") || strings.HasSuffix(ty, "/") || strings.Count(ty, "/") > 1:
		case strings.Contains(ty, "/"):
			if strings.EqualFold(ty, p.MediaType()) {
				return true
			}
		case strings.EqualFold(ty, p.Type):
			return true
		}
	}
	return false
}

// htmlText is the text of an HTML part: tags, scripts and styles out, entities
// decoded, runs of white space as one space.
func htmlText(s string) string {
	var b strings.Builder
	lower := strings.ToLower(s)
	for i := 0; i < len(s); {
		if s[i] != '<' {
			j := strings.IndexByte(s[i:], '<')
			if j < 0 {
				j = len(s) - i
			}
			b.WriteString(s[i : i+j])
			i += j
			continue
		}
		for _, skip := range []string{"script", "style"} {
			if strings.HasPrefix(lower[i+1:], skip) {
				if end := strings.Index(lower[i:], "</"+skip); end >= 0 {
					i += end
				}
			}
		}
		end := strings.IndexByte(s[i:], '>')
		if end < 0 {
			break
		}
		i += end + 1
		b.WriteByte(' ')
	}
	return strings.Join(strings.Fields(html.UnescapeString(b.String())), " ")
}

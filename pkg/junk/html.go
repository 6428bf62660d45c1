package junk

import (
	"bytes"
	"html"
	"strings"
)

// htmlTags are the elements whose presence is a token ("html:img"): what spam is built
// of, more than what people write.
var htmlTags = map[string]bool{
	"img": true, "font": true, "table": true, "a": true, "form": true, "script": true,
	"iframe": true, "style": true, "center": true, "map": true, "input": true, "base": true,
}

// htmlLinkAttrs are the attributes whose values are URLs.
var htmlLinkAttrs = []string{"href", "src", "action", "background"}

// html reduces HTML to its text, with character references decoded; the contents of
// comments, <script> and <style> are dropped, every tag stands for one space (so that a
// word split by a comment, "V<!-- -->iagra", is joined again), and the hosts of links
// and images become "url:" tokens. It works in one pass over b and never reads past it.
func (t *tokenizer) html(b []byte) []byte {
	out := make([]byte, 0, len(b)/2)
	textStart := 0
	flush := func(end int) {
		if end > textStart {
			seg := b[textStart:end]
			if bytes.IndexByte(seg, '&') >= 0 {
				out = append(out, html.UnescapeString(string(seg))...)
			} else {
				out = append(out, seg...)
			}
		}
	}
	for i := 0; i < len(b); {
		if b[i] != '<' {
			i++
			continue
		}
		flush(i)
		if bytes.HasPrefix(b[i:], []byte("<!--")) {
			end := bytes.Index(b[i+4:], []byte("-->"))
			if end < 0 {
				i = len(b)
			} else {
				i += 4 + end + 3
			}
			textStart = i
			continue
		}
		end := bytes.IndexByte(b[i:], '>')
		if end < 0 {
			end = len(b) - i
		}
		tag := b[i+1 : i+end]
		i += end + 1
		textStart = i
		name := tagName(tag)
		if htmlTags[name] {
			t.add("html:" + name)
		}
		if name == "script" || name == "style" {
			// Skip to the closing tag.
			closing := []byte("</" + name)
			k := indexFold(b[i:], closing)
			if k < 0 {
				i = len(b)
			} else {
				i += k
			}
			textStart = i
			continue
		}
		t.htmlLinks(tag)
		out = append(out, ' ')
	}
	flush(len(b))
	return out
}

// tagName returns the lower-cased name of the tag whose inside (between < and >) is tag,
// "" for closing tags and declarations.
func tagName(tag []byte) string {
	if len(tag) == 0 || tag[0] == '/' || tag[0] == '!' || tag[0] == '?' {
		return ""
	}
	n := 0
	for n < len(tag) && n < 16 && (tag[n] >= 'a' && tag[n] <= 'z' || tag[n] >= 'A' && tag[n] <= 'Z' || tag[n] >= '0' && tag[n] <= '9') {
		n++
	}
	return strings.ToLower(string(tag[:n]))
}

// htmlLinks adds the URL tokens of the href, src, action and background attributes of
// a tag.
func (t *tokenizer) htmlLinks(tag []byte) {
	lower := bytes.ToLower(tag)
	for _, attr := range htmlLinkAttrs {
		off := 0
		for n := 0; n < 4; n++ {
			k := bytes.Index(lower[off:], []byte(attr))
			if k < 0 {
				break
			}
			k += off
			off = k + len(attr)
			j := off
			for j < len(lower) && (lower[j] == ' ' || lower[j] == '\t' || lower[j] == '\r' || lower[j] == '\n') {
				j++
			}
			if j >= len(lower) || lower[j] != '=' {
				continue
			}
			j++
			for j < len(lower) && (lower[j] == ' ' || lower[j] == '"' || lower[j] == '\'') {
				j++
			}
			e := j
			for e < len(lower) && lower[e] != '"' && lower[e] != '\'' && lower[e] != ' ' && lower[e] != '>' {
				e++
			}
			v := html.UnescapeString(string(lower[j:e]))
			switch {
			case strings.HasPrefix(v, "mailto:"):
				if a := strings.LastIndexByte(v, '@'); a >= 0 {
					t.domain("email:", strings.TrimRight(v[a+1:], "?"))
				}
			case strings.Contains(v, "://"):
				k := strings.Index(v, "://")
				t.add("proto:" + v[:k])
				t.url(v[k+3:])
			case strings.HasPrefix(v, "cid:"):
				t.add("url:cid")
			}
			off = e
		}
	}
}

// indexFold returns the index of the ASCII needle in b, ignoring case, -1 if absent.
func indexFold(b, needle []byte) int {
	for i := 0; i+len(needle) <= len(b); i++ {
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 {
			return -1
		}
		i += j
		if i+len(needle) <= len(b) && bytes.EqualFold(b[i:i+len(needle)], needle) {
			return i
		}
	}
	return -1
}

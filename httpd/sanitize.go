package main

import (
	"bytes"
	"encoding/base64"
	"regexp"
	"strings"

	"github.com/microcosm-cc/bluemonday"
)

// HTML mail is untrusted markup. It is shown only after bluemonday has rebuilt it from
// an allow-list of elements, attributes and styles (no script, no event handler, no
// form, no frame, no <base>, no <meta>, no SVG, only http, https, mailto and cid links),
// and then only inside a sandboxed frame whose own Content-Security-Policy forbids
// scripts and every fetch but data: images (bodyCSP) — two independent layers, either
// of which stops a script.
var mailPolicy = newMailPolicy()

func newMailPolicy() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowURLSchemes("http", "https", "mailto", "cid")
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.AllowElements("font", "center", "span", "div")
	p.AllowAttrs("color", "face", "size").OnElements("font")
	p.AllowAttrs("bgcolor", "width", "height", "align", "valign", "border", "cellpadding", "cellspacing").OnElements("table", "td", "th", "tr", "tbody")
	p.AllowAttrs("align").OnElements("p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "img")
	// Inline styles, checked value by value by bluemonday; none of these properties
	// takes a url(), so styles fetch nothing.
	p.AllowStyles("color", "background-color", "font-size", "font-weight", "font-style", "font-family",
		"text-align", "text-decoration", "line-height", "margin", "margin-left", "margin-right", "margin-top",
		"margin-bottom", "padding", "padding-left", "padding-right", "padding-top", "padding-bottom",
		"width", "max-width", "height", "border-collapse", "vertical-align", "white-space").Globally()
	return p
}

// remoteSrc is the source of an image that the message would fetch from elsewhere.
var remoteSrc = regexp.MustCompile(`(?i)(<img\s[^>]*?)src="((?:https?:)?//[^"]*)"`)

// sanitizeHTML returns the safe rendering of an HTML body: images from cid: URLs are
// replaced by data: URLs from inline (the parts of the message by Content-ID, without
// angle brackets), and remote tells whether the message refers to remote images. Unless
// allowRemote, their sources are renamed data-remote-src, so that the browser does not
// even try to fetch them (the frame's policy would block them anyway). It is cleanHTML
// then showHTML, which the webmail calls apart to keep the first's work (bodycache.go).
func sanitizeHTML(body []byte, inline map[string]inlinePart, allowRemote bool) (safe string, remote bool) {
	clean, remote := cleanHTML(body)
	return showHTML(clean, remote, inline, allowRemote), remote
}

// cleanHTML rebuilds an HTML body from mailPolicy's allow-list, and tells whether the
// result refers to remote images.
func cleanHTML(body []byte) (clean []byte, remote bool) {
	clean = mailPolicy.SanitizeBytes(body)
	return clean, remoteSrc.Match(clean)
}

// showHTML turns the output of cleanHTML (which found remote images or not) into the
// page the frame shows: remote image sources renamed unless allowRemote, cid: sources
// made data: URLs from inline. clean is not changed.
func showHTML(clean []byte, remote bool, inline map[string]inlinePart, allowRemote bool) string {
	out := clean
	if remote && !allowRemote {
		out = remoteSrc.ReplaceAll(out, []byte(`${1}data-remote-src="${2}"`))
	}
	if len(inline) > 0 {
		out = cidSrc.ReplaceAllFunc(out, func(m []byte) []byte {
			id := string(cidSrc.FindSubmatch(m)[1])
			p, ok := inline[unescapeCID(id)]
			if !ok {
				return m
			}
			return []byte(`src="data:` + p.Type + `;base64,` + base64.StdEncoding.EncodeToString(p.Data) + `"`)
		})
	}
	return string(out)
}

// cidSrc is an image source naming a part of the message (RFC 2392).
var cidSrc = regexp.MustCompile(`src="cid:([^"]+)"`)

// unescapeCID undoes the URL and HTML escaping of a cid: URL (RFC 2392 §2).
func unescapeCID(s string) string {
	s = strings.ReplaceAll(s, "&amp;", "&")
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, ok := unhex(s[i+1]); ok {
				if w, ok := unhex(s[i+2]); ok {
					b.WriteByte(v<<4 | w)
					i += 2
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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

// inlinePart is an image of the message named by its Content-ID.
type inlinePart struct {
	Type string // image/png ...
	Data []byte
}

// inlineImageTypes are the types an inline part may have to be shown as a data: URL:
// raster images (an SVG could carry script).
var inlineImageTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

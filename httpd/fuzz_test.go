package main

import (
	"regexp"
	"strings"
	"testing"
)

// dangerousAttr is an event handler attribute, or a javascript: URL in an attribute.
var dangerousAttr = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=|=\s*"\s*javascript:`)

// FuzzSanitize: whatever HTML a message carries, the sanitized markup has no script,
// no event handler attribute and no javascript: URL.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{
		`<p onclick="x()">a<script>b</script></p>`,
		`<a href="javascript:alert(1)">x</a><img src=x onerror=alert(1)>`,
		`<svg><script>alert(1)</script></svg><math><mi xlink:href="javascript:1">`,
		`<<script>script>alert(1)<</script>/script>`,
		`<img src="cid:a%40b">`,
		`<div style="background:url(javascript:alert(1))">`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, _ := sanitizeHTML([]byte(in), map[string]inlinePart{"a@b": {Type: "image/png", Data: []byte("x")}}, false)
		if strings.Contains(strings.ToLower(out), "<script") || dangerousAttr.MatchString(out) {
			t.Fatalf("sanitize(%q) = %q keeps a script", in, out)
		}
	})
}

// FuzzPaths: part paths and cid: URLs from the browser never crash their parsers.
func FuzzPaths(f *testing.F) {
	f.Add("1.2.3")
	f.Add("a%4")
	f.Fuzz(func(t *testing.T, s string) {
		if p, ok := splitPath(s); ok && joinPath(p) != s {
			t.Fatalf("splitPath(%q) = %v does not round-trip", s, p)
		}
		unescapeCID(s)
	})
}

// FuzzAuthenticatedFrom: whatever From: and Authentication-Results fields a message
// carries, their parser neither crashes nor authenticates a From: without a pass.
func FuzzAuthenticatedFrom(f *testing.F) {
	f.Add("From: <a@shop.test>\r\nAuthentication-Results: mx.example.org; dmarc=pass header.from=shop.test\r\n")
	f.Add("From: a\r\nAuthentication-Results: mx.example.org (c); spf=pass smtp.mailfrom=@; dkim=pass header.d=\r\n")
	f.Add("Authentication-Results: mx.example.org 2; x\r\n")
	f.Fuzz(func(t *testing.T, hdr string) {
		if _, ok := authenticatedFrom([]byte(hdr), "mx.example.org"); ok && !strings.Contains(hdr, "pass") {
			t.Fatalf("%q authenticated without a pass", hdr)
		}
	})
}

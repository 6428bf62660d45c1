package mime

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// maxWordLen bounds how far an encoded-word's end is looked for, so that a value full of
// "=?" costs linear time. RFC 2047 §2 limits words to 75 octets; senders exceed that.
const maxWordLen = 4096

// DecodeHeader returns the header value s with its RFC 2047 encoded-words decoded and
// everything converted to UTF-8, for display and SEARCH. It is lenient as mail readers
// are: white space between adjacent encoded-words is dropped (§6.2), words of the same
// charset are joined before conversion (so a character split across two words
// survives), words inside other words or quoted strings are decoded too, unknown charsets
// are taken as UTF-8, and octets that are not valid UTF-8 are read as ISO-8859-1.
func DecodeHeader(s string) string {
	if !strings.Contains(s, "=?") && isASCII(s) {
		return s
	}
	return string(appendDecodedHeader(nil, []byte(s)))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// appendDecodedHeader appends DecodeHeader(s) to dst.
func appendDecodedHeader(dst []byte, s []byte) []byte {
	var pending []byte // decoded octets of consecutive words in pendingCS
	pendingCS := ""
	flush := func() {
		if len(pending) > 0 {
			dst = appendUTF8(dst, pending, pendingCS)
			pending = pending[:0]
		}
	}
	lastWord := false
	i := 0
	for i < len(s) {
		j := bytes.Index(s[i:], []byte("=?"))
		if j < 0 {
			flush()
			dst = appendValidUTF8(dst, s[i:])
			break
		}
		j += i
		cs, enc, text, end, ok := parseWord(s, j)
		if !ok {
			flush()
			dst = appendValidUTF8(dst, s[i:j+2])
			i = j + 2
			lastWord = false
			continue
		}
		if between := s[i:j]; !(lastWord && allWSP(between)) {
			flush()
			dst = appendValidUTF8(dst, between)
		}
		if !strings.EqualFold(cs, pendingCS) {
			flush()
			pendingCS = cs
		}
		if enc == 'b' || enc == 'B' {
			pending = appendBase64(pending, text)
		} else {
			pending = appendQWord(pending, text)
		}
		i = end
		lastWord = true
	}
	flush()
	return dst
}

// parseWord parses the encoded-word "=?" charset "?" encoding "?" text "?=" at s[j].
func parseWord(s []byte, j int) (cs string, enc byte, text []byte, end int, ok bool) {
	k := j + 2
	q := bytes.IndexByte(s[k:min(len(s), k+128)], '?')
	if q <= 0 {
		return
	}
	csb := s[k : k+q]
	if bytes.ContainsAny(csb, " \t\"=") {
		return
	}
	k += q + 1
	if k+1 >= len(s) || s[k+1] != '?' {
		return
	}
	enc = s[k]
	if enc != 'q' && enc != 'Q' && enc != 'b' && enc != 'B' {
		return
	}
	k += 2
	e := bytes.Index(s[k:min(len(s), k+maxWordLen)], []byte("?="))
	if e < 0 {
		return
	}
	cs = string(csb)
	if i := strings.IndexByte(cs, '*'); i >= 0 {
		cs = cs[:i] // RFC 2231 §5: charset*language
	}
	return cs, enc, s[k : k+e], k + e + 2, true
}

func allWSP(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// appendQWord decodes the "Q" encoding (RFC 2047 §4.2).
func appendQWord(dst, t []byte) []byte {
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '_':
			c = ' '
		case c == '=' && i+2 < len(t):
			if h, ok := unhex(t[i+1]); ok {
				if l, ok := unhex(t[i+2]); ok {
					c = h<<4 | l
					i += 2
				}
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// base64Value maps an octet to its value in the base64 alphabet (RFC 2045 §6.8), or 0xff.
var base64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alpha); i++ {
		t[alpha[i]] = byte(i)
	}
	// The URL-safe alphabet too, which some senders use.
	t['-'], t['_'] = 62, 63
	return t
}()

// appendBase64 decodes base64 leniently: octets outside the alphabet are skipped,
// padding is optional, and decoding goes on after a "=" (concatenated encodings).
func appendBase64(dst, t []byte) []byte {
	var acc uint32
	n := 0
	for _, c := range t {
		v := base64Value[c]
		if v == 0xff {
			if c == '=' {
				acc, n = 0, 0 // the end of one quantum; a new encoding may follow
			}
			continue
		}
		acc = acc<<6 | uint32(v)
		n++
		switch n {
		case 2:
			dst = append(dst, byte(acc>>4))
		case 3:
			dst = append(dst, byte(acc>>2))
		case 4:
			dst = append(dst, byte(acc))
			acc, n = 0, 0
		}
	}
	return dst
}

func isASCIIBytes(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

package mime

import (
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// Charsets are looked up with golang.org/x/text: the WHATWG labels (htmlindex), which are
// what mail in the wild uses (iso-8859-1 read as windows-1252, gb2312 as GBK ...), then
// the IANA names.

var charsets sync.Map // lowercased name → encoding.Encoding (nil: unknown)

// isUTF8Charset reports whether text in charset cs can be used as UTF-8 without
// conversion: US-ASCII, UTF-8, or no charset at all.
func isUTF8Charset(cs string) bool {
	switch strings.ToLower(strings.TrimSpace(cs)) {
	case "", "us-ascii", "utf-8", "utf8", "ascii", "ansi_x3.4-1968", "iso646-us", "us":
		return true
	}
	return false
}

// lookupCharset returns the decoder of charset cs, nil for UTF-8 compatible or unknown
// charsets.
func lookupCharset(cs string) encoding.Encoding {
	if isUTF8Charset(cs) {
		return nil
	}
	key := strings.ToLower(strings.TrimSpace(cs))
	if i := strings.IndexByte(key, '*'); i >= 0 {
		key = key[:i] // RFC 2231 §5 language suffix
	}
	if e, ok := charsets.Load(key); ok {
		enc, _ := e.(encoding.Encoding)
		return enc
	}
	enc, err := htmlindex.Get(key)
	if err != nil {
		enc, err = ianaindex.MIME.Encoding(key)
		if err != nil {
			enc = nil
		}
	}
	if len(key) < 64 {
		charsets.Store(key, enc)
	}
	return enc
}

// appendUTF8 appends b, in charset cs, converted to UTF-8. Unknown charsets are taken as
// UTF-8; octets that are not valid UTF-8 are read as ISO-8859-1, so that nothing is lost
// and the result is always valid UTF-8.
func appendUTF8(dst, b []byte, cs string) []byte {
	if enc := lookupCharset(cs); enc != nil {
		if out, err := enc.NewDecoder().Bytes(b); err == nil {
			return append(dst, out...)
		}
	}
	return appendValidUTF8(dst, b)
}

// appendValidUTF8 appends b, reading octets that are not valid UTF-8 as ISO-8859-1.
func appendValidUTF8(dst, b []byte) []byte {
	if utf8.Valid(b) {
		return append(dst, b...)
	}
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			dst = utf8.AppendRune(dst, rune(b[0]))
			b = b[1:]
			continue
		}
		dst = append(dst, b[:n]...)
		b = b[n:]
	}
	return dst
}

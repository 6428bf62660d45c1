package imap

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// mutf7 is the modified BASE64 of RFC 3501 §5.1.3: "," in place of "/", no padding.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// ErrBadUTF7 is returned by DecodeUTF7 for a name that is not valid modified UTF-7.
var ErrBadUTF7 = errors.New("imap: mailbox name is not valid modified UTF-7")

// EncodeUTF7 encodes a UTF-8 mailbox name in IMAP's modified UTF-7 (RFC 3501 §5.1.3), the
// form IMAP4rev1 clients see: printable ASCII stands for itself ("&" as "&-"), every other
// run of characters is UTF-16 in modified BASE64 between "&" and "-".
func EncodeUTF7(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '&' {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	var run []uint16
	flush := func() {
		if len(run) == 0 {
			return
		}
		buf := make([]byte, 2*len(run))
		for i, u := range run {
			buf[2*i], buf[2*i+1] = byte(u>>8), byte(u)
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(buf))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			run = utf16.AppendRune(run, r)
		}
	}
	flush()
	return b.String()
}

// DecodeUTF7 decodes a mailbox name from modified UTF-7 to UTF-8. It rejects what RFC
// 3501 §5.1.3 forbids: 8-bit bytes, unterminated or empty shifts ("&-" stands for "&"),
// shifts that encode printable ASCII, adjacent shifts, and bad UTF-16.
func DecodeUTF7(s string) (string, error) {
	if strings.IndexByte(s, '&') < 0 {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return "", ErrBadUTF7
			}
		}
		return s, nil
	}
	var b strings.Builder
	lastShiftEnd := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return "", ErrBadUTF7
		}
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", ErrBadUTF7
		}
		enc := s[i+1 : i+1+end]
		if enc == "" {
			b.WriteByte('&')
			i++
			continue
		}
		if lastShiftEnd == i {
			return "", ErrBadUTF7 // "&AGE-&AGE-" must be one shift
		}
		raw, err := mutf7.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", ErrBadUTF7
		}
		units := make([]uint16, len(raw)/2)
		for j := range units {
			units[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for _, r := range utf16.Decode(units) {
			if r == utf8.RuneError || (r >= 0x20 && r <= 0x7e) {
				return "", ErrBadUTF7
			}
			b.WriteRune(r)
		}
		i += 1 + end
		lastShiftEnd = i + 1
	}
	return b.String(), nil
}

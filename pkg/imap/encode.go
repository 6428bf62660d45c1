package imap

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// quotable reports whether s can be sent as an IMAP4rev1 quoted string (RFC 3501 §4.3:
// 7-bit characters other than NUL, CR and LF; '"' and '\' are escaped). Long strings are
// sent as literals all the same, so a line stays readable.
func quotable(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' || c >= 0x80 {
			return false
		}
	}
	return true
}

// AppendQuoted appends s as a quoted string, escaping '"' and '\'. The caller makes sure
// s is quotable (no NUL, CR, LF, no 8-bit byte); use AppendString when unsure.
func AppendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// AppendLiteral appends s as a literal, {len}CRLF followed by the bytes (RFC 3501 §4.3).
func AppendLiteral(b []byte, s string) []byte {
	b = append(b, '{')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, "}\r\n"...)
	return append(b, s...)
}

// AppendString appends s as an IMAP string: quoted when RFC 3501 allows it, a literal
// otherwise (8-bit bytes, CR, LF, or more than 1 KiB).
func AppendString(b []byte, s string) []byte {
	if quotable(s) {
		return AppendQuoted(b, s)
	}
	return AppendLiteral(b, s)
}

// AppendNString appends s as an nstring: NIL when s is empty, else as AppendString.
// (ENVELOPE and BODYSTRUCTURE fields use NIL for an absent value.)
func AppendNString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "NIL"...)
	}
	return AppendString(b, s)
}

// MaxKeywordLen bounds the length of a keyword a server stores.
const MaxKeywordLen = 100

// ValidKeyword reports whether s can be a keyword: an atom (RFC 3501 §9,
// flag-keyword) of at most MaxKeywordLen octets.
func ValidKeyword(s string) bool { return len(s) <= MaxKeywordLen && isAtom(s) }

// isAtom reports whether s can be sent as an atom (RFC 3501 §9, ATOM-CHAR).
func isAtom(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAtomChar(s[i]) {
			return false
		}
	}
	return true
}

// AppendAString appends s as an astring: as an atom when it is one (and not "NIL", which
// would read as nil where an nstring is allowed), else as AppendString.
func AppendAString(b []byte, s string) []byte {
	if isAtom(s) && !equalFoldASCII(s, "NIL") {
		return append(b, s...)
	}
	return AppendString(b, s)
}

// AppendMailbox appends a mailbox name (already in its wire form: modified UTF-7 for
// IMAP4rev1, UTF-8 for IMAP4rev2) as an astring; INBOX is always sent as INBOX. A UTF-8
// name goes out as a quoted string, which RFC 9051 §4.3 allows for IMAP4rev2 (an
// IMAP4rev1 name in modified UTF-7 is 7-bit).
func AppendMailbox(b []byte, name string) []byte {
	if equalFoldASCII(name, "INBOX") {
		return append(b, "INBOX"...)
	}
	if !quotable(name) && utf8.ValidString(name) && len(name) <= 1024 && !strings.ContainsAny(name, "\x00\r\n") {
		return AppendQuoted(b, name) // 8-bit, in UTF-8
	}
	return AppendAString(b, name)
}

// AppendDateTime appends t as an IMAP date-time, "dd-Mon-yyyy hh:mm:ss +zzzz" in double
// quotes (RFC 3501 §9, date-time; INTERNALDATE), the day with two digits as Dovecot
// writes it (date-day-fixed allows a leading space too).
func AppendDateTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, "02-Jan-2006 15:04:05 -0700")
	return append(b, '"')
}

// DateTimeLayout is the time layout of an IMAP date-time without its quotes.
const DateTimeLayout = "_2-Jan-2006 15:04:05 -0700"

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if upper(a[i]) != upper(b[i]) {
			return false
		}
	}
	return true
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

package main

import (
	"strings"
)

// The parameters of Delivery Status Notifications (RFC 3461 §4). pkg/smtp checks
// their syntax as esmtp-values; their meaning is checked here.

// maxEnvID is the longest ENVID value (RFC 3461 §4.4).
const maxEnvID = 100

// parseEnvID checks and decodes the ENVID parameter of MAIL: xtext of at most 100
// characters (RFC 3461 §4.4) that decodes to printable ASCII.
func parseEnvID(v string) (string, bool) {
	if len(v) > maxEnvID {
		return "", false
	}
	id, ok := decodeXtext(v)
	if !ok || !printableASCIIOrSpace(id) {
		return "", false
	}
	return id, true
}

// parseORcpt checks the ORCPT parameter of RCPT, addr-type ";" xtext (RFC 3461 §4.2),
// and returns the original recipient when its type is rfc822, the only one the queue
// can use; other types are accepted and dropped.
func parseORcpt(v string) (string, bool) {
	typ, text, ok := strings.Cut(v, ";")
	if !ok || typ == "" || len(v) > 500 {
		return "", false
	}
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return "", false
		}
	}
	switch strings.ToLower(typ) {
	case "rfc822":
		addr, ok := decodeXtext(text)
		if !ok || addr == "" || !printableASCIIOrSpace(addr) {
			return "", false
		}
		return addr, true
	case "utf-8":
		// RFC 6533 §3: utf-8-addr-xtext or -unitext; kept only when it is plain.
		if addr, ok := decodeXtext(text); ok && printableASCIIOrSpace(addr) {
			return addr, true
		}
		return "", true
	}
	return "", true
}

// decodeXtext decodes xtext (RFC 3461 §4): characters "!" to "~" but "+" and "=" stand
// for themselves, "+" and two upper-case hex digits for any octet.
func decodeXtext(s string) (string, bool) {
	if !strings.Contains(s, "+") {
		for i := 0; i < len(s); i++ {
			if s[i] < '!' || s[i] > '~' || s[i] == '=' {
				return "", false
			}
		}
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) {
				return "", false
			}
			hi, ok1 := upperHex(s[i+1])
			lo, ok2 := upperHex(s[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			b.WriteByte(hi<<4 | lo)
			i += 2
		case c < '!' || c > '~' || c == '=':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func upperHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// printableASCIIOrSpace reports whether s holds only printable ASCII and spaces.
func printableASCIIOrSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

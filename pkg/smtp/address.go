package smtp

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Address is a mailbox: local part and domain.
//
// The zero Address is the null reverse-path "<>". An Address with a Local part and no
// Domain is the special recipient "<postmaster>" (RFC 5321 §4.5.1).
type Address struct {
	// Local is the local part, unquoted (the quotes and backslashes of a Quoted-string
	// removed), with its case kept: local parts are case-sensitive (RFC 5321 §2.4).
	Local string
	// Domain is the domain, lower-cased, or an address literal in canonical form:
	// "[192.0.2.1]" or "[IPv6:2001:db8::1]".
	Domain string
}

// IsZero reports whether a is the null path "<>".
func (a Address) IsZero() bool { return a.Local == "" && a.Domain == "" }

// String returns a in the form used inside a path, "local@domain", quoting the local part
// when it is not a Dot-string (RFC 5321 §4.1.2), and "" for the null path. It assumes a
// came from ParseAddress or is equally valid.
func (a Address) String() string {
	if a.IsZero() {
		return ""
	}
	local := a.Local
	if !isDotString(local) {
		var b strings.Builder
		b.WriteByte('"')
		for i := 0; i < len(local); i++ {
			if c := local[i]; c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(local[i])
		}
		b.WriteByte('"')
		local = b.String()
	}
	if a.Domain == "" {
		return local
	}
	return local + "@" + a.Domain
}

// IsASCII reports whether a is entirely ASCII, that is whether it can be sent without the
// SMTPUTF8 extension (RFC 6531).
func (a Address) IsASCII() bool { return isASCII(a.Local) && isASCII(a.Domain) }

// IP returns the address of an address-literal domain such as "[192.0.2.1]", and false
// when the domain is a name.
func (a Address) IP() (netip.Addr, bool) {
	d, ok := strings.CutPrefix(a.Domain, "[")
	if !ok {
		return netip.Addr{}, false
	}
	d = strings.TrimSuffix(d, "]")
	d = strings.TrimPrefix(d, "IPv6:")
	ip, err := netip.ParseAddr(d)
	return ip, err == nil
}

// ParseAddress parses a bare mailbox "local@domain" (RFC 5321 §4.1.2 Mailbox).
//
// The local part is a Dot-string or a Quoted-string; the domain is as for ParseDomain.
// Non-ASCII characters (RFC 6531) are accepted only when smtputf8 is true, else the
// error is ErrNonASCII. A local part over MaxLocalPart octets or a domain over MaxDomain
// octets gives ErrPathTooLong.
func ParseAddress(s string, smtputf8 bool) (Address, error) {
	local, n, err := parseLocalPart(s, smtputf8)
	if err != nil {
		return Address{}, err
	}
	if n > MaxLocalPart {
		return Address{}, fmt.Errorf("%w: local part of %d octets", ErrPathTooLong, n)
	}
	if n == len(s) || s[n] != '@' {
		return Address{}, fmt.Errorf("%w: expected '@' after the local part", ErrSyntax)
	}
	domain, err := ParseDomain(s[n+1:], smtputf8)
	if err != nil {
		return Address{}, err
	}
	return Address{Local: local, Domain: domain}, nil
}

// ParseDomain parses the domain of a mailbox (RFC 5321 §4.1.2 Domain / address-literal)
// and returns it in canonical form: a name lower-cased, an address literal as
// "[192.0.2.1]" or "[IPv6:2001:db8::1]". General address literals other than IPv6 are
// refused. Labels with non-ASCII characters (U-labels, RFC 6531 §3.3) are accepted only
// when smtputf8 is true, and only made of letters, marks, digits and hyphens.
func ParseDomain(s string, smtputf8 bool) (string, error) {
	if strings.HasPrefix(s, "[") {
		return parseAddressLiteral(s)
	}
	if len(s) > MaxDomain {
		return "", fmt.Errorf("%w: domain of %d octets", ErrPathTooLong, len(s))
	}
	if isASCII(s) {
		s = lowerASCII(s)
	} else {
		if !smtputf8 {
			return "", fmt.Errorf("%w: non-ASCII domain", ErrNonASCII)
		}
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("%w: invalid UTF-8 in domain", ErrSyntax)
		}
		s = strings.ToLower(s)
		if len(s) > MaxDomain {
			return "", fmt.Errorf("%w: domain of %d octets", ErrPathTooLong, len(s))
		}
	}
	if s == "" {
		return "", fmt.Errorf("%w: empty domain", ErrSyntax)
	}
	for label := range strings.SplitSeq(s, ".") {
		if err := checkLabel(label); err != nil {
			return "", err
		}
	}
	return s, nil
}

// checkLabel checks one sub-domain: Let-dig [Ldh-str] (RFC 5321 §4.1.2), at most 63
// octets (RFC 1035 §2.3.4), with non-ASCII letters, marks and digits allowed as in a
// U-label. The caller has checked the smtputf8 flag and UTF-8 validity.
func checkLabel(label string) error {
	if label == "" {
		return fmt.Errorf("%w: empty domain label", ErrSyntax)
	}
	if len(label) > 63 {
		return fmt.Errorf("%w: domain label of %d octets", ErrPathTooLong, len(label))
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return fmt.Errorf("%w: domain label starts or ends with '-'", ErrSyntax)
	}
	for _, r := range label {
		switch {
		case r < utf8.RuneSelf:
			if !isAlnum(byte(r)) && r != '-' {
				return fmt.Errorf("%w: invalid character %q in domain", ErrSyntax, r)
			}
		case unicode.In(r, unicode.L, unicode.M, unicode.N):
		default:
			return fmt.Errorf("%w: invalid character %U in domain", ErrSyntax, r)
		}
	}
	return nil
}

// parseAddressLiteral parses "[IPv4]" or "[IPv6:addr]" (RFC 5321 §4.1.3).
func parseAddressLiteral(s string) (string, error) {
	inner, ok := strings.CutSuffix(s[1:], "]")
	if !ok || strings.ContainsAny(inner, "[]%") {
		return "", fmt.Errorf("%w: malformed address literal", ErrSyntax)
	}
	// The tag is case-insensitive, as are all ABNF strings (RFC 5234 §2.3).
	if len(inner) >= 5 && equalFoldASCII(inner[:5], "IPv6:") {
		ip, err := netip.ParseAddr(inner[5:])
		if err != nil || !ip.Is6() {
			return "", fmt.Errorf("%w: malformed IPv6 address literal", ErrSyntax)
		}
		return "[IPv6:" + ip.String() + "]", nil
	}
	if strings.Contains(inner, ":") {
		return "", fmt.Errorf("%w: unsupported address literal", ErrSyntax)
	}
	ip, err := netip.ParseAddr(inner)
	if err != nil || !ip.Is4() {
		return "", fmt.Errorf("%w: malformed IPv4 address literal", ErrSyntax)
	}
	return "[" + ip.String() + "]", nil
}

// parseLocalPart parses the Local-part at the start of s (RFC 5321 §4.1.2, extended by
// RFC 6531 §3.3) and returns it unquoted, with the number of octets it took in s.
func parseLocalPart(s string, smtputf8 bool) (string, int, error) {
	if strings.HasPrefix(s, `"`) {
		return parseQuotedString(s, smtputf8)
	}
	i := 0
scan:
	for i < len(s) {
		c := s[i]
		switch {
		case c == '.' || isAtext(c):
			i++
		case c >= utf8.RuneSelf:
			n, err := checkNonASCII(s[i:], smtputf8)
			if err != nil {
				return "", 0, err
			}
			i += n
		default:
			break scan
		}
	}
	local := s[:i]
	if local == "" {
		return "", 0, fmt.Errorf("%w: empty local part", ErrSyntax)
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return "", 0, fmt.Errorf("%w: misplaced '.' in local part", ErrSyntax)
	}
	return local, i, nil
}

// parseQuotedString parses a Quoted-string at the start of s:
// DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE (RFC 5321 §4.1.2).
func parseQuotedString(s string, smtputf8 bool) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1, nil
		case c == '\\':
			// quoted-pairSMTP = %d92 %d32-126
			if i+1 == len(s) || s[i+1] < 32 || s[i+1] > 126 {
				return "", 0, fmt.Errorf("%w: invalid quoted pair in local part", ErrSyntax)
			}
			b.WriteByte(s[i+1])
			i += 2
		case c >= 32 && c <= 126:
			b.WriteByte(c)
			i++
		case c >= utf8.RuneSelf:
			n, err := checkNonASCII(s[i:], smtputf8)
			if err != nil {
				return "", 0, err
			}
			b.WriteString(s[i : i+n])
			i += n
		default:
			return "", 0, fmt.Errorf("%w: control character in local part", ErrSyntax)
		}
	}
	return "", 0, fmt.Errorf("%w: unterminated quoted local part", ErrSyntax)
}

// checkNonASCII checks the UTF8-non-ascii character at the start of s (RFC 6531 §3.3)
// and returns its length.
func checkNonASCII(s string, smtputf8 bool) (int, error) {
	if !smtputf8 {
		return 0, fmt.Errorf("%w: non-ASCII local part", ErrNonASCII)
	}
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return 0, fmt.Errorf("%w: invalid UTF-8 in local part", ErrSyntax)
	}
	if unicode.IsControl(r) {
		return 0, fmt.Errorf("%w: control character %U in local part", ErrSyntax, r)
	}
	return n, nil
}

// isAtext reports whether c is an ASCII atext character (RFC 5322 §3.2.3, used by
// RFC 5321 §4.1.2).
func isAtext(c byte) bool {
	if isAlnum(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// isDotString reports whether s can be written as a Dot-string, without quotes.
func isDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if r < utf8.RuneSelf && r != '.' && !isAtext(byte(r)) {
			return false
		}
		if r == utf8.RuneError || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

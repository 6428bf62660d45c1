package userdb

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Length limits of addresses.
const (
	// MaxLocalLen is the longest local part: RFC 5321 §4.5.3.1.1.
	MaxLocalLen = 64
	// MaxDomainLen is the longest domain name in text form: RFC 1035 §2.3.4 allows 255
	// octets on the wire, which is 253 characters written out.
	MaxDomainLen = 253
	// MaxAddressLen is the longest address: a path is at most 256 octets including its
	// angle brackets, RFC 5321 §4.5.3.1.3.
	MaxAddressLen = 254
	maxLabelLen   = 63 // RFC 1035 §2.3.4
)

// PlusSeparator separates an address's base from its tag in plus-addressing
// ("user+tag@domain" reaches "user@domain").
const PlusSeparator = "+"

// CanonicalDomain checks a domain name and returns it in lower case. Only host names in
// ASCII are accepted (internationalized names in their xn-- form): labels of letters,
// digits and hyphens, RFC 1035 §2.3.1 as relaxed by RFC 1123 §2.1, no trailing dot.
func CanonicalDomain(s string) (string, error) {
	if err := checkDomain(s); err != nil {
		return "", fmt.Errorf("domain %q: %w", clip(s), err)
	}
	return strings.ToLower(s), nil
}

func checkDomain(s string) error {
	if s == "" {
		return invalid("empty domain")
	}
	if len(s) > MaxDomainLen {
		return invalid("domain longer than %d characters", MaxDomainLen)
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return invalid("empty label in domain")
		}
		if len(label) > maxLabelLen {
			return invalid("domain label longer than %d characters", maxLabelLen)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return invalid("domain label begins or ends with a hyphen")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return invalid("domain contains %q", rune(c))
			}
		}
	}
	return nil
}

// ParseAddress checks an address of the form local@domain and returns its canonical
// form (lower case) split into its parts. The local part must be a dot-atom (RFC 5322
// §3.2.3; quoted local parts are not accepted), which may include UTF-8 letters (RFC 6531
// §3.3); the domain must pass CanonicalDomain.
func ParseAddress(s string) (local, domain string, err error) {
	local, domain, err = splitAddress(s)
	if err != nil {
		return "", "", err
	}
	return strings.ToLower(local), strings.ToLower(domain), nil
}

// CanonicalAddress returns the canonical form of an address (see ParseAddress).
func CanonicalAddress(s string) (string, error) {
	local, domain, err := ParseAddress(s)
	if err != nil {
		return "", err
	}
	return local + "@" + domain, nil
}

// splitAddress checks s and splits it at its @, without changing case.
func splitAddress(s string) (local, domain string, err error) {
	if len(s) > MaxAddressLen {
		return "", "", fmt.Errorf("address %q: %w", clip(s), invalid("longer than %d characters", MaxAddressLen))
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", "", fmt.Errorf("address %q: %w", clip(s), invalid("no @domain"))
	}
	local, domain = s[:at], s[at+1:]
	if err := checkLocal(local); err != nil {
		return "", "", fmt.Errorf("address %q: %w", clip(s), err)
	}
	if err := checkDomain(domain); err != nil {
		return "", "", fmt.Errorf("address %q: %w", clip(s), err)
	}
	return local, domain, nil
}

// checkLocal accepts a dot-atom: atoms of atext (RFC 5322 §3.2.3, plus UTF-8 non-ASCII
// printable characters per RFC 6531 §3.3) separated by single dots.
func checkLocal(s string) error {
	if s == "" {
		return invalid("empty local part")
	}
	if len(s) > MaxLocalLen {
		return invalid("local part longer than %d octets", MaxLocalLen)
	}
	if !utf8.ValidString(s) {
		return invalid("local part is not valid UTF-8")
	}
	if s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return invalid("local part begins or ends with a dot or has two in a row")
	}
	for _, r := range s {
		if r == '.' || isAtext(r) {
			continue
		}
		return invalid("local part contains %q", r)
	}
	return nil
}

// isAtext reports whether r may appear in an atom: RFC 5322 §3.2.3 atext, extended with
// UTF8-non-ascii by RFC 6531 §3.3 (limited here to printable, non-space characters).
func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r < 0x80:
		return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
	default:
		return r != utf8.RuneError && unicode.IsPrint(r) && !unicode.IsSpace(r)
	}
}

// checkMailboxLocal adds to checkLocal what an account's local part needs to be a safe
// directory name: no "/" (the dot-atom rules already exclude NUL, "..", a leading dot
// and spaces).
func checkMailboxLocal(local string) error {
	if err := checkLocal(local); err != nil {
		return err
	}
	if strings.ContainsAny(local, "/\\") {
		return invalid("local part of an account contains a slash")
	}
	return nil
}

// Maildir returns the Maildir of the account addr under root: root/<domain>/<local>, with
// the address in canonical form. It refuses addresses whose parts could lead outside
// root, so its result is always a directory two levels below root.
func Maildir(root, addr string) (string, error) {
	local, domain, err := ParseAddress(addr)
	if err != nil {
		return "", err
	}
	if err := checkMailboxLocal(local); err != nil {
		return "", fmt.Errorf("address %q: %w", clip(addr), err)
	}
	root = filepath.Clean(root)
	dir := filepath.Join(root, domain, local)
	// Belt and braces: the checks above make this impossible.
	if filepath.Dir(filepath.Dir(dir)) != root {
		return "", fmt.Errorf("address %q: %w", clip(addr), invalid("maildir would lie outside %s", root))
	}
	return dir, nil
}

// clip shortens untrusted input for error messages.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

package acmecert

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// NamesFileName is the name of the file, beside the TLS key and the account key, that
// keeps the host names the certificate was last obtained for, so that a renewal run
// with no names (a timer's) asks for the same ones.
const NamesFileName = "acme-names"

// CheckName lower-cases a host name, drops a trailing dot, and refuses what a CA does
// not certify through HTTP-01: an IP address, a single label, a wildcard, a path.
func CheckName(n string) (string, error) {
	n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
	if n == "" || net.ParseIP(n) != nil || !strings.Contains(n, ".") || strings.ContainsAny(n, "/ *\t") {
		return "", fmt.Errorf("%q is not a host name a CA certifies", n)
	}
	return n, nil
}

// ReadNames returns the names kept in path, one per line; blank lines and lines
// beginning with # are left out. A missing file is no names and no error.
func ReadNames(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the certificate's names: %w", err)
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		n, err := CheckName(s)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		names = append(names, n)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return names, nil
}

// WriteNames keeps names in path (mode 0644: they are in the certificate anyway),
// replacing the file in one rename.
func WriteNames(path string, names []string) error {
	var b strings.Builder
	b.WriteString("# The host names of the TLS certificate, one a line, as `mailctl cert renew NAME...`\n" +
		"# last got it. `mailctl cert renew` with no names renews it for these; giving\n" +
		"# names again replaces them.\n")
	for _, n := range names {
		b.WriteString(n + "\n")
	}
	return ReplaceFile(path, []byte(b.String()), 0o644)
}

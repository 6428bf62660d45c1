package maildir

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzFolderPath checks that FolderPath never returns a path outside the mailbox root:
// every accepted name maps to root itself or to one Maildir++ directory directly in it.
func FuzzFolderPath(f *testing.F) {
	for _, s := range []string{
		"", "INBOX", "inbox/x", "Junk", "Archive/2024", "a/b/c", "..", ".", "../x", "a/../b",
		"/", "/etc", "a//b", "a/", "a.b", "a\x00b", "\xff\xfe", "Entw&APw-rfe", "Entwürfe",
		strings.Repeat("a/", 200), `a\..\b`,
	} {
		f.Add(s)
	}
	const root = "/var/mail/example.org/alice"
	f.Fuzz(func(t *testing.T, name string) {
		p, err := FolderPath(root, name)
		if err != nil {
			var fe *FolderNameError
			if !errors.As(err, &fe) {
				t.Fatalf("FolderPath(%q): error %T %v, want *FolderNameError", name, err, err)
			}
			return
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			t.Fatalf("FolderPath(%q) = %q: %v", name, p, err)
		}
		if rel == "." {
			return
		}
		if rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) ||
			strings.Contains(rel, "/") || rel[0] != '.' || len(rel) > maxDirName {
			t.Fatalf("FolderPath(%q) = %q escapes or nests under %q", name, p, root)
		}
		if filepath.Join(root, rel) != p {
			t.Fatalf("FolderPath(%q) = %q is not clean", name, p)
		}
	})
}

// FuzzParseMaildirsize feeds arbitrary maildirsize files (which a user with shell access
// can write) to the parser: it must not panic and never report negative usage.
func FuzzParseMaildirsize(f *testing.F) {
	for _, s := range []string{
		"", "0S\n0 0\n", "1000S,10C\n123 4\n-3 -1\n5 1", "\n0 0\n", "S\n", "1000X\n1 1\n",
		"18446744073709551615S\n1 1\n", "0S\n9223372036854775807 1\n1 1\n", "0S\n\n", "0S\n1  2\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := parseMaildirsize(data)
		if !ok {
			return
		}
		if m.bytes < 0 || m.count < 0 || m.quota.Bytes < 0 || m.quota.Count < 0 || m.lines < 1 {
			t.Fatalf("parseMaildirsize(%q) = %+v", data, m)
		}
	})
}

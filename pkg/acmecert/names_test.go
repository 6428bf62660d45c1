package acmecert

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestNamesFile writes names and reads them back; a missing file is no names, a file
// edited by hand may hold comments and blank lines, and a line that is no host name is
// an error naming the file and line.
func TestNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), NamesFileName)
	if names, err := ReadNames(path); err != nil || names != nil {
		t.Errorf("missing file: %v %v", names, err)
	}
	want := []string{"mail.example.org", "mta-sts.example.org"}
	if err := WriteNames(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadNames(path); err != nil || !slices.Equal(got, want) {
		t.Errorf("read back %v %v, want %v", got, err, want)
	}
	os.WriteFile(path, []byte("# mine\n\n  Mail.Example.org. \nautoconfig.example.org\n"), 0o644)
	if got, err := ReadNames(path); err != nil || !slices.Equal(got, []string{"mail.example.org", "autoconfig.example.org"}) {
		t.Errorf("hand-edited file: %v %v", got, err)
	}
	os.WriteFile(path, []byte("mail.example.org\n192.0.2.1\n"), 0o644)
	if _, err := ReadNames(path); err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Errorf("an IP address in the file: %v", err)
	}
	for _, bad := range []string{"localhost", "*.example.org", "a/b.example.org", "2001:db8::1", ""} {
		if _, err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
}

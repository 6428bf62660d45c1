package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateLayout(t *testing.T) {
	root := filepath.Join(t.TempDir(), "example.org", "alice")
	folders := append([]string{"Archive/2024"}, DefaultFolders...)
	if err := Create(root, folders); err != nil {
		t.Fatal(err)
	}
	checkDir := func(p string) {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want directory 0700", p, fi.Mode())
		}
	}
	checkDir(root)
	checkDir(filepath.Dir(root))
	for _, sub := range []string{"cur", "new", "tmp"} {
		checkDir(filepath.Join(root, sub))
	}
	if _, err := os.Stat(filepath.Join(root, "maildirfolder")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("INBOX has a maildirfolder file: %v", err)
	}
	for _, f := range []string{".Sent", ".Drafts", ".Junk", ".Trash", ".Archive", ".Archive.2024"} {
		d := filepath.Join(root, f)
		checkDir(d)
		for _, sub := range []string{"cur", "new", "tmp"} {
			checkDir(filepath.Join(d, sub))
		}
		fi, err := os.Stat(filepath.Join(d, "maildirfolder"))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Size() != 0 {
			t.Errorf("%s/maildirfolder: %v size %d", d, fi.Mode(), fi.Size())
		}
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 3+6 {
		t.Errorf("root holds %d entries, want 9", len(ents))
	}
}

func TestCreateIdempotent(t *testing.T) {
	root := filepath.Join(t.TempDir(), "m")
	if err := Create(root, DefaultFolders); err != nil {
		t.Fatal(err)
	}
	// A message and a missing piece, as after a crash half-way through.
	if _, _, err := Deliver(root, strings.NewReader("Subject: x\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, ".Junk", "maildirfolder"))
	os.Remove(filepath.Join(root, ".Trash", "tmp"))
	if err := Create(root, append(DefaultFolders, "Lists")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".Junk/maildirfolder", ".Trash/tmp", ".Lists/cur", ".Lists/maildirfolder"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Error(err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "new")); len(ents) != 1 {
		t.Errorf("new/ holds %d files after re-Create, want 1", len(ents))
	}
}

func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	var fe *FolderNameError
	if err := Create(filepath.Join(dir, "m"), []string{"ok", "../evil"}); !errors.As(err, &fe) {
		t.Errorf("bad folder: got %v, want *FolderNameError", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "m")); !errors.Is(err, os.ErrNotExist) {
		t.Error("Create created something before rejecting a folder name")
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if err := Create(file, nil); err == nil {
		t.Error("Create over a regular file succeeded")
	}
}

func TestFolderPath(t *testing.T) {
	root := "/var/mail/example.org/alice"
	good := map[string]string{
		"":                       root,
		"INBOX":                  root,
		"inbox":                  root,
		"Junk":                   root + "/.Junk",
		"Archive/2024":           root + "/.Archive.2024",
		"a/b/c":                  root + "/.a.b.c",
		"inbox/Sub":              root + "/.INBOX.Sub",
		"INBOXES":                root + "/.INBOXES",
		"Entw&APw-rfe":           root + "/.Entw&APw-rfe",
		"Entwürfe":               root + "/.Entwürfe",
		"with space":             root + "/.with space",
		"~x":                     root + "/.~x",
		strings.Repeat("a", 254): root + "/." + strings.Repeat("a", 254),
	}
	for name, want := range good {
		got, err := FolderPath(root, name)
		if err != nil || got != want {
			t.Errorf("FolderPath(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	bad := []string{
		"/", "/Junk", "Junk/", "a//b", ".", "..", "../x", "a/../b", "a/./b", "a.b",
		".hidden", "a\x00b", "a\nb", "a\x7fb", "\xff", strings.Repeat("a", 255),
	}
	for _, name := range bad {
		got, err := FolderPath(root, name)
		var fe *FolderNameError
		if !errors.As(err, &fe) {
			t.Errorf("FolderPath(%q) = %q, %v; want *FolderNameError", name, got, err)
			continue
		}
		if fe.Name != name || fe.Reason == "" {
			t.Errorf("FolderPath(%q): error %+v", name, fe)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/maildir"
)

// TestImportCreatesFolder: a message imported into a folder of an account whose
// Maildir does not exist yet lands there, with its flags, and the standard folders
// are made beside it.
func TestImportCreatesFolder(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{MailRoot: filepath.Join(dir, "mail"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	os.MkdirAll(a.MailRoot, 0o700)
	msg := "Subject: old\r\n\r\nhello\r\n"
	src := filepath.Join(dir, "msg")
	if err := os.WriteFile(src, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(a.MailRoot, "example.test", "bob")
	body, _ := json.Marshal(control.ImportRequest{Maildir: root, Folder: "Archive", Flags: "S", Size: int64(len(msg))})
	res, err := a.serveImport(context.Background(), ipc.Cred{}, body, []*os.File{f})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.(control.ImportResult).Size; got != int64(len(msg)) {
		t.Errorf("size %d, want %d", got, len(msg))
	}
	folder, _ := maildir.FolderPath(root, "Archive")
	ents, err := os.ReadDir(filepath.Join(folder, "new"))
	if err != nil || len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ":2,S") {
		t.Fatalf("Archive/new = %v, %v; want one message with :2,S", ents, err)
	}
	for _, d := range maildir.DefaultFolders {
		p, _ := maildir.FolderPath(root, d)
		if _, err := os.Stat(filepath.Join(p, "new")); err != nil {
			t.Errorf("standard folder %q not made: %v", d, err)
		}
	}
}

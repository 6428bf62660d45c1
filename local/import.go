package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/maildir"
	"postern/pkg/mbox"
)

// ControlServer serves <spool>/control/local for the administrators: maildir.import,
// the messages mailctl import brings in. local writes them into new/ like any delivery
// (tmp/, fsync, rename), with their flags and date in the file, and imapd takes them in.
func (a *Agent) ControlServer(allow func(ipc.Cred) bool) *ipc.Server {
	if a.Log == nil {
		a.Log = slog.Default()
	}
	s := &ipc.Server{Name: "local-control", Allow: allow, Logger: a.Log}
	s.Handle(control.MaildirImport, a.serveImport)
	return s
}

func (a *Agent) serveImport(_ context.Context, peer ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
	defer ipc.CloseFiles(files)
	var req control.ImportRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, ipc.Errorf("invalid", "bad import request: %v", err)
	}
	if len(files) != 1 || req.Offset < 0 || req.Size < 0 {
		return nil, ipc.Errorf("invalid", "an import request needs one descriptor and a valid range")
	}
	root, err := a.mailbox(req.Maildir)
	if err != nil {
		return nil, ipc.Errorf("invalid", "%v", err)
	}
	folder, name := root, ""
	if req.Folder != "" && !strings.EqualFold(req.Folder, "INBOX") {
		if folder, err = maildir.FolderPath(root, req.Folder); err != nil {
			return nil, ipc.Errorf("invalid", "%v", err)
		}
		name = req.Folder
	}
	content := func() io.Reader {
		return mbox.Content(io.NewSectionReader(files[0], req.Offset, req.Size), req.Mbox)
	}
	_, n, err := maildir.Import(folder, content(), req.Flags, req.Date)
	if errors.Is(err, fs.ErrNotExist) {
		// The account's Maildir, or the folder, does not exist yet.
		if cerr := a.createMailbox(root, name, a.Log); cerr != nil {
			return nil, ipc.Errorf("temporary", "creating %s: %v", folder, cerr)
		}
		_, n, err = maildir.Import(folder, content(), req.Flags, req.Date)
	}
	if err != nil {
		a.Log.Error("import failed", "maildir", folder, "uid", peer.UID, "err", err)
		return nil, ipc.Errorf("temporary", "%v", err)
	}
	return control.ImportResult{Size: n}, nil
}

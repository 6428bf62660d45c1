package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/mbox"
)

// accountMaildir asks authd for the Maildir of the account addr.
func (a *app) accountMaildir(cfg *config.Config, addr string) (string, error) {
	_, domain, _ := strings.Cut(addr, "@")
	var res control.UserListResult
	if err := a.call(cfg, "authd", control.UserList, control.ListRequest{Domain: domain}, &res); err != nil {
		return "", err
	}
	for _, u := range res.Users {
		if strings.EqualFold(u.Address, addr) {
			if u.Maildir == "" {
				return "", fmt.Errorf("authd gives no Maildir for %s", addr)
			}
			return u.Maildir, nil
		}
	}
	return "", fmt.Errorf("%s is not an account (mailctl user list)", addr)
}

// importer sends messages to local over control/local, one connection for them all.
type importer struct {
	cl   *ipc.Client
	req  control.ImportRequest
	done int
}

func (im *importer) send(f *os.File, req control.ImportRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := im.cl.Call(ctx, control.MaildirImport, req, nil, f); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	im.done++
	return nil
}

// runImport brings an mbox file or a Maildir folder into an account's folder. local
// writes each message (imapd then takes it in, as it takes delivered mail): mailctl
// writes nothing into the Maildir itself. Memory stays flat: the mbox is read one line
// at a time and each message goes to local as the file's descriptor with its range.
func runImport(a *app, o *options, args []string) error {
	kind, path := args[0], args[1]
	if kind != "mbox" && kind != "maildir" {
		return usagef("import what? mbox or maildir, not %q", kind)
	}
	addr, err := checkAddress(args[2], false)
	if err != nil {
		return usagef("%v", err)
	}
	folder := ""
	if len(args) > 3 {
		folder = args[3]
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	md, err := a.accountMaildir(cfg, addr)
	if err != nil {
		return err
	}
	im := &importer{cl: ipc.NewClient(cfg.ControlSocket("local")), req: control.ImportRequest{Maildir: md, Folder: folder}}
	im.cl.Timeout = callTimeout
	defer im.cl.Close()
	dest := addr + "'s " + cmp.Or(folder, "INBOX")
	if kind == "mbox" {
		err = importMbox(im, path)
	} else {
		err = importMaildir(im, path)
	}
	if err != nil {
		if im.done > 0 {
			return fmt.Errorf("%w\n%d messages were imported into %s before the error, the rest were not", err, im.done, dest)
		}
		return err
	}
	fmt.Fprintf(a.stdout, "Imported %d messages into %s.\n", im.done, dest)
	return nil
}

func importMbox(im *importer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening the mbox: %w", err)
	}
	defer f.Close()
	// The scanner reads through its own descriptor position; local reads each message
	// with pread(2) on the descriptor it is sent, whose position it leaves alone.
	s := mbox.NewScanner(f)
	for {
		m, err := s.Next()
		if err == io.EOF {
			return nil
		}
		if errors.Is(err, mbox.ErrNotMbox) {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		req := im.req
		req.Offset, req.Size, req.Flags, req.Date, req.Mbox = m.Offset, m.Size, m.Flags, m.Date, true
		if err := im.send(f, req); err != nil {
			return fmt.Errorf("%s, message %d (line %d): %w", path, im.done+1, m.Line, err)
		}
	}
}

// importMaildir imports the messages of one Maildir folder (its cur/ and new/), with
// the system flags of their file names and their modification time as date. Keyword
// letters (a-z) are left out: their meaning is in the source's own dovecot-keywords.
func importMaildir(im *importer, dir string) error {
	found := false
	for _, sub := range []string{"cur", "new"} {
		d, err := os.Open(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the Maildir: %w", err)
		}
		found = true
		for {
			names, err := d.Readdirnames(1024)
			sort.Strings(names)
			for _, n := range names {
				if strings.HasPrefix(n, ".") {
					continue
				}
				if err := importFile(im, filepath.Join(dir, sub, n), n); err != nil {
					d.Close()
					return err
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				d.Close()
				return fmt.Errorf("reading %s: %w", filepath.Join(dir, sub), err)
			}
		}
		d.Close()
	}
	if !found {
		return fmt.Errorf("%s is not a Maildir folder (no cur/ or new/)", dir)
	}
	return nil
}

func importFile(im *importer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	req := im.req
	req.Size, req.Date = fi.Size(), fi.ModTime()
	if _, info, ok := strings.Cut(name, ":2,"); ok {
		for _, c := range info {
			if strings.ContainsRune("DFPRST", c) {
				req.Flags += string(c)
			}
		}
	}
	if err := im.send(f, req); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

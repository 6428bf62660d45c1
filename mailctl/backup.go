package main

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/maildir"
	"postern/pkg/mbox"
)

// indexFile is imapd's index in each Maildir folder: a cache that imapd rebuilds from
// the file names (flags) and dovecot-uidlist (UIDs, UIDVALIDITY), and that a copy taken
// while imapd writes it could tear. Backups leave it out.
const indexFile = "postern-imap.db"

// runBackup copies users.db (through authd, bbolt's online backup), the Maildirs and the
// DKIM keys into DIR while Postern runs.
func runBackup(a *app, o *options, args []string) error {
	dir := args[0]
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s is not empty: a backup goes into a new directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the backup directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "users.db"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating the backup of users.db: %w", err)
	}
	var res control.BackupResult
	err = a.call(cfg, "authd", control.Backup, nil, &res, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backing up users.db: %w", err)
	}
	msgs, err := copyMail(cfg.MailDir(), filepath.Join(dir, "mail"))
	if err != nil {
		return fmt.Errorf("backing up the Maildirs: %w", err)
	}
	if _, err := copyTree(filepath.Join(cfg.DataDir, "dkim"), filepath.Join(dir, "dkim"), nil); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backing up the DKIM keys: %w", err)
	}
	// The SRS secrets: bounces to the addresses forwarded mail went out from keep
	// working on the restored instance.
	if err := copyFile(cfg.SRSKeyFile(), filepath.Join(dir, "srs.key")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backing up the SRS secrets: %w", err)
	}
	fmt.Fprintf(a.stdout, "Backed up users.db (%d octets), %d message files, the DKIM keys and the SRS secrets into %s.\n", res.Size, msgs, dir)
	return nil
}

// copyMail copies the Maildirs under src into dst, leaving imapd's index and tmp/ out. A message
// file that imapd renames meanwhile (new/ to cur/, a flag change) is looked for again by
// its base name, so every message is copied once.
func copyMail(src, dst string) (int, error) {
	return copyTree(src, dst, func(path string, d fs.DirEntry) (string, bool) {
		// Deliveries still being written in tmp/ are not messages yet.
		if strings.HasPrefix(d.Name(), indexFile) || filepath.Base(filepath.Dir(path)) == "tmp" {
			return "", false
		}
		return path, true
	})
}

// copyTree copies the files and directories under src into dst with their modes and
// times, and returns how many message files (in a cur/ or new/) it copied. keep, when
// not nil, may leave a file out.
func copyTree(src, dst string, keep func(string, fs.DirEntry) (string, bool)) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != src && errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if keep != nil {
			if _, ok := keep(path, d); !ok {
				return nil
			}
		}
		err = copyFile(path, target)
		if errors.Is(err, fs.ErrNotExist) {
			sub := filepath.Base(filepath.Dir(path))
			if sub != "cur" && sub != "new" {
				return nil
			}
			base, _, _ := strings.Cut(d.Name(), ":")
			folder := filepath.Dir(filepath.Dir(path))
			moved, ferr := maildir.Find(folder, base)
			if ferr != nil {
				return nil // deleted meanwhile
			}
			rel, _ := filepath.Rel(src, moved)
			err = copyFile(moved, filepath.Join(dst, rel))
		}
		if err != nil {
			return err
		}
		if sub := filepath.Base(filepath.Dir(path)); sub == "cur" || sub == "new" {
			n++
		}
		return nil
	})
	return n, err
}

// copyFile copies one file with its mode and modification time (a message's internal
// date), through a temporary name, fsynced.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	tmp := dst + ".tmp-copy"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return nil
}

// runRestore puts a backup back: users.db, the Maildirs and the DKIM keys. Postern must
// be stopped: the files belong to authd, local and imapd while it runs.
func runRestore(a *app, o *options, args []string) error {
	dir := args[0]
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var st control.MasterStatusResult
	if err := a.call(cfg, "master", control.MasterStatus, nil, &st); err == nil {
		return fmt.Errorf("Postern is running (master pid %d): stop it first (systemctl stop postern), then restore", st.PID)
	}
	if _, err := os.Stat(filepath.Join(dir, "users.db")); err != nil {
		return fmt.Errorf("%s is not a backup of mailctl backup: %w", dir, err)
	}
	// users.db: the one there is kept beside, in case.
	db := cfg.UsersDB()
	if _, err := os.Stat(db); err == nil {
		if err := os.Rename(db, db+".before-restore"); err != nil {
			return fmt.Errorf("keeping the current users.db: %w", err)
		}
	}
	if err := copyFile(filepath.Join(dir, "users.db"), db); err != nil {
		return err
	}
	msgs, err := copyTree(filepath.Join(dir, "mail"), cfg.MailDir(), nil)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restoring the Maildirs: %w", err)
	}
	if _, err := copyTree(filepath.Join(dir, "dkim"), filepath.Join(cfg.DataDir, "dkim"), nil); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restoring the DKIM keys: %w", err)
	}
	// master gives the SRS secrets their owner and mode at its next start.
	if err := copyFile(filepath.Join(dir, "srs.key"), cfg.SRSKeyFile()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restoring the SRS secrets: %w", err)
	}
	if a.root {
		if err := restoreOwners(cfg); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stdout, "Restored users.db, %d message files and the DKIM keys from %s (the previous users.db is %s).\nimapd rebuilds its indexes from the Maildirs when the accounts are next opened.\n",
		msgs, dir, db+".before-restore")
	return nil
}

// restoreOwners gives the restored files to the daemons' users: users.db to authd's,
// the Maildirs to local's (which imapd shares), the DKIM keys to cleanup's.
func restoreOwners(cfg *config.Config) error {
	for _, t := range []struct{ path, service string }{
		{cfg.UsersDB(), "authd"}, {cfg.MailDir(), "local"}, {filepath.Join(cfg.DataDir, "dkim"), "cleanup"},
	} {
		uid, gid, err := ids(cfg.Service(t.service).User)
		if err != nil {
			return err
		}
		err = filepath.WalkDir(t.path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("giving %s to %s: %w", t.path, cfg.Service(t.service).User, err)
		}
	}
	return nil
}

// runExport writes an account's folder as an mbox file (mboxrd, with Status and
// X-Status fields for the flags) or a Maildir folder, reading its files as they are on
// disk: the reverse of import.
func runExport(a *app, o *options, args []string) error {
	kind := args[0]
	if kind != "mbox" && kind != "maildir" {
		return usagef("export as what? mbox or maildir, not %q", kind)
	}
	addr, err := checkAddress(args[1], false)
	if err != nil {
		return usagef("%v", err)
	}
	path := args[2]
	folder := ""
	if len(args) > 3 {
		folder = args[3]
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	root, err := a.accountMaildir(cfg, addr)
	if err != nil {
		return err
	}
	src := root
	if folder != "" && !strings.EqualFold(folder, "INBOX") {
		if src, err = maildir.FolderPath(root, folder); err != nil {
			return usagef("%v", err)
		}
	}
	var names []string
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(src, sub))
		if err != nil {
			return fmt.Errorf("reading %s's %s: %w", addr, cmp.Or(folder, "INBOX"), err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				names = append(names, filepath.Join(sub, e.Name()))
			}
		}
	}
	// Maildir names begin with the arrival time: sorted, the oldest first.
	sort.Slice(names, func(i, j int) bool { return filepath.Base(names[i]) < filepath.Base(names[j]) })
	n := 0
	if kind == "mbox" {
		n, err = exportMbox(src, names, path)
	} else {
		n, err = exportMaildir(src, names, path)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Exported %d messages of %s's %s into %s.\n", n, addr, cmp.Or(folder, "INBOX"), path)
	return nil
}

// openMessage opens a message file by its name at listing time, or where imapd has
// moved it since (into cur/, or renamed for a flag change), and returns its path. nil:
// deleted meanwhile.
func openMessage(folder, name string) (*os.File, string, error) {
	p := filepath.Join(folder, name)
	f, err := os.Open(p)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return f, p, err
	}
	base, _, _ := strings.Cut(filepath.Base(name), ":")
	p, err = maildir.Find(folder, base)
	if err != nil {
		return nil, "", nil
	}
	f, err = os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	return f, p, err
}

func exportMbox(folder string, names []string, path string) (int, error) {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("creating the mbox: %w", err)
	}
	w := bufio.NewWriter(out)
	n := 0
	for _, name := range names {
		f, cur, err := openMessage(folder, name)
		if err != nil {
			out.Close()
			return n, fmt.Errorf("reading %s: %w", filepath.Join(folder, name), err)
		}
		if f == nil {
			continue
		}
		fi, _ := f.Stat()
		_, info, _ := strings.Cut(filepath.Base(cur), ":2,")
		fmt.Fprintf(w, "From MAILER-DAEMON %s\n", fi.ModTime().UTC().Format(time.ANSIC))
		status, xstatus := mbox.StatusFields(info)
		fmt.Fprintf(w, "Status: %s\n", status)
		if xstatus != "" {
			fmt.Fprintf(w, "X-Status: %s\n", xstatus)
		}
		err = writeMboxrd(w, f)
		f.Close()
		if err != nil {
			out.Close()
			return n, fmt.Errorf("exporting %s: %w", filepath.Join(folder, name), err)
		}
		n++
	}
	err = w.Flush()
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// writeMboxrd writes a message with LF line ends, one '>' added before every line that
// matches ">*From " (mboxrd), and the empty line that ends it in the mbox.
func writeMboxrd(w *bufio.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 32<<10)
	midline, header := false, true
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			full := line[len(line)-1] == '\n'
			if !midline {
				t := bytes.TrimLeft(line, ">")
				if bytes.HasPrefix(t, []byte("From ")) {
					w.WriteByte('>')
				}
				if header && len(bytes.TrimRight(line, "\r\n")) == 0 {
					header = false
				}
				// The flags are in the fields written before the message.
				if header && (hasField(line, "status") || hasField(line, "x-status")) {
					if full {
						continue
					}
				}
			}
			if full {
				line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
				w.Write(line)
				w.WriteByte('\n')
			} else {
				w.Write(line)
			}
			midline = !full
		}
		if err == io.EOF {
			if midline {
				w.WriteByte('\n')
			}
			return w.WriteByte('\n')
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

func hasField(line []byte, name string) bool {
	n, _, ok := bytes.Cut(line, []byte(":"))
	return ok && strings.EqualFold(string(n), name)
}

func exportMaildir(folder string, names []string, dir string) (int, error) {
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return 0, fmt.Errorf("creating the Maildir: %w", err)
		}
	}
	n := 0
	for _, name := range names {
		f, cur, err := openMessage(folder, name)
		if err != nil {
			return n, fmt.Errorf("reading %s: %w", filepath.Join(folder, name), err)
		}
		if f == nil {
			continue
		}
		f.Close()
		base := filepath.Base(cur)
		if !strings.Contains(base, ":2,") {
			base += ":2,"
		}
		if err := copyFile(cur, filepath.Join(dir, "cur", base)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return n, err
		}
		n++
	}
	return n, nil
}

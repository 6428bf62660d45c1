// Package maildir stores mail in Maildir and Maildir++ folders on disk, in the layout
// Dovecot uses, so that a mailbox moves between Postern and Dovecot in either direction.
//
// # Layout
//
// A mailbox is a directory root. Its INBOX is root itself, holding cur/, new/ and tmp/.
// Every other folder is a Maildir++ subfolder root/.<Name> with its own cur/, new/, tmp/
// and an empty maildirfolder file. The IMAP hierarchy separator "/" is stored as "." on
// disk, so the folder "Archive/2024" lives in root/.Archive.2024 (see FolderPath).
//
//	root/{cur,new,tmp}                      INBOX
//	root/.Junk/{cur,new,tmp,maildirfolder}  folder "Junk"
//	root/maildirsize                        Maildir++ quota (see Usage)
//
// # Writing a message
//
// Writers follow the Maildir protocol (https://cr.yp.to/proto/maildir.html): the message
// is written to tmp/ under a name unique on this host, fsynced, closed, and renamed into
// new/, whose directory entry is then fsynced. A reader never sees a partial message, and
// once Deliver returns the message survives a crash. A delivery that may be repeated
// after a crash (before its success was recorded) names its file in new/ after itself
// with StableName and DeliverNamed, and the repetition looks for that name with Find
// instead of writing a second copy. The local delivery agent writes tmp/ and new/; imapd
// owns cur/.
//
// # Quota
//
// Quotas are Maildir++ soft quotas (https://www.courier-mta.org/imap/README.maildirquota.html)
// kept in root/maildirsize, in the format Dovecot's "maildir" quota backend shares. A
// delivery agent checks and records a message like this:
//
//	used, n, err := maildir.Usage(root, q)
//	if q.Exceeded(used+expectedSize, n+1) { /* X.2.2 mailbox full, RFC 3463 §3.3 */ }
//	_, size, err := maildir.DeliverWithPrefix(dir, prefix, r)
//	err = maildir.AddUsage(root, size, 1)
//
// # Permissions
//
// Directories are created mode 0700 and files 0600: only the mail user reads mail.
package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"postern/pkg/dirsync"
)

// DefaultFolders are the folders created for a new account beside its INBOX. Their names
// match the special-use mailboxes of RFC 6154 §2 (\Sent, \Drafts, \Junk, \Trash,
// \Archive) as Dovecot's default configuration names them.
var DefaultFolders = []string{"Sent", "Drafts", "Junk", "Trash", "Archive"}

// maxDirName is the longest file name most filesystems accept (NAME_MAX on Linux).
const maxDirName = 255

// FolderNameError reports a folder name that FolderPath refuses: one that could escape
// the mailbox root or cannot be stored as a Maildir++ directory name.
type FolderNameError struct {
	Name   string // the folder name as given
	Reason string // what is wrong with it
}

// Error implements error.
func (e *FolderNameError) Error() string {
	return fmt.Sprintf("maildir: invalid folder name %q: %s", e.Name, e.Reason)
}

// FolderPath returns the directory of the folder named folder in the mailbox at root.
//
// "" and "INBOX" (in any case: RFC 3501 §5.1) are the INBOX, root itself. Any other name
// is an IMAP-style hierarchy with "/" as separator, stored as one Maildir++ directory
// root/.<components joined by ".">: "Junk" → root/.Junk, "Archive/2024" →
// root/.Archive.2024. A leading INBOX component is normalised to upper case, as Dovecot
// does, so "inbox/x" and "INBOX/x" are the same folder (root/.INBOX.x).
//
// The name is the one stored on disk. Dovecot stores non-ASCII names in IMAP's modified
// UTF-7 (RFC 3501 §5.1.3), so imapd should pass names in that form; FolderPath itself
// accepts any valid UTF-8.
//
// It rejects, with a *FolderNameError, names with empty components ("a//b", "/a", "a/"),
// components containing "." (the Maildir++ separator, which also rules out "." and ".."),
// control characters or NUL, invalid UTF-8, and names whose directory would be longer
// than 255 bytes. A path returned without error is always root or a direct child of it.
func FolderPath(root, folder string) (string, error) {
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return root, nil
	}
	name, err := folderDirName(folder)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, name), nil
}

// folderDirName maps a folder name to its Maildir++ directory name, ".A.B" for "A/B".
func folderDirName(folder string) (string, error) {
	bad := func(reason string) (string, error) {
		return "", &FolderNameError{Name: folder, Reason: reason}
	}
	if 1+len(folder) > maxDirName {
		return bad(fmt.Sprintf("longer than %d bytes on disk", maxDirName))
	}
	if !utf8.ValidString(folder) {
		return bad("not valid UTF-8")
	}
	if len(folder) > len("INBOX") && folder[len("INBOX")] == '/' &&
		strings.EqualFold(folder[:len("INBOX")], "INBOX") {
		folder = "INBOX" + folder[len("INBOX"):]
	}
	b := make([]byte, 0, 1+len(folder))
	b = append(b, '.')
	start := 0
	for i := 0; i <= len(folder); i++ {
		if i == len(folder) || folder[i] == '/' {
			if i == start {
				return bad("empty hierarchy component")
			}
			if i < len(folder) {
				b = append(b, '.')
			}
			start = i + 1
			continue
		}
		switch c := folder[i]; {
		case c == '.':
			return bad(`contains ".", the Maildir++ hierarchy separator`)
		case c < 0x20 || c == 0x7f:
			return bad("contains a control character")
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}

// Create creates the mailbox at root with its INBOX (root/cur, root/new, root/tmp) and
// the given folders, each with cur/, new/, tmp/ and an empty maildirfolder file, the
// Maildir++ mark of a subfolder. Missing parents of root are created too. Directories get
// mode 0700.
//
// Create is idempotent: what exists is kept, what is missing is added, so calling it again
// completes a mailbox that a crash interrupted. Every directory that received a new entry
// is fsynced before Create returns, so a new account survives a crash.
func Create(root string, folders []string) error {
	dirs := make([]string, 0, 1+len(folders))
	dirs = append(dirs, root)
	for _, f := range folders {
		p, err := FolderPath(root, f)
		if err != nil {
			return fmt.Errorf("maildir: creating %s: %w", root, err)
		}
		dirs = append(dirs, p)
	}
	c := creator{dirty: make(map[string]bool)}
	if err := c.mkdirAll(root); err != nil {
		return fmt.Errorf("maildir: creating %s: %w", root, err)
	}
	for i, d := range dirs {
		if i > 0 && d != root {
			if err := c.mkdir(d); err != nil {
				return fmt.Errorf("maildir: creating %s: %w", root, err)
			}
		}
		for _, sub := range [...]string{"cur", "new", "tmp"} {
			if err := c.mkdir(filepath.Join(d, sub)); err != nil {
				return fmt.Errorf("maildir: creating %s: %w", root, err)
			}
		}
		if i > 0 && d != root {
			if err := c.touch(filepath.Join(d, "maildirfolder")); err != nil {
				return fmt.Errorf("maildir: creating %s: %w", root, err)
			}
		}
	}
	for dir := range c.dirty {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("maildir: creating %s: %w", root, err)
		}
	}
	return nil
}

// creator creates directories and files and remembers which parents must be fsynced.
type creator struct {
	dirty map[string]bool
}

// mkdir creates one directory; an existing directory is fine, an existing file is not.
func (c *creator) mkdir(path string) error {
	err := os.Mkdir(path, 0o700)
	if err == nil {
		c.dirty[filepath.Dir(path)] = true
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		fi, serr := os.Stat(path)
		if serr != nil {
			return serr
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", path)
		}
		return nil
	}
	return err
}

// mkdirAll creates path and any missing parents.
func (c *creator) mkdirAll(path string) error {
	err := c.mkdir(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(path)
	if parent == path {
		return err
	}
	if err := c.mkdirAll(parent); err != nil {
		return err
	}
	return c.mkdir(path)
}

// touch creates an empty file unless it exists.
func (c *creator) touch(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	c.dirty[filepath.Dir(path)] = true
	return f.Close()
}

// syncDir fsyncs a directory, making new entries and renames in it durable. Concurrent
// deliveries into one folder share the fsync (see pkg/dirsync).
func syncDir(dir string) error { return dirsync.Sync(dir) }

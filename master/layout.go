package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"postern/pkg/config"
	"postern/pkg/dkim"
	"postern/pkg/queue"
	"postern/pkg/srs"
)

// sharedGroup is the group every daemon's user belongs to (mailctl init makes it): it
// opens <spool>/private and its sockets to the daemons and to nobody else.
const sharedGroup = "postern"

// Modes of what master creates (DESIGN.md, "Owners/modes").
const (
	modeSpoolRoot = 0o755 // root
	modeQueueDir  = 0o700 // the queue owner (qmgr's user) : postern
	modePrivate   = 0o750 // root:postern
	modeControl   = 0o750 // root:<admin group, or root>
	modePublic    = 0o755 // root:postern
	modeDataDir   = 0o755 // root
	modeMailDir   = 0o700 // local's user (vmail)
	modeSpamDir   = 0o700 // spamd's user (postern-spam)
	modeSieveDir  = 0o700 // sieved's user (vmail), which local shares and reads it as
	modeLocalDir  = 0o700 // local's user (vmail): its vacation memory
	// modeDKIMDir: cleanup's user, which signs with the keys; authd, the same user by
	// default, writes them. The public halves are for the admin group's mailctl.
	modeDKIMDir = 0o755
	modeUsersDB = 0o600 // authd's user
	modeSocket  = 0o660 // private sockets root:postern, control sockets root:<admin group>
	// modePublicSocket is the mode of the sockets in public/ (root:postern): any local
	// user may submit mail through sendmail, as with Postfix's postdrop.
	modePublicSocket = 0o666
)

// owner is a uid and gid for chown(2); -1 leaves that part as it is.
type owner struct{ UID, GID int }

// unchanged leaves the owner of a file alone.
var unchanged = owner{-1, -1}

// owners says who owns the directories and sockets master makes. Without root every field
// is unchanged: everything belongs to the user that runs master.
type owners struct {
	Root  owner // root:root, for the spool root and the data directory
	Queue owner // the queue directories
	Group int   // gid of group postern
	Admin int   // gid of the admin group; root's group when that group does not exist
	Mail  owner // <data>/mail
	Users owner // users.db
	Spam  owner // <data>/spam, spamd's
	Sieve owner // <data>/sieve, sieved's
	DKIM  owner // <data>/dkim, cleanup's
	Local owner // <data>/local, local's
}

// ownersNone are the owners of a development instance: nothing is chowned.
var ownersNone = owners{Root: unchanged, Queue: unchanged, Group: -1, Admin: -1, Mail: unchanged, Users: unchanged, Spam: unchanged, Sieve: unchanged, DKIM: unchanged, Local: unchanged}

// ownerNotes are what resolveOwners found worth a log line: the configured admin group
// does not exist, so only root may use the control sockets.
type ownerNotes struct {
	AdminGroupMissing bool
}

// resolveOwners looks up the owners of the layout. ids are the identities of the enabled
// daemons; a disabled daemon's user is looked up too, and when it does not exist the
// directory it would own is left as it is.
func resolveOwners(cfg *config.Config, root bool, ids map[string]identity) (owners, ownerNotes, error) {
	var notes ownerNotes
	if !root {
		return ownersNone, notes, nil
	}
	g, err := user.LookupGroup(sharedGroup)
	if err != nil {
		detail := ""
		if !errors.As(err, new(user.UnknownGroupError)) {
			detail = " (" + err.Error() + ")"
		}
		return owners{}, notes, fmt.Errorf("group %q does not exist%s; run `mailctl init` as root to create Postern's users and groups", sharedGroup, detail)
	}
	group, err := strconv.Atoi(g.Gid)
	if err != nil {
		return owners{}, notes, fmt.Errorf("group %s has a non-numeric gid %q", sharedGroup, g.Gid)
	}
	o := owners{Root: owner{0, 0}, Group: group, Admin: 0}
	if ag, err := user.LookupGroup(cfg.AdminGroup); err == nil && cfg.AdminGroup != "" {
		if gid, err := strconv.Atoi(ag.Gid); err == nil {
			o.Admin = gid
		}
	} else {
		notes.AdminGroupMissing = true
	}
	of := func(service string) (identity, bool) {
		if id, ok := ids[service]; ok {
			return id, true
		}
		if s := cfg.Service(service); s != nil {
			if id, err := lookupIdentity(s.User); err == nil {
				return id, true
			}
		}
		return identity{}, false
	}
	o.Queue, o.Mail, o.Users, o.Spam, o.Sieve, o.DKIM, o.Local = unchanged, unchanged, unchanged, unchanged, unchanged, unchanged, unchanged
	if id, ok := of("qmgr"); ok {
		o.Queue = owner{id.UID, group}
	}
	if id, ok := of("local"); ok {
		o.Mail = owner{id.UID, id.GID}
		o.Local = owner{id.UID, id.GID}
	}
	if id, ok := of("authd"); ok {
		o.Users = owner{id.UID, group}
	}
	if id, ok := of("spamd"); ok {
		o.Spam = owner{id.UID, id.GID}
	}
	if id, ok := of("sieved"); ok {
		o.Sieve = owner{id.UID, id.GID}
	}
	if id, ok := of("cleanup"); ok {
		o.DKIM = owner{id.UID, id.GID}
	}
	return o, notes, nil
}

// dirSpec is one directory of the layout.
type dirSpec struct {
	Path  string
	Owner owner
	Mode  os.FileMode
}

// layoutDirs lists the directories master makes, parents first.
func layoutDirs(cfg *config.Config, o owners) []dirSpec {
	spool := queue.Spool{Root: cfg.SpoolDir}
	dirs := []dirSpec{{cfg.SpoolDir, o.Root, modeSpoolRoot}}
	for _, d := range queue.Dirs {
		dirs = append(dirs, dirSpec{spool.Dir(d), o.Queue, modeQueueDir})
	}
	dirs = append(dirs,
		dirSpec{filepath.Join(cfg.SpoolDir, "private"), owner{o.Root.UID, o.Group}, modePrivate},
		dirSpec{filepath.Join(cfg.SpoolDir, "control"), owner{o.Root.UID, o.Admin}, modeControl},
		dirSpec{filepath.Join(cfg.SpoolDir, "public"), owner{o.Root.UID, o.Group}, modePublic},
		// qmgr's state database (delivery statistics, audit log of the queue).
		dirSpec{cfg.QmgrDir(), o.Queue, modeQueueDir},
		dirSpec{cfg.DataDir, o.Root, modeDataDir},
		dirSpec{cfg.MailDir(), o.Mail, modeMailDir},
		dirSpec{cfg.SpamDir(), o.Spam, modeSpamDir},
		dirSpec{cfg.SieveDir(), o.Sieve, modeSieveDir},
		dirSpec{dkim.Dir(cfg.DataDir), o.DKIM, modeDKIMDir},
		dirSpec{cfg.LocalDir(), o.Local, modeLocalDir},
	)
	return dirs
}

// makeLayout creates the spool and data directories that are missing and gives every one
// of them its owner and mode, so that a layout damaged by hand is repaired at the next
// start. It gives users.db to authd's user, if the file exists (mailctl init makes it).
func makeLayout(cfg *config.Config, o owners) error {
	dirs := layoutDirs(cfg, o)
	if err := ensureDir(dirs[0]); err != nil {
		return err
	}
	if err := (queue.Spool{Root: cfg.SpoolDir}).Create(modeQueueDir); err != nil {
		return err
	}
	for _, d := range dirs[1:] {
		if err := ensureDir(d); err != nil {
			return err
		}
	}
	db := cfg.UsersDB()
	if fi, err := os.Lstat(db); err == nil && fi.Mode().IsRegular() {
		if err := setOwner(db, o.Users, modeUsersDB); err != nil {
			return err
		}
	}
	if cfg.SRS.Enable {
		// An instance made before SRS existed gets its secret here, readable by the
		// daemons (group postern) that rewrite and check addresses: authd and qmgr.
		key := cfg.SRSKeyFile()
		created, err := srs.EnsureKeyFile(key, o.Root.UID, o.Group)
		if err != nil {
			return err
		}
		if err := setOwner(key, owner{o.Root.UID, o.Group}, srs.KeyFileMode); err != nil {
			return err
		}
		if created {
			slog.Info("made the SRS secrets file", "file", key)
		}
	}
	return nil
}

// ensureDir creates a directory (and its missing parents, mode 0755) and sets its owner
// and mode.
func ensureDir(d dirSpec) error {
	if err := os.MkdirAll(filepath.Dir(d.Path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(d.Path), err)
	}
	if err := os.Mkdir(d.Path, d.Mode); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating %s: %w", d.Path, err)
	}
	fi, err := os.Stat(d.Path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", d.Path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory", d.Path)
	}
	return setOwner(d.Path, d.Owner, d.Mode)
}

// setOwner chowns (unless o is unchanged) and chmods path.
func setOwner(path string, o owner, mode os.FileMode) error {
	if o.UID >= 0 || o.GID >= 0 {
		if err := os.Chown(path, o.UID, o.GID); err != nil {
			return fmt.Errorf("setting the owner of %s: %w", path, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	return nil
}

// lockPath and pidPath are master's files in the spool root.
func lockPath(spool string) string { return filepath.Join(spool, "master.lock") }
func pidPath(spool string) string  { return filepath.Join(spool, "master.pid") }

// lockSpool takes the exclusive lock that makes master the only one on this spool. The
// lock lasts as long as the returned file stays open (and ends with the process, however
// it ends), so a master killed with -9 leaves no stale lock behind.
func lockSpool(spool string) (*os.File, error) {
	path := lockPath(spool)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid := "unknown"
			if b, err := os.ReadFile(pidPath(spool)); err == nil && strings.TrimSpace(string(b)) != "" {
				pid = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("another master (pid %s) is running on spool %s (it holds the lock on %s); stop it first", pid, spool, path)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

// writePID writes master's pid to <spool>/master.pid, atomically.
func writePID(spool string) error {
	path := pidPath(spool)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

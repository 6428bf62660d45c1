package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"postern/pkg/config"
)

// sharedGroup is the group every daemon's user belongs to: it may use the sockets in
// <spool>/private and read the TLS key.
const sharedGroup = "postern"

// daemonUsers are the system users the daemons run as, those that run now and those
// still to come (spamd, httpd), so that an instance set up today needs nothing new later.
var daemonUsers = []string{"postern", "vmail", "postern-spam", "postern-web"}

// systemUsers lists the users to create: the fixed ones and any other user the
// configuration names in [services].
func systemUsers(cfg *config.Config) []string {
	users := slices.Clone(daemonUsers)
	for _, d := range config.Daemons {
		if s := cfg.Service(d.Name); s != nil && s.User != "" && s.User != "root" && !slices.Contains(users, s.User) {
			users = append(users, s.User)
		}
	}
	return users
}

// ensureSystemUsers creates, as root, the group postern, the daemons' users (each in
// group postern; postern's primary group is postern) and the admin group, where they do
// not exist yet. Existing users that are not in group postern are added to it, and
// httpd's user to the admin group. It says on stdout what it creates or changes and
// which users it found already there, so that a change to the host's accounts is never
// silent.
func (a *app) ensureSystemUsers(cfg *config.Config) error {
	fmt.Fprintf(a.stdout, "system users and groups (as root): %s, groups %s", strings.Join(systemUsers(cfg), ", "), sharedGroup)
	if cfg.AdminGroup != "" {
		fmt.Fprintf(a.stdout, " and %s", cfg.AdminGroup)
	}
	fmt.Fprintln(a.stdout)
	nologin := "/usr/sbin/nologin"
	if _, err := os.Stat(nologin); err != nil {
		nologin = "/sbin/nologin"
	}
	if err := a.ensureGroup(sharedGroup); err != nil {
		return err
	}
	for _, name := range systemUsers(cfg) {
		u, err := user.Lookup(name)
		if err != nil {
			args := []string{"--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", nologin}
			if name == sharedGroup {
				args = append(args, "--gid", sharedGroup)
			} else {
				args = append(args, "--user-group", "--groups", sharedGroup)
			}
			if err := a.runTool("useradd", append(args, name)...); err != nil {
				// Another init (a parallel test, say) may have just made it.
				if _, lerr := user.Lookup(name); lerr != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "system user %s exists (made meanwhile)\n", name)
				continue
			}
			fmt.Fprintf(a.stdout, "created system user %s (no login, no home, group %s)\n", name, sharedGroup)
			continue
		}
		fmt.Fprintf(a.stdout, "system user %s exists (uid %s), kept\n", name, u.Uid)
		in, err := inGroup(u, sharedGroup)
		if err != nil {
			return err
		}
		if !in {
			if err := a.runTool("usermod", "--append", "--groups", sharedGroup, name); err != nil {
				return err
			}
		}
	}
	if g := cfg.AdminGroup; g != "" {
		if err := a.ensureGroup(g); err != nil {
			return err
		}
		// httpd's admin panel and account page use the control sockets as mailctl does
		// (it opens the panel only to accounts authd calls administrators).
		if s := cfg.Service("httpd"); s != nil && s.User != "" && s.User != "root" {
			u, err := user.Lookup(s.User)
			if err != nil {
				return fmt.Errorf("httpd's user %s: %w", s.User, err)
			}
			in, err := inGroup(u, g)
			if err != nil {
				return err
			}
			if !in {
				if err := a.runTool("usermod", "--append", "--groups", g, s.User); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ensureGroup creates a system group unless it exists.
func (a *app) ensureGroup(name string) error {
	if g, err := user.LookupGroup(name); err == nil {
		fmt.Fprintf(a.stdout, "system group %s exists (gid %s), kept\n", name, g.Gid)
		return nil
	}
	if err := a.runTool("groupadd", "--system", name); err != nil {
		// Another init may have just made it.
		if _, lerr := user.LookupGroup(name); lerr != nil {
			return err
		}
		return nil
	}
	fmt.Fprintf(a.stdout, "created system group %s\n", name)
	return nil
}

// runTool runs one of the shadow tools (useradd, groupadd, usermod) and says what it did.
func (a *app) runTool(name string, args ...string) error {
	run := a.tool
	if run == nil {
		run = func(name string, args ...string) ([]byte, error) { return exec.Command(name, args...).CombinedOutput() }
	}
	out, err := run(name, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(a.stdout, "ran: %s %s\n", name, strings.Join(args, " "))
	return nil
}

// inGroup reports whether u is a member of the named group.
func inGroup(u *user.User, group string) (bool, error) {
	g, err := user.LookupGroup(group)
	if err != nil {
		return false, err
	}
	ids, err := u.GroupIds()
	if err != nil {
		return false, fmt.Errorf("groups of %s: %w", u.Username, err)
	}
	return slices.Contains(ids, g.Gid), nil
}

// ids returns the uid of the named user and the gid of its primary group.
func ids(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, err
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// groupID returns the gid of the named group.
func groupID(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// chownTree gives everything under root (root included) to uid:gid, and makes the
// directories mode dirMode. Symbolic links are changed themselves, never followed.
func chownTree(root string, uid, gid int, dirMode os.FileMode) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, dirMode)
		}
		return nil
	})
}

// untraversable returns the ancestors of dir that other users cannot search (no x bit
// for others): the daemons, which run as their own users, could not reach dir.
func untraversable(dir string) []string {
	var bad []string
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			bad = append(bad, fmt.Sprintf("%s (mode %04o)", p, fi.Mode().Perm()))
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	slices.Reverse(bad)
	return bad
}

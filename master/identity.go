package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"postern/pkg/config"
)

// identity is the system user a daemon runs as.
type identity struct {
	User   string
	UID    int
	GID    int
	Groups []uint32 // every group of the user, the primary one included
	Home   string
}

// credential is what the child is started with: the user, its primary group and its
// supplementary groups (so that every daemon is in group postern).
func (id identity) credential() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: id.Groups}
}

// lookupIdentity finds a system user and its groups.
func lookupIdentity(name string) (identity, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return identity{}, err
	}
	return userIdentity(u)
}

func userIdentity(u *user.User) (identity, error) {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return identity{}, fmt.Errorf("user %s has a non-numeric uid %q", u.Username, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return identity{}, fmt.Errorf("user %s has a non-numeric gid %q", u.Username, u.Gid)
	}
	id := identity{User: u.Username, UID: uid, GID: gid, Home: u.HomeDir}
	gids, err := u.GroupIds()
	if err != nil {
		return identity{}, fmt.Errorf("looking up the groups of %s: %w", u.Username, err)
	}
	for _, g := range gids {
		n, err := strconv.Atoi(g)
		if err != nil {
			continue
		}
		id.Groups = append(id.Groups, uint32(n))
	}
	return id, nil
}

// currentIdentity is the user master runs as. A uid that is not in the user database (a
// container started with an arbitrary uid) still works: only the name is missing.
func currentIdentity() identity {
	if u, err := user.Current(); err == nil {
		if id, err := userIdentity(u); err == nil {
			return id
		}
	}
	home, _ := os.UserHomeDir()
	return identity{User: strconv.Itoa(os.Getuid()), UID: os.Getuid(), GID: os.Getgid(), Home: home}
}

// enabled reports whether master runs the named daemon.
func enabled(cfg *config.Config, name string) bool {
	s := cfg.Service(name)
	return s != nil && s.Enable
}

// resolveIdentities returns the identity of every enabled daemon. As root each daemon
// runs as the user its [services] entry names, which must exist; otherwise every daemon
// runs as master's own user, whatever the configuration says.
func resolveIdentities(cfg *config.Config, root bool) (map[string]identity, error) {
	out := map[string]identity{}
	self := currentIdentity()
	for _, d := range config.Daemons {
		if !enabled(cfg, d.Name) {
			continue
		}
		if !root {
			out[d.Name] = self
			continue
		}
		name := cfg.Service(d.Name).User
		id, err := lookupIdentity(name)
		if err != nil {
			detail := ""
			if !errors.As(err, new(user.UnknownUserError)) {
				detail = " (" + err.Error() + ")"
			}
			return nil, fmt.Errorf("%s: services.%s.user: no system user %q%s; "+
				"run `mailctl init` as root to create Postern's users and groups", cfg.Path, d.Name, name, detail)
		}
		out[d.Name] = id
	}
	return out, nil
}

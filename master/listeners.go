package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"postern/pkg/config"
)

// socketSpec is one socket master binds for a daemon.
type socketSpec struct {
	// Name is what the daemon finds in LISTEN_FDNAMES: "smtp", "private/cleanup",
	// "control/qmgr".
	Name string
	// Network is "tcp" or "unix"; Addr is host:port or the socket's path.
	Network string
	Addr    string
}

func (s socketSpec) String() string { return s.Name + "=" + s.Addr }

// socketsFor lists the sockets of a daemon in the order they are passed (descriptor 3
// first): its private sockets, its control sockets, its public sockets, then the inet listeners its
// [services] entry configures, in the order config.Daemons names them.
func socketsFor(cfg *config.Config, d config.Daemon) []socketSpec {
	var out []socketSpec
	for _, n := range d.Private {
		out = append(out, socketSpec{"private/" + n, "unix", cfg.PrivateSocket(n)})
	}
	for _, n := range d.Control {
		out = append(out, socketSpec{"control/" + n, "unix", cfg.ControlSocket(n)})
	}
	for _, n := range d.Public {
		out = append(out, socketSpec{"public/" + n, "unix", cfg.PublicSocket(n)})
	}
	if s := cfg.Service(d.Name); s != nil {
		for _, n := range d.Listeners {
			if addr, ok := s.Listen[n]; ok {
				out = append(out, socketSpec{n, "tcp", addr})
			}
		}
	}
	return out
}

// socketOwner is the owner of a Unix socket: root:postern for private and public
// sockets, root:<admin group> for control sockets (DESIGN.md).
func (o owners) socketOwner(name string) owner {
	if strings.HasPrefix(name, "control/") {
		return owner{o.Root.UID, o.Admin}
	}
	return owner{o.Root.UID, o.Group}
}

// socketMode is the mode of a Unix socket: 0666 for the public ones, which every local
// user may connect to (the daemon behind them learns who from SO_PEERCRED), 0660 for the
// others.
func socketMode(name string) os.FileMode {
	if strings.HasPrefix(name, "public/") {
		return modePublicSocket
	}
	return modeSocket
}

// boundSocket is a socket master holds open for a daemon.
type boundSocket struct {
	spec socketSpec
	file *os.File
}

// socketSet holds the listening sockets of the daemons. A socket stays bound while its
// daemon restarts, so connections wait in the backlog instead of being refused; master
// itself never accepts on them. It is safe for concurrent use.
type socketSet struct {
	mu     sync.Mutex
	owners owners
	bound  map[string]*boundSocket
}

func newSocketSet(o owners) *socketSet {
	return &socketSet{owners: o, bound: map[string]*boundSocket{}}
}

// acquire returns the descriptors of specs, in order, binding those that are not bound
// yet. A socket bound under the same name at another address is closed first.
func (s *socketSet) acquire(specs []socketSpec) ([]*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	files := make([]*os.File, 0, len(specs))
	for _, sp := range specs {
		b := s.bound[sp.Name]
		if b != nil && b.spec != sp {
			s.closeLocked(sp.Name)
			b = nil
		}
		if b == nil {
			f, err := bindSocket(sp, s.owners.socketOwner(sp.Name), socketMode(sp.Name))
			if err != nil {
				return nil, err
			}
			b = &boundSocket{spec: sp, file: f}
			s.bound[sp.Name] = b
		}
		files = append(files, b.file)
	}
	return files, nil
}

// release closes the named sockets and removes their files.
func (s *socketSet) release(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		s.closeLocked(n)
	}
}

// closeAll closes every socket and removes the socket files.
func (s *socketSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.bound {
		s.closeLocked(n)
	}
}

// names returns the names of the bound sockets.
func (s *socketSet) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.bound))
	for n := range s.bound {
		out = append(out, n)
	}
	return out
}

func (s *socketSet) closeLocked(name string) {
	b := s.bound[name]
	if b == nil {
		return
	}
	b.file.Close()
	if b.spec.Network == "unix" {
		removeSocket(b.spec.Addr)
	}
	delete(s.bound, name)
}

// setOwners changes the owners of the Unix sockets bound now and of those bound later
// (after a reload changed the admin group, say).
func (s *socketSet) setOwners(o owners) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owners = o
	var errs []error
	for _, b := range s.bound {
		if b.spec.Network == "unix" {
			errs = append(errs, setOwner(b.spec.Addr, o.socketOwner(b.spec.Name), socketMode(b.spec.Name)))
		}
	}
	return errors.Join(errs...)
}

// bindSocket binds one socket and returns its descriptor.
func bindSocket(sp socketSpec, o owner, mode os.FileMode) (*os.File, error) {
	switch sp.Network {
	case "unix":
		l, err := listenUnix(sp.Addr, o, mode)
		if err != nil {
			return nil, err
		}
		// The file is master's to remove, not the listener's: closing this listener
		// leaves the socket open through the descriptor File returns.
		l.SetUnlinkOnClose(false)
		f, err := l.File()
		l.Close()
		if err != nil {
			removeSocket(sp.Addr)
			return nil, fmt.Errorf("binding %s: %w", sp, err)
		}
		return f, nil
	case "tcp":
		l, err := net.Listen("tcp", sp.Addr)
		if err != nil {
			return nil, fmt.Errorf("binding %s: %w", sp, err)
		}
		f, err := l.(*net.TCPListener).File()
		l.Close()
		if err != nil {
			return nil, fmt.Errorf("binding %s: %w", sp, err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("binding %s: unknown network %q", sp, sp.Network)
}

// listenUnix binds a Unix socket at path, replacing a stale socket file left by an
// earlier run, and gives it owner o and mode (0660, or 0666 in public/). It refuses to
// remove a file that is not a socket. Until the chmod the socket has the umask's mode; its
// directory (private/ or control/, 0750) keeps strangers away meanwhile.
func listenUnix(path string, o owner, mode os.FileMode) (*net.UnixListener, error) {
	if err := removeSocket(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("binding %s: %w", path, err)
	}
	if err := setOwner(path, o, mode); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// removeSocket removes the socket file at path, if there is one. Anything else at path
// is an error: master never deletes a file it did not make.
func removeSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; not removing it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the stale socket %s: %w", path, err)
	}
	return nil
}

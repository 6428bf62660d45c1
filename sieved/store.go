package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"postern/pkg/config"
	"postern/pkg/dirsync"
	"postern/pkg/sieve"
	"postern/pkg/userdb"
)

// maxNameLength bounds a script's name; the other limits are in postern.toml's
// [sieve] table.
const maxNameLength = 128

// Store keeps the accounts' scripts under Root (<data>/sieve): one directory per account,
// <domain>/<localpart>/ like its Maildir, holding <name>.sieve files and "active", a
// symbolic link to the active one, which local reads at delivery. sieved alone writes
// there.
type Store struct {
	Root string
	// Limits parse every script stored or checked; MaxScripts bounds an account's.
	Limits     sieve.Limits
	MaxScripts int
}

// NewStore returns the store under root with the limits of postern.toml's [sieve].
func NewStore(root string, c config.Sieve) *Store {
	return &Store{
		Root:       root,
		Limits:     c.Limits(),
		MaxScripts: c.MaxScripts,
	}
}

// Check parses a script with the store's limits.
func (s *Store) Check(script []byte) (*sieve.Script, error) {
	return sieve.ParseLimits(script, s.Limits)
}

// Errors of the store, which the protocol turns into response codes.
var (
	errNoScript = errors.New("no such script")
	errExists   = errors.New("a script of that name exists")
	errActive   = errors.New("the script is active")
	errQuota    = errors.New("too many scripts or too large")
	// The two kinds of errQuota (RFC 5804 §1.3: QUOTA/MAXSIZE, QUOTA/MAXSCRIPTS).
	errScriptSize  = fmt.Errorf("%w: the script is larger than the limit", errQuota)
	errScriptCount = fmt.Errorf("%w: the account has as many scripts as it may", errQuota)
	errName        = errors.New("invalid script name")
)

func (s *Store) dir(addr string) (string, error) { return userdb.Maildir(s.Root, addr) }

// validName checks a script name (RFC 5804 §1.6: no control characters), which also
// becomes a file name here.
func validName(n string) bool {
	if n == "" || len(n) > maxNameLength || !utf8.ValidString(n) || strings.ContainsAny(n, "/") || n[0] == '.' {
		return false
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029 {
			return false
		}
	}
	return true
}

func (s *Store) path(addr, name string) (string, error) {
	if !validName(name) {
		return "", errName
	}
	d, err := s.dir(addr)
	if err != nil {
		return "", err
	}
	return filepath.Join(d, name+".sieve"), nil
}

// ScriptInfo is a script's name and whether it is the active one.
type ScriptInfo struct {
	Name   string `json:"name"`
	Active bool   `json:"active"`
}

// List returns the account's scripts in name order.
func (s *Store) List(addr string) ([]ScriptInfo, error) {
	d, err := s.dir(addr)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(d)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing scripts: %w", err)
	}
	active, _ := os.Readlink(filepath.Join(d, "active"))
	var out []ScriptInfo
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".sieve")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		out = append(out, ScriptInfo{Name: n, Active: e.Name() == active})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns a script's text.
func (s *Store) Get(addr, name string) ([]byte, error) {
	p, err := s.path(addr, name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoScript
	}
	return b, err
}

// HaveSpace tells whether a script of size octets may be stored under name.
func (s *Store) HaveSpace(addr, name string, size int64) error {
	if !validName(name) {
		return errName
	}
	if size > int64(s.Limits.ScriptSize) {
		return errScriptSize
	}
	list, err := s.List(addr)
	if err != nil {
		return err
	}
	// Each script is bounded by ScriptSize, so MaxScripts bounds the account's total.
	n := 1
	for _, x := range list {
		if x.Name != name {
			n++
		}
	}
	if n > s.MaxScripts {
		return errScriptCount
	}
	return nil
}

// Put validates and stores a script (replacing one of the same name): written to a
// temporary file, fsynced, renamed, the directory fsynced.
func (s *Store) Put(addr, name string, script []byte) error {
	if err := s.HaveSpace(addr, name, int64(len(script))); err != nil {
		return err
	}
	if _, err := s.Check(script); err != nil {
		return err
	}
	p, err := s.path(addr, name)
	if err != nil {
		return err
	}
	d := filepath.Dir(p)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("storing script: %w", err)
	}
	tmp, err := os.CreateTemp(d, ".tmp-*")
	if err != nil {
		return fmt.Errorf("storing script: %w", err)
	}
	_, err = tmp.Write(script)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("storing script: %w", err)
	}
	return dirsync.Sync(d)
}

// SetActive makes name the active script; "" deactivates (RFC 5804 §2.8).
func (s *Store) SetActive(addr, name string) error {
	d, err := s.dir(addr)
	if err != nil {
		return err
	}
	link := filepath.Join(d, "active")
	if name == "" {
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("deactivating: %w", err)
		}
		return dirsync.Sync(d)
	}
	p, err := s.path(addr, name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err != nil {
		return errNoScript
	}
	// A new link renamed over the old one: local sees one script or the other.
	tmp := filepath.Join(d, ".active.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(p), tmp); err != nil {
		return fmt.Errorf("activating: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("activating: %w", err)
	}
	return dirsync.Sync(d)
}

func (s *Store) isActive(addr, name string) bool {
	d, err := s.dir(addr)
	if err != nil {
		return false
	}
	l, _ := os.Readlink(filepath.Join(d, "active"))
	return l == name+".sieve"
}

// Delete removes a script that is not active (RFC 5804 §2.10).
func (s *Store) Delete(addr, name string) error {
	p, err := s.path(addr, name)
	if err != nil {
		return err
	}
	if s.isActive(addr, name) {
		return errActive
	}
	if err := os.Remove(p); errors.Is(err, fs.ErrNotExist) {
		return errNoScript
	} else if err != nil {
		return fmt.Errorf("deleting script: %w", err)
	}
	return dirsync.Sync(filepath.Dir(p))
}

// Rename renames a script, keeping it active if it was (RFC 5804 §2.11.1).
func (s *Store) Rename(addr, old, name string) error {
	op, err := s.path(addr, old)
	if err != nil {
		return err
	}
	np, err := s.path(addr, name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(op); err != nil {
		return errNoScript
	}
	if _, err := os.Stat(np); err == nil {
		return errExists
	}
	wasActive := s.isActive(addr, old)
	// link(2) refuses an existing target, so a concurrent PUTSCRIPT is not overwritten.
	if err := os.Link(op, np); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errExists
		}
		return fmt.Errorf("renaming script: %w", err)
	}
	if wasActive {
		if err := s.SetActive(addr, name); err != nil {
			return err
		}
	}
	if err := os.Remove(op); err != nil {
		return fmt.Errorf("renaming script: %w", err)
	}
	return dirsync.Sync(filepath.Dir(op))
}

package srs

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"postern/pkg/dirsync"
)

// KeyFileMode is the mode of the secrets file: readable by its group (postern, which
// every daemon's user belongs to), by nobody else.
const KeyFileMode = 0o640

// LoadSecrets reads a secrets file, postsrsd's format: one secret a line, the first
// making new addresses and all of them checking; empty lines and lines starting with #
// are skipped.
func LoadSecrets(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the SRS secrets: %w", err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		out = append(out, bytes.Clone(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the SRS secrets %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the SRS secrets file %s holds no secret", path)
	}
	return out, nil
}

// EnsureKeyFile makes the secrets file at path with one new random secret (256 bits, in
// base64), unless a file is there already; created says whether it made one. The file
// appears whole or not at all (written aside, fsynced, then linked into place), so that
// two processes making it at once agree on one secret. uid and gid own a new file (-1
// leaves them as the process's).
func EnsureKeyFile(path string, uid, gid int) (created bool, err error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("looking for the SRS secrets: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return false, fmt.Errorf("making an SRS secret: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".srs-key-*")
	if err != nil {
		return false, fmt.Errorf("writing the SRS secrets: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(secret) + "\n")
	if err == nil && (uid >= 0 || gid >= 0) {
		err = tmp.Chown(uid, gid)
	}
	if err == nil {
		err = tmp.Chmod(KeyFileMode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("writing the SRS secrets: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil // made by another process meanwhile
		}
		return false, fmt.Errorf("writing the SRS secrets: %w", err)
	}
	if err := dirsync.Sync(dir); err != nil {
		return true, fmt.Errorf("writing the SRS secrets: %w", err)
	}
	return true, nil
}

// Load returns the Rewriter of domain with the secrets of the file at keyFile.
func Load(domain, keyFile string, maxAge time.Duration) (*Rewriter, error) {
	secrets, err := LoadSecrets(keyFile)
	if err != nil {
		return nil, err
	}
	return &Rewriter{Domain: domain, Secrets: secrets, MaxAge: maxAge}, nil
}

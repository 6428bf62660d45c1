package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// A FETCH of bodies opens one file per message, and opening was most of its system
// time: os.Open offers every file to the netpoller (four fcntl calls and an epoll_ctl
// that a regular file always fails) and the kernel walks the whole path, eight names or
// more, each time. Here a message file is opened with one openat(2), relative to cur/
// when the caller holds that open, and a FETCH that sends whole files reads them by
// descriptor (fileReader) with no os.File at all.

// openIn opens m's file for reading, as open does. cur, when not nil, is mb's cur/
// directory, opened once by a caller that opens many files.
// The caller must not hold mb.mu.
func (mb *Mailbox) openIn(cur *os.File, m *message) (*os.File, error) {
	fd, name, err := mb.openFD(cur, m)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openFD opens m's file for reading and returns its descriptor, which the caller closes
// with syscall.Close, and its path (relative to cur when the file was found there). A
// file renamed under us (a flag change by another program) is found by its base name.
// The caller must not hold mb.mu.
func (mb *Mailbox) openFD(cur *os.File, m *message) (int, string, error) {
	mb.mu.RLock()
	name := mb.curName(m)
	mb.mu.RUnlock()
	return mb.openNamed(cur, name, m.base)
}

// openNamed is openFD for the message with base name base whose name in cur/ was name
// when the caller looked (curName); it takes no lock.
func (mb *Mailbox) openNamed(cur *os.File, name, base string) (int, string, error) {
	if cur == nil {
		name = filepath.Join(mb.dir, "cur", name)
	}
	fd, err := openAt(cur, name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return fd, name, err
	}
	if p, ferr := mb.findFile(base); ferr == nil {
		fd, err := openAt(nil, p)
		return fd, p, err
	}
	return -1, name, err
}

// openAt opens name for reading, relative to dir when dir is not nil.
func openAt(dir *os.File, name string) (int, error) {
	dirfd := unix.AT_FDCWD
	if dir != nil {
		dirfd = int(dir.Fd())
	}
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: name, Err: err}
		}
		return fd, nil
	}
}

// fileReader reads a file by its descriptor with pread(2).
type fileReader int

// ReadAt implements io.ReaderAt.
func (f fileReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k, err := unix.Pread(int(f), p[n:], off+int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, io.EOF
		}
		n += k
	}
	return n, nil
}

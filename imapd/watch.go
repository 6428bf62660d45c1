package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watcher tells open folders when local drops a message into their new/: one inotify
// instance for the whole daemon, one watch per open folder.
type watcher struct {
	log *slog.Logger
	fd  int

	mu     sync.Mutex
	boxes  map[int]*Mailbox
	closed atomic.Bool
}

// close stops the watcher.
func (w *watcher) close() {
	if w == nil || w.closed.Swap(true) {
		return
	}
	// Closing the descriptor does not wake a blocked read(2) of an inotify
	// descriptor; removing the watches queues IN_IGNORED events, which do.
	w.mu.Lock()
	for wd := range w.boxes {
		unix.InotifyRmWatch(w.fd, uint32(wd))
	}
	w.mu.Unlock()
	go func() {
		time.Sleep(time.Second)
		unix.Close(w.fd)
	}()
}

func newWatcher(log *slog.Logger) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	w := &watcher{log: log, fd: fd, boxes: map[int]*Mailbox{}}
	go w.run()
	return w, nil
}

// add watches mb's new/ directory. Maildir delivery renames into new/ (IN_MOVED_TO);
// IN_CREATE covers writers that create files there directly.
func (w *watcher) add(mb *Mailbox) {
	if w == nil {
		return
	}
	wd, err := unix.InotifyAddWatch(w.fd, filepath.Join(mb.dir, "new"), unix.IN_MOVED_TO|unix.IN_CREATE|unix.IN_ONLYDIR)
	if err != nil {
		w.log.Warn("cannot watch for new mail", "folder", mb.name, "err", err)
		return
	}
	w.mu.Lock()
	mb.watch = wd
	w.boxes[wd] = mb
	w.mu.Unlock()
	// Mail that arrived between loading and watching.
	go mb.scanNew()
}

func (w *watcher) remove(mb *Mailbox) {
	if w == nil {
		return
	}
	w.mu.Lock()
	wd := mb.watch
	if wd >= 0 && w.boxes[wd] == mb {
		delete(w.boxes, wd)
		mb.watch = -1
		w.mu.Unlock()
		unix.InotifyRmWatch(w.fd, uint32(wd))
		return
	}
	w.mu.Unlock()
}

func (w *watcher) run() {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(w.fd, buf)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			if !w.closed.Load() {
				w.log.Error("reading inotify events", "err", err)
			}
			return
		}
		seen := map[*Mailbox]bool{}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				w.mu.Lock()
				for _, mb := range w.boxes {
					seen[mb] = true
				}
				w.mu.Unlock()
				continue
			}
			w.mu.Lock()
			mb := w.boxes[int(ev.Wd)]
			w.mu.Unlock()
			if mb != nil {
				seen[mb] = true
			}
		}
		for mb := range seen {
			go mb.scanNew()
		}
	}
}

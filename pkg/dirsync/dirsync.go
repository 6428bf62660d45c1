// Package dirsync makes new entries and renames in a directory durable with fsync(2), and
// lets concurrent callers share one fsync: a group commit.
//
// A mail system fsyncs a directory after every queue file it creates and every Maildir
// message it renames into new/. Under load many of those happen at once in the same
// directory, and one fsync that starts after all of them covers them all. Sync therefore
// waits for an fsync of the directory that started after it was called, running one itself
// when none is running: with N deliveries in flight the directory is synced about twice
// instead of N times, and no caller returns before its own entry is on disk.
package dirsync

import (
	"fmt"
	"os"
	"sync"
)

// group serializes the fsyncs of one directory and lets waiters share them.
type group struct {
	mu      sync.Mutex
	cond    sync.Cond
	running bool
	started uint64 // number of fsyncs started
	done    uint64 // number of fsyncs finished
	err     error  // the outcome of the last one finished
}

var groups sync.Map // clean directory path → *group

// Sync returns once an fsync of dir that began after Sync was called has completed, and
// returns that fsync's error.
func Sync(dir string) error {
	v, ok := groups.Load(dir)
	if !ok {
		g := &group{}
		g.cond.L = &g.mu
		v, _ = groups.LoadOrStore(dir, g)
	}
	g := v.(*group)
	g.mu.Lock()
	defer g.mu.Unlock()
	// An fsync running now may have started before the caller's change reached the
	// directory: only the next one to start counts.
	need := g.started + 1
	for g.done < need {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		seq := g.started
		g.mu.Unlock()
		err := syncNow(dir)
		g.mu.Lock()
		g.running = false
		g.done = seq
		g.err = err
		g.cond.Broadcast()
	}
	// g.err belongs to the last fsync finished, which started no earlier than the one the
	// caller needed: its success covers the caller's entry too.
	return g.err
}

// syncNow fsyncs dir once.
func syncNow(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

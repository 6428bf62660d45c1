// Package logtest collects, in tests, what a daemon logs: Buffer is the io.Writer to
// give its slog handler, safe for the many goroutines of a server, and WaitFor waits for
// lines a server writes after the reply a test has already read (a disconnect, a
// delivery), so that a test never looks only once.
package logtest

import (
	"bytes"
	"strings"
	"sync"
	"time"
)

// Buffer is a log sink safe for concurrent use. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitFor waits up to timeout until the buffer holds every one of subs. It returns what
// the buffer holds then, and whether all of subs are in it.
func (b *Buffer) WaitFor(timeout time.Duration, subs ...string) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		s := b.String()
		found := true
		for _, sub := range subs {
			found = found && strings.Contains(s, sub)
		}
		if found || time.Now().After(deadline) {
			return s, found
		}
		time.Sleep(10 * time.Millisecond)
	}
}

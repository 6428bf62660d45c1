package logtest

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestBufferConcurrentWritesAndWaitFor(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(&b, "line %d\n", i)
		}()
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		fmt.Fprintln(&b, "late line")
	}()
	s, ok := b.WaitFor(5*time.Second, "line 0\n", "line 19\n", "late line")
	if !ok {
		t.Fatalf("lines missing:\n%s", s)
	}
	wg.Wait()
	if _, ok := b.WaitFor(20*time.Millisecond, "never written"); ok {
		t.Error("WaitFor found what was never written")
	}
}

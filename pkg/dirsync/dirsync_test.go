package dirsync

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

func TestSyncConcurrent(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(dir, strconv.Itoa(i))
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Error(err)
				return
			}
			if err := Sync(dir); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	v, _ := groups.Load(dir)
	g := v.(*group)
	if g.done == 0 || g.done > 50 || g.running {
		t.Errorf("after 50 concurrent calls: %d fsyncs done, running %v", g.done, g.running)
	}
	t.Logf("50 callers, %d fsyncs", g.done)
}

func TestSyncError(t *testing.T) {
	if err := Sync(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("Sync of a missing directory succeeded")
	}
}

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/pkg/config"
	"postern/pkg/landlock"
)

// TestDaemonsAreConfined: every daemon confines itself with Landlock where the kernel
// offers it (ARCHITECTURE.md rule 2): no daemon logs that it runs without, and every
// thread of every daemon has no_new_privs, which Landlock sets on all threads together.
// What the confinement allows and forbids is pkg/landlock's TestRestrictWrites.
func TestDaemonsAreConfined(t *testing.T) {
	if abi := landlock.ABI(); abi < 2 {
		t.Skipf("this kernel offers Landlock ABI %d; the daemons run unconfined", abi)
	}
	in := NewInstance(t, "")
	var pids map[string]int
	in.WaitFor("every daemon to confine itself", 20*time.Second, func() bool {
		pids = in.DaemonPIDs()
		log := in.Log()
		return len(pids) == len(config.Daemons) && (strings.Contains(log, "running without Landlock") ||
			strings.Count(log, `msg="confined with Landlock"`) == len(config.Daemons))
	})
	if log := in.Log(); strings.Contains(log, "running without Landlock") {
		if strings.Contains(log, "cgo") && os.Getenv("CI") != "true" {
			t.Skip("the daemons were built with cgo (make test builds them with CGO_ENABLED=0)")
		}
		t.Fatalf("a daemon runs without Landlock:\n%s", log)
	}
	for name, pid := range pids {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		if err != nil || len(tasks) == 0 {
			t.Fatalf("%s: no threads: %v", name, err)
		}
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // the thread ended
			}
			if !strings.Contains(string(b), "NoNewPrivs:\t1") {
				t.Errorf("%s: thread %s has no no_new_privs", name, filepath.Base(filepath.Dir(f)))
			}
		}
	}
}

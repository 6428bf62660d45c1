package test

import (
	"fmt"
	"math/rand/v2"
	"net/smtp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCrashLosesNothing kills cleanup, qmgr and local with SIGKILL at random moments
// during a load of 500 messages, then the whole process tree, restarts master and checks
// that every message that got its 250 is in the Maildir, and that duplicates stay within
// what ARCHITECTURE.md allows (deliveries that finished but were not yet recorded).
func TestCrashLosesNothing(t *testing.T) {
	in := NewInstance(t, "")
	in.SetConfig("queue", "min_backoff", `"1s"`)
	in.SetConfig("queue", "max_backoff", `"2s"`)
	in.Stop()
	in.Start()

	const total, clients = 500, 10
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		next  = 0
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= total {
			return 0, false
		}
		next++
		return next - 1, true
	}
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cl *smtp.Client
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				i, ok := take()
				if !ok {
					return
				}
				if cl == nil {
					var err error
					if cl, err = smtp.Dial(in.SMTPAddr()); err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
				}
				id := fmt.Sprintf("<crash-%d@load.test>", i)
				if err := sendOne(cl, "load@other.test", "demo@example.test", id); err != nil {
					cl.Close()
					cl = nil
					continue
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}()
	}

	// Kill single daemons while the load runs.
	kills := 0
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		mu.Lock()
		progress := next
		mu.Unlock()
		if progress > total*7/10 {
			break
		}
		victims := []string{"cleanup", "qmgr", "local"}
		name := victims[rand.IntN(len(victims))]
		if pid, ok := in.DaemonPIDs()[name]; ok {
			syscall.Kill(pid, syscall.SIGKILL)
			kills++
			t.Logf("killed %s (pid %d) after %d messages", name, pid, progress)
		}
	}
	// Then everything at once, mid-load.
	in.Kill9()
	close(stopLoad)
	wg.Wait()
	mu.Lock()
	t.Logf("%d kills of single daemons, then all; %d of %d messages acknowledged", kills, len(acked), next)
	mu.Unlock()
	if kills == 0 || len(acked) < total/4 {
		t.Fatalf("the load did not run: %d kills, %d acknowledged", kills, len(acked))
	}

	in.Start()
	in.WaitFor("every acknowledged message in the Maildir", 90*time.Second, func() bool {
		seen := map[string]int{}
		for _, m := range in.Messages("demo@example.test") {
			seen[messageID(m)]++
		}
		for id := range acked {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	// Let in-flight retries settle, then count duplicates.
	time.Sleep(2 * time.Second)
	seen := map[string]int{}
	for _, m := range in.Messages("demo@example.test") {
		seen[messageID(m)]++
	}
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups += n - 1
		}
	}
	// Each crash of qmgr or local can repeat at most the deliveries in flight at that
	// moment (queue.local_concurrency, 20 by default).
	if limit := (kills + 1) * in.Cfg.Queue.LocalConcurrency; dups > limit {
		t.Errorf("%d duplicate deliveries after %d crashes, more than the %d in flight", dups, kills+1, limit)
	}
	t.Logf("%d messages delivered, %d duplicates", len(seen), dups)
}

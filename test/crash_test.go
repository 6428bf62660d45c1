package test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCrashLosesNothing proves the queue's promise under kill -9 (postern(7),
// GUARANTEES): during a load of 3,000 messages, each with its own Message-ID, it kills
// daemons with SIGKILL at random moments (mostly cleanup, qmgr and local, sometimes
// smtpd and authd), once the whole process tree followed by a restart, and at the end the
// whole tree again mid-load. After the last restart it checks that every message that
// got its 250 is in the Maildir, that none is there twice (a delivery repeated after a
// crash must find the copy it made before), and that the queue empties, the half-written
// files of killed cleanups included. It counts, without failing on them, the messages
// answered with an error after the final dot but queued all the same (cleanup killed
// between its fsync and its answer; a real client would send them again) and the
// connections that got no greeting.
func TestCrashLosesNothing(t *testing.T) {
	in := NewInstance(t, "")
	in.SetConfig("queue", "min_backoff", `"1s"`)
	in.SetConfig("queue", "max_backoff", `"2s"`)
	in.Stop()
	in.Start()

	const total, clients = 3000, 10
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		atDot    = map[string]bool{} // error after the final dot
		before   = map[string]bool{} // error before the message was sent
		next     = 0
		noGreet  = 0
		greetErr error
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
	for range clients {
		wg.Go(func() {
			var cl *smtp.Client
			var conn net.Conn
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				if cl == nil {
					var err error
					conn, err = net.DialTimeout("tcp", in.SMTPAddr(), 5*time.Second)
					if err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					conn.SetDeadline(time.Now().Add(20 * time.Second))
					if cl, err = smtp.NewClient(conn, in.IP); err != nil {
						conn.Close()
						cl = nil
						var ne net.Error
						if errors.As(err, &ne) && ne.Timeout() {
							mu.Lock()
							noGreet++
							greetErr = err
							mu.Unlock()
						}
						continue
					}
				}
				i, ok := take()
				if !ok {
					cl.Close()
					return
				}
				conn.SetDeadline(time.Now().Add(20 * time.Second))
				id := fmt.Sprintf("<crash-%d@load.test>", i)
				err := sendOne(cl, "load@other.test", "demo@example.test", id)
				mu.Lock()
				switch {
				case err == nil:
					acked[id] = true
				case errors.Is(err, errAtFinalDot):
					atDot[id] = true
				default:
					before[id] = true
				}
				mu.Unlock()
				if err != nil {
					cl.Close()
					cl = nil
				}
			}
		})
	}

	// Kill single daemons while the load runs, and once everything, then start again.
	victims := []string{"cleanup", "qmgr", "local", "cleanup", "qmgr", "local", "smtpd", "authd", "spamd"}
	kills := map[string]int{}
	restarted := false
	// The loop ends on progress; the deadline is only a bound for a machine so loaded
	// that the load cannot reach 70 %: the test is about losses, not speed.
	deadline := time.Now().Add(240 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		mu.Lock()
		progress := next
		mu.Unlock()
		if progress > total*7/10 {
			break
		}
		if !restarted && progress > total*35/100 {
			in.Kill9()
			in.Start()
			restarted = true
			t.Logf("killed everything after %d messages and started again", progress)
			continue
		}
		name := victims[rand.IntN(len(victims))]
		if pid, ok := in.DaemonPIDs()[name]; ok {
			syscall.Kill(pid, syscall.SIGKILL)
			kills[name]++
		}
	}
	// Then everything at once, mid-load.
	in.Kill9()
	close(stopLoad)
	wg.Wait()
	mu.Lock()
	t.Logf("kills of single daemons %v, then all; of %d messages sent, %d acknowledged, %d failed at the final dot, %d before",
		kills, next, len(acked), len(atDot), len(before))
	mu.Unlock()
	if len(kills) == 0 || !restarted || len(acked) < total/4 {
		t.Fatalf("the load did not run: kills %v, restarted %v, %d acknowledged", kills, restarted, len(acked))
	}

	in.Start()
	count := func() map[string]int {
		seen := map[string]int{}
		for _, m := range in.Messages("demo@example.test") {
			seen[messageID(m)]++
		}
		return seen
	}
	in.WaitFor("every acknowledged message in the Maildir", 90*time.Second, func() bool {
		seen := count()
		for id := range acked {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	// Once the queue is empty no delivery is left to come: count then. The files killed
	// cleanups left in incoming/ must go too.
	spool := in.Cfg.SpoolDir
	in.WaitFor("the queue to empty, half-written files of incoming/ included", 90*time.Second, func() bool {
		for _, dir := range []string{"incoming", "active", "deferred"} {
			if names, err := os.ReadDir(filepath.Join(spool, dir)); err != nil || len(names) > 0 {
				return false
			}
		}
		return true
	})
	seen := count()
	var dups []string
	for id, n := range seen {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s ×%d", id, n))
		}
	}
	sort.Strings(dups)
	if len(dups) > 0 {
		t.Errorf("%d messages delivered more than once: %s", len(dups), strings.Join(dups, ", "))
	}
	queuedAnyway := 0
	for id := range atDot {
		if seen[id] > 0 {
			queuedAnyway++
		}
	}
	for id := range before {
		if seen[id] > 0 {
			t.Errorf("%s was delivered though the session failed before its data was sent", id)
		}
	}
	log := in.Log()
	found := strings.Count(log, `msg="delivered before, not again"`)
	discarded := strings.Count(log, `msg="message discarded: smtpd went away before it was queued"`)
	t.Logf("%d messages delivered, %d twice; %d repeated deliveries found their earlier copy; "+
		"%d answered with an error after the final dot but queued all the same (%d more not queued, for smtpd was gone); "+
		"%d connections without a greeting",
		len(seen), len(dups), found, queuedAnyway, discarded, noGreet)
	if noGreet > 0 {
		t.Logf("last greeting failure: %v", greetErr)
	}
}

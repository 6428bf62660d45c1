package metrics

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"postern/pkg/ipc"
)

// How often a reporter looks for changes, runs the collect functions (which may cost a
// directory scan) and sends its snapshot even unchanged (so a metricsd that restarted
// learns the figures of a daemon that is idle).
const (
	reportEvery  = time.Second
	collectEvery = 10 * time.Second
	resendEvery  = 30 * time.Second
)

// OpReport is the operation of a report on private/metrics; its body is a Snapshot and
// it has no answer.
const OpReport = "metrics.report"

var (
	collectMu sync.Mutex
	collects  []func()
)

// Collect registers f to run before a snapshot is sent, at most every ten seconds:
// it sets the gauges that are read rather than counted (qmgr's queue sizes).
func Collect(f func()) {
	collectMu.Lock()
	defer collectMu.Unlock()
	collects = append(collects, f)
}

func runCollects() {
	collectMu.Lock()
	fs := collects
	collectMu.Unlock()
	for _, f := range fs {
		f()
	}
}

// Report sends the snapshots of Default, as daemon, to the metrics socket until ctx
// ends. The connection is one way: metricsd never answers, so nothing it could send is
// read (master reports too, and reads no input from the daemons it runs). A metricsd
// that is not there is tried again each second; the figures wait in memory.
func Report(ctx context.Context, socket, daemon string, log *slog.Logger) {
	var (
		conn       *ipc.Conn
		sent       uint64
		sentAt     time.Time
		collectAt  time.Time
		warnedDial bool
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	t := time.NewTicker(reportEvery)
	defer t.Stop()
	for {
		now := time.Now()
		if now.Sub(collectAt) >= collectEvery {
			runCollects()
			collectAt = now
		}
		// The version is read first so that an idle daemon does not copy and sort its
		// series each second for nothing.
		if conn == nil || Default.Version() != sent || now.Sub(sentAt) >= resendEvery {
			if conn == nil {
				c, err := ipc.Dial(socket)
				if err != nil {
					if !warnedDial {
						log.Debug("metricsd not reachable; figures kept for later", "socket", socket, "err", err)
						warnedDial = true
					}
				} else {
					conn, warnedDial = c, false
				}
			}
			if conn != nil {
				// Copied only when there is somewhere to send it.
				series, version := Default.Snapshot()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				if err := conn.SendRequest(OpReport, Snapshot{Daemon: daemon, PID: os.Getpid(), Series: series}); err != nil {
					log.Debug("sending metrics", "err", err)
					conn.Close()
					conn = nil
				} else {
					sent, sentAt = version, now
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

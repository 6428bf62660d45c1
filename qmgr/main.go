// Command qmgr is Postern's queue manager.
//
// qmgr owns the queue after cleanup has written a message: it moves complete files from
// incoming/ to active/, asks authd where each recipient's mail goes, hands the message to
// a delivery agent (local now, remote later), records each recipient's outcome in the
// queue file, retries temporary failures from deferred/ with exponential backoff, returns
// permanent failures to the sender as RFC 3464 delivery status notifications, and removes
// the file once nothing is left to do. It serves <spool>/private/qmgr (wakeups from
// cleanup), <spool>/control/qmgr (queue administration for mailctl) and
// <spool>/public/qmgr (mailq for every local user). See qmgr(8).
package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"postern/pkg/daemon"
	"postern/pkg/metrics"
	"postern/pkg/srs"
)

func main() {
	d := daemon.Start("qmgr")
	d.Confine(d.Config.SpoolDir)
	ctx, stop := d.Context()
	defer stop()
	cfg := d.Config
	q := New(cfg, d.Log)
	if cfg.SRS.Enable {
		// Forwarded mail leaves with an SRS sender (pkg/srs).
		var err error
		if q.SRS, err = srs.Load(cfg.SRSDomain(), cfg.SRSKeyFile(), cfg.SRS.MaxAge.D()); err != nil {
			d.Log.Error("[srs] is enabled but its secret cannot be read; run mailctl init, or start master, which makes it", "err", err)
			os.Exit(1)
		}
	}
	if err := q.OpenState(filepath.Join(cfg.QmgrDir(), "qmgr.db")); err != nil {
		// Mail goes on; the statistics are not kept, and queue administration
		// answers that its audit log cannot be written.
		d.Log.Error("opening the state database", "err", err)
	}
	defer func() {
		if err := q.CloseState(); err != nil {
			d.Log.Error("closing the state database", "err", err)
		}
	}()
	// The queue sizes, read from the directories when metricsd is sent a report.
	metrics.Collect(func() {
		res, err := q.Counts()
		if err != nil {
			d.Log.Warn("counting the queue for metrics", "err", err)
			return
		}
		for state, n := range res.Counts {
			metrics.SetGauge(metrics.Queue, float64(n), "queue", state)
		}
	})
	// cleanup announces messages; smtpd reports its counts (stats.Rejected).
	priv := q.PrivateServer(daemon.Trust(cfg, "cleanup", "smtpd"))
	ctl := q.ControlServer(daemon.Admin(cfg))
	// mailq for every local user (queue.mailq_users).
	pub := q.PublicServer(daemon.Admin(cfg))
	go priv.Serve(ctx, d.Unix("private/qmgr"))
	go ctl.Serve(ctx, d.Unix("control/qmgr"))
	go pub.Serve(ctx, d.Unix("public/qmgr"))
	q.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	priv.Shutdown(sctx)
	ctl.Shutdown(sctx)
	pub.Shutdown(sctx)
}

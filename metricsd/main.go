// Command metricsd is where Postern's figures meet: every daemon (and master) reports
// its counters over <spool>/private/metrics, one way, and metricsd serves their sum in
// the Prometheus text format at /metrics on the listener "metrics" that
// [services.metricsd] names. It owns nothing on disk and writes no file. See
// metricsd(8) and pkg/metrics.
//
// The HTTP listener lives here, not in master: master reads no network input
// (ARCHITECTURE.md, the processes), so the only network parser of the metrics path
// runs unprivileged, as postern, and master binds its port like any other.
package main

import (
	"context"
	"os"
	"time"

	"postern/pkg/config"
	"postern/pkg/daemon"
)

func main() {
	d := daemon.Start("metricsd")
	d.Confine() // writes no file
	ctx, stop := d.Context()
	defer stop()
	names := make([]string, 0, len(config.Daemons))
	for _, dd := range config.Daemons {
		names = append(names, dd.Name)
	}
	m := New(d.Log)
	// Every daemon reports, and master as root (Trust admits root).
	if err := m.Run(ctx, d.Unix("private/metrics"), d.Listeners["metrics"], daemon.Trust(d.Config, names...)); err != nil {
		d.Log.Error("serving", "err", err)
		os.Exit(1)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.Shutdown(sctx)
}

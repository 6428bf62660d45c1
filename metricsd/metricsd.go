package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"postern/pkg/ipc"
	"postern/pkg/metrics"
)

// Metricsd merges the daemons' reports and serves them.
type Metricsd struct {
	Store *metrics.Store
	Log   *slog.Logger

	reports *ipc.Server
	http    *http.Server
}

// New returns a metricsd with an empty store.
func New(log *slog.Logger) *Metricsd {
	return &Metricsd{Store: metrics.NewStore(), Log: log}
}

// ReportServer is the server of private/metrics: each frame a reporter sends is a
// metrics.report request carrying a snapshot, never answered.
func (m *Metricsd) ReportServer(allow func(ipc.Cred) bool) *ipc.Server {
	srv := &ipc.Server{Name: "metrics", Allow: allow, Logger: m.Log}
	srv.HandleStream(metrics.OpReport, func(ctx context.Context, peer ipc.Cred, c *ipc.Conn, body json.RawMessage, files []*os.File) error {
		ipc.CloseFiles(files)
		var s metrics.Snapshot
		if err := json.Unmarshal(body, &s); err != nil {
			return fmt.Errorf("decoding a report from pid %d: %w", peer.PID, err)
		}
		if s.Daemon == "" {
			return fmt.Errorf("report without a daemon name from pid %d", peer.PID)
		}
		m.Store.Merge(s)
		return nil
	})
	return srv
}

// Handler serves GET /metrics.
func (m *Metricsd) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", metrics.ContentType)
		if err := metrics.Write(w, m.Store.Series()); err != nil {
			m.Log.Debug("writing metrics", "client", r.RemoteAddr, "err", err)
		}
	})
	return mux
}

// Run serves the reports on private and, when it is not nil, HTTP on web, until ctx
// ends or the report socket fails.
func (m *Metricsd) Run(ctx context.Context, private *net.UnixListener, web net.Listener, allow func(ipc.Cred) bool) error {
	m.reports = m.ReportServer(allow)
	if web != nil {
		m.http = &http.Server{
			Handler:           m.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelDebug),
		}
		m.Log.Info("listening", "listener", "metrics", "addr", web.Addr().String())
		go func() {
			if err := m.http.Serve(web); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.Log.Error("serving metrics over HTTP", "err", err)
			}
		}()
	} else {
		m.Log.Info("no metrics listener configured: collecting only")
	}
	return m.reports.Serve(ctx, private)
}

// Shutdown stops both servers.
func (m *Metricsd) Shutdown(ctx context.Context) {
	if m.http != nil {
		m.http.Shutdown(ctx)
	}
	if m.reports != nil {
		m.reports.Shutdown(ctx)
	}
}

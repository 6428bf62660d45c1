package main

import (
	"context"
	"encoding/json"
	"os"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/ipc"
)

// controlServer serves <spool>/control/master: status and reload, for root, master's
// own user and the admin group (daemon.Admin, re-read on reload).
func (m *Master) controlServer() *ipc.Server {
	// Logger stays nil: the server logs through slog.Default, which reload replaces.
	srv := &ipc.Server{Name: "master", Allow: m.allowed}
	srv.Handle(control.MasterStatus, func(ctx context.Context, peer ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
		ipc.CloseFiles(files)
		return m.status(), nil
	})
	srv.Handle(control.MasterReload, func(ctx context.Context, peer ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
		ipc.CloseFiles(files)
		m.logger().Info("reload requested", "uid", peer.UID, "peer_pid", peer.PID)
		if err := m.requestReload(ctx); err != nil {
			return nil, ipc.Errorf("invalid", "reload failed, master keeps the running configuration: %v", err)
		}
		return nil, nil
	})
	return srv
}

func (m *Master) allowed(c ipc.Cred) bool {
	m.mu.Lock()
	allow := m.allow
	m.mu.Unlock()
	return allow(c)
}

// requestReload has the main loop reload the configuration and waits for the outcome.
func (m *Master) requestReload(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case m.reloadc <- reply:
	case <-m.stopping:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// status is what master knows about itself and every daemon, in start order. A daemon
// master does not run is "disabled".
func (m *Master) status() control.MasterStatusResult {
	self := currentIdentity().User
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg := m.cfg
	res := control.MasterStatusResult{PID: os.Getpid(), Started: m.started, Config: cfg.Path}
	for _, d := range config.Daemons {
		if s := m.procs[d.Name]; s != nil {
			res.Daemons = append(res.Daemons, s.snapshot())
			continue
		}
		st := control.DaemonStatus{Name: d.Name, State: "disabled"}
		if svc := cfg.Service(d.Name); svc != nil && m.root {
			st.User = svc.User
		} else {
			st.User = self
		}
		res.Daemons = append(res.Daemons, st)
	}
	return res
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/daemon"
	"postern/pkg/ipc"
	"postern/pkg/metrics"
)

// Master supervises the daemons of one Postern instance.
type Master struct {
	path    string // the configuration file
	root    bool   // master runs as root: daemons change to their users
	started time.Time
	spawner *spawner
	sockets *socketSet
	// reloadc carries reload requests from the control socket to the main loop, which
	// runs every reload, so reloads and shutdown never overlap.
	reloadc  chan chan error
	stopping chan struct{} // closed when shutdown begins

	mu     sync.Mutex
	cfg    *config.Config
	log    *slog.Logger
	ids    map[string]identity
	owners owners
	allow  func(ipc.Cred) bool
	procs  map[string]*supervisor
}

// newMaster prepares a master for cfg: it finds master's own executable (the shim of
// every child) and the users and owners the configuration names. It changes nothing.
func newMaster(cfg *config.Config) (*Master, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding master's own program: %w", err)
	}
	root := os.Geteuid() == 0
	ids, err := resolveIdentities(cfg, root)
	if err != nil {
		return nil, err
	}
	o, notes, err := resolveOwners(cfg, root, ids)
	if err != nil {
		return nil, err
	}
	m := &Master{
		path:     cfg.Path,
		root:     root,
		started:  time.Now(),
		spawner:  newSpawner(self),
		sockets:  newSocketSet(o),
		reloadc:  make(chan chan error),
		stopping: make(chan struct{}),
		cfg:      cfg,
		log:      newLogger(cfg),
		ids:      ids,
		owners:   o,
		allow:    daemon.Admin(cfg),
		procs:    map[string]*supervisor{},
	}
	slog.SetDefault(m.log)
	m.logNotes(cfg, notes)
	return m, nil
}

// newLogger is master's logger: like every daemon's (daemon.NewLogger) but without a pid
// attribute, since master's lines carry the pids of its children under "pid".
func newLogger(cfg *config.Config) *slog.Logger {
	return slog.New(daemon.LogHandler(cfg, "master")).With("daemon", "master")
}

func (m *Master) logNotes(cfg *config.Config, notes ownerNotes) {
	if notes.AdminGroupMissing {
		m.logger().Warn("admin group does not exist; only root may use the control sockets", "admin_group", cfg.AdminGroup)
	}
}

func (m *Master) logger() *slog.Logger {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log
}

func (m *Master) config() *config.Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// run is master's life: lock the spool, lay it out, bind the sockets, start the daemons,
// then serve signals and reload requests until SIGTERM or SIGINT.
func (m *Master) run() error {
	// Signals are taken from the start: a SIGTERM during startup stops what started.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	notifySocket := takeNotifySocket()

	cfg := m.config()
	if err := os.MkdirAll(cfg.SpoolDir, modeSpoolRoot); err != nil {
		return fmt.Errorf("creating the spool: %w", err)
	}
	lock, err := lockSpool(cfg.SpoolDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := writePID(cfg.SpoolDir); err != nil {
		return err
	}
	defer os.Remove(pidPath(cfg.SpoolDir))
	if err := makeLayout(cfg, m.owners); err != nil {
		return err
	}
	if !m.root {
		m.logger().Info("not running as root: every daemon runs as master's user", "user", currentIdentity().User)
	}

	// Every socket is bound before any daemon starts, so a daemon finds its peers'
	// sockets in place (connections wait in the backlog until the peer accepts).
	defer m.sockets.closeAll()
	for _, d := range config.Daemons {
		specs := socketsFor(cfg, d)
		if !enabled(cfg, d.Name) {
			removeStaleSockets(specs)
			continue
		}
		if _, err := m.sockets.acquire(specs); err != nil {
			return err
		}
	}
	ctl, err := listenUnix(cfg.ControlSocket("master"), m.owners.socketOwner("control/master"), modeSocket)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := m.controlServer()
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ctx, ctl)
	}()

	// master reports whether each daemon runs, and (supervise.go) its restarts.
	metrics.Collect(func() {
		for _, st := range m.status().Daemons {
			up := 0.0
			if st.State == "running" {
				up = 1
			}
			metrics.SetGauge(metrics.Up, up, "daemon", st.Name)
		}
	})
	daemon.ReportMetrics(cfg, "master", m.logger())
	for _, d := range config.Daemons {
		if enabled(cfg, d.Name) {
			m.startDaemon(cfg, d.Name, control.DaemonStatus{})
		}
	}
	m.logger().Info("master started", "master_pid", os.Getpid(), "config", cfg.Path, "spool", cfg.SpoolDir)
	notifySocket.send("READY=1\nSTATUS=running\nMAINPID=" + fmt.Sprint(os.Getpid()))
	if every := takeWatchdog(); every > 0 && notifySocket.addr != nil {
		wctx, wstop := context.WithCancel(ctx)
		defer wstop()
		go m.watchdog(wctx, notifySocket, every)
	}

	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				notifySocket.send(reloadingMessage())
				m.logger().Info("reloading the configuration", "signal", "SIGHUP")
				m.reload()
				notifySocket.send("READY=1\nSTATUS=running")
				continue
			}
			notifySocket.send("STOPPING=1")
			m.shutdown(sig)
			cancel()
			sctx, scancel := context.WithTimeout(context.Background(), time.Second)
			srv.Shutdown(sctx)
			scancel()
			<-served
			m.logger().Info("master stopped")
			return nil
		case reply := <-m.reloadc:
			notifySocket.send(reloadingMessage())
			m.logger().Info("reloading the configuration", "request", "control")
			reply <- m.reload()
			notifySocket.send("READY=1\nSTATUS=running")
		}
	}
}

// startDaemon starts the supervisor of one daemon and waits for its first start, so
// that daemons start in the order of config.Daemons. prev is the status of the daemon's
// previous supervisor, if a reload replaced it: its restart count and last exit carry on.
func (m *Master) startDaemon(cfg *config.Config, name string, prev control.DaemonStatus) {
	d, _ := config.LookupDaemon(name)
	svc := cfg.Service(name)
	m.mu.Lock()
	spec := runSpec{
		Name:    name,
		Program: cfg.Program(name),
		Args:    append([]string{"-c", cfg.Path}, svc.Args...),
		ID:      m.ids[name],
		Switch:  m.root,
		Sockets: socketsFor(cfg, d),
	}
	s := newSupervisor(m, spec)
	s.status.Restarts, s.status.LastExit = prev.Restarts, prev.LastExit
	m.procs[name] = s
	m.mu.Unlock()
	go s.run()
	<-s.first
}

// shutdownSlack is what the daemons get beyond smtpd.shutdown_grace before SIGKILL;
// lastChance is what the daemons still running at that point get, together.
var (
	shutdownSlack = 5 * time.Second
	lastChance    = time.Second
)

// shutdown stops every daemon (see stopInOrder).
func (m *Master) shutdown(sig os.Signal) {
	close(m.stopping)
	cfg := m.config()
	m.logger().Info("stopping", "signal", sig.String())
	m.mu.Lock()
	var order []*supervisor
	for i := len(config.Daemons) - 1; i >= 0; i-- {
		if s := m.procs[config.Daemons[i].Name]; s != nil {
			order = append(order, s)
		}
	}
	m.mu.Unlock()
	stopInOrder(order, cfg.SMTPD.ShutdownGrace.D()+shutdownSlack)
}

// stopInOrder stops daemons one after the other, in the order given: master passes
// them in reverse start order, smtpd first, so that the SMTP transactions in flight can
// still reach cleanup, cleanup stops before qmgr, and so on. Each gets SIGTERM and is
// waited for, all within budget (smtpd.shutdown_grace + 5s); the one still running then
// gets SIGKILL, and those not yet signalled get SIGTERM together and one last second
// before SIGKILL. So stopping takes at most budget + 1s, whatever the daemons do.
func stopInOrder(order []*supervisor, budget time.Duration) {
	deadline := time.Now().Add(budget)
	for i, s := range order {
		if time.Now().Before(deadline) {
			s.stop(deadline)
			continue
		}
		last := time.Now().Add(lastChance)
		var wg sync.WaitGroup
		for _, rest := range order[i:] {
			wg.Go(func() { rest.stop(last) })
		}
		wg.Wait()
		return
	}
}

// removeStaleSockets removes the socket files of a daemon that does not run, so that its
// clients fail at once instead of waiting on a socket nobody will accept on.
func removeStaleSockets(specs []socketSpec) {
	for _, sp := range specs {
		if sp.Network == "unix" {
			removeSocket(sp.Addr)
		}
	}
}

// errStopping answers a reload request that arrives while master stops.
var errStopping = errors.New("master is stopping")

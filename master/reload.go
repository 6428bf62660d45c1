package main

import (
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"syscall"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/daemon"
)

// reloadPlan says what a new configuration changes for the daemons.
type reloadPlan struct {
	// Global says a setting outside [services] changed: every daemon restarts.
	Global bool
	// Start are daemons enabled by the new configuration, Stop those it disables,
	// Restart those whose [services] entry (or a global setting) changed, Keep the
	// others, which keep running untouched. Each list is in start order.
	Start, Stop, Restart, Keep []string
}

// changed reports whether the plan does anything.
func (p reloadPlan) changed() bool {
	return len(p.Start)+len(p.Stop)+len(p.Restart) > 0
}

// planReload compares two configurations. A daemon is restarted when its [services]
// entry changed or when any setting outside [services] did (any daemon may read any
// of them); the others keep running.
func planReload(old, new *config.Config) reloadPlan {
	var p reloadPlan
	p.Global = !reflect.DeepEqual(globals(old), globals(new))
	for _, d := range config.Daemons {
		was, is := enabled(old, d.Name), enabled(new, d.Name)
		switch {
		case !was && is:
			p.Start = append(p.Start, d.Name)
		case was && !is:
			p.Stop = append(p.Stop, d.Name)
		case was && is:
			if p.Global || !sameService(old.Service(d.Name), new.Service(d.Name)) {
				p.Restart = append(p.Restart, d.Name)
			} else {
				p.Keep = append(p.Keep, d.Name)
			}
		}
	}
	return p
}

// globals is a configuration without its [services] table.
func globals(c *config.Config) config.Config {
	g := *c
	g.Services = nil
	return g
}

// sameService compares two [services] entries; an empty list or table equals a missing one.
func sameService(a, b *config.Service) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Enable == b.Enable && a.User == b.User && a.Command == b.Command &&
		slices.Equal(a.Args, b.Args) && maps.Equal(a.Listen, b.Listen)
}

// reload re-reads the configuration file and applies it: daemons whose settings changed
// restart (SIGTERM, wait, start), disabled ones stop, newly enabled ones start, the rest
// keep running. A configuration that does not load, or that master cannot apply (a user
// that does not exist, a new spool_dir), is logged and changes nothing.
func (m *Master) reload() error {
	old := m.config()
	log := m.logger()
	cfg, err := config.Load(m.path)
	if err == nil && cfg.SpoolDir != old.SpoolDir {
		err = fmt.Errorf("spool_dir changed from %s to %s: master holds the old spool's lock and sockets; restart master to move the spool", old.SpoolDir, cfg.SpoolDir)
	}
	var ids map[string]identity
	if err == nil {
		ids, err = resolveIdentities(cfg, m.root)
	}
	var o owners
	var notes ownerNotes
	if err == nil {
		o, notes, err = resolveOwners(cfg, m.root, ids)
	}
	if err == nil {
		err = makeLayout(cfg, o)
	}
	if err != nil {
		log.Error("reload failed, keeping the running configuration", "err", err)
		return err
	}
	plan := planReload(old, cfg)

	// Stop what changes, in reverse start order, as at shutdown.
	down := append(slices.Clone(plan.Stop), plan.Restart...)
	var order []*supervisor
	m.mu.Lock()
	for i := len(config.Daemons) - 1; i >= 0; i-- {
		name := config.Daemons[i].Name
		if s := m.procs[name]; s != nil && slices.Contains(down, name) {
			order = append(order, s)
		}
	}
	m.mu.Unlock()
	stopInOrder(order, old.SMTPD.ShutdownGrace.D()+shutdownSlack)
	// Close the sockets nobody wants any more, and those whose address changed (all of
	// them first, so that two listeners may swap ports); the daemons bind the new ones
	// when they start. The sockets that stay the same stay bound.
	for _, name := range down {
		d, _ := config.LookupDaemon(name)
		keep := map[socketSpec]bool{}
		if enabled(cfg, name) {
			for _, sp := range socketsFor(cfg, d) {
				keep[sp] = true
			}
		}
		for _, sp := range socketsFor(old, d) {
			if !keep[sp] {
				m.sockets.release(sp.Name)
			}
		}
	}

	if cfg.Log != old.Log {
		if err := openLogFile(cfg); err != nil {
			log.Warn("log file not changed", "err", err)
		}
	}
	newLog := newLogger(cfg)
	m.mu.Lock()
	history := map[string]control.DaemonStatus{}
	for _, name := range down {
		if s := m.procs[name]; s != nil {
			history[name] = s.snapshot()
		}
		delete(m.procs, name)
	}
	m.cfg, m.ids, m.owners, m.log = cfg, ids, o, newLog
	m.allow = daemon.Admin(cfg)
	m.mu.Unlock()
	slog.SetDefault(newLog)
	m.logNotes(cfg, notes)
	if err := m.sockets.setOwners(o); err != nil {
		newLog.Warn("changing the owners of the sockets", "err", err)
	}
	if err := setOwner(cfg.ControlSocket("master"), o.socketOwner("control/master"), modeSocket); err != nil {
		newLog.Warn("changing the owner of master's control socket", "err", err)
	}

	for _, d := range config.Daemons {
		if slices.Contains(plan.Start, d.Name) || slices.Contains(plan.Restart, d.Name) {
			m.startDaemon(cfg, d.Name, history[d.Name])
		}
	}
	// The daemons that keep running and re-read their certificates on SIGHUP get it:
	// a renewed certificate needs no restart (config.Daemon.ReloadsOnHUP).
	var hupped []string
	m.mu.Lock()
	for _, d := range config.Daemons {
		if s := m.procs[d.Name]; s != nil && d.ReloadsOnHUP && slices.Contains(plan.Keep, d.Name) {
			s.signal(syscall.SIGHUP)
			hupped = append(hupped, d.Name)
		}
	}
	m.mu.Unlock()
	if !plan.changed() {
		newLog.Info("configuration reloaded, nothing to restart", "config", cfg.Path, "signalled", hupped)
		return nil
	}
	newLog.Info("configuration reloaded", "config", cfg.Path, "global_change", plan.Global,
		"restarted", plan.Restart, "started", plan.Start, "stopped", plan.Stop, "unchanged", plan.Keep, "signalled", hupped)
	return nil
}

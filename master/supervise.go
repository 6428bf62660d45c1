package main

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"postern/pkg/control"
	"postern/pkg/metrics"
)

// Restarts. A daemon that ran healthyAfter or longer before it died had started and was
// serving: it died of a kill -9, the OOM killer or a crash on some input, not of its
// configuration. It is started again at once, so that its socket, which master keeps
// bound, is served again without delay, the way Postfix keeps a service up while its
// processes crash (it throttles only processes that die before serving). A daemon that
// died sooner is failing at start (a bad configuration, a missing program, exit status
// 2), or being killed over and over: it waits minBackoff (systemd's default RestartSec),
// doubling with every further such death up to maxBackoff, instead of spinning. Each
// restart is logged with the reason for its delay.
var (
	minBackoff   = 100 * time.Millisecond
	maxBackoff   = time.Minute
	healthyAfter = time.Second
)

// backoff computes the restart delays of one daemon.
type backoff struct{ next time.Duration }

// delay returns how long to wait before the next start, given how long the daemon ran,
// and why, for the log.
func (b *backoff) delay(uptime time.Duration) (time.Duration, string) {
	if uptime >= healthyAfter {
		b.next = 0
		return 0, "ran " + healthyAfter.String() + " or longer: restarting at once"
	}
	if b.next == 0 {
		b.next = minBackoff
	}
	d := b.next
	b.next = min(2*d, maxBackoff)
	return d, "failing at start (ran under " + healthyAfter.String() + "): backing off"
}

// runSpec is everything needed to start one daemon.
type runSpec struct {
	Name    string
	Program string
	Args    []string
	// ID is who the daemon runs as; Switch says whether master changes to that user
	// (only as root).
	ID      identity
	Switch  bool
	Sockets []socketSpec
}

// supervisor keeps one daemon running: it starts it, waits for it, logs why it ended,
// and starts it again after a backoff, until stop is called.
type supervisor struct {
	spec   runSpec
	m      *Master
	stopc  chan time.Time // a stop request: its deadline
	sigc   chan os.Signal // signals to pass on to the running daemon
	done   chan struct{}
	first  chan struct{} // closed after the first start, whether it worked or not
	mu     sync.Mutex
	status control.DaemonStatus
}

func newSupervisor(m *Master, spec runSpec) *supervisor {
	return &supervisor{
		spec:   spec,
		m:      m,
		stopc:  make(chan time.Time),
		sigc:   make(chan os.Signal, 1),
		done:   make(chan struct{}),
		first:  make(chan struct{}),
		status: control.DaemonStatus{Name: spec.Name, User: spec.ID.User, State: "starting"},
	}
}

// snapshot returns the daemon's status for `mailctl status`.
func (s *supervisor) snapshot() control.DaemonStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *supervisor) update(f func(*control.DaemonStatus)) {
	s.mu.Lock()
	f(&s.status)
	s.mu.Unlock()
}

// stop stops the daemon: SIGTERM, then SIGKILL if it still runs at deadline. It returns
// when the daemon is gone and will not be started again.
func (s *supervisor) stop(deadline time.Time) {
	select {
	case s.stopc <- deadline:
	case <-s.done:
	}
	<-s.done
}

// signal passes sig on to the daemon if it is running; a daemon between two starts
// misses it (it reads everything afresh when it starts anyway). The signal goes
// through the supervisor's loop, which alone knows that the process still exists, so
// that it never reaches a reused pid.
func (s *supervisor) signal(sig os.Signal) {
	select {
	case s.sigc <- sig:
	default: // one is pending already
	}
}

// run is the supervisor's loop; it returns after stop.
func (s *supervisor) run() {
	defer close(s.done)
	var b backoff
	for n := 0; ; n++ {
		var delay time.Duration
		select {
		case <-s.sigc: // meant for the process that ended; a new one reads all afresh
		default:
		}
		p, err := s.start()
		if n == 0 {
			close(s.first)
		}
		if err != nil {
			delay, _ = b.delay(0)
			s.m.logger().Error("daemon not started", "name", s.spec.Name, "err", err, "restart_in", delay)
			s.update(func(st *control.DaemonStatus) {
				st.State, st.PID, st.LastExit = "backoff", 0, "not started: "+err.Error()
			})
		} else {
			started := time.Now()
			exited := make(chan *os.ProcessState, 1)
			go func() {
				st, _ := p.Wait()
				exited <- st
			}()
			var st *os.ProcessState
			var deadline time.Time
			stopping := false
		wait:
			for {
				select {
				case st = <-exited:
					break wait
				case deadline = <-s.stopc:
					stopping = true
					break wait
				case sig := <-s.sigc:
					p.Signal(sig)
				}
			}
			switch {
			case !stopping:
				uptime := time.Since(started)
				var because string
				delay, because = b.delay(uptime)
				why := exitReason(st)
				s.m.logger().Warn("daemon exited", "name", s.spec.Name, "pid", p.Pid, "status", why,
					"uptime", uptime.Round(time.Millisecond), "restart_in", delay, "restart", because)
				s.update(func(ds *control.DaemonStatus) {
					ds.State, ds.PID = "backoff", 0
					ds.LastExit = fmt.Sprintf("%s after %s", why, uptime.Round(time.Millisecond))
				})
			default:
				s.terminate(p, started, exited, deadline)
				return
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
			s.update(func(st *control.DaemonStatus) { st.Restarts++ })
			metrics.Inc(metrics.Restarts, "daemon", s.spec.Name)
		case <-s.stopc:
			t.Stop()
			s.update(func(st *control.DaemonStatus) { st.State = "stopped" })
			return
		}
	}
}

// start binds the daemon's sockets (they stay bound from an earlier start) and starts it.
func (s *supervisor) start() (*os.Process, error) {
	s.update(func(st *control.DaemonStatus) { st.State = "starting" })
	files, err := s.m.sockets.acquire(s.spec.Sockets)
	if err != nil {
		return nil, err
	}
	if err := checkProgram(s.spec.Program); err != nil {
		return nil, err
	}
	req := spawnRequest{Program: s.spec.Program, Args: s.spec.Args, Files: files}
	for _, sp := range s.spec.Sockets {
		req.Names = append(req.Names, sp.Name)
	}
	if s.spec.Switch {
		id := s.spec.ID
		req.ID = &id
	}
	p, err := s.m.spawner.spawn(req)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	s.m.logger().Info("daemon started", "name", s.spec.Name, "pid", p.Pid, "user", s.spec.ID.User)
	s.update(func(st *control.DaemonStatus) { st.State, st.PID, st.Started = "running", p.Pid, now })
	return p, nil
}

// terminate stops a running daemon: SIGTERM, and SIGKILL at deadline.
func (s *supervisor) terminate(p *os.Process, started time.Time, exited <-chan *os.ProcessState, deadline time.Time) {
	s.update(func(st *control.DaemonStatus) { st.State = "stopping" })
	p.Signal(syscall.SIGTERM)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var st *os.ProcessState
	select {
	case st = <-exited:
	case <-t.C:
		s.m.logger().Warn("daemon did not stop in time, killing it", "name", s.spec.Name, "pid", p.Pid)
		p.Kill()
		st = <-exited
	}
	uptime := time.Since(started).Round(time.Millisecond)
	why := exitReason(st)
	s.m.logger().Info("daemon stopped", "name", s.spec.Name, "pid", p.Pid, "status", why, "uptime", uptime)
	s.update(func(ds *control.DaemonStatus) {
		ds.State, ds.PID = "stopped", 0
		ds.LastExit = fmt.Sprintf("%s after %s", why, uptime)
	})
}

// checkProgram says clearly when a daemon's program is missing, before a child fails to
// exec it.
func checkProgram(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("program %s: %w (set bin_dir, or the service's command)", path, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("program %s is not an executable file", path)
	}
	return nil
}

// exitReason says how a process ended: "exit 2", "signal SIGKILL", "signal SIGSEGV
// (core dumped)".
func exitReason(st *os.ProcessState) string {
	if st == nil {
		return "unknown"
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return st.String()
	case ws.Exited():
		return fmt.Sprintf("exit %d", ws.ExitStatus())
	case ws.Signaled():
		r := "signal " + unix.SignalName(ws.Signal())
		if ws.CoreDump() {
			r += " (core dumped)"
		}
		return r
	}
	return st.String()
}

// Package daemon is what every Postern daemon does when it starts: read its flags and the
// configuration, set up logging, take the listening sockets master (or systemd) handed it,
// drop what privileges it can, and decide which peers it trusts.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"postern/pkg/config"
	"postern/pkg/ipc"
	"postern/pkg/journal"
	"postern/pkg/landlock"
	"postern/pkg/logtrace"
	"postern/pkg/metrics"
	"postern/pkg/tlsconf"
)

// Daemon is a started daemon.
type Daemon struct {
	Name   string
	Config *config.Config
	Log    *slog.Logger
	// Listeners are the inherited sockets, by name (LISTEN_FDNAMES).
	Listeners map[string]net.Listener
}

// Start parses the command line (-c FILE), loads the configuration, sets up logging and
// collects the inherited listeners. It exits the process with a message on failure: a
// daemon that cannot start must say why where master logs it.
func Start(name string) *Daemon {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	path := fs.String("c", config.DefaultPath, "configuration file")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [-c postern.toml]\n\n%s is a Postern daemon, started by master; see %s(8).\n", name, name, name)
	}
	fs.Parse(os.Args[1:])
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	d := &Daemon{Name: name, Config: cfg, Log: NewLogger(cfg, name)}
	slog.SetDefault(d.Log)
	ls, err := Listeners()
	if err != nil {
		d.Log.Error("taking inherited listeners", "err", err)
		os.Exit(1)
	}
	d.Listeners = ls
	// [services.NAME] procs, unless the environment says otherwise.
	if s := cfg.Services[name]; s != nil && s.Procs > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(s.Procs)
	}
	// Nothing a daemon runs may gain privileges (setuid programs); master already gave it
	// its user.
	unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	profile(d)
	ReportMetrics(cfg, name, d.Log)
	return d
}

// ReportMetrics sends the process's figures (pkg/metrics) to metricsd for the rest of
// its life, when metricsd runs; metricsd itself, whose figures are its store, does not.
func ReportMetrics(cfg *config.Config, name string, log *slog.Logger) {
	if s := cfg.Service("metricsd"); s == nil || !s.Enable || name == "metricsd" {
		return
	}
	go metrics.Report(context.Background(), cfg.PrivateSocket("metrics"), name, log)
}

// Confine restricts the daemon for the rest of its life with Landlock
// (pkg/landlock): it may write only beneath writable (and the POSTERN_CPUPROFILE
// directory, when profiling) and execute nothing; reading stays as the daemon's user
// allows. Where the kernel offers no Landlock, or the program was built with cgo, the
// daemon runs unconfined and says so in the log (ARCHITECTURE.md rule 2 asks for
// Landlock where the kernel offers it). Call it once the daemon has what it needs.
func (d *Daemon) Confine(writable ...string) {
	if dir := os.Getenv("POSTERN_CPUPROFILE"); dir != "" {
		writable = append(writable, dir)
	}
	abi, err := landlock.RestrictWrites(writable...)
	if err != nil {
		d.Log.Warn("running without Landlock", "reason", err, "abi", abi)
		return
	}
	d.Log.Info("confined with Landlock", "abi", abi, "writable", writable)
}

// profile writes a CPU profile of the daemon when POSTERN_CPUPROFILE names a directory:
// the first POSTERN_CPUPROFILE_SECONDS seconds (default 30) of the daemon's life go into
// DIR/<daemon>.<pid>.pprof, for `go tool pprof`. It is a tool for benchmarks (bench/).
func profile(d *Daemon) {
	dir := os.Getenv("POSTERN_CPUPROFILE")
	if dir == "" {
		return
	}
	secs, err := strconv.Atoi(os.Getenv("POSTERN_CPUPROFILE_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 30
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s.%d.pprof", d.Name, os.Getpid())))
	if err != nil {
		d.Log.Warn("cannot write a CPU profile", "err", err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		d.Log.Warn("cannot start the CPU profile", "err", err)
		f.Close()
		return
	}
	go func() {
		time.Sleep(time.Duration(secs) * time.Second)
		pprof.StopCPUProfile()
		f.Close()
		d.Log.Info("CPU profile written", "file", f.Name())
	}()
}

// NewLogger returns the logger of a daemon: one line per event where [log] target says
// (LogHandler), carrying the daemon's name and pid, as Postfix's "postfix/smtpd[123]:"
// prefix does.
func NewLogger(cfg *config.Config, name string) *slog.Logger {
	return slog.New(LogHandler(cfg, name)).With("daemon", name, "pid", os.Getpid())
}

// QueueIDKey is the attribute that names the message a log line is about (its queue
// ID), on every such line; DSNIDKey names the notification (bounce, delay warning)
// queued about it, which `mailctl log` follows. They are pkg/logtrace's, which reads
// them back.
const (
	QueueIDKey = logtrace.IDKey
	DSNIDKey   = logtrace.DSNIDKey
)

// Journal fields of the queue ID attributes (the others become POSTERN_<KEY>), so that
// `journalctl POSTERN_QUEUE_ID=ID` finds every line about a message.
const (
	JournalQueueID = "POSTERN_QUEUE_ID"
	JournalDSNID   = "POSTERN_DSN_ID"
)

// LogHandler is the slog handler of the named daemon (or master): the journal, in its
// native protocol with SYSLOG_IDENTIFIER=postern/NAME and each attribute a field, when
// [log] target is journal, or auto and standard error is the journal's (systemd); text
// or JSON lines on standard error otherwise (with target file, master made that the
// log file). When the journal's socket cannot be opened it says so on standard error
// and logs there.
func LogHandler(cfg *config.Config, name string) slog.Handler {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	target := cfg.Log.Target
	if target == config.LogAuto && journal.StderrIsJournal() {
		target = config.LogJournal
	}
	if target == config.LogJournal {
		conn, err := journalConn()
		if err == nil {
			return journal.NewHandler(conn, journal.HandlerOptions{
				Level:      level,
				Identifier: "postern/" + name,
				Prefix:     "POSTERN_",
				Names:      map[string]string{QueueIDKey: JournalQueueID, DSNIDKey: JournalDSNID},
				Fallback:   os.Stderr,
			})
		}
		fmt.Fprintf(os.Stderr, "%s: logging to standard error: %v\n", name, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.NewTextHandler(os.Stderr, opts)
}

var journalOnce struct {
	sync.Mutex
	conn *journal.Conn
}

// journalConn is the process's one connection to the journal: a logger made again (by
// master at every reload) shares it rather than opening another socket, and a
// journal.Conn is safe for concurrent use.
func journalConn() (*journal.Conn, error) {
	journalOnce.Lock()
	defer journalOnce.Unlock()
	if journalOnce.conn == nil {
		c, err := journal.Dial(journal.SocketPath)
		if err != nil {
			return nil, err
		}
		journalOnce.conn = c
	}
	return journalOnce.conn, nil
}

// Context returns a context cancelled by SIGTERM or SIGINT.
func (d *Daemon) Context() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

// Server is a network daemon's server (smtpd, imapd): it reads its TLS certificates
// again when asked, and serves the listeners master handed over until ctx is done.
type Server interface {
	ReloadCertificates()
	Run(ctx context.Context, listeners map[string]net.Listener) error
}

// CertCheckInterval is how often Serve looks whether the certificate files changed.
const CertCheckInterval = 10 * time.Second

// Serve runs the server newServer makes on d.Listeners until SIGTERM or SIGINT, and
// reloads its certificates on every SIGHUP (master passes one on when a reload leaves
// the daemon's settings alone) and whenever their files change. SIGHUP is caught before
// newServer runs, for its default action is to end the process. A server that cannot start or fails to serve ends the
// process with status 1, having said why in the log.
func (d *Daemon) Serve(newServer func() (Server, error)) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, stop := d.Context()
	defer stop()
	srv, err := newServer()
	if err != nil {
		d.Log.Error("cannot start", "err", err)
		os.Exit(1)
	}
	go func() {
		for range hup {
			srv.ReloadCertificates()
		}
	}()
	// A certificate replaced on disk (mailctl cert renew, certbot) is served without a
	// SIGHUP: the files are looked at every CertCheckInterval.
	tlsconf.Watch(ctx, d.Config.TLS, CertCheckInterval, srv.ReloadCertificates)
	if err := srv.Run(ctx, d.Listeners); err != nil {
		d.Log.Error("serving", "err", err)
		os.Exit(1)
	}
}

// ErrNoListener is Accept's error when none of the listeners is served.
var ErrNoListener = errors.New("no listener to serve")

// Accept serves the listeners, in the order of their names: open says how to serve the
// named one, with a function that accepts on it until it is closed, or returns nil for
// a listener the daemon does not serve (it says why in the log), which Accept closes:
// clients are better refused than left hanging in the backlog. Each listener served is
// logged with its address. stop closes those listeners and waits until every accept
// function has returned. With no listener served, Accept returns ErrNoListener.
func Accept(log *slog.Logger, listeners map[string]net.Listener, open func(name string) func(net.Listener)) (stop func(), err error) {
	var serving []net.Listener
	var accepting sync.WaitGroup
	for _, name := range slices.Sorted(maps.Keys(listeners)) {
		l := listeners[name]
		serve := open(name)
		if serve == nil {
			l.Close()
			continue
		}
		serving = append(serving, l)
		accepting.Go(func() { serve(l) })
		log.Info("listening", "listener", name, "addr", l.Addr().String())
	}
	if len(serving) == 0 {
		return nil, ErrNoListener
	}
	return func() {
		for _, l := range serving {
			l.Close()
		}
		accepting.Wait()
	}, nil
}

// Unix returns the inherited Unix listener with the given name, or exits.
func (d *Daemon) Unix(name string) *net.UnixListener {
	l, ok := d.Listeners[name].(*net.UnixListener)
	if !ok {
		d.Log.Error("no inherited unix socket", "name", name)
		os.Exit(1)
	}
	return l
}

// Listeners returns the sockets passed the systemd way: descriptors 3 .. 3+LISTEN_FDS-1,
// named by LISTEN_FDNAMES, meant for this process if LISTEN_PID is its pid (see
// sd_listen_fds(3)). The variables are removed from the environment so that children do
// not take them too.
func Listeners() (map[string]net.Listener, error) {
	out := map[string]net.Listener{}
	pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID"))
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if n <= 0 || pid != os.Getpid() {
		return out, nil
	}
	for i := 0; i < n; i++ {
		fd := 3 + i
		unix.CloseOnExec(fd)
		name := strconv.Itoa(fd)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		f := os.NewFile(uintptr(fd), name)
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("inherited descriptor %d (%s): %w", fd, name, err)
		}
		out[name] = l
	}
	return out, nil
}

// Trust returns an ipc Allow function that admits root, this process's own uid, and the
// users the named services run as. In a development instance every daemon runs as one
// user, so that user is trusted.
func Trust(cfg *config.Config, services ...string) func(ipc.Cred) bool {
	uids := serviceUIDs(cfg, services...)
	uids[0], uids[os.Getuid()] = true, true
	return func(c ipc.Cred) bool { return uids[c.UID] }
}

// Confined returns a function that tells a peer which can only be the named service:
// one running as that service's user when that user is neither root, nor this
// process's, nor the user of any of the others. A socket that admits several services
// uses it to hold one of them to less (cleanup takes only reports from spamd). In a
// development instance, where every daemon runs as one user, it tells nobody.
func Confined(cfg *config.Config, service string, others ...string) func(ipc.Cred) bool {
	uids := serviceUIDs(cfg, service)
	delete(uids, 0)
	delete(uids, os.Getuid())
	for id := range serviceUIDs(cfg, others...) {
		delete(uids, id)
	}
	return func(c ipc.Cred) bool { return uids[c.UID] }
}

// serviceUIDs returns the uids of the users the named services run as.
func serviceUIDs(cfg *config.Config, services ...string) map[int]bool {
	uids := map[int]bool{}
	for _, s := range services {
		if id, ok := serviceUID(cfg, s); ok {
			uids[id] = true
		}
	}
	return uids
}

// Admin returns an Allow function for control sockets: root, this process's own uid, and
// members of the configured admin group.
func Admin(cfg *config.Config) func(ipc.Cred) bool {
	gid := -1
	if g, err := user.LookupGroup(cfg.AdminGroup); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	self := os.Getuid()
	return func(c ipc.Cred) bool {
		uid := c.UID
		if uid == 0 || uid == self {
			return true
		}
		if gid < 0 {
			return false
		}
		u, err := user.LookupId(strconv.Itoa(uid))
		if err != nil {
			return false
		}
		groups, err := u.GroupIds()
		if err != nil {
			return false
		}
		for _, g := range groups {
			if g == strconv.Itoa(gid) {
				return true
			}
		}
		return false
	}
}

// Only returns an Allow function that admits the user the daemon service runs as, and
// nobody else (not root, not this daemon's own user). self names the calling daemon: when
// it does not run as its configured user, master is not root and every daemon runs as
// one user (ARCHITECTURE.md rule 5), which cannot be told apart from another; that user
// is then admitted too.
func Only(cfg *config.Config, self, service string) func(ipc.Cred) bool {
	uids := serviceUIDs(cfg, service)
	if id, ok := serviceUID(cfg, self); !ok || id != os.Getuid() {
		uids[os.Getuid()] = true
	}
	return func(c ipc.Cred) bool { return uids[c.UID] }
}

// SameUser reports whether the named service runs as the user of this process, the
// service self: always in a development instance, where every daemon runs as one user
// (see Only); under a root master when both are configured with the same user.
func SameUser(cfg *config.Config, self, service string) bool {
	if id, ok := serviceUID(cfg, self); !ok || id != os.Getuid() {
		return true
	}
	id, ok := serviceUID(cfg, service)
	return ok && id == os.Getuid()
}

// serviceUID is the uid of the user the named service runs as under a root master.
func serviceUID(cfg *config.Config, service string) (int, bool) {
	svc := cfg.Service(service)
	if svc == nil {
		return 0, false
	}
	u, err := user.Lookup(svc.User)
	if err != nil {
		return 0, false
	}
	id, err := strconv.Atoi(u.Uid)
	return id, err == nil
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/daemon"
	"postern/pkg/ipc"
	"postern/pkg/maildir"
	"postern/pkg/metrics"
	"postern/pkg/quickack"
	"postern/pkg/tlsconf"
)

// Listener names, as master passes them in LISTEN_FDNAMES.
const (
	listenIMAP  = "imap"  // port 143, STARTTLS (RFC 9051 §6.2.1)
	listenIMAPS = "imaps" // port 993, implicit TLS (RFC 8314 §3.3)
	listenPOP3  = "pop3"  // port 110, STLS (RFC 1939, RFC 2595 §4)
	listenPOP3S = "pop3s" // port 995, implicit TLS (RFC 8314 §3.3)
)

// conn is a session of either protocol, as the server tracks it to end it at shutdown,
// or when its account is disabled or deleted (revoke, with the reason to tell the client).
type conn interface {
	shutdown()
	revoke(reason string)
}

// Server is the IMAP server: it accepts connections and runs one session (one
// goroutine) per connection.
type Server struct {
	log      *slog.Logger
	auth     *auth.Client
	tls      *tls.Config
	certs    *tlsconf.Store
	mailRoot string
	hostname string

	maxLine        int
	maxMessage     int64
	loginTimeout   time.Duration
	idleTimeout    time.Duration
	maxConns       int
	maxConnsPerIP  int
	maxBadCommands int

	watcher *watcher
	logins  *loginCache
	// webPeer admits httpd's user to auth.WebMechanism.
	webPeer func(ipc.Cred) bool
	// spam tells spamd what users move into and out of Junk; nil without spamd.
	spam *spamLearner

	mu       sync.Mutex
	accounts map[string]*Account
	perIP    map[netip.Addr]int
	sessions map[conn]struct{} // IMAP and POP3 sessions
	// bound maps each logged-in session to its account's address (see bind).
	bound map[conn]string
	// gen counts the account changes heard from authd and the subscriptions lost;
	// authLive says whether the subscription is up (see accountWatch).
	gen      uint64
	authLive bool
	authPath string
	conns    atomic.Int64
	nextID   atomic.Uint64
	wg       sync.WaitGroup
	stopping atomic.Bool
}

// New returns a server configured by cfg.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	c := cfg.IMAPD
	s := &Server{
		log:            log,
		auth:           auth.NewClient(cfg.PrivateSocket("auth")),
		mailRoot:       cfg.MailDir(),
		hostname:       cfg.Hostname,
		maxLine:        c.MaxLineLength,
		maxMessage:     int64(c.MaxMessageSize),
		loginTimeout:   c.LoginTimeout.D(),
		idleTimeout:    c.IdleTimeout.D(),
		maxConns:       c.MaxConnections,
		maxConnsPerIP:  c.MaxConnectionsPerIP,
		maxBadCommands: 20,
		accounts:       map[string]*Account{},
		perIP:          map[netip.Addr]int{},
		sessions:       map[conn]struct{}{},
		bound:          map[conn]string{},
		authPath:       cfg.PrivateSocket("auth"),
		logins:         newLoginCache(),
		webPeer:        daemon.Only(cfg, "imapd", "httpd"),
	}
	if sd := cfg.Service("spamd"); sd != nil && sd.Enable && cfg.Spamd.Enable {
		s.spam = newSpamLearner(cfg.PrivateSocket("spamd"), log)
	}
	certs, err := tlsconf.Load(cfg.TLS)
	if err != nil {
		log.Warn("no TLS certificate: STARTTLS not offered, imaps not served, logins only from loopback", "err", err)
	} else {
		s.certs, s.tls = certs, certs.ServerConfig()
	}
	w, err := newWatcher(log)
	if err != nil {
		log.Warn("no inotify: looking for new mail in open folders every second", "err", err)
		go s.poll()
	}
	s.watcher = w
	return s, nil
}

// ReloadCertificates reads the TLS certificates again (on SIGHUP): new connections get
// the new ones, those in progress keep theirs. On error the old ones stay in use.
func (s *Server) ReloadCertificates() {
	if s.certs == nil {
		s.log.Warn("SIGHUP: no certificate was loaded at start; restart imapd to add TLS")
		return
	}
	if err := s.certs.Reload(); err != nil {
		s.log.Error("reloading TLS certificates failed, keeping the old ones", "err", err)
		return
	}
	s.log.Info("TLS certificates reloaded", "names", strings.Join(s.certs.Names(), ","))
}

// Run serves the "imap" and "imaps" listeners, and POP3's "pop3" and "pop3s", until ctx
// is done, then ends every session (IMAP with BYE, RFC 3501 §7.1.5) and returns.
func (s *Server) Run(ctx context.Context, listeners map[string]net.Listener) error {
	stop, err := daemon.Accept(s.log, listeners, func(name string) func(net.Listener) {
		switch name {
		case listenIMAP, listenPOP3:
			return func(l net.Listener) { s.acceptLoop(l, name, false) }
		case listenIMAPS, listenPOP3S:
			if s.tls == nil {
				s.log.Error("not serving implicit TLS without a certificate", "listener", name)
				return nil
			}
			return func(l net.Listener) { s.acceptLoop(l, name, true) }
		}
		s.log.Warn("closing unknown listener", "listener", name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("imapd: %w (want imap, imaps, pop3 or pop3s)", err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		auth.Watch(wctx, s.authPath, s.log, accountWatch{s})
	}()
	<-ctx.Done()
	wcancel()
	<-watched
	s.stopping.Store(true)
	stop()
	s.mu.Lock()
	for sess := range s.sessions {
		sess.shutdown()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.log.Warn("sessions still running at shutdown")
	}
	s.mu.Lock()
	for _, a := range s.accounts {
		a.db.Close()
	}
	s.mu.Unlock()
	s.auth.Close()
	s.watcher.close()
	return nil
}

// poll stands in for inotify when the kernel gives none (fs.inotify.max_user_instances
// reached): every second it looks into new/ of the folders open.
func (s *Server) poll() {
	for range time.Tick(time.Second) {
		if s.stopping.Load() {
			return
		}
		var boxes []*Mailbox
		s.mu.Lock()
		for _, a := range s.accounts {
			a.mu.Lock()
			for _, mb := range a.boxes {
				boxes = append(boxes, mb)
			}
			a.mu.Unlock()
		}
		s.mu.Unlock()
		for _, mb := range boxes {
			mb.scanNew()
		}
	}
}

func (s *Server) acceptLoop(l net.Listener, name string, implicitTLS bool) {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off as net/http does.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			s.log.Warn("accept", "listener", name, "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		metrics.Inc(metrics.Connections, "daemon", "imapd", "listener", name)
		s.start(c, name, implicitTLS)
	}
}

// start runs a session for c unless a connection limit refuses it.
func (s *Server) start(c net.Conn, listener string, implicitTLS bool) {
	ip := remoteIP(c)
	s.mu.Lock()
	if int(s.conns.Load()) >= s.maxConns || (!ip.IsLoopback() && s.perIP[ip] >= s.maxConnsPerIP) {
		s.mu.Unlock()
		c.SetWriteDeadline(time.Now().Add(time.Second))
		switch {
		case implicitTLS:
		case listener == listenPOP3:
			// RFC 2449 §8.1.2 and RFC 3206 §4: a temporary refusal.
			c.Write([]byte("-ERR [SYS/TEMP] Too many connections, try again later\r\n"))
		default:
			// RFC 3501 §7.1.5: BYE instead of a greeting.
			c.Write([]byte("* BYE [UNAVAILABLE] Too many connections, try again later\r\n"))
		}
		c.Close()
		s.log.Info("connection refused: too many", "client", ip.String())
		return
	}
	s.conns.Add(1)
	s.perIP[ip]++
	// Every read ACKs at once: a client that sends an APPEND literal and its closing
	// CRLF in two writes with Nagle on would otherwise wait 40 ms per command for our
	// delayed ACK (see package quickack).
	var sess interface {
		conn
		serve()
	}
	if listener == listenPOP3 || listener == listenPOP3S {
		sess = newPOP3Session(s, quickack.Wrap(c), ip, listener, implicitTLS)
	} else {
		sess = newSession(s, quickack.Wrap(c), ip, listener, implicitTLS)
	}
	s.sessions[sess] = struct{}{}
	metrics.SetGauge(metrics.Sessions, float64(len(s.sessions)), "daemon", "imapd")
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		sess.serve()
		s.mu.Lock()
		delete(s.sessions, sess)
		delete(s.bound, sess)
		metrics.SetGauge(metrics.Sessions, float64(len(s.sessions)), "daemon", "imapd")
		if s.perIP[ip]--; s.perIP[ip] <= 0 {
			delete(s.perIP, ip)
		}
		s.mu.Unlock()
		s.conns.Add(-1)
	}()
}

func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// openAccount returns the account of addr, whose Maildir is root, opening its index.
// Each call is matched by a closeAccount.
func (s *Server) openAccount(addr, root string, quota int64) (*Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[addr]; a != nil {
		a.mu.Lock()
		a.refs++
		a.quota.Store(quota)
		a.mu.Unlock()
		return a, nil
	}
	// Defense in depth, as local does: authd names Maildirs under the mail root only.
	rel, err := filepath.Rel(s.mailRoot, root)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || !filepath.IsAbs(root) {
		return nil, fmt.Errorf("maildir %q lies outside the mail directory %s", root, s.mailRoot)
	}
	// Every account has its INBOX and the special-use folders (a new account may
	// have had no mail yet); Create keeps what exists.
	if err := maildir.Create(root, maildir.DefaultFolders); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(root, indexFile), 0o600, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("opening index: %w", err)
	}
	a := &Account{srv: s, addr: addr, root: root, db: db, refs: 1, boxes: map[string]*Mailbox{},
		log: s.log.With("user", addr)}
	a.quota.Store(quota)
	a.subscribeDefaults()
	s.accounts[addr] = a
	return a, nil
}

func (s *Server) closeAccount(a *Account) {
	s.mu.Lock()
	a.mu.Lock()
	a.refs--
	a.mu.Unlock()
	s.mu.Unlock()
	s.closeIdle(a)
}

// closeIdle closes the index of an account that no session uses any more. Its folders
// stay open while their files are still being renamed for flag changes (renameFiles),
// so that a session that comes meanwhile finds the folders as they are, not loaded a
// second time beside the renames.
func (s *Server) closeIdle(a *Account) {
	if a.renaming() {
		go func() {
			a.waitRenames()
			s.closeIdle(a)
		}()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a.mu.Lock()
	idle := a.refs == 0
	a.mu.Unlock()
	if !idle || s.accounts[a.addr] != a || s.stopping.Load() || a.renaming() {
		return // in use again, closed already, or closed by Run at shutdown
	}
	a.closeBoxes()
	delete(s.accounts, a.addr)
	if err := a.db.Close(); err != nil {
		s.log.Warn("closing index", "user", a.addr, "err", err)
	}
}

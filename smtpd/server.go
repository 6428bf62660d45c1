package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/daemon"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/metrics"
	"postern/pkg/ratelimit"
	"postern/pkg/spamcheck"
	mailstats "postern/pkg/stats"
	"postern/pkg/tlsconf"
)

// statsReport is how often smtpd sends its counts to qmgr.
const statsReport = 10 * time.Second

// Listener names, as master passes them in LISTEN_FDNAMES.
const (
	listenSMTP        = "smtp"
	listenSubmission  = "submission"
	listenSubmissions = "submissions"
)

// listenerPolicy says how sessions on one listener behave.
type listenerPolicy struct {
	name string
	// implicitTLS: TLS from the first octet, no STARTTLS (RFC 8314 §3.3).
	implicitTLS bool
	// submission: a message submission port (RFC 6409). Only authenticated users may
	// send mail there; AUTH (RFC 4954) is offered on it, inside TLS.
	submission bool
}

var listenerPolicies = map[string]listenerPolicy{
	listenSMTP:        {name: listenSMTP},
	listenSubmission:  {name: listenSubmission, submission: true},
	listenSubmissions: {name: listenSubmissions, submission: true, implicitTLS: true},
}

// Server is the SMTP server: it accepts connections on its listeners and runs one
// session per connection. Messages go to cleanup, recipient questions to authd.
type Server struct {
	log     *slog.Logger
	auth    *auth.Client
	cleanup *enqueue.Client
	// webPeer admits httpd's user to auth.WebMechanism (see fromWeb).
	webPeer func(ipc.Cred) bool
	// tls is nil when no certificate could be loaded: STARTTLS is then not offered
	// and the submissions listener is not served. Its certificates come from certs at
	// each handshake, so that Reload applies to new connections.
	tls   *tls.Config
	certs *tlsconf.Store
	// clientRate counts the per-client messages and recipients, connRate the
	// per-client connections (keyed by ratelimit.Site), in smtpd's memory: smtpd is one
	// process. The per-account submission rates are authd's.
	clientRate *ratelimit.Limiter
	connRate   *ratelimit.Limiter
	// accountRates: [submission] sets hourly limits, which authd counts.
	accountRates bool
	// stats gathers the refusals (mailstats.Rejected) and reports them to qmgr, which
	// keeps the delivery statistics.
	stats *mailstats.Reporter
	// greylist asks spamd about greylisting on port 25 ([spamd] greylist); nil: off.
	greylist *spamcheck.Client

	hostname   string
	postmaster string // the address <postmaster> stands for (RFC 5321 §4.5.1)

	timeout     time.Duration
	dataTimeout time.Duration
	grace       time.Duration
	maxSize     int64
	maxLine     int
	maxRcpts    int
	maxErrors   int
	maxConns    int
	maxPerIP    int
	maxPerNet   int
	maxUnknown  int
	exempt      []netip.Prefix
	greetDelay  time.Duration
	// stressAt is the number of sessions from which smtpd is under stress and waits
	// stressTimeout for a command instead of timeout.
	stressAt      int
	stressTimeout time.Duration
	nsessions     atomic.Int32

	r hostReplies

	// draining is set when the server stops: sessions end at their next command
	// outside a transaction.
	draining atomic.Bool

	mu       sync.Mutex
	sessions map[*session]struct{}
	perIP    map[netip.Addr]int
	perNet   map[netip.Prefix]int
	wg       sync.WaitGroup
}

// New returns a server configured by cfg. Its clients of cleanup and authd pool their
// connections across sessions.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		log:         log,
		auth:        auth.NewClient(cfg.PrivateSocket("auth")),
		webPeer:     daemon.Only(cfg, "smtpd", "httpd"),
		cleanup:     enqueue.NewClient(cfg.PrivateSocket("cleanup")),
		stats:       mailstats.NewReporter(cfg.PrivateSocket("qmgr"), log),
		hostname:    cfg.Hostname,
		postmaster:  "postmaster@" + cfg.MyDomain(),
		timeout:     cfg.SMTPD.Timeout.D(),
		dataTimeout: cfg.SMTPD.DataTimeout.D(),
		grace:       cfg.SMTPD.ShutdownGrace.D(),
		maxSize:     int64(cfg.SMTPD.MaxMessageSize),
		maxLine:     cfg.SMTPD.MaxLineLength,
		maxRcpts:    cfg.SMTPD.MaxRecipients,
		maxErrors:   cfg.SMTPD.MaxErrors,
		maxConns:    cfg.SMTPD.MaxConnections,
		maxPerIP:    cfg.SMTPD.MaxConnectionsPerIP,
		maxPerNet:   cfg.SMTPD.MaxConnectionsPerNet,
		maxUnknown:  cfg.SMTPD.MaxUnknownRecipients,
		greetDelay:  cfg.SMTPD.GreetDelay.D(),
		sessions:    map[*session]struct{}{},
		perIP:       map[netip.Addr]int{},
		perNet:      map[netip.Prefix]int{},
	}
	s.stressAt = max(cfg.SMTPD.MaxConnections*cfg.SMTPD.StressThreshold/100, 1)
	s.stressTimeout = min(cfg.SMTPD.StressTimeout.D(), s.timeout)
	exempt, err := cfg.SMTPD.Exempt()
	if err != nil {
		return nil, fmt.Errorf("smtpd: %w", err)
	}
	s.exempt = exempt
	s.accountRates = cfg.Submission.MaxMessagesPerHour > 0 || cfg.Submission.MaxRecipientsPerHour > 0
	if sd := cfg.Service("spamd"); sd != nil && sd.Enable && cfg.Spamd.Greylist.Greylist {
		s.greylist = spamcheck.NewClient(cfg.PrivateSocket("spamd"), greylistTimeout)
	}
	s.clientRate = ratelimit.New(cfg.SMTPD.MessageRate, cfg.SMTPD.RecipientRate, time.Minute)
	s.connRate = ratelimit.New(cfg.SMTPD.ConnectionRate, 0, time.Minute)
	if s.timeout <= 0 || s.dataTimeout <= 0 {
		return nil, errors.New("smtpd: timeout and data_timeout must be positive")
	}
	certs, err := tlsconf.Load(cfg.TLS)
	if err != nil {
		log.Warn("no TLS certificate: STARTTLS not offered, submissions not served", "err", err)
	} else {
		s.certs, s.tls = certs, certs.ServerConfig()
	}
	s.r = newHostReplies(s.hostname, s.maxSize, s.tls != nil)
	return s, nil
}

// ReloadCertificates reads the TLS certificates again (on SIGHUP): new connections get
// the new ones, those in progress keep theirs. On error the old ones stay in use.
func (s *Server) ReloadCertificates() {
	if s.certs == nil {
		// Without a certificate at start the listeners were set up without TLS; a
		// restart (a configuration reload that changes [tls]) is needed.
		s.log.Warn("SIGHUP: no certificate was loaded at start; restart smtpd to add TLS")
		return
	}
	if err := s.certs.Reload(); err != nil {
		s.log.Error("reloading TLS certificates failed, keeping the old ones", "err", err)
		return
	}
	s.log.Info("TLS certificates reloaded", "names", strings.Join(s.certs.Names(), ","), "not_after", s.certs.NotAfter().UTC().Format(time.RFC3339))
}

// Close closes the idle connections to cleanup and authd.
func (s *Server) Close() {
	s.auth.Close()
	s.cleanup.Close()
}

// Run serves the listeners it knows ("smtp", "submission", "submissions"; any may be
// missing) until ctx is done, then shuts down gracefully: it stops accepting, lets
// transactions in progress finish for up to the shutdown grace, tells the other
// sessions 421 and closes them. It returns once every session has ended, or soon after
// the grace when some do not.
func (s *Server) Run(ctx context.Context, listeners map[string]net.Listener) error {
	stop, err := daemon.Accept(s.log, listeners, func(name string) func(net.Listener) {
		p, ok := listenerPolicies[name]
		switch {
		case !ok:
			s.log.Warn("closing unknown listener", "listener", name)
			return nil
		case p.implicitTLS && s.tls == nil:
			s.log.Error("not serving implicit TLS without a certificate", "listener", name)
			return nil
		}
		return func(l net.Listener) { s.acceptLoop(l, p) }
	})
	if err != nil {
		return fmt.Errorf("smtpd: %w (want smtp, submission or submissions)", err)
	}
	reporting, stopReporting := context.WithCancel(context.Background())
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		s.stats.Run(reporting, statsReport)
	}()
	<-ctx.Done()
	stop()
	s.shutdown()
	stopReporting() // after the sessions: their last refusals are sent too
	<-reported
	s.Close()
	return nil
}

// acceptLoop accepts connections until l is closed.
func (s *Server) acceptLoop(l net.Listener, p listenerPolicy) {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or similar: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "listener", p.name, "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		metrics.Inc(metrics.Connections, "daemon", "smtpd", "listener", p.name)
		s.admit(c, p)
	}
}

// isExempt reports whether ip is in smtpd.exempt_networks.
func (s *Server) isExempt(ip netip.Addr) bool {
	for _, p := range s.exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// stressed reports whether smtpd is under stress: its sessions near max_connections.
// Then a command gets stress_timeout instead of timeout, as in Postfix's stress mode,
// so that slow clients cannot hold the sessions that others need.
func (s *Server) stressed() bool {
	return int(s.nsessions.Load()) >= s.stressAt
}

// admit starts a session for c, or refuses it when a connection limit is reached.
// Local clients (webmail, tests, a local relay; smtpd.exempt_networks) are exempt from
// the per-client limits, as Postfix exempts $mynetworks.
func (s *Server) admit(c net.Conn, p listenerPolicy) {
	ip := remoteIP(c)
	exempt := s.isExempt(ip)
	network := ratelimit.Network(ip)
	s.mu.Lock()
	var refuse *reply
	switch {
	case len(s.sessions) >= s.maxConns:
		refuse = &s.r.tooManyConns
	case exempt:
	case s.perIP[ip] >= s.maxPerIP:
		refuse = &s.r.tooManyFromIP
	case s.perNet[network] >= s.maxPerNet:
		refuse = &s.r.tooManyFromNet
	case !s.connRate.Take(ratelimit.Site(ip), false):
		refuse = &s.r.connRate
	}
	if refuse != nil {
		s.mu.Unlock()
		s.log.Warn("connection refused", "client", ip.String(), "listener", p.name, "reply", refuse.text())
		metrics.Inc(metrics.Rejected, "command", "CONNECT", "code", cmp.Or(refuse.enhanced, "none"))
		go func() {
			// The greeting is the place for a refusal (RFC 5321 §3.1); 421 tells the
			// client to try again later.
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte(refuse.wire))
			c.Close()
		}()
		return
	}
	sess := newSession(s, c, p, ip)
	sess.exempt = exempt
	s.sessions[sess] = struct{}{}
	s.nsessions.Store(int32(len(s.sessions)))
	metrics.SetGauge(metrics.Sessions, float64(len(s.sessions)), "daemon", "smtpd")
	if len(s.sessions) == s.stressAt {
		// Under stress from now on: the sessions waiting for a command wait no
		// longer than a new one will.
		s.log.Warn("under stress: command timeout shortened", "sessions", len(s.sessions), "timeout", s.stressTimeout)
		for other := range s.sessions {
			if other != sess {
				other.stress()
			}
		}
	}
	s.perIP[ip]++
	s.perNet[network]++
	s.wg.Add(1)
	s.mu.Unlock()
	go sess.run()
}

// release forgets an ended session.
func (s *Server) release(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.nsessions.Store(int32(len(s.sessions)))
	metrics.SetGauge(metrics.Sessions, float64(len(s.sessions)), "daemon", "smtpd")
	if s.perIP[sess.ip]--; s.perIP[sess.ip] <= 0 {
		delete(s.perIP, sess.ip)
	}
	if n := ratelimit.Network(sess.ip); s.perNet[n] <= 1 {
		delete(s.perNet, n)
	} else {
		s.perNet[n]--
	}
	s.mu.Unlock()
	s.wg.Done()
}

// shutdown ends the sessions: idle ones at once, the others after their transaction,
// and all of them at the end of the grace.
func (s *Server) shutdown() {
	s.draining.Store(true)
	s.mu.Lock()
	n := len(s.sessions)
	for sess := range s.sessions {
		sess.interruptIfIdle()
	}
	s.mu.Unlock()
	if n > 0 {
		s.log.Info("shutting down", "sessions", n, "grace", s.grace)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(s.grace)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-timer.C:
	}
	s.mu.Lock()
	s.log.Warn("shutdown grace over, closing sessions", "sessions", len(s.sessions))
	for sess := range s.sessions {
		sess.raw.Close()
	}
	s.mu.Unlock()
	// A session waiting on cleanup ends when its exchange times out; do not wait for it.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// remoteIP returns the client's IP address (IPv4-mapped addresses unmapped).
func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

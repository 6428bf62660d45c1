package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/daemon"
	"postern/pkg/ipc"
	"postern/pkg/metrics"
	"postern/pkg/peeruid"
	"postern/pkg/sieve"
	"postern/pkg/tlsconf"
)

// Timeouts of a session: before login, and between commands after it.
const (
	loginTimeout   = time.Minute
	idleTimeout    = 10 * time.Minute
	maxLoginFails  = 3
	maxBadCommands = 10
)

// Server is the ManageSieve server (RFC 5804) of the "sieve" listener.
type Server struct {
	log      *slog.Logger
	auth     *auth.Client
	store    *Store
	certs    *tlsconf.Store
	tls      *tls.Config
	hostname string
	// webPeer admits httpd's user to auth.WebMechanism (see fromWeb).
	webPeer func(ipc.Cred) bool
	wg      sync.WaitGroup
}

// New makes the server from the configuration.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{log: log, auth: auth.NewClient(cfg.PrivateSocket("auth")), store: NewStore(cfg.SieveDir(), cfg.Sieve), hostname: cfg.Hostname,
		webPeer: daemon.Only(cfg, "sieved", "httpd")}
	certs, err := tlsconf.Load(cfg.TLS)
	if err != nil {
		log.Warn("no TLS certificate: STARTTLS not offered, logins only from loopback", "err", err)
	} else {
		s.certs, s.tls = certs, certs.ServerConfig()
	}
	return s, nil
}

// ReloadCertificates reads the TLS certificates again (SIGHUP).
func (s *Server) ReloadCertificates() {
	if s.certs == nil {
		return
	}
	if err := s.certs.Reload(); err != nil {
		s.log.Error("reloading TLS certificates failed, keeping the old ones", "err", err)
	}
}

// Run serves the "sieve" listener until ctx is done.
func (s *Server) Run(ctx context.Context, listeners map[string]net.Listener) error {
	// Only the network listener: control/sieved is served by the control server.
	tcp := map[string]net.Listener{}
	if l, ok := listeners["sieve"]; ok {
		tcp["sieve"] = l
	}
	stop, err := daemon.Accept(s.log, tcp, func(name string) func(net.Listener) {
		if name != "sieve" {
			s.log.Warn("no such listener", "name", name)
			return nil
		}
		return func(l net.Listener) {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					s.serve(ctx, c)
				}()
			}
		}
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	s.wg.Wait()
	return nil
}

type session struct {
	srv   *Server
	raw   net.Conn // the TCP connection, under TLS once STARTTLS is done
	conn  net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	ip    netip.Addr
	tls   bool
	user  string
	fails int
	log   *slog.Logger
	// clientLog is log before the login added the user to it.
	clientLog *slog.Logger
}

func (s *Server) serve(ctx context.Context, c net.Conn) {
	defer c.Close()
	ss := &session{srv: s, raw: c, conn: c, r: bufio.NewReader(c), w: bufio.NewWriter(c), log: s.log}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		ss.ip = ap.Addr().Unmap()
	}
	ss.log = s.log.With("client", ss.ip.String())
	ss.clientLog = ss.log
	go func() {
		<-ctx.Done()
		c.SetDeadline(time.Now()) // ends the session at shutdown
	}()
	ss.capabilities()
	ss.ok("", "Postern ManageSieve ready")
	for ctx.Err() == nil {
		ss.w.Flush()
		t := loginTimeout
		if ss.user != "" {
			t = idleTimeout
		}
		c.SetReadDeadline(time.Now().Add(t))
		cmd, err := readCommand(ss.r)
		if err != nil {
			if errors.Is(err, errProtocol) {
				ss.fails++
				ss.no("", err.Error())
				if ss.fails < maxBadCommands {
					continue
				}
			}
			if errors.Is(err, errTooLarge) || errors.Is(err, errProtocol) {
				ss.bye("", "Too much bad input")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() && ctx.Err() == nil {
				// RFC 5804 §1.2: BYE before the server closes the connection.
				ss.bye("", "Idle for too long")
			}
			ss.w.Flush()
			return
		}
		if !ss.dispatch(cmd) {
			ss.w.Flush()
			return
		}
	}
	ss.bye("", "Server shutting down")
	ss.w.Flush()
}

func (ss *session) line(s string) { ss.w.WriteString(s + "\r\n") }

// respond writes OK, NO or BYE with an optional response code and text (RFC 5804 §1.3).
func (ss *session) respond(kind, code, text string) {
	s := kind
	if code != "" {
		s += " (" + code + ")"
	}
	if text != "" {
		s += " " + quote(text)
	}
	ss.line(s)
}

func (ss *session) ok(code, text string)  { ss.respond("OK", code, text) }
func (ss *session) no(code, text string)  { ss.respond("NO", code, text) }
func (ss *session) bye(code, text string) { ss.respond("BYE", code, text) }

// secure tells whether passwords may be sent: over TLS, or from loopback.
func (ss *session) secure() bool { return ss.tls || ss.ip.IsLoopback() }

// capabilities writes the capability list (RFC 5804 §1.7).
func (ss *session) capabilities() {
	ss.line(`"IMPLEMENTATION" "Postern"`)
	ss.line(`"SIEVE" ` + quote(strings.Join(sieve.Extensions, " ")))
	if ss.user == "" {
		if ss.secure() {
			ss.line(`"SASL" "PLAIN"`)
		} else {
			ss.line(`"SASL" ""`)
		}
		if !ss.tls && ss.srv.tls != nil {
			ss.line(`"STARTTLS"`)
		}
	} else {
		ss.line(`"OWNER" ` + quote(ss.user))
	}
	ss.line(`"MAXREDIRECTS" "` + strconv.Itoa(ss.srv.store.Limits.Redirects) + `"`)
	// RFC 5804 §2.14.1.
	ss.line(`"UNAUTHENTICATE"`)
	ss.line(`"VERSION" "1.0"`)
}

// dispatch runs a command; false ends the session.
func (ss *session) dispatch(c *command) bool {
	nargs := func(min, max int) bool {
		if len(c.args) < min || len(c.args) > max {
			ss.no("", c.name+": wrong number of arguments")
			return false
		}
		return true
	}
	switch c.name {
	case "CAPABILITY":
		if nargs(0, 0) {
			ss.capabilities()
			ss.ok("", "")
		}
		return true
	case "NOOP":
		if nargs(0, 1) {
			if len(c.args) == 1 {
				// RFC 5804 §2.13: the tag comes back.
				ss.ok("TAG "+quote(c.args[0]), "Done")
			} else {
				ss.ok("", "Done")
			}
		}
		return true
	case "LOGOUT":
		ss.ok("", "Bye")
		return false
	case "STARTTLS":
		if !nargs(0, 0) {
			return true
		}
		if ss.tls || ss.srv.tls == nil || ss.user != "" {
			ss.no("", "STARTTLS is not available now")
			return true
		}
		ss.ok("", "Begin TLS negotiation")
		ss.w.Flush()
		if ss.r.Buffered() > 0 {
			// Text sent before the handshake could be injected: refuse it.
			ss.bye("", "Data after STARTTLS")
			return false
		}
		tc := tls.Server(ss.conn, ss.srv.tls)
		ss.conn.SetDeadline(time.Now().Add(loginTimeout))
		if err := tc.Handshake(); err != nil {
			ss.log.Info("TLS handshake failed", "err", err)
			return false
		}
		ss.conn.SetDeadline(time.Time{})
		ss.conn, ss.tls = tc, true
		ss.r, ss.w = bufio.NewReader(tc), bufio.NewWriter(tc)
		// RFC 5804 §2.2: the capabilities again, after the handshake.
		ss.capabilities()
		ss.ok("", "TLS active")
		return true
	case "AUTHENTICATE":
		if !nargs(1, 2) {
			return true
		}
		return ss.authenticate(c)
	}
	if ss.user == "" {
		ss.no("", "Log in first")
		return true
	}
	st := ss.srv.store
	switch c.name {
	case "UNAUTHENTICATE":
		// RFC 5804 §2.14.1: back to the non-authenticated state on the same
		// connection (TLS stays); a new AUTHENTICATE may follow.
		if nargs(0, 0) {
			ss.log.Info("unauthenticated")
			ss.user, ss.log = "", ss.clientLog
			ss.ok("", "")
		}
	case "LISTSCRIPTS":
		if !nargs(0, 0) {
			return true
		}
		list, err := st.List(ss.user)
		if err != nil {
			ss.fail(err)
			return true
		}
		for _, x := range list {
			if x.Active {
				ss.line(quote(x.Name) + " ACTIVE")
			} else {
				ss.line(quote(x.Name))
			}
		}
		ss.ok("", "")
	case "GETSCRIPT":
		if !nargs(1, 1) {
			return true
		}
		b, err := st.Get(ss.user, c.args[0])
		if err != nil {
			ss.fail(err)
			return true
		}
		ss.line("{" + strconv.Itoa(len(b)) + "}")
		ss.w.Write(b)
		ss.line("")
		ss.ok("", "")
	case "PUTSCRIPT":
		if nargs(2, 2) {
			if err := st.Put(ss.user, c.args[0], []byte(c.args[1])); err != nil {
				ss.fail(err)
				return true
			}
			ss.log.Info("script stored", "script", c.args[0])
			ss.ok("", "")
		}
	case "CHECKSCRIPT":
		if nargs(1, 1) {
			if _, err := ss.srv.store.Check([]byte(c.args[0])); err != nil {
				ss.fail(err)
				return true
			}
			ss.ok("", "")
		}
	case "HAVESPACE":
		if nargs(2, 2) {
			n, err := strconv.ParseInt(c.args[1], 10, 64)
			if err != nil || n < 0 {
				ss.no("", "HAVESPACE: bad size")
				return true
			}
			if err := st.HaveSpace(ss.user, c.args[0], n); err != nil {
				ss.fail(err)
				return true
			}
			ss.ok("", "")
		}
	case "SETACTIVE":
		if nargs(1, 1) {
			if err := st.SetActive(ss.user, c.args[0]); err != nil {
				ss.fail(err)
				return true
			}
			ss.log.Info("script activated", "script", c.args[0])
			ss.ok("", "")
		}
	case "DELETESCRIPT":
		if nargs(1, 1) {
			if err := st.Delete(ss.user, c.args[0]); err != nil {
				ss.fail(err)
				return true
			}
			ss.ok("", "")
		}
	case "RENAMESCRIPT":
		if nargs(2, 2) {
			if err := st.Rename(ss.user, c.args[0], c.args[1]); err != nil {
				ss.fail(err)
				return true
			}
			ss.ok("", "")
		}
	default:
		ss.no("", "Unknown command "+c.name)
	}
	return true
}

// fail answers a store or script error with its response code (RFC 5804 §1.3).
func (ss *session) fail(err error) {
	var se *sieve.Error
	switch {
	case errors.As(err, &se):
		ss.no("", se.Error())
	case errors.Is(err, errNoScript):
		ss.no("NONEXISTENT", "No such script")
	case errors.Is(err, errExists):
		ss.no("ALREADYEXISTS", "A script of that name exists")
	case errors.Is(err, errActive):
		ss.no("ACTIVE", "The script is active")
	case errors.Is(err, errScriptSize):
		ss.no("QUOTA/MAXSIZE", "The script is larger than the limit")
	case errors.Is(err, errScriptCount):
		ss.no("QUOTA/MAXSCRIPTS", "Too many scripts")
	case errors.Is(err, errQuota):
		ss.no("QUOTA", "Too many scripts, or too large")
	case errors.Is(err, errName):
		ss.no("", "Invalid script name")
	default:
		ss.log.Error("script store", "user", ss.user, "err", err)
		ss.no("TRYLATER", "Internal error")
	}
}

// authenticate runs SASL PLAIN (RFC 4616) through authd, with or without an initial
// response (RFC 5804 §2.1).
func (ss *session) authenticate(c *command) bool {
	if ss.user != "" {
		ss.no("", "Already logged in")
		return true
	}
	web := strings.EqualFold(c.args[0], auth.WebMechanism)
	if !strings.EqualFold(c.args[0], "PLAIN") && (!web || !ss.fromWeb()) {
		ss.no("", "Only PLAIN is supported")
		return true
	}
	if !ss.secure() {
		ss.no("ENCRYPT-NEEDED", "Use STARTTLS first")
		return true
	}
	var resp string
	if len(c.args) == 2 {
		resp = c.args[1]
	} else {
		ss.line(`""`)
		ss.w.Flush()
		l, err := readCommand(ss.r)
		if err != nil {
			return false
		}
		if len(l.args) != 0 {
			ss.no("", "Bad SASL response")
			return true
		}
		resp = l.raw()
	}
	if resp == "*" {
		ss.no("", "Authentication cancelled")
		return true
	}
	dec, err := base64.StdEncoding.DecodeString(resp)
	if web {
		return ss.authenticateWeb(dec, err)
	}
	parts := strings.Split(string(dec), "\x00")
	if err != nil || len(parts) != 3 {
		ss.no("", "Bad SASL PLAIN response")
		return true
	}
	authz, user, pass := parts[0], parts[1], parts[2]
	if authz != "" && !strings.EqualFold(authz, user) {
		ss.no("", "Authorization identity must be the user")
		return true
	}
	if user == "" || pass == "" || len(user) > 320 || len(pass) > 1024 {
		return ss.authFailed()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := auth.VerifyRequest{User: user, Password: pass}
	if ss.ip.IsValid() {
		req.RemoteAddr = ss.ip.String()
	}
	r, err := ss.srv.auth.Verify(ctx, req)
	switch {
	case err != nil:
		ss.log.Error("asking authd to verify a password", "err", err)
		ss.no("TRYLATER", "Authentication is unavailable, try again later")
		return true
	case r.Throttled:
		ss.log.Info("login throttled", "user", user, "retry_after", r.RetryAfter)
		ss.fails++
		ss.no("TRYLATER", fmt.Sprintf("Too many failed logins; try again in %d seconds", max(r.RetryAfter, 1)))
		return ss.fails < maxLoginFails
	case !r.OK:
		ss.log.Info("login failed", "user", user)
		return ss.authFailed()
	}
	return ss.loggedIn(r.Address, "")
}

// loggedIn starts the session of the account addr.
func (ss *session) loggedIn(addr, how string) bool {
	ss.user = addr
	ss.log = ss.log.With("user", ss.user)
	if how != "" {
		ss.log.Info("login", "tls", ss.tls, "with", how)
	} else {
		ss.log.Info("login", "tls", ss.tls)
	}
	ss.ok("", "Logged in")
	return true
}

// fromWeb reports whether the client is httpd: the other end of the connection is a
// socket of this host owned by httpd's user (pkg/peeruid). Only httpd may present a
// web session token (auth.WebMechanism), as imapd and smtpd hold it, so that a token
// stolen from it is useless; to anybody else the mechanism does not exist.
func (ss *session) fromWeb() bool {
	uid, err := peeruid.Of(ss.raw)
	if err != nil {
		ss.log.Info("web session login refused: the client is not local", "err", err)
		return false
	}
	if ss.srv.webPeer == nil || !ss.srv.webPeer(ipc.Cred{UID: uid}) {
		ss.log.Warn("web session login refused: the client is not httpd", "uid", uid)
		return false
	}
	return true
}

// authenticateWeb checks the message of auth.WebMechanism, dec (or its base64 error),
// with authd: the account's live web session token.
func (ss *session) authenticateWeb(dec []byte, derr error) bool {
	user, token, err := auth.ParseWebResponse(dec)
	if derr != nil || err != nil {
		ss.no("", "Bad "+auth.WebMechanism+" response")
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := ss.srv.auth.WebCheck(ctx, user, token)
	switch {
	case err != nil:
		ss.log.Error("asking authd to check a web session token", "err", err)
		ss.no("TRYLATER", "Authentication is unavailable, try again later")
		return true
	case !r.OK:
		ss.log.Info("web session token refused", "user", user)
		return ss.authFailed()
	}
	return ss.loggedIn(r.Address, "web session")
}

func (ss *session) authFailed() bool {
	metrics.Inc(metrics.AuthFailures, "daemon", "sieved", "service", "managesieve")
	ss.fails++
	ss.no("", "Authentication failed")
	if ss.fails >= maxLoginFails {
		ss.bye("", "Too many failed logins")
		return false
	}
	return true
}

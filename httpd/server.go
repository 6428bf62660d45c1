package main

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"postern/pkg/acmecert"
	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/daemon"
	"postern/pkg/dnscheck"
	"postern/pkg/tlsconf"
)

// The listeners master hands httpd.
const (
	listenHTTPS = "https"
	listenHTTP  = "http"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Server is the web server.
type Server struct {
	log      *slog.Logger
	cfg      *config.Config
	auth     *auth.Client
	certs    *tlsconf.Store
	tls      *tls.Config
	sessions *sessionStore
	tmpl     *template.Template
	handler  http.Handler
	// imapAddr and submitAddr are where imapd's "imap" and smtpd's "submission"
	// listeners are reached from this host.
	imapAddr, submitAddr string
	// sieveAddr is where sieved's "sieve" listener is reached from this host, for the
	// account page's out-of-office reply (sieve.go).
	sieveAddr string
	// httpsPort is the port of the https listener, for the redirects from http.
	httpsPort string
	maxUpload int64
	// orders keeps the sorted and threaded message lists (listcache.go).
	orders orderCache
	// bodies keeps the sanitized bodies of the messages opened (bodycache.go).
	bodies *lruCache[bodyKey, *renderedBody]

	// dns checks the DKIM records of the panel (dnsChecker).
	dnsOnce sync.Once
	dns     *dnscheck.Checker
	dnsErr  error
}

// New returns a server configured by cfg.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:       log,
		cfg:       cfg,
		auth:      auth.NewClient(cfg.PrivateSocket("auth")),
		tmpl:      tmpl,
		maxUpload: int64(cfg.HTTPD.MaxUpload),
		orders:    newOrderCache(orderCacheUIDs),
		bodies:    newBodyCache(bodyCacheBytes),
	}
	s.sessions = newSessionStore(cfg.HTTPD.IdleTimeout.D(), cfg.HTTPD.SessionLifetime.D(), s.endSession)
	if svc := cfg.Service("httpd"); svc != nil {
		if _, port, err := net.SplitHostPort(svc.Listen[listenHTTPS]); err == nil {
			s.httpsPort = port
		}
	}
	s.imapAddr = localAddr(cfg, "imapd", "imap")
	s.submitAddr = localAddr(cfg, "smtpd", "submission")
	s.sieveAddr = localAddr(cfg, "sieved", "sieve")
	if s.imapAddr == "" || s.submitAddr == "" {
		log.Warn("webmail needs imapd's imap listener and smtpd's submission listener, reached over loopback", "imap", s.imapAddr, "submission", s.submitAddr)
	} else if h, _, _ := net.SplitHostPort(s.imapAddr); h != "localhost" && !net.ParseIP(h).IsLoopback() {
		log.Warn("imapd's imap listener is not on loopback or a wildcard address: imapd refuses logins without TLS from elsewhere, so webmail will fail", "imap", s.imapAddr)
	}
	certs, err := tlsconf.Load(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate (httpd serves HTTPS only): %w", err)
	}
	s.certs = certs
	s.tls = certs.ServerConfig()
	s.tls.NextProtos = []string{"h2", "http/1.1"}
	s.handler = s.routes()
	return s, nil
}

// parseTemplates parses the pages, embedded in the program.
func parseTemplates() (*template.Template, error) {
	tmpl, err := template.New("").Funcs(templateFuncs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parsing the templates: %w", err)
	}
	return tmpl, nil
}

// localAddr is where this host reaches the named listener of a daemon: its address,
// with loopback in place of a wildcard; "" when the daemon does not have it.
func localAddr(cfg *config.Config, daemon, listener string) string {
	svc := cfg.Service(daemon)
	if svc == nil || !svc.Enable {
		return ""
	}
	host, port, err := net.SplitHostPort(svc.Listen[listener])
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// ReloadCertificates reads the TLS certificates again (on SIGHUP).
func (s *Server) ReloadCertificates() {
	if err := s.certs.Reload(); err != nil {
		s.log.Error("reloading TLS certificates failed, keeping the old ones", "err", err)
		return
	}
	s.log.Info("TLS certificates reloaded", "names", strings.Join(s.certs.Names(), ","))
}

// Run serves the "https" and "http" listeners until ctx is done.
func (s *Server) Run(ctx context.Context, listeners map[string]net.Listener) error {
	errlog := slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	var servers []*http.Server
	stop, err := daemon.Accept(s.log, listeners, func(name string) func(net.Listener) {
		var hs *http.Server
		switch name {
		case listenHTTPS:
			hs = &http.Server{Handler: s.handler, TLSConfig: s.tls, ErrorLog: errlog,
				ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		case listenHTTP:
			hs = &http.Server{Handler: http.HandlerFunc(s.redirect), ErrorLog: errlog,
				ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
		default:
			s.log.Warn("closing unknown listener", "listener", name)
			return nil
		}
		servers = append(servers, hs)
		return func(l net.Listener) {
			if name == listenHTTPS {
				l = tls.NewListener(l, s.tls)
			}
			if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				s.log.Error("serving", "listener", name, "err", err)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("httpd: %w (want https or http)", err)
	}
	go s.sessions.reap(ctx)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, hs := range servers {
		hs.Shutdown(sctx) // also ends the server-sent event streams (their contexts)
	}
	stop()
	s.sessions.closeAll()
	s.auth.Close()
	return nil
}

// redirect answers every plain HTTP request with a permanent redirect to the same path
// over HTTPS (RFC 6797 §7.2: an HSTS host redirects its insecure requests), except the
// ACME HTTP-01 challenges (RFC 8555 §8.3) that mailctl cert renew left in
// <data_dir>/acme, which it serves over plain HTTP as the CA fetches them.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request) {
	if acmecert.ServeWebroot(acmecert.WebrootDir(s.cfg.DataDir), w, r) {
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" || strings.ContainsAny(host, "/\\@ ") {
		host = s.cfg.Hostname
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 literal
	}
	if s.httpsPort != "" && s.httpsPort != "443" {
		host += ":" + s.httpsPort
	}
	w.Header().Set("Connection", "close")
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
}

// Content security policies: the application's pages load scripts, styles and
// images from httpd alone and may not be framed; a message body (bodyCSP) runs no
// script at all, loads nothing but its own inline styles and inline (data:) images,
// and may be framed by the application only.
const (
	appCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
	bodyCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; " +
		"base-uri 'none'; form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
	// bodyCSPImages is bodyCSP when the user allowed remote images for the message.
	bodyCSPImages = "default-src 'none'; style-src 'unsafe-inline'; img-src data: https: http:; frame-ancestors 'self'; " +
		"base-uri 'none'; form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
)

// secure sets the security headers every HTTPS response carries; a handler may replace
// the Content-Security-Policy with a stricter one.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// RFC 6797: browsers reach this host over HTTPS only from now on, for a year.
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Content-Security-Policy", appCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// routes is the URL map.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static := http.FileServerFS(staticFS)
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		static.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.Handle("POST /logout", s.authed(s.logout))
	mux.Handle("GET /{$}", s.authed(func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.Redirect(w, r, "/mail", http.StatusSeeOther)
	}))
	s.mailRoutes(mux)
	s.adminRoutes(mux)
	s.publicRoutes(mux)
	return secure(mux)
}

// clientIP is the address of the HTTP client, for authd's throttling and the logs.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// atoi parses a non-negative decimal number; bad input is 0.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

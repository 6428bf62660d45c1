package main

import (
	"context"
	"net/http"
	"strings"
	"time"

	"postern/pkg/auth"
	"postern/pkg/metrics"
)

// loginData fills templates/login.html.
type loginData struct {
	Token, Next, Error, User string
}

// loginPage shows the login form, with a fresh login CSRF token in a cookie and in the
// form (the double-submit pattern: a form posted from another site lacks the cookie's
// value).
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	tok := randomToken()
	setCookie(w, loginCookie, tok, 3600)
	s.render(w, http.StatusOK, "login.html", loginData{Token: tok, Next: safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a post-login destination only when it is a path of this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/mail"
	}
	return next
}

// login checks the password through authd, which throttles guessing as for IMAP and
// SMTP logins, and opens a session holding authd's token (not the password).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameOrigin(r) || !checkToken(r.PostFormValue("csrf"), c.Value) {
		s.log.Info("login form refused: stale token or another origin", "client", clientIP(r), "cookie", err == nil,
			"origin", r.Header.Get("Origin"), "host", r.Host)
		http.Error(w, "forbidden: the login form is stale; reload it", http.StatusForbidden)
		return
	}
	user, password := strings.TrimSpace(r.PostFormValue("user")), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	fail := func(status int, msg string) {
		tok := randomToken()
		setCookie(w, loginCookie, tok, 3600)
		s.render(w, status, "login.html", loginData{Token: tok, Next: next, Error: msg, User: user})
	}
	if user == "" || password == "" || len(user) > 320 || len(password) > maxPassword {
		fail(http.StatusUnauthorized, "Enter your address and password.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	res, err := s.auth.WebLogin(ctx, auth.WebLoginRequest{User: user, Password: password, RemoteAddr: clientIP(r)})
	switch {
	case err != nil:
		s.log.Error("asking authd for a web login", "err", err)
		fail(http.StatusServiceUnavailable, "Login is unavailable at the moment; try again later.")
		return
	case res.Throttled:
		w.Header().Set("Retry-After", itoa(res.RetryAfter))
		fail(http.StatusTooManyRequests, "Too many failed logins; try again in "+itoa(res.RetryAfter)+" seconds.")
		return
	case !res.OK || res.Token == "":
		metrics.Inc(metrics.AuthFailures, "daemon", "httpd", "service", "web")
		s.log.Info("web login failed", "user", user, "client", clientIP(r))
		fail(http.StatusUnauthorized, "Wrong address or password.")
		return
	}
	sess := s.sessions.add(res.Address, res.Token, clientIP(r))
	sess.pool = s.newPool(sess)
	s.log.Info("web login", "user", res.Address, "client", clientIP(r))
	setCookie(w, loginCookie, "", -1)
	setCookie(w, sessionCookie, sess.id, 0)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session, or with all=1 every session of the user, here and at authd
// (logout everywhere).
func (s *Server) logout(w http.ResponseWriter, r *http.Request, sess *session) {
	all := r.PostFormValue("all") == "1"
	ended := []*session{sess}
	if all {
		ended = s.sessions.removeUser(sess.user)
	} else {
		s.sessions.remove(sess)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if _, err := s.auth.WebLogout(ctx, sess.token, all); err != nil {
		s.log.Warn("revoking the web session at authd", "user", sess.user, "err", err)
	}
	for _, e := range ended {
		e.pool.close()
	}
	s.log.Info("web logout", "user", sess.user, "all", all, "sessions", len(ended))
	setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

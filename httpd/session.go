package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Cookie names. The __Host- prefix makes browsers accept the cookie only when it is
// Secure, has Path=/ and no Domain (RFC 6265bis §4.1.3.2), so no other host and no
// plain-HTTP page can set it.
const (
	sessionCookie = "__Host-postern"
	// loginCookie carries the token of the login form (login CSRF), before a session.
	loginCookie = "__Host-postern-login"
)

// session is a logged-in browser. It holds authd's web session token, never the
// password.
type session struct {
	id    string // the cookie's value
	user  string // the account's canonical address
	token string // authd's web session token, presented to imapd and smtpd
	csrf  string // the token every state-changing request must carry
	ip    string // the client address at login, for the logs

	created time.Time
	pool    *imapPool
	// streams counts the open event streams (each holds an IMAP connection).
	streams atomic.Int32
	// threads is set while the message list shows conversations (RFC 5256 threads).
	threads atomic.Bool

	mu       sync.Mutex
	lastSeen time.Time
}

// sessionStore holds the sessions, in memory: a restart of httpd logs everybody out
// (and authd forgets the tokens when it restarts).
type sessionStore struct {
	idle, lifetime time.Duration
	now            func() time.Time
	// end is called, outside the lock, for every session that ends other than by
	// logout: expiry, shutdown.
	end func(*session)

	mu sync.Mutex
	m  map[string]*session
}

func newSessionStore(idle, lifetime time.Duration, end func(*session)) *sessionStore {
	return &sessionStore{idle: idle, lifetime: lifetime, now: time.Now, end: end, m: map[string]*session{}}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// add makes a session for user with authd's token.
func (st *sessionStore) add(user, token, ip string) *session {
	now := st.now()
	s := &session{id: randomToken(), user: user, token: token, csrf: randomToken(), ip: ip, created: now, lastSeen: now}
	st.mu.Lock()
	st.m[s.id] = s
	st.mu.Unlock()
	return s
}

// expired reports whether s is past its idle timeout or lifetime.
func (st *sessionStore) expired(s *session, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Sub(s.lastSeen) >= st.idle || now.Sub(s.created) >= st.lifetime
}

// get returns the live session of the cookie value id, and counts the request as
// activity; nil when there is none.
func (st *sessionStore) get(id string) *session {
	st.mu.Lock()
	s := st.m[id]
	st.mu.Unlock()
	if s == nil {
		return nil
	}
	now := st.now()
	if st.expired(s, now) {
		if st.remove(s) && st.end != nil {
			st.end(s)
		}
		return nil
	}
	s.mu.Lock()
	s.lastSeen = now
	s.mu.Unlock()
	return s
}

// alive reports whether s is still a live session, without counting it as activity
// (an open event stream must not keep a session alive).
func (st *sessionStore) alive(s *session) bool {
	st.mu.Lock()
	live := st.m[s.id] == s
	st.mu.Unlock()
	return live && !st.expired(s, st.now())
}

// remove forgets s; false when it was gone already.
func (st *sessionStore) remove(s *session) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.m[s.id] != s {
		return false
	}
	delete(st.m, s.id)
	return true
}

// removeUser forgets every session of user and returns them.
func (st *sessionStore) removeUser(user string) []*session {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []*session
	for id, s := range st.m {
		if s.user == user {
			delete(st.m, id)
			out = append(out, s)
		}
	}
	return out
}

// reap ends the expired sessions every minute until ctx is done.
func (st *sessionStore) reap(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := st.now()
		var dead, live []*session
		st.mu.Lock()
		for id, s := range st.m {
			if st.expired(s, now) {
				delete(st.m, id)
				dead = append(dead, s)
			} else {
				live = append(live, s)
			}
		}
		st.mu.Unlock()
		for _, s := range live {
			s.pool.prune(time.Now())
		}
		for _, s := range dead {
			if st.end != nil {
				st.end(s)
			}
		}
	}
}

// closeAll ends every session (at shutdown).
func (st *sessionStore) closeAll() {
	st.mu.Lock()
	all := st.m
	st.m = map[string]*session{}
	st.mu.Unlock()
	for _, s := range all {
		if st.end != nil {
			st.end(s)
		}
	}
}

// count is the number of sessions.
func (st *sessionStore) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.m)
}

// setCookie sets a cookie as every cookie of httpd is set: Secure, HttpOnly,
// SameSite=Strict, for the whole site, for the browser's session only.
func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// checkToken compares a token from a form with the expected one in constant time.
func checkToken(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOrigin reports whether a state-changing request came from one of our pages. A
// browser that sends Sec-Fetch-Site (Fetch Metadata) says so itself; otherwise the
// Origin header, when it names an origin, must be this host. (Under Referrer-Policy
// no-referrer browsers send "Origin: null" with form posts; the CSRF token decides then.)
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Scheme == "https" && u.Host == r.Host
}

// authedHandler is a handler for logged-in users.
type authedHandler func(w http.ResponseWriter, r *http.Request, s *session)

// authed wraps h: without a live session GET requests go to the login page and others
// get 401; every POST must carry the session's CSRF token (form field "csrf", or the
// X-CSRF-Token header of the page's scripts) and come from our origin, else 403.
func (srv *Server) authed(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s *session
		if c, err := r.Cookie(sessionCookie); err == nil {
			s = srv.sessions.get(c.Value)
		}
		if s == nil {
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, srv.maxUpload)
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" {
				if ct := r.Header.Get("Content-Type"); len(ct) >= 19 && ct[:19] == "multipart/form-data" {
					// In memory: Landlock lets httpd write no temporary file, and
					// MaxBytesReader bounds the body to max_upload.
					if err := r.ParseMultipartForm(srv.maxUpload); err != nil {
						http.Error(w, "request too large or malformed", http.StatusRequestEntityTooLarge)
						return
					}
				}
				tok = r.PostFormValue("csrf")
			}
			if !sameOrigin(r) || !checkToken(tok, s.csrf) {
				srv.log.Warn("request refused: bad CSRF token or origin", "user", s.user, "path", r.URL.Path, "client", clientIP(r))
				http.Error(w, "forbidden: this form is stale or came from another site; reload the page", http.StatusForbidden)
				return
			}
		}
		h(w, r, s)
	})
}

// endSession closes what a session holds: its IMAP connections, and its token at authd.
func (srv *Server) endSession(s *session) {
	s.pool.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := srv.auth.WebLogout(ctx, s.token, false); err != nil {
		srv.log.Warn("revoking a web session token at authd", "user", s.user, "err", err)
	}
}

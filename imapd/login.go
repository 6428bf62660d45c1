package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"postern/pkg/auth"
	"postern/pkg/imap"
	"postern/pkg/ipc"
	"postern/pkg/metrics"
	"postern/pkg/peeruid"
)

// maxLoginFailures ends a session after this many wrong passwords (or throttled logins);
// authd throttles the guessing further, by client address, network and account.
const maxLoginFailures = 3

var errAuthFailed = errors.New("authentication failed")

// errAccountsChanging refuses a login, for now, when accounts kept changing while it was
// being checked (maxLoginRetries times).
var errAccountsChanging = errors.New("accounts changed while the login was checked")

const maxLoginRetries = 3

// throttledError is authd's refusal of a login after too many failures (from the client,
// its network, or for the account): the password was not checked.
type throttledError struct{ retryAfter int }

func (e throttledError) Error() string {
	return fmt.Sprintf("login throttled for %d seconds", e.retryAfter)
}

func (s *Session) login(c *imap.Command) {
	if !s.secure() {
		// RFC 3501 §6.2.3: LOGINDISABLED was advertised.
		s.no(c, "[PRIVACYREQUIRED] LOGIN is disabled without TLS; use STARTTLS first")
		return
	}
	s.finishLogin(c, s.verify(c.User, c.Password))
}

// verify asks authd; the remote IP lets it throttle guessing. On success the session
// has its account open.
func (s *Session) verify(user, password string) error {
	return s.loginRetrying(func() (loginEntry, uint64, error) {
		return s.srv.checkLogin(s.log, s.ip, user, password)
	})
}

// loginRetrying opens the account that check answers and binds the session to it
// (see Server.loginBound).
func (s *Session) loginRetrying(check func() (loginEntry, uint64, error)) error {
	return s.srv.loginBound(s, check,
		func(e loginEntry) error { return s.open(e.addr, e.maildir, e.quota) },
		func() {
			s.srv.closeAccount(s.acct)
			s.acct, s.user = nil, ""
		})
}

// loginBound opens, with open, the account that check answers and binds the session c
// to it (Server.bind), so that a change of the account from now on ends the session.
// If an account changed while check was asking (Server.gen moved), its answer may be
// stale: undo closes what open opened and check is asked again, a few times. IMAP and
// POP3 logins both go through it.
func (srv *Server) loginBound(c conn, check func() (loginEntry, uint64, error), open func(loginEntry) error, undo func()) error {
	for try := 0; ; try++ {
		e, gen, err := check()
		if err != nil {
			return err
		}
		if err := open(e); err != nil {
			return err
		}
		if srv.bind(c, e.addr, gen) {
			return nil
		}
		undo()
		if try == maxLoginRetries {
			return errAccountsChanging
		}
	}
}

// checkLogin verifies user's password for a client at ip, the same way for IMAP and
// POP3: through the login cache or authd, which throttles guessing by client address,
// network and account. It returns the account's address, Maildir and quota, or
// errAuthFailed, a throttledError, or the error that kept authd from answering; and the
// generation of account changes (Server.gen) its answer is as of, for Server.bind.
func (srv *Server) checkLogin(log *slog.Logger, ip netip.Addr, user, password string) (loginEntry, uint64, error) {
	if user == "" || password == "" || len(user) > 320 || len(password) > 1024 {
		return loginEntry{}, 0, errAuthFailed
	}
	gen, live := srv.generation()
	// The cache answers only the client address that logged in with these credentials:
	// a guesser elsewhere, throttled by authd, must not get its one right guess through
	// here. It answers only while authd's account changes reach imapd (see
	// accountWatch): without them a disabled account could log in from it.
	if live {
		if e, ok := srv.logins.get(user, password, ip); ok {
			return e, gen, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := auth.VerifyRequest{User: user, Password: password}
	if ip.IsValid() {
		req.RemoteAddr = ip.String()
	}
	r, err := srv.auth.Verify(ctx, req)
	if err != nil {
		log.Error("asking authd to verify a password", "err", err)
		return loginEntry{}, 0, err
	}
	if r.Throttled {
		log.Info("login throttled", "user", user, "client", ip.String(), "retry_after", r.RetryAfter)
		return loginEntry{}, 0, throttledError{retryAfter: max(r.RetryAfter, 1)}
	}
	if !r.OK {
		log.Info("login failed", "user", user, "client", ip.String())
		return loginEntry{}, 0, errAuthFailed
	}
	mb, err := srv.auth.Mailbox(ctx, r.Address)
	if err != nil {
		log.Error("asking authd for the mailbox", "user", r.Address, "err", err)
		return loginEntry{}, 0, err
	}
	if !mb.Exists || mb.Maildir == "" {
		return loginEntry{}, 0, errAuthFailed
	}
	// Logins with an app password are remembered too: revoking one drops the
	// account's entries at once (auth.ChangeAppPassword), as a password change does.
	srv.remember(gen, user, password, ip, mb.Address, mb.Maildir, mb.Quota)
	return loginEntry{addr: mb.Address, maildir: mb.Maildir, quota: mb.Quota}, gen, nil
}

func (s *Session) open(addr, root string, quota int64) error {
	a, err := s.srv.openAccount(addr, root, quota)
	if err != nil {
		s.log.Error("opening the mailbox", "user", addr, "err", err)
		return err
	}
	s.acct = a
	s.user = addr
	return nil
}

func (s *Session) finishLogin(c *imap.Command, err error) {
	var te throttledError
	switch {
	case err == nil:
		s.state = stateAuth
		s.log = s.log.With("user", s.user)
		s.log.Info("login", "client", s.ip.String(), "tls", s.tls)
		// RFC 9051 §6.2.3: the capabilities may change after login; send them.
		s.tagged(c.Tag, "OK", "[CAPABILITY "+s.capabilities()+"] Logged in")
	case errors.Is(err, errAuthFailed):
		metrics.Inc(metrics.AuthFailures, "daemon", "imapd", "service", "imap")
		s.fails++
		s.no(c, "[AUTHENTICATIONFAILED] Authentication failed")
		if s.fails >= maxLoginFailures {
			s.untagged("BYE Too many failed logins")
			s.state = stateLogout
		}
	case errors.As(err, &te):
		// RFC 5530 §3: UNAVAILABLE is a temporary failure, to be tried again later;
		// AUTHENTICATIONFAILED would tell the user that the password is wrong.
		s.fails++
		s.no(c, fmt.Sprintf("[UNAVAILABLE] Too many failed logins; try again in %d seconds", te.retryAfter))
		if s.fails >= maxLoginFailures {
			s.untagged("BYE Too many failed logins")
			s.state = stateLogout
		}
	default:
		s.no(c, "[UNAVAILABLE] Authentication is unavailable, try again later")
	}
}

// authenticate runs a SASL exchange (RFC 3501 §6.2.2, RFC 4959 for the initial
// response): PLAIN (RFC 4616) through go-sasl, and LOGIN, which go-sasl only offers as
// a client, through loginServer.
func (s *Session) authenticate(c *imap.Command) {
	if !s.secure() {
		s.no(c, "[PRIVACYREQUIRED] Authentication is disabled without TLS; use STARTTLS first")
		return
	}
	var verr error
	check := func(identity, user, password string) error {
		if identity != "" && identity != user {
			return errAuthFailed // no proxy authorization
		}
		verr = s.verify(user, password)
		return verr
	}
	var srv sasl.Server
	switch c.Mechanism {
	case "PLAIN":
		srv = sasl.NewPlainServer(check)
	case "LOGIN":
		srv = &loginServer{check: func(u, p string) error { return check("", u, p) }}
	case auth.WebMechanism:
		if !s.fromWeb() {
			s.no(c, "Unsupported authentication mechanism")
			return
		}
		srv = &webServer{check: func(user, token string) error {
			verr = s.verifyWeb(user, token)
			return verr
		}}
	default:
		s.no(c, "Unsupported authentication mechanism")
		return
	}
	var resp []byte
	if c.InitialResponse != "" {
		if c.InitialResponse == "=" {
			resp = []byte{}
		} else {
			b, err := base64.StdEncoding.DecodeString(c.InitialResponse)
			if err != nil {
				s.tagged(c.Tag, "BAD", "Invalid base64 in the initial response")
				return
			}
			resp = b
		}
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil || done {
			if err != nil && verr == nil {
				verr = errAuthFailed
			}
			s.finishLogin(c, verr)
			return
		}
		s.w.WriteString("+ ")
		s.w.WriteString(base64.StdEncoding.EncodeToString(challenge))
		s.w.WriteString("\r\n")
		s.flush()
		s.setReadDeadline()
		line, err := s.dec.ReadLine()
		if err != nil {
			s.tagged(c.Tag, "BAD", "Authentication aborted")
			s.state = stateLogout
			return
		}
		if string(line) == "*" {
			// RFC 3501 §6.2.2: the client cancels.
			s.tagged(c.Tag, "BAD", "Authentication cancelled")
			return
		}
		resp, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(line)))
		if err != nil {
			s.tagged(c.Tag, "BAD", "Invalid base64")
			return
		}
	}
}

// fromWeb reports whether the client is httpd: the other end of the connection is a
// socket of this host owned by httpd's user (see pkg/peeruid). Only httpd may present a
// web session token (auth.WebMechanism), so that a token stolen from it is useless.
func (s *Session) fromWeb() bool {
	uid, err := peeruid.Of(s.raw)
	if err != nil {
		s.log.Info("web session login refused: the client is not local", "client", s.ip.String(), "err", err)
		return false
	}
	if !s.srv.webPeer(ipc.Cred{UID: uid}) {
		s.log.Warn("web session login refused: the client is not httpd", "client", s.ip.String(), "uid", uid)
		return false
	}
	return true
}

// verifyWeb asks authd whether token is a live web session token of user.
func (s *Session) verifyWeb(user, token string) error {
	return s.loginRetrying(func() (loginEntry, uint64, error) {
		gen, _ := s.srv.generation()
		ctx, cancel := s.ctx()
		defer cancel()
		r, err := s.srv.auth.WebCheck(ctx, user, token)
		if err != nil {
			s.log.Error("asking authd to check a web session token", "err", err)
			return loginEntry{}, 0, err
		}
		if !r.OK {
			s.log.Info("web session token refused", "user", user)
			return loginEntry{}, 0, errAuthFailed
		}
		mb, err := s.srv.auth.Mailbox(ctx, r.Address)
		if err != nil {
			s.log.Error("asking authd for the mailbox", "user", r.Address, "err", err)
			return loginEntry{}, 0, err
		}
		if !mb.Exists || mb.Maildir == "" {
			return loginEntry{}, 0, errAuthFailed
		}
		return loginEntry{addr: mb.Address, maildir: mb.Maildir, quota: mb.Quota}, gen, nil
	})
}

// webServer is the server side of auth.WebMechanism: one message from the client, the
// user and the token.
type webServer struct {
	check func(user, token string) error
	done  bool
}

func (w *webServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	if w.done {
		return nil, true, sasl.ErrUnexpectedClientResponse
	}
	if resp == nil {
		return []byte{}, false, nil // RFC 4422 §5: an empty challenge asks for the message
	}
	w.done = true
	user, token, err := auth.ParseWebResponse(resp)
	if err != nil {
		return nil, true, err
	}
	return nil, true, w.check(user, token)
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login): it asks "Username:" then "Password:".
type loginServer struct {
	check    func(user, password string) error
	user     string
	step     int
	finished bool
}

func (l *loginServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if resp == nil || len(resp) == 0 {
			return []byte("Username:"), false, nil
		}
		l.user = string(resp)
		l.step = 2
		return []byte("Password:"), false, nil
	case 1:
		l.user = string(resp)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, true, sasl.ErrUnexpectedClientResponse
}

package main

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"postern/pkg/auth"
	"postern/pkg/ipc"
	"postern/pkg/metrics"
	"postern/pkg/peeruid"
	"postern/pkg/smtp"
)

// AUTH (RFC 4954) is offered on the submission listeners only, and only inside TLS
// (RFC 3207 §4.1 lets a server require it; RFC 8314 §3 wants cleartext passwords never
// sent in the clear). Passwords are checked by authd, which throttles guessing per
// client address, network, account and client, and account.

// saslMechanisms are the mechanisms offered, in the EHLO keyword's order.
var saslMechanisms = []string{sasl.Plain, sasl.Login}

// maxAuthLine bounds a line of the AUTH exchange: RFC 4954 §4 makes servers accept
// lines of at least 12288 octets.
const maxAuthLine = 12288

// Replies of the AUTH exchange (RFC 4954 §6 and §4).
var (
	rAuthOK          = newReply(235, "2.7.0", "Authentication successful")
	rAuthNeedsTLS    = newReply(530, "5.7.0", "Must issue a STARTTLS command first")
	rAuthTwice       = newReply(503, "5.5.1", "Error: already authenticated")
	rAuthInTx        = newReply(503, "5.5.1", "Error: AUTH not permitted during a mail transaction")
	rAuthSyntax      = newReply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
	rAuthMechanism   = newReply(504, "5.5.4", "Unrecognized authentication type")
	rAuthBadBase64   = newReply(501, "5.5.2", "Cannot decode response")
	rAuthCancelled   = newReply(501, "5.0.0", "Authentication cancelled")
	rAuthLineTooLong = newReply(500, "5.5.6", "Authentication exchange line is too long")
	rAuthBadResponse = newReply(501, "5.5.2", "Invalid authentication response")
	rAuthFailed      = newReply(535, "5.7.8", "Authentication credentials invalid")
	rAuthTempFail    = newReply(454, "4.7.0", "Temporary authentication failure")
)

// authThrottled is the reply to a login that authd refused after too many failures,
// with the seconds to wait.
func authThrottled(retryAfter int) reply {
	return newReply(454, "4.7.0", "Temporary authentication failure: too many failed logins, try again in %d seconds", max(retryAfter, 1))
}

// Errors of parseAuthArg.
var (
	errAuthSyntax = errors.New("bad AUTH syntax")
	errBadBase64  = errors.New("response is not base64")
)

// parseAuthArg splits the argument of AUTH into the mechanism (upper case) and the
// initial response, if any (RFC 4954 §4: "=" is an empty initial response). hasInitial
// tells a missing initial response from an empty one.
func parseAuthArg(arg string) (mech string, initial []byte, hasInitial bool, err error) {
	mech, rest, hasRest := strings.Cut(arg, " ")
	if mech == "" || len(mech) > 20 {
		return "", nil, false, errAuthSyntax // RFC 4422 §3.1: names are 1 to 20 characters
	}
	for i := 0; i < len(mech); i++ {
		c := mech[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", nil, false, errAuthSyntax
		}
	}
	mech = strings.ToUpper(mech)
	if !hasRest {
		return mech, nil, false, nil
	}
	if rest == "" || strings.Contains(rest, " ") {
		return "", nil, false, errAuthSyntax
	}
	if initial, err = decodeResponse(rest); err != nil {
		return "", nil, false, err
	}
	return mech, initial, true, nil
}

// decodeResponse decodes a client's response: base64, or "=" for an empty one.
func decodeResponse(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, errBadBase64 // encoding/base64 would skip them
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errBadBase64
	}
	return b, nil
}

// loginServer is the server side of the LOGIN mechanism (draft-murchison-sasl-login):
// the server asks "Username:" and "Password:", the client answers each. go-sasl only
// has its client side; it is obsolete but many clients (Outlook, older phones) still
// use it.
type loginServer struct {
	step         int
	username     string
	authenticate func(username, password string) error
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		// An initial response carries the user name (RFC 4954 §4 allows it for any
		// mechanism); fall through to asking for the password.
		fallthrough
	case 1:
		l.step = 2
		l.username = string(response)
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.authenticate(l.username, string(response))
	}
	return nil, true, sasl.ErrUnexpectedClientResponse
}

// authOutcome is what authd said about one attempt.
type authOutcome struct {
	asked     bool   // the mechanism got as far as a user name and password
	user      string // as given, for logs
	res       auth.VerifyResult
	err       error // authd could not answer
	authzDiff bool  // PLAIN named an authorization identity other than the user
}

var errAuthRefused = errors.New("authentication refused")

// verifier returns the check both mechanisms end in: authd's verdict on user and
// password from the client's address.
func (s *session) verifier(out *authOutcome) func(user, password string) error {
	return func(user, password string) error {
		out.asked, out.user = true, user
		ctx, cancel := context.WithTimeout(context.Background(), s.srv.timeout)
		defer cancel()
		req := auth.VerifyRequest{User: user, Password: password}
		if s.ip.IsValid() {
			req.RemoteAddr = s.ip.String()
		}
		out.res, out.err = s.srv.auth.Verify(ctx, req)
		if out.err != nil || !out.res.OK {
			return errAuthRefused
		}
		return nil
	}
}

// isWebMechanism reports whether the argument of AUTH names auth.WebMechanism.
func isWebMechanism(arg string) bool {
	mech, _, _ := strings.Cut(arg, " ")
	return strings.EqualFold(mech, auth.WebMechanism)
}

// fromWeb reports whether the client is httpd: the other end of the connection is a
// socket of this host owned by httpd's user (pkg/peeruid). Only httpd may present a web
// session token (auth.WebMechanism), so that a stolen token is useless. The answer is
// worked out once per session.
func (s *session) fromWeb() bool {
	if s.web == 0 {
		s.web = -1
		uid, err := peeruid.Of(s.raw)
		switch {
		case err != nil:
			s.log.Info("web session login refused: the client is not local", "err", err)
		case !s.srv.webPeer(ipc.Cred{UID: uid}):
			s.log.Warn("web session login refused: the client is not httpd", "uid", uid)
		default:
			s.web = 1
		}
	}
	return s.web == 1
}

// webVerifier returns the check of auth.WebMechanism: authd's verdict on the user's
// web session token.
func (s *session) webVerifier(out *authOutcome) func(user, token string) error {
	return func(user, token string) error {
		out.asked, out.user = true, user
		ctx, cancel := context.WithTimeout(context.Background(), s.srv.timeout)
		defer cancel()
		r, err := s.srv.auth.WebCheck(ctx, user, token)
		out.err = err
		out.res = auth.VerifyResult{OK: r.OK, Address: r.Address}
		if err != nil || !r.OK {
			return errAuthRefused
		}
		return nil
	}
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
		return []byte{}, false, nil // RFC 4954 §4: "334 " asks for the message
	}
	w.done = true
	user, token, err := auth.ParseWebResponse(resp)
	if err != nil {
		return nil, true, err
	}
	return nil, true, w.check(user, token)
}

// cmdAuth serves AUTH (RFC 4954 §4).
func (s *session) cmdAuth(arg string) {
	switch {
	case !s.policy.submission:
		// Port 25 is for mail to our domains; users submit on 587 and 465.
		s.reply(rNotImpl)
		return
	case s.tlsInfo == "" && !(isWebMechanism(arg) && s.fromWeb()):
		// httpd's web session tokens are the exception: they are good only on a
		// connection from httpd on this host, where nobody but root sees the traffic.
		s.reply(rAuthNeedsTLS)
		return
	case s.helo == "" || !s.esmtp:
		s.reply(rHeloFirst) // AUTH is an ESMTP extension: EHLO first
		return
	case s.authUser != "":
		s.reply(rAuthTwice) // RFC 4954 §4: further AUTH commands get 503
		return
	case s.tx != nil:
		s.reply(rAuthInTx)
		return
	}
	mech, initial, hasInitial, err := parseAuthArg(arg)
	switch {
	case errors.Is(err, errBadBase64):
		s.reply(rAuthBadBase64)
		return
	case err != nil:
		s.reply(rAuthSyntax)
		return
	}
	var out authOutcome
	check := s.verifier(&out)
	var srv sasl.Server
	switch mech {
	case sasl.Plain:
		srv = sasl.NewPlainServer(func(identity, username, password string) error {
			// RFC 4616 §2: an authorization identity other than the user's asks to act
			// as someone else, which Postern does not offer.
			if identity != "" && !strings.EqualFold(identity, username) {
				out.authzDiff, out.user = true, username
				return errAuthRefused
			}
			return check(username, password)
		})
	case sasl.Login:
		srv = &loginServer{authenticate: check}
	case auth.WebMechanism:
		if !s.fromWeb() {
			s.reply(rAuthMechanism)
			return
		}
		srv = &webServer{check: s.webVerifier(&out)}
	default:
		s.reply(rAuthMechanism)
		return
	}
	var response []byte
	if hasInitial {
		response = initial
	}
	for {
		challenge, done, err := srv.Next(response)
		if done || err != nil {
			s.authDone(mech, &out, err)
			return
		}
		// RFC 4954 §4: "334" SP base64 challenge.
		s.bw.WriteString("334 " + base64.StdEncoding.EncodeToString(challenge) + "\r\n")
		s.raw.SetReadDeadline(time.Now().Add(s.srv.timeout))
		line, rerr := smtp.ReadLine(s.br, maxAuthLine)
		switch {
		case errors.Is(rerr, smtp.ErrLineTooLong):
			s.reply(rAuthLineTooLong)
			return
		case rerr != nil:
			s.quit = true
			s.readFailed(rerr)
			return
		case string(line) == "*":
			s.reply(rAuthCancelled) // RFC 4954 §4: a cancelled exchange gets 501
			return
		}
		if response, err = decodeResponse(string(line)); err != nil {
			s.reply(rAuthBadBase64)
			return
		}
	}
}

// authDone answers the end of an AUTH exchange.
func (s *session) authDone(mech string, out *authOutcome, err error) {
	switch {
	case err == nil && out.res.OK:
	case out.authzDiff:
		metrics.Inc(metrics.AuthFailures, "daemon", "smtpd", "service", "smtp")
		s.reply(rAuthFailed, "method", mech, "user", clip(out.user), "why", "authorization identity differs")
		return
	case !out.asked:
		s.reply(rAuthBadResponse, "method", mech)
		return
	case out.err != nil:
		s.log.Warn("authd did not answer", "err", out.err)
		s.reply(rAuthTempFail, "method", mech)
		return
	case out.res.Throttled:
		// RFC 4954 §6: 454 4.7.0 is a temporary failure; the client is to try again
		// later, not to ask its user for another password (535 would say it is wrong).
		s.reply(authThrottled(out.res.RetryAfter), "method", mech, "user", clip(out.user))
		return
	default:
		metrics.Inc(metrics.AuthFailures, "daemon", "smtpd", "service", "smtp")
		s.reply(rAuthFailed, "method", mech, "user", clip(out.user))
		return
	}
	// The account's sending addresses are fetched once, for the MAIL FROM checks of
	// the session.
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.timeout)
	defer cancel()
	sa, serr := s.srv.auth.SendAs(ctx, out.res.Address)
	if serr != nil {
		s.log.Warn("sender addresses lookup failed", "user", out.res.Address, "err", serr)
		s.reply(rAuthTempFail, "method", mech)
		return
	}
	s.authUser, s.sendAs = out.res.Address, sa
	s.log.Info("authenticated", "method", mech, "user", s.authUser)
	s.reply(rAuthOK)
}

// clip shortens client-supplied text for logs.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100]
	}
	return s
}

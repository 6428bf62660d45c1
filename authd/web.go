package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"

	"postern/pkg/auth"
	"postern/pkg/ipc"
)

// WebSessions are the web session tokens authd has issued to httpd (see pkg/auth's
// OpWebLogin). They live in memory only: a restart of authd logs every webmail user out,
// which is the safe way to fail. Only a token's SHA-256 is kept, so that the tokens
// cannot be read back out of authd.
type WebSessions struct {
	// Idle and Lifetime are [httpd] idle_timeout and session_lifetime.
	Idle, Lifetime time.Duration
	// Now is the clock (tests replace it).
	Now func() time.Time

	mu     sync.Mutex
	tokens map[[sha256.Size]byte]*webToken
}

type webToken struct {
	address          string
	created, lastUse time.Time
}

// NewWebSessions returns an empty token store.
func NewWebSessions(idle, lifetime time.Duration) *WebSessions {
	return &WebSessions{Idle: idle, Lifetime: lifetime, Now: time.Now, tokens: map[[sha256.Size]byte]*webToken{}}
}

// Issue makes a new token for the account address and says when it expires at the
// latest.
func (w *WebSessions) Issue(address string) (string, time.Time) {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	token := base64.RawURLEncoding.EncodeToString(b)
	now := w.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pruneLocked(now)
	w.tokens[sha256.Sum256([]byte(token))] = &webToken{address: address, created: now, lastUse: now}
	return token, now.Add(w.Lifetime)
}

// live returns the entry of token if it has not expired; w.mu is held.
func (w *WebSessions) liveLocked(token string, now time.Time) (*webToken, [sha256.Size]byte) {
	h := sha256.Sum256([]byte(token))
	t := w.tokens[h]
	if t == nil {
		return nil, h
	}
	if now.Sub(t.lastUse) >= w.Idle || now.Sub(t.created) >= w.Lifetime {
		delete(w.tokens, h)
		return nil, h
	}
	return t, h
}

// Check reports whether token is a live token of the account address (canonical), and
// restarts its idle timer when it is.
func (w *WebSessions) Check(address, token string) bool {
	now := w.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	t, _ := w.liveLocked(token, now)
	if t == nil || subtle.ConstantTimeCompare([]byte(t.address), []byte(address)) != 1 {
		return false
	}
	t.lastUse = now
	return true
}

// Revoke forgets token, or with all every token of its account, and returns how many
// were forgotten.
func (w *WebSessions) Revoke(token string, all bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, h := w.liveLocked(token, w.Now())
	if t == nil {
		return 0
	}
	if !all {
		delete(w.tokens, h)
		return 1
	}
	n := 0
	for k, o := range w.tokens {
		if o.address == t.address {
			delete(w.tokens, k)
			n++
		}
	}
	return n
}

// RevokeAccount forgets every token of the account address (canonical), and returns
// how many were forgotten: the account was disabled or deleted.
func (w *WebSessions) RevokeAccount(address string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for k, o := range w.tokens {
		if o.address == address {
			delete(w.tokens, k)
			n++
		}
	}
	return n
}

// pruneLocked forgets the expired tokens; w.mu is held.
func (w *WebSessions) pruneLocked(now time.Time) {
	for k, t := range w.tokens {
		if now.Sub(t.lastUse) >= w.Idle || now.Sub(t.created) >= w.Lifetime {
			delete(w.tokens, k)
		}
	}
}

// webLogin serves auth.OpWebLogin, for httpd alone: the password check of verify, and a
// token when it is right.
func (a *Authd) webLogin(ctx context.Context, peer ipc.Cred, req *auth.WebLoginRequest) (any, error) {
	if !a.WebPeer(peer) {
		a.Log.Warn("web login refused: the peer is not httpd", "uid", peer.UID)
		return nil, ipc.Errorf("denied", "%s is for httpd only", auth.OpWebLogin)
	}
	v, err := a.verify(ctx, peer, &auth.VerifyRequest{User: req.User, Password: req.Password, RemoteAddr: req.RemoteAddr})
	if err != nil {
		return nil, err
	}
	res := auth.WebLoginResult{VerifyResult: v.(auth.VerifyResult)}
	if res.OK && res.AppPassword != "" {
		// An app password opens IMAP and SMTP for one device, not the web, where the
		// account page makes and revokes app passwords.
		a.Log.Info("web login refused: an app password", "user", res.Address, "app_password", res.AppPassword, "remote", clipKey(req.RemoteAddr))
		return auth.WebLoginResult{}, nil
	}
	if res.OK {
		res.Token, res.Expires = a.Web.Issue(res.Address)
		a.Log.Info("web session opened", "user", res.Address, "remote", clipKey(req.RemoteAddr))
	}
	return res, nil
}

// webCheck serves auth.OpWebCheck (imapd and smtpd ask, for connections from httpd).
func (a *Authd) webCheck(_ context.Context, _ ipc.Cred, req *auth.WebCheckRequest) (any, error) {
	addr := canonical(req.User)
	if !a.Web.Check(addr, req.Token) {
		a.Log.Info("web session token refused", "user", addr)
		return auth.WebCheckResult{}, nil
	}
	return auth.WebCheckResult{OK: true, Address: addr}, nil
}

// webLogout serves auth.OpWebLogout, for httpd alone.
func (a *Authd) webLogout(_ context.Context, peer ipc.Cred, req *auth.WebLogoutRequest) (any, error) {
	if !a.WebPeer(peer) {
		return nil, ipc.Errorf("denied", "%s is for httpd only", auth.OpWebLogout)
	}
	n := a.Web.Revoke(req.Token, req.All)
	a.Log.Info("web session closed", "revoked", n, "all", req.All)
	return auth.WebLogoutResult{Revoked: n}, nil
}

// webImages serves auth.OpWebImages, for httpd alone and for a user it holds a live web
// session token of: the senders whose remote images the user's webmail shows, kept in
// users.db so that the choice outlives the session and follows the user to every device.
func (a *Authd) webImages(_ context.Context, peer ipc.Cred, req *auth.WebImagesRequest) (any, error) {
	if !a.WebPeer(peer) {
		return nil, ipc.Errorf("denied", "%s is for httpd only", auth.OpWebImages)
	}
	addr := canonical(req.User)
	if !a.Web.Check(addr, req.Token) {
		a.Log.Warn("image senders refused: no live web session of the user", "user", addr)
		return nil, ipc.Errorf("denied", "no live web session of %s", addr)
	}
	if req.Allow != "" {
		if err := a.DB.AddImageSender(addr, req.Allow); err != nil {
			return nil, a.ipcError(err)
		}
		a.Log.Info("remote images allowed for a sender", "user", addr, "sender", clipKey(req.Allow))
	}
	if req.Forget != "" {
		if err := a.DB.DelImageSender(addr, req.Forget); err != nil {
			return nil, a.ipcError(err)
		}
		a.Log.Info("remote images no longer allowed for a sender", "user", addr, "sender", clipKey(req.Forget))
	}
	senders, err := a.DB.ImageSenders(addr)
	if err != nil {
		return nil, a.ipcError(err)
	}
	return auth.WebImagesResult{Senders: senders}, nil
}

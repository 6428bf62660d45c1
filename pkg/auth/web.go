package auth

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Web sessions: httpd logs a user in with the password once (OpWebLogin) and gets a
// token in return, which it presents to imapd and smtpd in place of the password through
// the SASL mechanism WebMechanism. imapd and smtpd accept that mechanism only on a
// connection from this host whose other end belongs to httpd's user (pkg/peeruid), and
// ask authd whether the token is good for the user (OpWebCheck). A token lives as long
// as httpd's session: it ends after [httpd] idle_timeout without use, session_lifetime
// after the login, at logout (OpWebLogout), or when authd restarts (authd keeps tokens
// in memory only). httpd thus never keeps a password, and a token stolen from it is of
// no use to anyone but httpd's user.
const (
	OpWebLogin  = "web.login"
	OpWebCheck  = "web.check"
	OpWebLogout = "web.logout"
	// OpWebImages reads and changes a web user's image senders (WebImagesRequest).
	OpWebImages = "web.images"
)

// WebMechanism is the SASL mechanism (a private one, not registered with IANA) through
// which httpd presents a web session token to imapd and smtpd. Its one message, the
// client's initial response, is the user's address, a NUL, and the token.
const WebMechanism = "X-POSTERN-WEB"

// WebResponse is the client's message of WebMechanism.
func WebResponse(user, token string) []byte {
	return []byte(user + "\x00" + token)
}

// ErrWebResponse is ParseWebResponse's error for a message of the wrong form.
var ErrWebResponse = errors.New("the message of " + WebMechanism + " is user NUL token")

// ParseWebResponse splits the client's message of WebMechanism.
func ParseWebResponse(b []byte) (user, token string, err error) {
	user, token, ok := strings.Cut(string(b), "\x00")
	if !ok || user == "" || token == "" || len(user) > 320 || len(token) > 200 || strings.ContainsRune(token, 0) {
		return "", "", ErrWebResponse
	}
	return user, token, nil
}

// WebLoginRequest asks authd, on behalf of httpd only, to check a password as Verify
// does (throttling included) and to issue a web session token when it is right.
type WebLoginRequest struct {
	User       string `json:"user"`
	Password   string `json:"password"`
	RemoteAddr string `json:"remote_addr,omitempty"`
}

// WebLoginResult answers a WebLoginRequest: the verdict, and when OK the token with the
// time it expires at the latest.
type WebLoginResult struct {
	VerifyResult
	Token   string    `json:"token,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

// WebCheckRequest asks whether Token is a live web session token of User (imapd and
// smtpd ask, for a connection they have checked comes from httpd). A good answer counts
// as a use of the token: its idle timer starts again.
type WebCheckRequest struct {
	User  string `json:"user"`
	Token string `json:"token"`
}

// WebCheckResult answers a WebCheckRequest: OK, and the account's canonical address.
type WebCheckResult struct {
	OK      bool   `json:"ok"`
	Address string `json:"address,omitempty"`
}

// WebLogoutRequest revokes Token, or with All every token of Token's account ("log out
// everywhere").
type WebLogoutRequest struct {
	Token string `json:"token"`
	All   bool   `json:"all,omitempty"`
}

// WebLogoutResult says how many tokens were revoked.
type WebLogoutResult struct {
	Revoked int `json:"revoked"`
}

// WebLogin checks a password and, when right, gets a web session token (httpd only).
func (c *Client) WebLogin(ctx context.Context, req WebLoginRequest) (WebLoginResult, error) {
	var r WebLoginResult
	_, err := c.c.Call(ctx, OpWebLogin, req, &r)
	return r, err
}

// WebCheck tells whether token is a live web session token of user.
func (c *Client) WebCheck(ctx context.Context, user, token string) (WebCheckResult, error) {
	var r WebCheckResult
	_, err := c.c.Call(ctx, OpWebCheck, WebCheckRequest{User: user, Token: token}, &r)
	return r, err
}

// WebLogout revokes a web session token, or every token of its account (httpd only).
func (c *Client) WebLogout(ctx context.Context, token string, all bool) (int, error) {
	var r WebLogoutResult
	_, err := c.c.Call(ctx, OpWebLogout, WebLogoutRequest{Token: token, All: all}, &r)
	return r.Revoked, err
}

// WebImagesRequest lists the senders whose remote images the webmail shows User without
// asking, after adding Allow or removing Forget when they are set. It is for httpd
// alone, and only for a user it holds a live web session token of: Token must be good
// for User, as in WebCheckRequest, so that httpd cannot change the preferences of
// users who are not logged in.
type WebImagesRequest struct {
	User   string `json:"user"`
	Token  string `json:"token"`
	Allow  string `json:"allow,omitempty"`
	Forget string `json:"forget,omitempty"`
}

// WebImagesResult answers a WebImagesRequest: the user's image senders, sorted, lower
// case.
type WebImagesResult struct {
	Senders []string `json:"senders"`
}

// WebImages reads, and with allow or forget changes, the image senders of the web
// session's user (httpd only).
func (c *Client) WebImages(ctx context.Context, req WebImagesRequest) ([]string, error) {
	var r WebImagesResult
	_, err := c.c.Call(ctx, OpWebImages, req, &r)
	return r.Senders, err
}

// Package auth is the protocol of authd's private socket (<spool>/private/auth): the
// questions other daemons ask about accounts — does this recipient exist, where does mail
// for it go, which Maildir does an account have, is this password right — and a client
// that asks them.
package auth

import (
	"context"
	"strings"

	"postern/pkg/ipc"
)

// Operations on private/auth.
const (
	OpResolve = "resolve"
	OpMailbox = "mailbox"
	OpVerify  = "verify"
	OpSendAs  = "sendas"
	OpRate    = "rate"
	// OpAccount tells whether an account exists and is an administrator (httpd asks,
	// before it opens the admin panel to a logged-in user).
	OpAccount = "account"
)

// AccountRequest asks about the account Address.
type AccountRequest struct {
	Address string `json:"address"`
}

// AccountResult answers an AccountRequest.
type AccountResult struct {
	// Exists is false when there is no such account.
	Exists bool `json:"exists"`
	// Address is the account's canonical address.
	Address string `json:"address,omitempty"`
	// Admin is true for an administrator (mailctl user admin).
	Admin bool `json:"admin,omitempty"`
	// Disabled is true for an account that may not log in (mailctl user disable).
	Disabled bool `json:"disabled,omitempty"`
}

// RateRequest counts one message (Recipient false) or one recipient that the account
// User submits, against the hourly limits of [submission]; authd keeps the counts, in
// users.db, so that they survive a restart of smtpd or authd.
type RateRequest struct {
	User      string `json:"user"`
	Recipient bool   `json:"recipient,omitempty"`
}

// RateResult answers a RateRequest: OK false when the limit is reached (nothing was
// counted then).
type RateResult struct {
	OK bool `json:"ok"`
}

// ResolveRequest asks where mail for Address goes.
type ResolveRequest struct {
	Address string `json:"address"`
	// Usage asks for the Usage of the result: how full the target accounts' mailboxes
	// are (smtpd asks, to refuse mail for a full mailbox at RCPT).
	Usage bool `json:"usage,omitempty"`
}

// ResolveResult answers a ResolveRequest.
type ResolveResult struct {
	// Local is true when the address's domain is one of ours.
	Local bool `json:"local"`
	// Found is true when a local address leads somewhere: an account, an alias or a
	// catch-all. It is meaningless when Local is false.
	Found bool `json:"found"`
	// Targets are the final destinations after alias and catch-all expansion and after
	// plus-addressing and case are folded away: account addresses (user@domain, in their
	// canonical lower-case form) and, for aliases that forward, external addresses.
	Targets []string `json:"targets,omitempty"`
	// Usage, when the request asked for it, has one entry per target account that has
	// a quota (accounts without one, and forwarding targets, have none). It is missing
	// when the delivery agent that measures the Maildirs could not be asked.
	Usage []MailboxUsage `json:"usage,omitempty"`
}

// MailboxUsage is how full an account's mailbox is.
type MailboxUsage struct {
	Address string `json:"address"`
	Quota   int64  `json:"quota"` // bytes, > 0
	Used    int64  `json:"used"`  // bytes stored
}

// Fits tells whether a message of size octets fits into every mailbox of the Usage:
// ok when it does; else never is true when it is larger than some quota (it will never
// fit, however much is deleted) and full names a mailbox over its quota with it.
// size 0 (unknown) checks that no mailbox is full already. A mailbox exactly at its
// quota is full. The quota is soft, as Maildir++ quotas are: two messages checked
// against the same usage may both be let in.
func (r ResolveResult) Fits(size int64) (ok, never bool, full string) {
	for _, u := range r.Usage {
		switch {
		case size > u.Quota:
			return false, true, u.Address
		case u.Used+max(size, 1) > u.Quota:
			return false, false, u.Address
		}
	}
	return true, false, ""
}

// MailboxRequest asks for the mailbox of an account.
type MailboxRequest struct {
	Address string `json:"address"`
}

// MailboxResult describes an account's mailbox.
type MailboxResult struct {
	// Exists is false when no such account exists (any more).
	Exists bool `json:"exists"`
	// LocalDomain, when Exists is false, says whether the address's domain is one of
	// ours: mail for it then has no mailbox (the account went away), where an address
	// of another domain goes to another host. It saves qmgr a Resolve per remote
	// recipient.
	LocalDomain bool `json:"local_domain,omitempty"`
	// Address is the account's canonical address.
	Address string `json:"address,omitempty"`
	// Maildir is the absolute path of the account's Maildir.
	Maildir string `json:"maildir,omitempty"`
	// Quota is the account's storage limit in bytes; 0 means unlimited.
	Quota int64 `json:"quota,omitempty"`
}

// VerifyRequest asks whether Password is right for User (an address). RemoteAddr is the
// client's IP address, used to throttle guessing: per address, per network and per
// account and address; a daemon that knows it must always give it.
type VerifyRequest struct {
	User       string `json:"user"`
	Password   string `json:"password"`
	RemoteAddr string `json:"remote_addr,omitempty"`
}

// VerifyResult answers a VerifyRequest.
type VerifyResult struct {
	OK bool `json:"ok"`
	// Address is the canonical address of the account that logged in.
	Address string `json:"address,omitempty"`
	// Throttled is true when the answer is no because of too many failures (from the
	// client, its network, or for the account): the password was not checked, and the
	// client is to be told to try again later, not that its password is wrong.
	Throttled bool `json:"throttled,omitempty"`
	// RetryAfter, when Throttled, is the number of seconds until the refusal ends.
	RetryAfter int `json:"retry_after,omitempty"`
	// AppPassword, when OK, names the app password that logged in ("" for the
	// account's own password).
	AppPassword string `json:"app_password,omitempty"`
}

// SendAsRequest asks which addresses the account User may send as.
type SendAsRequest struct {
	User string `json:"user"`
}

// SendAsResult answers a SendAsRequest.
type SendAsResult struct {
	// Addresses are the account's own address, first, and the aliases whose targets
	// lead to the account, all canonical (lower case). Each also stands for its
	// plus-addresses (local+tag@domain).
	Addresses []string `json:"addresses"`
}

// Allows reports whether addr is one of the addresses, or a plus-address of one;
// case is ignored.
func (r SendAsResult) Allows(addr string) bool {
	addr = strings.ToLower(addr)
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return false
	}
	base := addr
	if i := strings.Index(addr[:at], "+"); i > 0 {
		base = addr[:i] + addr[at:]
	}
	for _, a := range r.Addresses {
		if a == addr || a == base {
			return true
		}
	}
	return false
}

// Client asks authd. It is safe for concurrent use.
type Client struct {
	c *ipc.Client
}

// NewClient returns a client of the socket at path (normally <spool>/private/auth).
func NewClient(path string) *Client { return &Client{c: ipc.NewClient(path)} }

// Resolve tells where mail for addr goes.
func (c *Client) Resolve(ctx context.Context, addr string) (ResolveResult, error) {
	var r ResolveResult
	_, err := c.c.Call(ctx, OpResolve, ResolveRequest{Address: addr}, &r)
	return r, err
}

// ResolveUsage tells where mail for addr goes, and how full the target accounts'
// mailboxes are (ResolveResult.Usage).
func (c *Client) ResolveUsage(ctx context.Context, addr string) (ResolveResult, error) {
	var r ResolveResult
	_, err := c.c.Call(ctx, OpResolve, ResolveRequest{Address: addr, Usage: true}, &r)
	return r, err
}

// Mailbox describes the mailbox of the account addr.
func (c *Client) Mailbox(ctx context.Context, addr string) (MailboxResult, error) {
	var r MailboxResult
	_, err := c.c.Call(ctx, OpMailbox, MailboxRequest{Address: addr}, &r)
	return r, err
}

// Verify checks a password.
func (c *Client) Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error) {
	var r VerifyResult
	_, err := c.c.Call(ctx, OpVerify, req, &r)
	return r, err
}

// SendAs tells which addresses the account user may send as (an ipc "notfound" error
// when there is no such account).
func (c *Client) SendAs(ctx context.Context, user string) (SendAsResult, error) {
	var r SendAsResult
	_, err := c.c.Call(ctx, OpSendAs, SendAsRequest{User: user}, &r)
	return r, err
}

// TakeRate counts a message or a recipient of the account user against its hourly
// submission limits; false means the limit is reached.
func (c *Client) TakeRate(ctx context.Context, user string, recipient bool) (bool, error) {
	var r RateResult
	_, err := c.c.Call(ctx, OpRate, RateRequest{User: user, Recipient: recipient}, &r)
	return r.OK, err
}

// LocalDomain tells whether domain is one of this host's mail domains (httpd asks,
// before it serves a domain's MTA-STS policy or client settings).
func (c *Client) LocalDomain(ctx context.Context, domain string) (bool, error) {
	if domain == "" || strings.ContainsAny(domain, "@ \t\r\n") {
		return false, nil
	}
	r, err := c.Resolve(ctx, "postmaster@"+domain)
	if ipc.IsCode(err, "invalid") {
		return false, nil // not a domain name
	}
	return r.Local, err
}

// Account tells whether addr is an account and whether it is an administrator.
func (c *Client) Account(ctx context.Context, addr string) (AccountResult, error) {
	var r AccountResult
	_, err := c.c.Call(ctx, OpAccount, AccountRequest{Address: addr}, &r)
	return r, err
}

// Close closes idle connections.
func (c *Client) Close() { c.c.Close() }

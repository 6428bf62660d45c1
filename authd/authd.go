package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"postern/pkg/audit"
	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/delivery"
	"postern/pkg/ipc"
	"postern/pkg/pwstrength"
	"postern/pkg/ratelimit"
	"postern/pkg/smtp"
	"postern/pkg/srs"
	"postern/pkg/userdb"
)

// Authd answers questions about accounts and applies administrative changes to them.
type Authd struct {
	DB *userdb.DB
	// MailRoot is where Maildirs live: MailRoot/<domain>/<local part>.
	MailRoot string
	// DefaultQuota is the quota (bytes, 0 unlimited) of accounts added with a negative one.
	DefaultQuota int64
	// Local is the client of the local delivery agent, asked to create new accounts'
	// Maildirs (authd does not write into the mail store); nil skips that.
	Local *delivery.Client
	// Throttle slows down password guessing; nil means NewThrottle(LimitsOf(config.Default().Authd)).
	Throttle *Throttle
	// Rates counts the messages and recipients each account submits per hour
	// ([submission] limits); nil means no limits. The counts go into users.db every
	// RatesFlush (and when Serve ends), so that a restart keeps them.
	Rates      *ratelimit.Limiter
	RatesFlush time.Duration
	Log        *slog.Logger
	// Web holds the web session tokens issued to httpd; nil means the defaults of
	// [httpd]. WebPeer admits httpd's peers to web.login and web.logout; nil admits
	// nobody.
	Web     *WebSessions
	WebPeer func(ipc.Cred) bool
	// DKIMDir is where the DKIM keys live (dkim.Dir of data_dir); "" serves no dkim
	// operation. DKIMRefused, when set, says why authd must not write keys there
	// (cleanup, which reads them, runs as another user): dkim.list still answers.
	DKIMDir, DKIMRefused string
	// SRS checks the SRS addresses of its domain that bounces come to (pkg/srs); nil
	// makes them ordinary addresses.
	SRS *srs.Rewriter
	// Passwords is the least a password given to an account must be ([authd]
	// password_min_length and password_min_score); the zero value means the defaults.
	Passwords pwstrength.Policy

	// WatchTimeout bounds the wait for a subscriber's acknowledgement of an account
	// change (see watch); zero means auth.WatchAckTimeout.
	WatchTimeout time.Duration
	watchers     watchers

	initOnce     sync.Once
	loginsMu     sync.Mutex
	loginsPruned time.Time // when users.db's remembered logins were last pruned
}

// mailboxTimeout bounds the wait for local when creating a Maildir.
const mailboxTimeout = 10 * time.Second

// usageTimeout bounds the wait for local when measuring a Maildir for smtpd, which
// waits with its client.
const usageTimeout = 5 * time.Second

func (a *Authd) init() {
	a.initOnce.Do(a.setDefaults)
}

func (a *Authd) setDefaults() {
	if a.Throttle == nil {
		a.Throttle = NewThrottle(LimitsOf(config.Default().Authd))
	}
	if a.Log == nil {
		a.Log = slog.Default()
	}
	if a.Web == nil {
		h := config.Default().HTTPD
		a.Web = NewWebSessions(h.IdleTimeout.D(), h.SessionLifetime.D())
	}
	if a.WebPeer == nil {
		a.WebPeer = func(ipc.Cred) bool { return false }
	}
	if a.Passwords == (pwstrength.Policy{}) {
		a.Passwords = PasswordPolicy(config.Default().Authd)
	}
}

// Serve answers on the private socket (peers admitted by trust) and the control socket
// (peers admitted by admin) until ctx ends, then lets the requests in flight finish.
func (a *Authd) Serve(ctx context.Context, private, ctl *net.UnixListener, trust, admin func(ipc.Cred) bool) error {
	ps := a.PrivateServer(trust)
	cs := a.ControlServer(admin)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		a.flushRates(ctx)
	}()
	go func() { errc <- ps.Serve(ctx, private) }()
	go func() { errc <- cs.Serve(ctx, ctl) }()
	err := <-errc
	cancel()
	if err2 := <-errc; err == nil {
		err = err2
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	ps.Shutdown(sctx)
	cs.Shutdown(sctx)
	<-flushed
	a.saveRates() // what was counted during the shutdown
	return err
}

// flushRates stores the changed submission counts every RatesFlush until ctx is done.
// A kill -9 loses the counts of the last RatesFlush at most.
func (a *Authd) flushRates(ctx context.Context) {
	if a.Rates == nil {
		return
	}
	every := a.RatesFlush
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.saveRates()
		}
	}
}

// saveRates stores the submission counts changed since the last time.
func (a *Authd) saveRates() {
	if a.Rates == nil {
		return
	}
	if m := a.Rates.Export(); len(m) > 0 {
		if err := a.DB.SaveRates(m); err != nil {
			a.Log.Warn("storing the submission counts", "err", err)
		}
	}
}

// LoadRates takes the submission counts stored by an earlier run.
func (a *Authd) LoadRates() error {
	if a.Rates == nil {
		return nil
	}
	m, err := a.DB.Rates()
	if err != nil {
		return err
	}
	for account, c := range m {
		a.Rates.Import(account, c)
	}
	return nil
}

// rate counts a submitted message or recipient of an account against its hourly limits.
func (a *Authd) rate(_ context.Context, _ ipc.Cred, req *auth.RateRequest) (any, error) {
	if a.Rates == nil {
		return auth.RateResult{OK: true}, nil
	}
	user := canonical(req.User)
	ok := a.Rates.Take(user, req.Recipient)
	if !ok {
		a.Log.Info("submission limit reached", "user", clipKey(user), "recipient", req.Recipient)
	}
	return auth.RateResult{OK: ok}, nil
}

// PrivateServer returns the server of private/auth: resolve, mailbox and verify.
func (a *Authd) PrivateServer(allow func(ipc.Cred) bool) *ipc.Server {
	a.init()
	s := &ipc.Server{Name: "private/auth", Allow: allow, Logger: a.Log}
	s.Handle(auth.OpResolve, handler(a, a.resolve))
	s.Handle(auth.OpMailbox, handler(a, a.mailbox))
	s.Handle(auth.OpVerify, handler(a, a.verify))
	s.Handle(auth.OpSendAs, handler(a, a.sendAs))
	s.Handle(auth.OpRate, handler(a, a.rate))
	s.Handle(auth.OpWebLogin, handler(a, a.webLogin))
	s.Handle(auth.OpWebCheck, handler(a, a.webCheck))
	s.Handle(auth.OpWebLogout, handler(a, a.webLogout))
	s.Handle(auth.OpWebImages, handler(a, a.webImages))
	s.Handle(auth.OpAccount, handler(a, a.account))
	s.HandleStream(auth.OpWatch, a.watch)
	return s
}

// ControlServer returns the server of control/authd: the domain, user and alias
// operations of pkg/control.
func (a *Authd) ControlServer(allow func(ipc.Cred) bool) *ipc.Server {
	a.init()
	s := &ipc.Server{Name: "control/authd", Allow: allow, Logger: a.Log}
	s.Handle(control.DomainAdd, handler(a, a.domainAdd))
	s.Handle(control.DomainDel, handler(a, a.domainDel))
	s.Handle(control.DomainList, handler(a, a.domainList))
	s.Handle(control.UserAdd, handler(a, a.userAdd))
	s.Handle(control.UserDel, handler(a, a.userDel))
	s.Handle(control.UserList, handler(a, a.userList))
	s.Handle(control.UserPasswd, handler(a, a.userPasswd))
	s.Handle(control.AliasAdd, handler(a, a.aliasAdd))
	s.Handle(control.AliasDel, handler(a, a.aliasDel))
	s.Handle(control.AliasList, handler(a, a.aliasList))
	s.Handle(control.ThrottleList, handler(a, a.throttleList))
	s.Handle(control.ThrottleLift, handler(a, a.throttleLift))
	s.Handle(control.UserAdmin, handler(a, a.userAdmin))
	s.Handle(control.UserQuota, handler(a, a.userQuota))
	s.Handle(control.UserDisable, handler(a, a.userDisable))
	s.Handle(control.AppPasswordAdd, handler(a, a.appPasswordAdd))
	s.Handle(control.AppPasswordList, handler(a, a.appPasswordList))
	s.Handle(control.AppPasswordRevoke, handler(a, a.appPasswordRevoke))
	s.Handle(control.AuditList, handler(a, a.auditList))
	s.Handle(control.DKIMList, handler(a, a.dkimList))
	s.Handle(control.DKIMGenerate, handler(a, a.dkimGenerate))
	s.Handle(control.DKIMRemove, handler(a, a.dkimRemove))
	s.Handle(control.Backup, a.backup)
	return s
}

// backup writes users.db, as one read transaction sees it, into the file the
// administrator passed (mailctl backup), which authd could not open itself.
func (a *Authd) backup(_ context.Context, peer ipc.Cred, _ json.RawMessage, files []*os.File) (any, error) {
	defer ipc.CloseFiles(files)
	if len(files) != 1 {
		return nil, ipc.Errorf("invalid", "backup needs the file to write to, as a descriptor")
	}
	n, err := a.DB.Backup(files[0])
	if err == nil {
		err = files[0].Sync()
	}
	if err != nil {
		a.Log.Error("backup failed", "uid", peer.UID, "err", err)
		return nil, ipc.Errorf("temporary", "%v", err)
	}
	a.Log.Info("backup written", "uid", peer.UID, "size", n)
	return control.BackupResult{Size: n}, nil
}

// handler adapts a typed handler to ipc: it decodes the request body into Req and turns
// userdb's errors into ipc error codes.
func handler[Req any](a *Authd, h func(ctx context.Context, peer ipc.Cred, req *Req) (any, error)) ipc.HandlerFunc {
	return func(ctx context.Context, peer ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
		ipc.CloseFiles(files)
		req := new(Req)
		if len(body) > 0 {
			if err := json.Unmarshal(body, req); err != nil {
				return nil, ipc.Errorf("invalid", "decoding request: %v", err)
			}
		}
		resp, err := h(ctx, peer, req)
		if err != nil {
			return nil, a.ipcError(err)
		}
		return resp, nil
	}
}

// ipcError gives a userdb error its ipc code.
func (a *Authd) ipcError(err error) error {
	var e *ipc.Error
	switch {
	case errors.As(err, &e):
		return err
	case errors.Is(err, userdb.ErrNotFound):
		return ipc.Errorf("notfound", "%v", err)
	case errors.Is(err, userdb.ErrExists):
		return ipc.Errorf("exists", "%v", err)
	case errors.Is(err, userdb.ErrInvalid), errors.Is(err, userdb.ErrNotEmpty):
		return ipc.Errorf("invalid", "%v", err)
	default:
		a.Log.Error("users database failed", "err", err)
		return ipc.Errorf("temporary", "users database: %v", err)
	}
}

// --- private/auth ---

func (a *Authd) resolve(ctx context.Context, _ ipc.Cred, req *auth.ResolveRequest) (any, error) {
	if res, ok := a.resolveSRS(req.Address); ok {
		return res, nil
	}
	r, err := a.DB.Resolve(req.Address)
	if err != nil {
		return nil, err
	}
	res := auth.ResolveResult{Local: r.Local, Found: r.Found, Targets: r.Targets}
	if req.Usage && a.Local != nil {
		res.Usage = a.usage(ctx, r.Targets)
	}
	return res, nil
}

// resolveSRS answers for an SRS address of our SRS domain (ok true): one whose hash
// and timestamp check leads to the address it stands for, the original sender of the
// mail we forwarded, as an alias that forwards would (the bounce is relayed there, and
// for that address only: no open relay); any other is an unknown recipient of ours,
// which smtpd refuses with 550 5.1.1. The SRS domain's own aliases and catch-all never
// see such an address.
func (a *Authd) resolveSRS(addr string) (auth.ResolveResult, bool) {
	if a.SRS == nil || !srs.IsSRS(addr) {
		return auth.ResolveResult{}, false
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !strings.EqualFold(addr[at+1:], a.SRS.Domain) {
		return auth.ResolveResult{}, false
	}
	orig, err := a.SRS.Reverse(addr)
	if err == nil {
		if _, perr := smtp.ParseAddress(orig, true); perr != nil {
			err = perr
		}
	}
	if err != nil {
		a.Log.Info("SRS address refused", "to", "<"+clipKey(addr)+">", "err", err)
		return auth.ResolveResult{Local: true}, true
	}
	return auth.ResolveResult{Local: true, Found: true, Targets: []string{orig}}, true
}

// usage measures the mailboxes of the target accounts that have a quota. authd may not
// read the Maildirs (they are vmail's); local, which writes them and their maildirsize,
// measures them. When local cannot answer, the answer has no usage: the quota is then
// checked at delivery only, as before.
func (a *Authd) usage(ctx context.Context, targets []string) []auth.MailboxUsage {
	var out []auth.MailboxUsage
	for _, t := range targets {
		u, err := a.DB.User(t)
		if err != nil || u.Quota <= 0 {
			continue // a forwarding target, or no quota
		}
		dir, err := userdb.Maildir(a.MailRoot, u.Address)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, usageTimeout)
		r, err := a.Local.Usage(cctx, dir, u.Quota)
		cancel()
		if err != nil {
			a.Log.Warn("cannot measure the mailbox for its quota", "user", u.Address, "err", err)
			return nil
		}
		out = append(out, auth.MailboxUsage{Address: u.Address, Quota: u.Quota, Used: r.Bytes})
	}
	return out
}

func (a *Authd) mailbox(_ context.Context, _ ipc.Cred, req *auth.MailboxRequest) (any, error) {
	u, err := a.DB.User(req.Address)
	if errors.Is(err, userdb.ErrNotFound) || errors.Is(err, userdb.ErrInvalid) {
		r, err := a.DB.Resolve(req.Address)
		if err != nil {
			return nil, err // no @domain: "invalid"
		}
		return auth.MailboxResult{Exists: false, LocalDomain: r.Local}, nil
	}
	if err != nil {
		return nil, err
	}
	dir, err := userdb.Maildir(a.MailRoot, u.Address)
	if err != nil {
		return nil, err
	}
	return auth.MailboxResult{Exists: true, Address: u.Address, Maildir: dir, Quota: u.Quota}, nil
}

func (a *Authd) verify(_ context.Context, _ ipc.Cred, req *auth.VerifyRequest) (any, error) {
	at := newAttempt(req.User, req.RemoteAddr)
	blocked, until, known := a.Throttle.Check(at)
	if blocked {
		// Logged once, when the block started (logBlocks); a refusal is only debug.
		a.Log.Debug("login refused: throttled", "user", clipKey(req.User), "remote", clipKey(req.RemoteAddr), "until", until.UTC().Format(time.RFC3339))
		wait := until.Sub(a.Throttle.Now())
		return auth.VerifyResult{Throttled: true, RetryAfter: int((wait + time.Second - 1) / time.Second)}, nil
	}
	// The account's password, or one of its app passwords.
	v, err := a.DB.Authenticate(req.User, req.Password)
	if err != nil {
		return nil, err
	}
	addr := v.Address
	if !v.OK {
		a.Log.Warn("authentication failed", "user", clipKey(req.User), "remote", clipKey(req.RemoteAddr), "known_client", known)
		a.logBlocks(a.Throttle.Fail(at))
		return auth.VerifyResult{}, nil
	}
	if a.Throttle.Succeed(at) {
		a.storeLogin(at)
	}
	a.Log.Debug("authenticated", "user", addr, "remote", clipKey(req.RemoteAddr), "known_client", known, "app_password", v.AppPassword)
	return auth.VerifyResult{OK: true, Address: addr, AppPassword: v.AppPassword}, nil
}

// account tells httpd whether an account exists and is an administrator.
func (a *Authd) account(_ context.Context, _ ipc.Cred, req *auth.AccountRequest) (any, error) {
	u, err := a.DB.User(req.Address)
	if errors.Is(err, userdb.ErrNotFound) || errors.Is(err, userdb.ErrInvalid) {
		return auth.AccountResult{}, nil
	}
	if err != nil {
		return nil, err
	}
	return auth.AccountResult{Exists: true, Address: u.Address, Admin: u.Admin, Disabled: u.Disabled}, nil
}

// storeLogin keeps a remembered site in users.db, and once a day deletes those older
// than the throttle remembers. A failure costs only the memory of the site across a
// restart: it is logged, the login goes on.
func (a *Authd) storeLogin(at attempt) {
	now := a.Throttle.Now()
	if err := a.DB.RememberLogin(at.account, at.site, now); err != nil {
		a.Log.Warn("storing a remembered login failed", "user", at.account, "err", err)
	}
	a.loginsMu.Lock()
	due := now.Sub(a.loginsPruned) >= rememberEvery
	if due {
		a.loginsPruned = now
	}
	a.loginsMu.Unlock()
	if due {
		if _, err := a.DB.ForgetLogins(now.Add(-a.Throttle.Remember)); err != nil {
			a.Log.Warn("forgetting old remembered logins failed", "err", err)
		}
	}
}

// LoadLogins gives the throttle the sites remembered in users.db, and deletes those
// remembered for too long. authd calls it before serving.
func (a *Authd) LoadLogins() error {
	a.init()
	now := a.Throttle.Now()
	since := now.Add(-a.Throttle.Remember)
	if _, err := a.DB.ForgetLogins(since); err != nil {
		return err
	}
	a.loginsMu.Lock()
	a.loginsPruned = now
	a.loginsMu.Unlock()
	ls, err := a.DB.Logins(since)
	if err != nil {
		return err
	}
	// Newest first: when there are more than the throttle keeps, the oldest are left.
	for i, l := range ls {
		if i >= a.Throttle.MaxKnown {
			break
		}
		a.Throttle.Recall(l.Account, l.Site, l.At)
	}
	a.Log.Debug("remembered logins loaded", "sites", min(len(ls), a.Throttle.MaxKnown))
	return nil
}

// logBlocks logs the start of each block, once: later refusals under it are not logged
// again (they would let a guesser fill the log).
func (a *Authd) logBlocks(bs []control.ThrottleBlock) {
	for _, b := range bs {
		args := []any{"kind", b.Kind, "failures", b.Failures, "until", b.Until.UTC().Format(time.RFC3339)}
		if b.Account != "" {
			args = append(args, "user", b.Account)
		}
		if b.Client != "" {
			args = append(args, "remote", b.Client)
		}
		a.Log.Warn("login throttled", args...)
	}
}

func (a *Authd) sendAs(_ context.Context, _ ipc.Cred, req *auth.SendAsRequest) (any, error) {
	addrs, err := a.DB.SendAs(req.User)
	if err != nil {
		return nil, err
	}
	return auth.SendAsResult{Addresses: addrs}, nil
}

// --- control/authd ---

func (a *Authd) domainAdd(_ context.Context, peer ipc.Cred, req *control.DomainRequest) (any, error) {
	d, err := a.DB.AddDomain(req.Name)
	if err != nil {
		return nil, err
	}
	a.Log.Info("domain added", "domain", d.Name, "uid", peer.UID)
	if err := a.record(peer, req.Origin, control.DomainAdd, d.Name, ""); err != nil {
		return nil, err
	}
	return control.Domain{Name: d.Name}, nil
}

func (a *Authd) domainDel(_ context.Context, peer ipc.Cred, req *control.DomainRequest) (any, error) {
	// The accounts a forced delete takes with it: their sessions end as with user.del.
	var gone []userdb.User
	if req.Force {
		us, err := a.DB.Users(req.Name)
		if err != nil && !errors.Is(err, userdb.ErrNotFound) {
			return nil, err
		}
		gone = us
	}
	if err := a.DB.DelDomain(req.Name, req.Force); err != nil {
		return nil, err
	}
	for _, u := range gone {
		a.accountChanged(u.Address, auth.ChangeDeleted)
	}
	a.Log.Info("domain deleted", "domain", canonicalDomain(req.Name), "force", req.Force, "uid", peer.UID)
	if err := a.record(peer, req.Origin, control.DomainDel, canonicalDomain(req.Name), forceDetail(req.Force)); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Authd) domainList(context.Context, ipc.Cred, *struct{}) (any, error) {
	ds, err := a.DB.Domains()
	if err != nil {
		return nil, err
	}
	out := control.DomainListResult{Domains: []control.Domain{}}
	for _, d := range ds {
		out.Domains = append(out.Domains, control.Domain{Name: d.Name, Users: d.Users, Aliases: d.Aliases})
	}
	return out, nil
}

// UserAddResult answers user.add: the account, and a warning when it was created but its
// Maildir could not be (local creates it on first delivery anyway).
type UserAddResult struct {
	control.User
	Warning string `json:"warning,omitempty"`
}

func (a *Authd) userAdd(ctx context.Context, peer ipc.Cred, req *control.UserRequest) (any, error) {
	quota := req.Quota
	if quota < 0 {
		quota = a.DefaultQuota
	}
	// Check the address fully before hashing the password, which takes a while.
	dir, err := userdb.Maildir(a.MailRoot, req.Address)
	if err != nil {
		return nil, err
	}
	if err := a.checkPassword(req.Address, req.Password); err != nil {
		return nil, err
	}
	u, err := a.DB.AddUser(req.Address, req.Password, quota)
	if err != nil {
		return nil, err
	}
	a.Log.Info("account added", "user", u.Address, "quota", u.Quota, "maildir", dir, "uid", peer.UID)
	if err := a.record(peer, req.Origin, control.UserAdd, u.Address, fmt.Sprintf("quota %d", u.Quota)); err != nil {
		return nil, err
	}
	res := UserAddResult{User: control.User{Address: u.Address, Quota: u.Quota, Created: u.Created, Maildir: dir}}
	if a.Local != nil {
		cctx, cancel := context.WithTimeout(ctx, mailboxTimeout)
		err := a.Local.CreateMailbox(cctx, dir)
		cancel()
		if err != nil {
			res.Warning = fmt.Sprintf("account created, but its Maildir was not (local delivery creates it with the first message): %v", err)
			a.Log.Warn("creating maildir failed", "user", u.Address, "maildir", dir, "err", err)
		}
	}
	return res, nil
}

func (a *Authd) userDel(_ context.Context, peer ipc.Cred, req *control.UserRequest) (any, error) {
	if err := a.DB.DelUser(req.Address); err != nil {
		return nil, err
	}
	dir, _ := userdb.Maildir(a.MailRoot, req.Address)
	a.Log.Info("account deleted; its mail stays on disk", "user", canonical(req.Address), "maildir", dir, "uid", peer.UID)
	a.accountChanged(canonical(req.Address), auth.ChangeDeleted) // its sessions end
	if err := a.record(peer, req.Origin, control.UserDel, canonical(req.Address), ""); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Authd) userPasswd(_ context.Context, peer ipc.Cred, req *control.UserRequest) (any, error) {
	if err := a.checkPassword(req.Address, req.Password); err != nil {
		return nil, err
	}
	if err := a.DB.SetPassword(req.Address, req.Password); err != nil {
		return nil, err
	}
	a.Log.Info("password changed", "user", canonical(req.Address), "uid", peer.UID)
	a.accountChanged(canonical(req.Address), auth.ChangePassword) // cached logins go
	if err := a.record(peer, req.Origin, control.UserPasswd, canonical(req.Address), ""); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Authd) userList(_ context.Context, _ ipc.Cred, req *control.ListRequest) (any, error) {
	us, err := a.DB.Users(req.Domain)
	if err != nil {
		return nil, err
	}
	out := control.UserListResult{Users: []control.User{}}
	for _, u := range us {
		dir, _ := userdb.Maildir(a.MailRoot, u.Address)
		out.Users = append(out.Users, control.User{Address: u.Address, Quota: u.Quota, Created: u.Created, Maildir: dir, Admin: u.Admin, Disabled: u.Disabled})
	}
	return out, nil
}

func (a *Authd) aliasAdd(_ context.Context, peer ipc.Cred, req *control.Alias) (any, error) {
	al, err := a.DB.AddAlias(req.Address, req.Targets)
	if err != nil {
		return nil, err
	}
	a.Log.Info("alias added", "alias", al.Address, "targets", al.Targets, "uid", peer.UID)
	if err := a.record(peer, req.Origin, control.AliasAdd, al.Address, "→ "+strings.Join(al.Targets, ", ")); err != nil {
		return nil, err
	}
	return control.Alias{Address: al.Address, Targets: al.Targets}, nil
}

func (a *Authd) aliasDel(_ context.Context, peer ipc.Cred, req *control.Alias) (any, error) {
	if err := a.DB.DelAlias(req.Address); err != nil {
		return nil, err
	}
	a.Log.Info("alias deleted", "alias", canonical(req.Address), "uid", peer.UID)
	if err := a.record(peer, req.Origin, control.AliasDel, canonical(req.Address), ""); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Authd) aliasList(_ context.Context, _ ipc.Cred, req *control.ListRequest) (any, error) {
	as, err := a.DB.Aliases(req.Domain)
	if err != nil {
		return nil, err
	}
	out := control.AliasListResult{Aliases: []control.Alias{}}
	for _, al := range as {
		out.Aliases = append(out.Aliases, control.Alias{Address: al.Address, Targets: al.Targets})
	}
	return out, nil
}

func (a *Authd) throttleList(context.Context, ipc.Cred, *struct{}) (any, error) {
	return control.ThrottleListResult{Blocks: a.Throttle.Blocks()}, nil
}

func (a *Authd) throttleLift(_ context.Context, peer ipc.Cred, req *control.ThrottleLiftRequest) (any, error) {
	if strings.TrimSpace(req.Target) == "" {
		return nil, ipc.Errorf("invalid", "throttle.lift needs an address, a network or an account")
	}
	lifted := a.Throttle.Lift(strings.TrimSpace(req.Target))
	a.Log.Info("throttling lifted", "target", clipKey(req.Target), "keys", len(lifted), "uid", peer.UID)
	if err := a.record(peer, req.Origin, control.ThrottleLift, clipKey(strings.TrimSpace(req.Target)), fmt.Sprintf("%d keys", len(lifted))); err != nil {
		return nil, err
	}
	if lifted == nil {
		lifted = []control.ThrottleBlock{}
	}
	return control.ThrottleLiftResult{Lifted: lifted}, nil
}

func (a *Authd) userAdmin(_ context.Context, peer ipc.Cred, req *control.UserAdminRequest) (any, error) {
	if err := a.DB.SetAdmin(req.Address, req.Admin); err != nil {
		return nil, err
	}
	detail := "admin"
	if !req.Admin {
		detail = "not admin"
	}
	if err := a.record(peer, req.Origin, control.UserAdmin, canonical(req.Address), detail); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Authd) userQuota(_ context.Context, peer ipc.Cred, req *control.UserRequest) (any, error) {
	if err := a.DB.SetQuota(req.Address, req.Quota); err != nil {
		return nil, err
	}
	if err := a.record(peer, req.Origin, control.UserQuota, canonical(req.Address), fmt.Sprintf("quota %d", req.Quota)); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Authd) userDisable(_ context.Context, peer ipc.Cred, req *control.UserDisableRequest) (any, error) {
	if err := a.DB.SetDisabled(req.Address, req.Disabled); err != nil {
		return nil, err
	}
	detail := "disabled"
	if !req.Disabled {
		detail = "enabled"
	} else {
		a.accountChanged(canonical(req.Address), auth.ChangeDisabled) // its sessions end
	}
	if err := a.record(peer, req.Origin, control.UserDisable, canonical(req.Address), detail); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Authd) appPasswordAdd(_ context.Context, peer ipc.Cred, req *control.AppPasswordRequest) (any, error) {
	pw, ap, err := a.DB.AddAppPassword(req.Address, req.Name)
	if err != nil {
		return nil, err
	}
	if err := a.record(peer, req.Origin, control.AppPasswordAdd, canonical(req.Address), ap.Name); err != nil {
		return nil, err
	}
	return control.AppPassword{Name: ap.Name, Created: ap.Created, Password: pw}, nil
}

func (a *Authd) appPasswordList(_ context.Context, _ ipc.Cred, req *control.AppPasswordRequest) (any, error) {
	aps, err := a.DB.AppPasswords(req.Address)
	if err != nil {
		return nil, err
	}
	out := control.AppPasswordListResult{AppPasswords: []control.AppPassword{}}
	for _, ap := range aps {
		out.AppPasswords = append(out.AppPasswords, control.AppPassword{Name: ap.Name, Created: ap.Created, LastUsed: ap.LastUsed})
	}
	return out, nil
}

func (a *Authd) appPasswordRevoke(_ context.Context, peer ipc.Cred, req *control.AppPasswordRequest) (any, error) {
	if err := a.DB.RevokeAppPassword(req.Address, req.Name); err != nil {
		return nil, err
	}
	a.accountChanged(canonical(req.Address), auth.ChangeAppPassword)
	if err := a.record(peer, req.Origin, control.AppPasswordRevoke, canonical(req.Address), clipKey(strings.TrimSpace(req.Name))); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Authd) auditList(_ context.Context, _ ipc.Cred, req *control.AuditRequest) (any, error) {
	es, err := a.DB.Audit(req.Limit)
	if err != nil {
		return nil, err
	}
	return control.AuditResult{Entries: es}, nil
}

// record writes an administrative change, applied, into the audit log (users.db) and
// the log: who (the peer's Unix user, and the web administrator and IP address httpd
// names in the request), what and when. If the log cannot be written the request fails
// with an error that says the change was made nevertheless.
func (a *Authd) record(peer ipc.Cred, o control.Origin, op, target, detail string) error {
	e := audit.By("authd", peer.UID, o.Actor, o.RemoteIP)
	e.Op, e.Target, e.Detail = op, target, detail
	e, err := a.DB.AppendAudit(e)
	if err != nil {
		a.Log.Error("writing the audit log", "op", op, "target", target, "uid", peer.UID, "err", err)
		return ipc.Errorf("temporary", "%s %s was done, but could not be written to the audit log: %v", op, target, err)
	}
	args := []any{"seq", e.Seq, "op", op, "target", target, "who", e.Who()}
	if e.IP != "" {
		args = append(args, "ip", e.IP)
	}
	if detail != "" {
		args = append(args, "detail", detail)
	}
	a.Log.Info("audit", args...)
	return nil
}

func forceDetail(force bool) string {
	if force {
		return "force"
	}
	return ""
}

// canonical is an address (or "@domain") as the database keeps it, for logs.
func canonical(addr string) string {
	if d, ok := strings.CutPrefix(addr, "@"); ok {
		return "@" + canonicalDomain(d)
	}
	if c, err := userdb.CanonicalAddress(addr); err == nil {
		return c
	}
	return clipKey(addr)
}

// canonicalDomain is a domain name as the database keeps it, for logs.
func canonicalDomain(name string) string {
	if d, err := userdb.CanonicalDomain(name); err == nil {
		return d
	}
	return clipKey(name)
}

// PasswordPolicy is the password minimum of the [authd] settings.
func PasswordPolicy(c config.Authd) pwstrength.Policy {
	return pwstrength.Policy{MinLength: c.PasswordMinLength, MinScore: c.PasswordMinScore}
}

// checkPassword refuses a password too weak to give the account addr, with an answer
// that says why: the one place every way of setting a password goes through (mailctl
// user add and passwd, the admin panel, the account page). The address's parts count as
// words an attacker tries first. An empty password is left to userdb, which refuses it.
func (a *Authd) checkPassword(addr, password string) error {
	if password == "" {
		return nil
	}
	if err := a.Passwords.Check(password, addr); err != nil {
		return ipc.Errorf("invalid", "%v", err)
	}
	return nil
}

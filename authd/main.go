// Command authd owns the account database, users.db.
//
// Other daemons ask it over <spool>/private/auth where mail for an address goes
// (accounts, aliases, catch-alls, plus-addressing), which Maildir and quota an account has,
// and whether a password is right (argon2id, with failed-login throttling). Administrators
// change domains, accounts and aliases through <spool>/control/authd (mailctl). authd is
// the only process that opens users.db while Postern runs. See authd(8).
package main

import (
	"os"
	"time"

	"postern/pkg/daemon"
	"postern/pkg/delivery"
	"postern/pkg/dkim"
	"postern/pkg/ratelimit"
	"postern/pkg/srs"
	"postern/pkg/userdb"
)

func main() {
	d := daemon.Start("authd")
	// users.db and the Maildirs it creates for new accounts live in data_dir.
	d.Confine(d.Config.DataDir)
	ctx, stop := d.Context()
	defer stop()
	cfg := d.Config
	private, ctl := d.Unix("private/auth"), d.Unix("control/authd")
	db, err := userdb.Open(cfg.UsersDB())
	if err != nil {
		d.Log.Error("opening the users database", "err", err)
		os.Exit(1)
	}
	a := &Authd{
		DB:           db,
		MailRoot:     cfg.MailDir(),
		DefaultQuota: int64(cfg.Local.DefaultQuota),
		Local:        delivery.NewClient(cfg.PrivateSocket("local")),
		Throttle:     NewThrottle(LimitsOf(cfg.Authd)),
		Passwords:    PasswordPolicy(cfg.Authd),
		Rates:        ratelimit.NewPersistent(cfg.Submission.MaxMessagesPerHour, cfg.Submission.MaxRecipientsPerHour, time.Hour),
		Log:          d.Log,
		Web:          NewWebSessions(cfg.HTTPD.IdleTimeout.D(), cfg.HTTPD.SessionLifetime.D()),
		// web.login and web.logout are httpd's alone (see WebSessions).
		WebPeer: daemon.Only(cfg, "authd", "httpd"),
		DKIMDir: dkim.Dir(cfg.DataDir),
	}
	if !daemon.SameUser(cfg, "authd", "cleanup") {
		a.DKIMRefused = "cleanup runs as another user than authd, and could not read the DKIM keys authd made: make them with mailctl dkim generate as root while Postern is stopped"
	}
	if cfg.SRS.Enable {
		// Bounces to the SRS addresses of forwarded mail are checked here (pkg/srs).
		if a.SRS, err = srs.Load(cfg.SRSDomain(), cfg.SRSKeyFile(), cfg.SRS.MaxAge.D()); err != nil {
			d.Log.Error("[srs] is enabled but its secret cannot be read; run mailctl init, or start master, which makes it", "err", err)
			os.Exit(1)
		}
	}
	if err := a.LoadRates(); err != nil {
		// Not fatal: the accounts' counts start from zero.
		d.Log.Warn("loading the submission counts", "err", err)
	}
	if err := a.LoadLogins(); err != nil {
		// Not fatal: the sites are learnt again at their next successful login.
		d.Log.Warn("loading the remembered logins", "err", err)
	}
	trust := daemon.Trust(cfg, "smtpd", "cleanup", "qmgr", "local", "imapd", "httpd", "spamd")
	err = a.Serve(ctx, private, ctl, trust, daemon.Admin(cfg))
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.Log.Error("serving", "err", err)
		os.Exit(1)
	}
}

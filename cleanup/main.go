// Command cleanup writes messages into the queue.
//
// smtpd (and qmgr, for bounces; spamd, for reports; local, for Sieve redirects and
// vacation replies) stream each message to cleanup over <spool>/private/cleanup. cleanup
// expands the recipients through authd's aliases, writes the queue file into incoming/
// with a Received header in front (and, for submissions, a Message-ID and Date where
// missing), fsyncs the file and the directory, answers with the queue ID, and wakes
// qmgr. An authenticated user's message must name one of the user's addresses in From:;
// outbound mail (submissions, bounces, reports, vacation replies; not redirects) is
// DKIM-signed with the keys in <data_dir>/dkim/<domain>/ as it streams into the queue
// file. Inbound mail gets spamd's verdict before its file is complete: refused at DATA,
// or queued with spamd's Authentication-Results and X-Spam-Status, marked for Junk if so
// judged. See cleanup(8).
package main

import (
	"net"
	"os"

	"postern/pkg/auth"
	"postern/pkg/daemon"
	"postern/pkg/dkim"
	"postern/pkg/ipc"
	"postern/pkg/queue"
	"postern/pkg/spamcheck"
)

func main() {
	d := daemon.Start("cleanup")
	d.Confine(d.Config.SpoolDir) // queue files go into incoming/
	ctx, stop := d.Context()
	defer stop()
	cfg := d.Config
	c := &Cleanup{
		Hostname: cfg.Hostname,
		Spool:    queue.Spool{Root: cfg.SpoolDir},
		Auth:     auth.NewClient(cfg.PrivateSocket("auth")),
		Qmgr:     ipc.NewClient(cfg.PrivateSocket("qmgr")),
		Log:      d.Log,
		// Keys are read when first needed and again when a domain's key directory
		// changes: `mailctl dkim generate` takes effect without a restart.
		DKIM:       &dkim.Keyring{Dir: dkim.Dir(cfg.DataDir)},
		HideClient: cfg.Submission.HideClient,
	}
	if sd := cfg.Service("spamd"); sd != nil && sd.Enable && cfg.Spamd.Enable {
		c.Spam = SpamPolicy{
			Client:     spamcheck.NewClient(cfg.PrivateSocket("spamd"), cfg.Spamd.Timeout.D()),
			Tempfail:   cfg.Spamd.OnFailure == "tempfail",
			AuthservID: cfg.AuthservID(),
		}
	}
	// spamd queues its DMARC aggregate reports here, and nothing else (report.go).
	c.Reports = ReportPolicy{From: cfg.DMARCReportFrom(), OnlyReports: daemon.Confined(cfg, "spamd", "smtpd", "qmgr")}
	// local queues the messages Sieve scripts redirect (forward.go) and its vacation
	// replies (autoreply.go) here, and nothing else.
	c.OnlyLocal = daemon.Confined(cfg, "local", "smtpd", "qmgr", "spamd")
	srv := c.Server(daemon.Trust(cfg, "smtpd", "qmgr", "spamd", "local"))
	go c.Wakeups(ctx)
	// sendmail(1)'s socket, when master made one (a cleanup run by hand may have none).
	if l, ok := d.Listeners["public/cleanup"].(*net.UnixListener); ok {
		pub := c.PublicServer(int64(cfg.SMTPD.MaxMessageSize))
		go func() {
			if err := pub.Serve(ctx, l); err != nil {
				d.Log.Error("serving public/cleanup", "err", err)
				os.Exit(1)
			}
		}()
		defer pub.Shutdown(ctx)
	}
	if err := srv.Serve(ctx, d.Unix("private/cleanup")); err != nil {
		d.Log.Error("serving", "err", err)
		os.Exit(1)
	}
	srv.Shutdown(ctx)
}

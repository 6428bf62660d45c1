// Command spamd checks inbound mail: SPF (RFC 7208) of MAIL FROM and HELO, DKIM
// signatures (RFC 6376), DMARC (RFC 7489) of the From: domain, SpamAssassin's GTUBE test
// string, and a learning classifier (pkg/junk, in <data_dir>/spam/junk.db, trained over
// <spool>/control/spamd by mailctl and over private/spamd by imapd); every signal adds
// its weight from [spamd] in postern.toml to one score. cleanup asks it over
// <spool>/private/spamd about each message that did not come from an authenticated user,
// handing the queue file as a descriptor; spamd answers accept, junk, reject or tempfail
// with the score, the reasons and an Authentication-Results header (RFC 8601). It runs
// as its own user and writes only <data_dir>/spam/, where it keeps the classifier's
// corpora and, with [spamd] dmarc_reports, each DMARC evaluation, which it sends as
// aggregate reports (RFC 7489 §7.2) through cleanup's socket (reports.go); with [spamd]
// greylist, it keeps the greylisting triplets smtpd asks about (greylist.go). See spamd(8).
package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"time"

	"blitiri.com.ar/go/spf"
	bolt "go.etcd.io/bbolt"

	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/daemon"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/junk"
	"postern/pkg/resolver"
	"postern/pkg/spamcheck"
)

func main() {
	d := daemon.Start("spamd")
	cfg := d.Config
	dir := cfg.SpamDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		d.Log.Error("cannot make the spam directory", "err", err)
		os.Exit(1)
	}
	d.Confine(dir)
	ctx, stop := d.Context()
	defer stop()
	res, err := resolver.NewFromConfig(cfg.Remote.Resolvers)
	if err != nil {
		d.Log.Error("no DNS resolver", "err", err)
		os.Exit(1)
	}
	// A verdict must come within spamd.timeout: each DNS query gets a share of it.
	res.Timeout = max(cfg.Spamd.Timeout.D()/8, 200*time.Millisecond)
	db, err := bolt.Open(filepath.Join(dir, "spamd.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		d.Log.Error("cannot open the spam database", "err", err)
		os.Exit(1)
	}
	defer db.Close()
	rec, err := newRecorder(db, d.Log)
	if err != nil {
		d.Log.Error("cannot open the spam database", "err", err)
		os.Exit(1)
	}
	go rec.run(ctx)
	// The classifier's corpora live in a file of their own: learning a message fsyncs
	// it, and the DMARC records' batches do not wait on that.
	jdb, err := junk.Open(filepath.Join(dir, "junk.db"), &junk.Options{MinSpam: cfg.Spamd.ClassifierMinSpam, MinHam: cfg.Spamd.ClassifierMinHam})
	if err != nil {
		d.Log.Error("cannot open the classifier's database", "err", err)
		os.Exit(1)
	}
	defer jdb.Close()
	if jdb.Emptied() {
		d.Log.Warn("the classifier's database held the counts of the Bayesian classifier of earlier versions, which the present one cannot use: it starts empty; train it again with mailctl spam train")
	}
	var trusted = config.ParseNets(cfg.Spamd.TrustedRelays)
	authc := auth.NewClient(cfg.PrivateSocket("auth"))
	local := &authDomains{c: authc}
	lists, err := openLists(db, local, d.Log)
	if err != nil {
		d.Log.Error("cannot open the spam database", "err", err)
		os.Exit(1)
	}
	// A deleted account's lists and corpus go with it (authd tells; see accountSweeper).
	sweeper := &accountSweeper{lists: lists, junk: jdb, log: d.Log, exists: func(ctx context.Context, addr string) (bool, error) {
		r, err := authc.Account(ctx, addr)
		return r.Exists, err
	}}
	go auth.Watch(ctx, cfg.PrivateSocket("auth"), d.Log, sweeper)
	rep := &reporter{
		db: db, dns: netDNS{R: res}, submit: queueReport(enqueue.NewClient(cfg.PrivateSocket("cleanup"))),
		enabled: cfg.Spamd.Reports, interval: cfg.Spamd.ReportInterval.D(),
		org: cfg.DMARCReportOrg(), from: cfg.DMARCReportFrom(), submitter: cfg.Hostname,
		log: d.Log, now: time.Now,
	}
	go rep.run(ctx)
	record := rec.Record
	if !cfg.Spamd.Reports {
		record = nil // nothing to report: nothing recorded
	}
	s := &Spamd{Log: d.Log, Junk: jdb, Checker: &Checker{
		Policy:     cfg.Spamd,
		AuthservID: cfg.AuthservID(),
		DNS:        netDNS{R: res},
		Local:      local,
		Classifier: junkClassifier{db: jdb, log: d.Log},
		Trusted:    trusted,
		Record:     record,
		Log:        d.Log,
		DNSLists:   dnsListsOf(cfg.Spamd),
		Lists:      lists,
	}}
	ctl := (&trainer{db: jdb, log: d.Log}).ControlServer(daemon.Admin(cfg))
	lists.register(ctl)
	ctl.Handle(control.SpamReportsList, rep.serveList)
	ctl.Handle(control.SpamReportsSend, rep.serveSend)
	go ctl.Serve(ctx, d.Unix("control/spamd"))
	// cleanup asks for verdicts, imapd reports what users move into and out of Junk,
	// smtpd asks about greylisting: none may do the others'. httpd's account page
	// changes a user's own lists.
	web := daemon.Only(cfg, "spamd", "httpd")
	grey := daemon.Only(cfg, "spamd", "smtpd")
	srv := s.Server(daemon.Only(cfg, "spamd", "cleanup"), daemon.Only(cfg, "spamd", "imapd"))
	srv.Allow = ipc.AnyOf(srv.Allow, web, grey)
	lists.registerAccount(srv, web)
	if cfg.Spamd.Greylist.Greylist {
		g, err := newGreylister(cfg, db, d.Log, time.Now)
		if err != nil {
			d.Log.Error("cannot read the greylisting state", "err", err)
			os.Exit(1)
		}
		// The administrator's allow list spares a client, or a sender SPF vouches for.
		g.lists = lists
		g.spf = func(ctx context.Context, ip net.IP, helo, sender string) spf.Result {
			r, _ := spf.CheckHostWithSender(ip, helo, sender, spf.WithResolver(netDNS{R: res}), spf.WithContext(ctx))
			return r
		}
		go g.run(ctx)
		srv.Handle(spamcheck.OpGreylist, ipc.Only(grey, g.serveGreylist))
	}
	if err := srv.Serve(ctx, d.Unix("private/spamd")); err != nil {
		d.Log.Error("serving", "err", err)
		os.Exit(1)
	}
	srv.Shutdown(ctx)
	ctl.Shutdown(ctx)
}

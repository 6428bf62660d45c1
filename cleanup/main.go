// Command cleanup writes messages into the queue.
//
// smtpd (and qmgr, for bounces) stream each message to cleanup over
// <spool>/private/cleanup. cleanup expands the recipients through authd's aliases, writes
// the queue file into incoming/ with a Received header in front (and, for submissions, a
// Message-ID and Date where missing), fsyncs the file and the directory, answers with the
// queue ID, and wakes qmgr. See cleanup(8).
package main

import (
	"os"

	"postern/pkg/auth"
	"postern/pkg/daemon"
	"postern/pkg/ipc"
	"postern/pkg/queue"
)

func main() {
	d := daemon.Start("cleanup")
	ctx, stop := d.Context()
	defer stop()
	cfg := d.Config
	c := &Cleanup{
		Hostname: cfg.Hostname,
		Spool:    queue.Spool{Root: cfg.SpoolDir},
		Auth:     auth.NewClient(cfg.PrivateSocket("auth")),
		Qmgr:     ipc.NewClient(cfg.PrivateSocket("qmgr")),
		Log:      d.Log,
	}
	srv := c.Server(daemon.Trust(cfg, "smtpd", "qmgr"))
	go c.Wakeups(ctx)
	if err := srv.Serve(ctx, d.Unix("private/cleanup")); err != nil {
		d.Log.Error("serving", "err", err)
		os.Exit(1)
	}
	srv.Shutdown(ctx)
}

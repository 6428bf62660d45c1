// Command local is Postern's local delivery agent.
//
// qmgr hands local a message as an open queue file descriptor with the recipients that
// have mailboxes on this host; local writes the message into each recipient's Maildir
// (tmp/, fsync, rename into new/) — the INBOX, or Junk for spam, or where the
// recipient's active Sieve script files it (the script is sieved's, read here) — after
// checking the mailbox's Maildir++ quota, and answers with one result per recipient. A
// script's redirect goes back into the queue through cleanup (redirect.go). authd asks
// it to create the Maildir of a new account. It serves <spool>/private/local and runs as
// the mail user (vmail), the only user that can write the mailboxes. See local(8).
package main

import (
	"context"
	"os"
	"time"

	"postern/pkg/daemon"
	"postern/pkg/enqueue"
)

func main() {
	d := daemon.Start("local")
	d.Confine(d.Config.MailDir())
	ctx, stop := d.Context()
	defer stop()
	a := &Agent{MailRoot: d.Config.MailDir(), SieveRoot: d.Config.SieveDir(), Log: d.Log,
		Cleanup: enqueue.NewClient(d.Config.PrivateSocket("cleanup"))}
	srv := a.Server(daemon.Trust(d.Config, "qmgr", "authd"))
	ctl := a.ControlServer(daemon.Admin(d.Config))
	go ctl.Serve(ctx, d.Unix("control/local"))
	if err := srv.Serve(ctx, d.Unix("private/local")); err != nil {
		d.Log.Error("serving", "err", err)
		os.Exit(1)
	}
	// Let deliveries in flight finish: a message written but not reported would be
	// delivered again.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	ctl.Shutdown(sctx)
}

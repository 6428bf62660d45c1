// Command local is Postern's local delivery agent.
//
// qmgr hands local a message as an open queue file descriptor with the recipients that
// have mailboxes on this host; local writes the message into each recipient's Maildir
// (tmp/, fsync, rename into new/) — the INBOX, or Junk for spam, or where the
// recipient's active Sieve script files it (the script is sieved's, read here) — after
// checking the mailbox's Maildir++ quota, and answers with one result per recipient. A
// script's redirect goes back into the queue through cleanup (redirect.go), and so do its
// vacation replies, remembered in <data>/local (vacation.go). authd asks it to create the
// Maildir of a new account. It serves <spool>/private/local and runs as the mail user
// (vmail), the only user that can write the mailboxes. See local(8).
package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"time"

	"postern/pkg/auth"
	"postern/pkg/daemon"
	"postern/pkg/enqueue"
)

func main() {
	d := daemon.Start("local")
	cfg := d.Config
	d.Confine(cfg.MailDir(), cfg.LocalDir())
	ctx, stop := d.Context()
	defer stop()
	a := &Agent{MailRoot: cfg.MailDir(), SieveRoot: cfg.SieveDir(), Log: d.Log,
		SieveLimits: cfg.Sieve.Limits(),
		Cleanup:     enqueue.NewClient(cfg.PrivateSocket("cleanup"))}
	defer a.Cleanup.Close()
	// The vacation replies' memory is local's alone. Without it, mail is delivered
	// all the same and no reply is sent (a reply not remembered could be sent for
	// every message).
	if mem, err := openVacationMemory(filepath.Join(cfg.LocalDir(), "vacation.db")); err != nil {
		d.Log.Error("vacation replies disabled", "err", err)
	} else {
		defer mem.Close()
		go mem.keepSweeping(ctx, d.Log)
		a.Vacations, a.SendAs = mem, auth.NewClient(cfg.PrivateSocket("auth")).SendAs
		a.Submit = func(ctx context.Context, env *enqueue.Envelope, msg []byte) (string, error) {
			return a.submit(ctx, env, bytes.NewReader(msg))
		}
	}
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

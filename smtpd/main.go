// Command smtpd is Postern's SMTP server (RFC 5321).
//
// It serves the listeners master hands it: "smtp" (port 25, mail from the world for our
// domains), "submission" (587, STARTTLS) and "submissions" (465, implicit TLS), the last
// two for our own users, who authenticate (AUTH PLAIN or LOGIN, inside TLS) and may
// then send as their own addresses to anywhere. It parses the commands with pkg/smtp, asks
// authd (private/auth) about each recipient, and streams each message to cleanup
// (private/cleanup); it answers 250 only once cleanup has said the queue file is
// durable. It writes nothing to disk. See smtpd(8).
package main

import (
	"os"
	"os/signal"
	"syscall"

	"postern/pkg/daemon"
)

func main() {
	d := daemon.Start("smtpd")
	d.Confine() // writes no file: messages go to cleanup over its socket
	// SIGHUP re-reads the TLS certificates (master passes it on when it reloads a
	// configuration that leaves smtpd's settings alone). Caught before anything else,
	// for its default action is to end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, stop := d.Context()
	defer stop()
	srv, err := New(d.Config, d.Log)
	if err != nil {
		d.Log.Error("cannot start", "err", err)
		os.Exit(1)
	}
	go func() {
		for range hup {
			srv.ReloadCertificates()
		}
	}()
	if err := srv.Run(ctx, d.Listeners); err != nil {
		d.Log.Error("serving", "err", err)
		os.Exit(1)
	}
}

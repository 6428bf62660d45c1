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

import "postern/pkg/daemon"

func main() {
	d := daemon.Start("smtpd")
	d.Confine() // writes no file: messages go to cleanup over its socket
	d.Serve(func() (daemon.Server, error) { return New(d.Config, d.Log) })
}

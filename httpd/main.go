// Command httpd is Postern's web server: webmail over HTTPS.
//
// It serves the listeners master hands it: "https" (port 443), and "http" (80), which
// only redirects to https. The webmail is an IMAP client of Postern's own imapd and a
// submission client of its smtpd, acting as the logged-in user: httpd holds no mail. It
// keeps no password either: at login authd checks the password (with its throttling) and
// issues a web session token, which is all a session holds and which imapd and smtpd
// accept from httpd's user alone (see pkg/auth). Sessions live in httpd's memory. See
// httpd(8).
package main

import (
	"postern/pkg/daemon"
)

func main() {
	d := daemon.Start("httpd")
	// httpd writes no file: its sessions are in memory, mail goes through imapd and
	// smtpd.
	d.Confine()
	d.Serve(func() (daemon.Server, error) { return New(d.Config, d.Log) })
}

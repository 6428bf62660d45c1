// Command sendmail is Postern's sendmail(1): the program cron, PHP's mail(), mutt and
// scripts run to send mail from the local machine, with the command line of Postfix's
// sendmail. It hands the message to cleanup over <spool>/public/cleanup, which records
// the submitting Unix user from the socket's peer credentials, and exits 0 only once
// cleanup has answered that the queue file is durable. Run as mailq (or with -bp) it
// lists the queue; as newaliases (-bi, -I) it says that aliases live in authd; with -bs
// it speaks SMTP on standard input and output (smtp.go). See
// sendmail(1).
package main

import "os"

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

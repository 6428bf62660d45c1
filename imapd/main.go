// Command imapd is Postern's IMAP server: IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051)
// with the extensions mail clients rely on (IDLE, UIDPLUS, MOVE, CONDSTORE, ESEARCH,
// SPECIAL-USE, LIST-STATUS, BINARY, LITERAL+, ...).
//
// It serves the listeners master hands it: "imap" (port 143, STARTTLS) and "imaps"
// (993, implicit TLS), and POP3 (RFC 1939, see pop3.go) on "pop3" (110, STLS) and
// "pop3s" (995, implicit TLS), from the same index. Passwords are checked by authd (private/auth), only over TLS or
// from loopback. Mail lives in the Maildirs under <data>/mail, which imapd reads as the
// vmail user; imapd alone owns every cur/ directory and the per-account index
// (postern-imap.db: UIDVALIDITY, UIDs, flags, mod-sequences and a cache of envelopes,
// body structures and search text). It learns of mail that local drops into new/ through
// inotify and tells IDLE sessions at once. See imapd(8).
package main

import (
	"os"
	"runtime/debug"

	"postern/pkg/daemon"
)

// memoryLimit is the Go runtime's soft memory limit for imapd (GOMEMLIMIT overrides).
const memoryLimit = 384 << 20

func main() {
	d := daemon.Start("imapd")
	d.Confine(d.Config.MailDir()) // the Maildirs and their indexes
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit: past it the garbage collector works harder instead of
		// letting the heap double, which keeps thousands of IDLE sessions small.
		debug.SetMemoryLimit(memoryLimit)
	}
	d.Serve(func() (daemon.Server, error) { return New(d.Config, d.Log) })
}

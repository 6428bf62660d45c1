package maildir

import "strings"

// SystemFlag is a flag that a Maildir file's info carries as an upper-case letter.
type SystemFlag struct {
	Letter byte
	// IMAP is the IMAP system flag (RFC 3501 §2.3.2) the letter stands for; "" for P
	// (passed: resent, forwarded or bounced), which no IMAP flag stands for.
	IMAP string
}

// SystemFlags are the flags a Maildir file's info carries as letters
// (https://cr.yp.to/proto/maildir.html: D draft, F flagged, P passed, R replied,
// S seen, T trashed), in the letters' ASCII order, the order the info lists them in.
// \Recent has none: it is not stored. This is the one table of the letters, which
// imapd, local (FlagLetters) and pkg/mbox read; nothing changes it.
var SystemFlags = [...]SystemFlag{
	{'D', `\Draft`},
	{'F', `\Flagged`},
	{'P', ""},
	{'R', `\Answered`},
	{'S', `\Seen`},
	{'T', `\Deleted`},
}

// FlagLetters turns IMAP flags into the Maildir info letters of the system flags among
// them, in ASCII order (what DeliverNamedKeywords takes), and returns the other flags
// apart, in their order: keywords, or flags no letter stands for.
func FlagLetters(flags []string) (letters string, rest []string) {
	var have [len(SystemFlags)]bool
next:
	for _, f := range flags {
		for i, sf := range SystemFlags {
			if sf.IMAP != "" && strings.EqualFold(f, sf.IMAP) {
				have[i] = true
				continue next
			}
		}
		rest = append(rest, f)
	}
	var b []byte
	for i, sf := range SystemFlags {
		if have[i] {
			b = append(b, sf.Letter)
		}
	}
	return string(b), rest
}

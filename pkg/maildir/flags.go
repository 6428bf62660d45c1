package maildir

import "strings"

// systemFlags are the IMAP system flags (RFC 3501 §2.3.2) that a Maildir file's info
// carries as letters (https://cr.yp.to/proto/maildir.html), in the letters' ASCII
// order, the order the info lists them in. \Recent has none: it is not stored.
var systemFlags = [...]struct {
	name   string
	letter byte
}{
	{`\Draft`, 'D'},
	{`\Flagged`, 'F'},
	{`\Answered`, 'R'},
	{`\Seen`, 'S'},
	{`\Deleted`, 'T'},
}

// FlagLetters turns IMAP flags into the Maildir info letters of the system flags among
// them, in ASCII order (what DeliverNamedKeywords takes), and returns the other flags
// apart, in their order: keywords, or flags no letter stands for.
func FlagLetters(flags []string) (letters string, rest []string) {
	var have [len(systemFlags)]bool
next:
	for _, f := range flags {
		for i, sf := range systemFlags {
			if strings.EqualFold(f, sf.name) {
				have[i] = true
				continue next
			}
		}
		rest = append(rest, f)
	}
	var b []byte
	for i, sf := range systemFlags {
		if have[i] {
			b = append(b, sf.letter)
		}
	}
	return string(b), rest
}

package smtp

import "strings"

// ParseNotify checks a NOTIFY value (the RCPT parameter, sendmail -N): NEVER, or a
// comma-separated list of SUCCESS, FAILURE and DELAY, each once (RFC 3461 §4.1). It
// returns it upper-cased.
func ParseNotify(v string) (string, bool) {
	v = strings.ToUpper(v)
	if v == "NEVER" {
		return v, true
	}
	seen := map[string]bool{}
	for word := range strings.SplitSeq(v, ",") {
		switch word {
		case "SUCCESS", "FAILURE", "DELAY":
			if seen[word] {
				return "", false
			}
			seen[word] = true
		default:
			return "", false
		}
	}
	return v, true
}

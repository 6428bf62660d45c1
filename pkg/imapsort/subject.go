// Package imapsort orders and threads messages the way the IMAP SORT and THREAD
// commands do (RFC 5256), with the display-name sort keys of RFC 5957: the base subject
// of §2.1 (BaseSubject), the sort keys of a message (Keys, NewKeys), the ordering of
// §3 (Sort) and the ORDEREDSUBJECT and REFERENCES threading algorithms of §4 (Thread),
// with the THREAD response syntax of §4 (AppendThreads).
//
// It works on values that a server caches per message (Keys plus dates and sizes), so
// that sorting or threading a large mailbox reads no message file.
package imapsort

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"postern/pkg/mime"
)

// Casemap returns s in the form the i;unicode-casemap collation compares octet by octet
// (RFC 5051 §2): every character mapped to its titlecase, then decomposed (NFKD). SORT
// and THREAD compare subjects and addresses so (RFC 5256 §3, RFC 5957 §3).
func Casemap(s string) string {
	return norm.NFKD.String(strings.Map(unicode.ToTitle, s))
}

// BaseSubject returns the base subject of a raw Subject header value (RFC 5256 §2.1),
// in the form the i;unicode-casemap collation compares (Casemap), and whether extracting it removed a reply or forward marker ("Re:", "Fw:",
// "Fwd:", "[fwd: ...]"), which the REFERENCES algorithm needs (§4, step 5).
func BaseSubject(raw string) (base string, reply bool) {
	// (1) Encoded-words to UTF-8, tabs and continuations to spaces, runs of spaces
	// to one.
	s := Casemap(mime.DecodeHeader(raw))
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }), " ")
	for {
		// (2) subj-trailer: "(fwd)" / WSP, repeatedly.
		for {
			if t := strings.TrimSuffix(s, " "); t != s {
				s = t
			} else if t := strings.TrimSuffix(s, "(FWD)"); t != s {
				s = t
			} else {
				break
			}
		}
		// (3)-(5): subj-leader and subj-blob, repeatedly.
		for {
			if rest, refwd, ok := cutLeader(s); ok {
				reply = reply || refwd
				s = rest
				continue
			}
			if rest, ok := cutBlob(s); ok && rest != "" {
				// cutLeader failed after the same run of blobs, and fails after
				// each of them: remove them all at once (linear time on a
				// subject made of thousands of blobs).
				for ok && rest != "" {
					s = rest
					rest, ok = cutBlob(s)
				}
				continue
			}
			break
		}
		// (6) "[fwd:" ... "]": unwrap and start again at (2).
		if strings.HasPrefix(s, "[FWD:") && strings.HasSuffix(s, "]") {
			s = strings.TrimSpace(s[len("[FWD:") : len(s)-1])
			reply = true
			continue
		}
		return s, reply
	}
}

// cutBlob removes a leading subj-blob: "[" *BLOBCHAR "]" *WSP.
func cutBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	i := strings.IndexAny(s[1:], "[]")
	if i < 0 || s[1+i] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[i+2:], " "), true
}

// cutLeader removes a leading subj-leader: (*subj-blob subj-refwd) / WSP, where
// subj-refwd is ("re" / ("fw" ["d"])) *WSP [subj-blob] ":". refwd reports that a
// subj-refwd was removed, ok that anything was.
func cutLeader(s string) (rest string, refwd, ok bool) {
	if strings.HasPrefix(s, " ") {
		return strings.TrimLeft(s, " "), false, true
	}
	t := s
	for {
		rest, ok := cutBlob(t)
		if !ok {
			break
		}
		t = rest
	}
	switch {
	case strings.HasPrefix(t, "RE"):
		t = t[2:]
	case strings.HasPrefix(t, "FWD"):
		t = t[3:]
	case strings.HasPrefix(t, "FW"):
		t = t[2:]
	default:
		return s, false, false
	}
	t = strings.TrimLeft(t, " ")
	if rest, ok := cutBlob(t); ok {
		t = rest
	}
	if !strings.HasPrefix(t, ":") {
		return s, false, false
	}
	return t[1:], true, true
}

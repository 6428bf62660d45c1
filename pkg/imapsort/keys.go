package imapsort

import (
	"encoding/binary"
	"strings"

	"postern/pkg/mime"
)

// Keys are what SORT and THREAD need of a message besides its dates and size, in the
// form the comparisons use (Casemap).
type Keys struct {
	// Subject is the base subject (§2.1); Reply says its extraction removed a reply
	// or forward marker.
	Subject string
	Reply   bool
	// From, To and Cc are the addr-mailbox of the first address of the field (RFC
	// 5256 §3), "" when the field is empty.
	From, To, Cc string
	// DisplayFrom and DisplayTo are the decoded display name of the first address,
	// else its addr-spec (RFC 5957 §3.1).
	DisplayFrom, DisplayTo string
	// MessageID is the first valid msg-id of Message-ID, "" when there is none.
	MessageID string
	// References are the ancestors of the message, oldest first: the msg-ids of
	// References, else the first one of In-Reply-To (RFC 5256 §4, REFERENCES step 1).
	References []string
}

// NewKeys computes the keys of a message from its envelope and its raw References
// header value.
func NewKeys(env *mime.Envelope, references string) *Keys {
	k := &Keys{}
	if env.Subject != nil {
		k.Subject, k.Reply = BaseSubject(*env.Subject)
	}
	k.From = mailboxKey(env.From)
	k.To = mailboxKey(env.To)
	k.Cc = mailboxKey(env.Cc)
	k.DisplayFrom = displayKey(env.From)
	k.DisplayTo = displayKey(env.To)
	if env.MessageID != nil {
		if ids := MessageIDs(*env.MessageID); len(ids) > 0 {
			k.MessageID = ids[0]
		}
	}
	k.References = MessageIDs(references)
	if len(k.References) == 0 && env.InReplyTo != nil {
		if ids := MessageIDs(*env.InReplyTo); len(ids) > 0 {
			k.References = ids[:1]
		}
	}
	k.Subject = limit(k.Subject)
	k.From, k.To, k.Cc = limit(k.From), limit(k.To), limit(k.Cc)
	k.DisplayFrom, k.DisplayTo = limit(k.DisplayFrom), limit(k.DisplayTo)
	const maxRefs = 100 // a longer chain says nothing more useful and costs space
	if len(k.References) > maxRefs {
		k.References = k.References[len(k.References)-maxRefs:]
	}
	return k
}

// maxKey bounds a stored key: comparisons rarely need more, and the cache keeps them.
const maxKey = 512

func limit(s string) string {
	if len(s) <= maxKey {
		return s
	}
	return strings.ToValidUTF8(s[:maxKey], "")
}

func mailboxKey(l []mime.Address) string {
	if len(l) == 0 {
		return ""
	}
	return Casemap(l[0].Mailbox)
}

// displayKey: RFC 5957 §3.1, the display-name of the first address after RFC 2047
// decoding; when it is absent or empty, the addr-spec.
func displayKey(l []mime.Address) string {
	if len(l) == 0 {
		return ""
	}
	a := l[0]
	if n := strings.TrimSpace(mime.DecodeHeader(a.Name)); n != "" {
		return Casemap(n)
	}
	if a.Host == "" {
		return Casemap(a.Mailbox)
	}
	return Casemap(a.Mailbox + "@" + a.Host)
}

// MessageIDs returns the msg-ids ("<left@right>", RFC 5322 §3.6.4) found in a header
// value, in order, leniently: comments and text between them are skipped, an id
// without "@" or with white space inside is not taken.
func MessageIDs(s string) []string {
	var ids []string
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			return ids
		}
		s = s[i+1:]
		j := strings.IndexAny(s, "<>")
		if j < 0 {
			return ids
		}
		if s[j] == '<' {
			s = s[j:]
			continue
		}
		id := s[:j]
		s = s[j+1:]
		if at := strings.IndexByte(id, '@'); at > 0 && at < len(id)-1 && !strings.ContainsAny(id, " \t\r\n") {
			ids = append(ids, "<"+id+">")
		}
		if len(ids) >= 1000 {
			return ids
		}
	}
}

// AppendBinary appends the keys in a compact binary form that DecodeKeys reads: each
// string length-prefixed (uvarint), Reply as one byte, then the count of References.
func (k *Keys) AppendBinary(b []byte) []byte {
	for _, s := range []string{k.Subject, k.From, k.To, k.Cc, k.DisplayFrom, k.DisplayTo, k.MessageID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if k.Reply {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(k.References)))
	for _, s := range k.References {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// DecodeKeys reads keys written by AppendBinary and returns what follows them. The
// strings share one copy of b, made once: SORT and THREAD decode the keys of every
// message of a folder, and one allocation each costs less than ten.
func DecodeKeys(b []byte) (*Keys, []byte, bool) {
	k := &Keys{}
	all := string(b)
	off := 0
	str := func() (string, bool) {
		n, w := binary.Uvarint(b[off:])
		if w <= 0 || n > uint64(len(b)-off-w) {
			return "", false
		}
		s := all[off+w : off+w+int(n)]
		off += w + int(n)
		return s, true
	}
	var ok bool
	for _, dst := range [...]*string{&k.Subject, &k.From, &k.To, &k.Cc, &k.DisplayFrom, &k.DisplayTo, &k.MessageID} {
		if *dst, ok = str(); !ok {
			return nil, nil, false
		}
	}
	if len(b)-off < 1 {
		return nil, nil, false
	}
	k.Reply = b[off] == 1
	off++
	n, w := binary.Uvarint(b[off:])
	if w <= 0 || n > uint64(len(b)-off) {
		return nil, nil, false
	}
	off += w
	if n > 0 {
		k.References = make([]string, 0, n)
	}
	for i := uint64(0); i < n; i++ {
		s, ok := str()
		if !ok {
			return nil, nil, false
		}
		k.References = append(k.References, s)
	}
	return k, b[off:], true
}

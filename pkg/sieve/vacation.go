package sieve

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	stdmime "mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"

	"postern/pkg/mime"
)

// The vacation extension (RFC 5230), with :seconds (RFC 6131): an auto-reply to the
// sender, at most once per sender and reply in a period. The script says what to
// answer; the caller (local, at delivery) decides with Exempt whether this message may
// be answered at all, remembers whom it answered, and sends what Reply composes.

// Periods of vacation replies (RFC 5230 §4.1).
const (
	// DefaultVacationPeriod is the period when the script names none.
	DefaultVacationPeriod = 7 * 24 * time.Hour
	// MinVacationDays and MaxVacationDays bound :days: the minimum is 1 (§4.1: a
	// site's minimum is greater than 0), the maximum a year (§4.1: a site's maximum
	// is greater than 7, and should be greater than 30).
	MinVacationDays = 1
	MaxVacationDays = 365
)

// Vacation is what one vacation command asks for.
type Vacation struct {
	// Period is how long after a reply the same sender gets no other one for the same
	// Handle (:days, or :seconds of RFC 6131, whose 0 means every message).
	Period time.Duration
	// Subject is the reply's subject; "" means "Auto: " and the original's (§4.3).
	Subject string
	// From is the reply's From: address as the script gave it (:from), "" for the
	// recipient's own.
	From string
	// Addresses are more addresses of the user, besides those the system knows (§4.5).
	Addresses []string
	// MIME says Reason is a MIME entity, header fields and body (§4.4).
	MIME bool
	// Handle names the reply for the memory of whom was answered (§4.2): the :handle
	// given, else a digest of the reason, subject, from and mime arguments.
	Handle string
	// Reason is the text of the reply (or the MIME entity).
	Reason string

	// handle is the :handle argument, which hasHandle says was given.
	handle    string
	hasHandle bool
}

// VacationAction is the action kind of a vacation command; the Action's Vacation says
// how.
const VacationAction = "vacation"

// validateVacation checks the arguments of a vacation command (RFC 5230 §4, RFC 6131
// §2) and keeps them in c.vacation.
func (s *Script) validateVacation(c *Command) error {
	if c.Block != nil || c.Tests != nil {
		return errAt(c.Pos, "vacation takes no block or test")
	}
	// RFC 6131 §2: "vacation-seconds" implies "vacation".
	if !s.Requires["vacation"] && !s.Requires["vacation-seconds"] {
		return errAt(c.Pos, "vacation needs require \"vacation\"")
	}
	a, err := splitArgs(c.Args, map[string]ArgKind{
		":days": ArgNum, ":seconds": ArgNum, ":subject": ArgString, ":from": ArgString,
		":addresses": ArgStringList, ":handle": ArgString,
	})
	if err != nil {
		return err
	}
	if err := a.only(":days", ":seconds", ":subject", ":from", ":addresses", ":mime", ":handle"); err != nil {
		return err
	}
	if len(a.pos) != 1 {
		return errAt(c.Pos, "vacation takes one reason string")
	}
	if err := oneString(a.pos[0], "vacation reason"); err != nil {
		return err
	}
	v := &Vacation{Period: DefaultVacationPeriod, Reason: a.pos[0].Strs[0]}
	days, hasDays := a.tags[":days"]
	secs, hasSecs := a.tags[":seconds"]
	switch {
	case hasDays && hasSecs:
		// RFC 6131 §2: :days and :seconds are mutually exclusive.
		return errAt(secs.Pos, "vacation takes :days or :seconds, not both")
	case hasDays:
		v.Period = time.Duration(min(max(days.Num, MinVacationDays), MaxVacationDays)) * 24 * time.Hour
	case hasSecs:
		if !s.Requires["vacation-seconds"] {
			return errAt(secs.Pos, ":seconds needs require \"vacation-seconds\"")
		}
		v.Period = time.Duration(min(secs.Num, MaxVacationDays*86400)) * time.Second
	}
	if x, ok := a.tags[":subject"]; ok {
		v.Subject = x.Strs[0]
	}
	if x, ok := a.tags[":from"]; ok {
		// RFC 5230 §4.3: the address must be syntactically valid; one that names
		// a variable is checked as the script runs (RFC 5229 §3).
		if _, err := mail.ParseAddress(x.Strs[0]); err != nil && !s.hasVariables(x.Strs[0]) {
			return errAt(x.Pos, "vacation :from %q is not an address", x.Strs[0])
		}
		v.From = x.Strs[0]
	}
	if x, ok := a.tags[":addresses"]; ok {
		for _, addr := range x.Strs {
			if !strings.Contains(addr, "@") && !s.hasVariables(addr) {
				return errAt(x.Pos, "vacation :addresses: %q is not an address", addr)
			}
		}
		v.Addresses = x.Strs
	}
	_, v.MIME = a.tags[":mime"]
	if x, ok := a.tags[":handle"]; ok {
		v.handle, v.hasHandle = x.Strs[0], true
	}
	v.setHandle()
	c.vacation = v
	return nil
}

// runVacation adds the action of a vacation command: RFC 5230 §4.7, it leaves the
// implicit keep alone, and a second one in one run is a run-time error.
func (r *runner) runVacation(c *Command) error {
	for _, a := range r.acts {
		if a.Kind == VacationAction {
			return fmt.Errorf("%w: vacation taken twice", ErrRun)
		}
	}
	v, err := r.expandVacation(c.vacation)
	if err != nil {
		return err
	}
	return r.add(Action{Kind: VacationAction, Vacation: v})
}

// expandVacation gives the vacation with the variables of its string arguments
// expanded (RFC 5229 §3: :subject, :from, :addresses, :handle and the reason), the
// checks of validateVacation made again on what expansion made, and the handle
// derived from the expanded arguments. Without variables it is v itself.
func (r *runner) expandVacation(v *Vacation) (*Vacation, error) {
	if !r.variables {
		return v, nil
	}
	x := *v
	x.Subject, x.From, x.Reason, x.handle = r.expand(v.Subject), r.expand(v.From), r.expand(v.Reason), r.expand(v.handle)
	x.Addresses = r.expandList(v.Addresses)
	if v.From != "" {
		// RFC 5230 §4.3: the address must be syntactically valid.
		if _, err := mail.ParseAddress(x.From); err != nil {
			return nil, fmt.Errorf("%w: vacation :from %q is not an address", ErrRun, x.From)
		}
	}
	for _, a := range x.Addresses {
		if !strings.Contains(a, "@") {
			return nil, fmt.Errorf("%w: vacation :addresses: %q is not an address", ErrRun, a)
		}
	}
	x.setHandle()
	return &x, nil
}

// setHandle sets Handle from the :handle argument, or from a digest of the others.
func (v *Vacation) setHandle() {
	if v.hasHandle {
		v.Handle = "handle:" + v.handle
		return
	}
	// RFC 5230 §4.2: without :handle, replies that differ in their reason, subject,
	// from or mime argument are told apart, and :days or :addresses do not count.
	mimeFlag := "0"
	if v.MIME {
		mimeFlag = "1"
	}
	sum := sha256.Sum256([]byte(v.Reason + "\x00" + v.Subject + "\x00" + v.From + "\x00" + mimeFlag))
	v.Handle = "sha256:" + hex.EncodeToString(sum[:16])
}

// listFields are header fields that mark mail sent through a mailing list (RFC 2369,
// RFC 2919), which RFC 5230 §4.6 says not to answer.
var listFields = []string{"List-Id", "List-Help", "List-Subscribe", "List-Unsubscribe", "List-Post", "List-Owner", "List-Archive"}

// Exempt tells why message m may get no vacation reply, or "" when it may get one.
// mine reports whether an address is the user's (the account and its aliases); the
// command's :addresses count as the user's too. The caller adds what it alone knows
// (a message judged spam is not answered either).
func (v *Vacation) Exempt(m *Message, mine func(addr string) bool) string {
	// RFC 3834 §2 and RFC 5230 §5.2: the reply goes to the return path, and never to
	// the null one.
	if m.From == "" {
		return "null sender"
	}
	local, _, _ := strings.Cut(strings.ToLower(m.From), "@")
	// RFC 5230 §4.6: not to addresses of automated processes or list managers.
	if local == "mailer-daemon" || local == "listserv" || local == "majordomo" ||
		strings.HasPrefix(local, "owner-") || strings.HasSuffix(local, "-request") {
		return "sender is an automated process"
	}
	h := m.Header
	// RFC 3834 §2 and RFC 5230 §4.6: never answer automatic messages.
	if as, ok := h.Get("Auto-Submitted"); ok {
		kw, _, _ := strings.Cut(as, ";")
		if !strings.EqualFold(strings.TrimSpace(kw), "no") {
			return "Auto-Submitted: " + strings.TrimSpace(kw)
		}
	}
	for _, f := range listFields {
		if _, ok := h.Get(f); ok {
			return "mailing list (" + f + ")"
		}
	}
	// RFC 3834 §2: Precedence bulk, list and junk mark mail not to answer.
	if p, ok := h.Get("Precedence"); ok {
		switch strings.ToLower(strings.TrimSpace(p)) {
		case "bulk", "list", "junk":
			return "Precedence: " + strings.TrimSpace(p)
		}
	}
	own := func(a string) bool {
		if mine != nil && mine(a) {
			return true
		}
		for _, x := range v.Addresses {
			if strings.EqualFold(x, a) {
				return true
			}
		}
		return false
	}
	if own(m.From) {
		return "sender is the user"
	}
	// RFC 5230 §4.5: only personal mail, which names one of the user's addresses in a
	// recipient field, gets a reply.
	for _, f := range []string{"To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"} {
		for _, val := range h.Values(f) {
			for _, a := range mime.ParseAddressList(val) {
				if !a.Group && a.Host != "" && own(a.Mailbox+"@"+a.Host) {
					return ""
				}
			}
		}
	}
	return "none of the user's addresses is a recipient"
}

// ReplyHeaders are what Reply needs beside the command's arguments.
type ReplyHeaders struct {
	// From is the reply's author (RFC 5230 §5.5), To the original's return path (§5.6).
	From, To string
	// Date and MessageID are the reply's own.
	Date      time.Time
	MessageID string
}

// Reply composes the vacation reply to the message whose header is orig (RFC 5230 §5).
func (v *Vacation) Reply(orig *mime.Header, rh ReplyHeaders) []byte {
	var b bytes.Buffer
	field := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	field("From", rh.From)
	field("To", "<"+rh.To+">")
	subject := v.Subject
	if subject == "" {
		// RFC 5230 §5.4 (and §4.3): "Auto: " and the original subject, decoded.
		s, _ := orig.Get("Subject")
		subject = "Auto: " + mime.DecodeHeader(s)
	}
	field("Subject", encodeWords(subject))
	field("Date", rh.Date.Format(time.RFC1123Z))
	field("Message-ID", rh.MessageID)
	// RFC 3834 §3.1 and RFC 5322 §3.6.4: the reply names the message it answers.
	if id, ok := orig.Get("Message-ID"); ok && oneLineSafe(id) {
		field("In-Reply-To", id)
		refs, _ := orig.Get("References")
		if refs == "" {
			refs, _ = orig.Get("In-Reply-To")
		}
		if refs != "" && oneLineSafe(refs) && len(refs) < 4000 {
			field("References", refs+" "+id)
		} else {
			field("References", id)
		}
	}
	// RFC 5230 §5.7, RFC 3834 §5: the reply is marked as automatic.
	field("Auto-Submitted", "auto-replied (vacation)")
	field("MIME-Version", "1.0")
	if v.MIME {
		// RFC 5230 §4.4: the reason is a MIME part, header fields first.
		b.WriteString(crlf(v.Reason))
		return b.Bytes()
	}
	reason := crlf(v.Reason)
	if isASCII(reason) && maxLine(reason) <= 998 {
		field("Content-Type", "text/plain; charset=us-ascii")
		field("Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n")
		b.WriteString(reason)
	} else {
		field("Content-Type", "text/plain; charset=utf-8")
		field("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		w := quotedprintable.NewWriter(&b)
		w.Write([]byte(reason))
		w.Close()
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// encodeWords writes a header value as RFC 2047 encoded words when it is not ASCII,
// and keeps it to one line.
func encodeWords(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
	if isASCII(s) {
		return s
	}
	return stdmime.QEncoding.Encode("utf-8", s)
}

// crlf ends every line of s with CRLF (RFC 5322 §2.1).
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	if s != "" && !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0 {
			return false
		}
	}
	return true
}

func maxLine(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		n = max(n, len(l))
	}
	return n
}

// oneLineSafe tells whether a header value may be copied into another field.
func oneLineSafe(s string) bool {
	return s != "" && !strings.ContainsAny(s, "\r\n\x00")
}

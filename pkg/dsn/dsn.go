// Package dsn composes delivery status notifications: the bounce messages of RFC 3464
// ("An Extensible Message Format for Delivery Status Notifications") that tell a sender
// which recipients of a message could not be reached, or not yet.
//
// A notification is a multipart/report (RFC 6522) of three parts: a note in plain words
// for the person who sent the message, a message/delivery-status part for programs, and
// the original message — whole as message/rfc822, or only its header section as
// text/rfc822-headers when the sender asked for headers only (RET=HDRS, RFC 3461 §4.3),
// when the message is large, and in delay warnings. The original is streamed from a
// reader, never held in memory.
package dsn

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind says what a notification reports.
type Kind int

const (
	// Failure reports recipients that failed for good: the message was returned.
	Failure Kind = iota
	// Delay reports recipients that could not be reached yet and are still being tried.
	Delay
)

// Subjects of the two kinds of notification (the words Postfix uses, which people know).
const (
	FailureSubject = "Undelivered Mail Returned to Sender"
	DelaySubject   = "Delayed Mail (still being retried)"
)

// DefaultMaxFull is the size above which only the header section of the original
// message is returned.
const DefaultMaxFull = 256 << 10

// maxHeaderCopy bounds the header section copied into a report: a "header" that goes on
// for megabytes is cut there.
const maxHeaderCopy = 1 << 20

// maxText bounds one diagnostic or reason text in the report.
const maxText = 900

// Action values of a Recipient (RFC 3464 §2.3.3).
const (
	ActionFailed  = "failed"
	ActionDelayed = "delayed"
)

// Report is what a notification says.
type Report struct {
	Kind Kind
	// Hostname is the reporting MTA: it appears in From (MAILER-DAEMON@Hostname), in
	// Reporting-MTA and in the Message-ID.
	Hostname string
	// To is the recipient of the notification: the original envelope sender.
	To string
	// QueueID is the original message's queue ID, for the postmaster's reference.
	QueueID string
	// Arrival is when the original message was queued.
	Arrival time.Time
	// EnvID is the original's ENVID (RFC 3461 §4.4), if it had one.
	EnvID string
	// Ret is the original's RET parameter: "HDRS" asks for the header section only.
	Ret string
	// Size is the length of the original message; above MaxFull only its header
	// section is returned.
	Size int64
	// MaxFull overrides DefaultMaxFull when positive.
	MaxFull int64
	// EightBit says that the original is 8BITMIME: its part is labelled 8bit, and the
	// notification must be sent with BODY=8BITMIME.
	EightBit bool
	// UTF8 says that the original used SMTPUTF8 (RFC 6531): the report uses the types
	// of RFC 6533 (message/global-delivery-status, message/global) and must be sent with
	// SMTPUTF8.
	UTF8 bool
	// Recipients are the recipients reported on, at least one.
	Recipients []Recipient
	// Date is when the notification is made; zero means now.
	Date time.Time
	// MessageID is the notification's Message-ID without angle brackets; empty makes one.
	MessageID string
}

// Recipient is the fate of one recipient.
type Recipient struct {
	// Final is the address delivery was attempted to.
	Final string
	// Original is the address the sender gave (ORCPT, or before alias expansion), when
	// it differs from Final. It may carry an address type ("rfc822;a@b"), as RFC 3461's
	// ORCPT does; without one, rfc822 is assumed.
	Original string
	// Action is ActionFailed or ActionDelayed.
	Action string
	// Status is the enhanced status code (RFC 3463), e.g. 5.1.1.
	Status string
	// Reason says in words what happened.
	Reason string
	// Diagnostic is the reply of the remote server, or another diagnostic text, and
	// DiagnosticType its type: "smtp" (the default) for an SMTP reply, "X-Postern" for
	// Postern's own words.
	Diagnostic     string
	DiagnosticType string
	// RemoteMTA names the server that gave the Diagnostic, if any.
	RemoteMTA string
	// LastAttempt is when delivery was last tried.
	LastAttempt time.Time
	// WillRetryUntil is when a delayed recipient will be given up (delay reports).
	WillRetryUntil time.Time
}

// Write composes the notification for r into w. The original message is read from
// original, a stream of r.Size bytes with CRLF line endings; it is copied as it is read.
// Nothing of it is buffered beyond one line of at most 4 KiB.
func Write(w io.Writer, r *Report, original io.Reader) error {
	if len(r.Recipients) == 0 {
		return errors.New("dsn: no recipients to report on")
	}
	if r.Hostname == "" {
		return errors.New("dsn: no hostname")
	}
	for _, rc := range r.Recipients {
		if rc.Action != ActionFailed && rc.Action != ActionDelayed {
			return fmt.Errorf("dsn: recipient %s: action %q is neither failed nor delayed", rc.Final, rc.Action)
		}
	}
	date := r.Date
	if date.IsZero() {
		date = time.Now()
	}
	boundary := newBoundary()
	bw := bufio.NewWriterSize(w, 32<<10)

	// The message header (RFC 5322 §3.6).
	msgID := r.MessageID
	if msgID == "" {
		msgID = newMessageID(r.QueueID, r.Hostname, date)
	}
	subject := FailureSubject
	if r.Kind == Delay {
		subject = DelaySubject
	}
	fmt.Fprintf(bw, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n", clean(r.Hostname))
	fmt.Fprintf(bw, "To: <%s>\r\n", clean(r.To))
	fmt.Fprintf(bw, "Subject: %s\r\n", subject)
	fmt.Fprintf(bw, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(bw, "Message-ID: <%s>\r\n", clean(msgID))
	// RFC 3834 §5: a notification is an automatic response; its recipients' auto-
	// responders must not answer it.
	bw.WriteString("Auto-Submitted: auto-replied\r\n")
	bw.WriteString("MIME-Version: 1.0\r\n")
	// RFC 6522 §3: multipart/report with report-type; RFC 3464 §2: delivery-status.
	statusType := "message/delivery-status"
	if r.UTF8 {
		// RFC 6533 §3.2.
		fmt.Fprintf(bw, "Content-Type: multipart/report; report-type=global-delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary)
		statusType = "message/global-delivery-status"
	} else {
		fmt.Fprintf(bw, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary)
	}
	if r.EightBit || r.UTF8 {
		bw.WriteString("Content-Transfer-Encoding: 8bit\r\n")
	} else {
		bw.WriteString("Content-Transfer-Encoding: 7bit\r\n")
	}
	bw.WriteString("\r\nThis is a MIME-encapsulated message.\r\n\r\n")

	// Part 1: for people (RFC 6522 §3: the first part is human-readable).
	full := r.Kind == Failure && !strings.EqualFold(r.Ret, "HDRS") && r.Size <= r.maxFull()
	text := r.humanText(full)
	fmt.Fprintf(bw, "--%s\r\n", boundary)
	bw.WriteString("Content-Description: Notification\r\n")
	bw.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	if isASCII(text) {
		bw.WriteString("Content-Transfer-Encoding: 7bit\r\n")
	} else {
		bw.WriteString("Content-Transfer-Encoding: 8bit\r\n")
	}
	bw.WriteString("\r\n")
	bw.WriteString(text)

	// Part 2: for programs (RFC 3464 §2).
	fmt.Fprintf(bw, "\r\n--%s\r\n", boundary)
	bw.WriteString("Content-Description: Delivery report\r\n")
	fmt.Fprintf(bw, "Content-Type: %s\r\n", statusType)
	if r.UTF8 {
		bw.WriteString("Content-Transfer-Encoding: 8bit\r\n")
	}
	bw.WriteString("\r\n")
	bw.WriteString(r.statusFields())

	// Part 3: the original message, or its header section (RFC 3464 §2: optional).
	fmt.Fprintf(bw, "\r\n--%s\r\n", boundary)
	cte := "7bit"
	if r.EightBit || r.UTF8 {
		cte = "8bit"
	}
	var err error
	if full {
		// RFC 2046 §5.2.1: message/rfc822 is 7bit, 8bit or binary, never encoded.
		// RFC 6533 §3.1: message/global for a message with UTF-8 header fields.
		typ := "message/rfc822"
		if r.UTF8 {
			typ = "message/global"
		}
		bw.WriteString("Content-Description: Undelivered Message\r\n")
		fmt.Fprintf(bw, "Content-Type: %s\r\nContent-Transfer-Encoding: %s\r\n\r\n", typ, cte)
		err = copyMessage(bw, original)
	} else {
		// RFC 6522 §4 (text/rfc822-headers); RFC 6533 §3.3 (message/global-headers).
		typ := "text/rfc822-headers"
		if r.UTF8 {
			typ = "message/global-headers"
		}
		desc := "Undelivered Message Headers"
		if r.Kind == Delay {
			desc = "Delayed Message Headers"
		}
		fmt.Fprintf(bw, "Content-Description: %s\r\n", desc)
		fmt.Fprintf(bw, "Content-Type: %s\r\nContent-Transfer-Encoding: %s\r\n\r\n", typ, cte)
		err = copyHeaders(bw, original)
	}
	if err != nil {
		return fmt.Errorf("dsn: copying the original message: %w", err)
	}
	fmt.Fprintf(bw, "\r\n--%s--\r\n", boundary)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dsn: writing the report: %w", err)
	}
	return nil
}

func (r *Report) maxFull() int64 {
	if r.MaxFull > 0 {
		return r.MaxFull
	}
	return DefaultMaxFull
}

// humanText is the first part: what happened, in plain words.
func (r *Report) humanText(full bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at host %s.\r\n\r\n", clean(r.Hostname))
	if r.Kind == Failure {
		b.WriteString("Your message could not be delivered to one or more recipients.\r\n")
		b.WriteString("The mail system gave up on them for the reasons given below.\r\n")
		switch {
		case full:
			b.WriteString("Your message is attached below.\r\n")
		default:
			b.WriteString("The header section of your message is attached below.\r\n")
		}
	} else {
		b.WriteString("Your message has not yet been delivered to one or more recipients.\r\n")
		b.WriteString("The mail system keeps trying; you do not need to send it again.\r\n")
		b.WriteString("The header section of your message is attached below.\r\n")
	}
	b.WriteString("\r\nIf you need help, please write to the postmaster of this host\r\n")
	b.WriteString("and include this report.\r\n\r\n")
	if r.QueueID != "" {
		fmt.Fprintf(&b, "Queue ID of your message: %s\r\n", clean(r.QueueID))
	}
	if !r.Arrival.IsZero() {
		fmt.Fprintf(&b, "Received: %s\r\n", r.Arrival.Format(time.RFC1123Z))
	}
	b.WriteString("\r\n")
	for _, rc := range r.Recipients {
		fmt.Fprintf(&b, "<%s>", clean(rc.Final))
		if o := bareAddress(rc.Original); o != "" && !strings.EqualFold(o, rc.Final) {
			fmt.Fprintf(&b, " (you wrote to <%s>)", clean(o))
		}
		b.WriteString(":\r\n")
		reason := rc.Reason
		if reason == "" {
			reason = describe(rc.Status)
		}
		if rc.Action == ActionFailed {
			fmt.Fprintf(&b, "    Not delivered: %s (status %s).\r\n", clean(reason), clean(rc.Status))
		} else {
			fmt.Fprintf(&b, "    Not delivered yet: %s (status %s).\r\n", clean(reason), clean(rc.Status))
			if !rc.WillRetryUntil.IsZero() {
				fmt.Fprintf(&b, "    Delivery will be tried until %s.\r\n", rc.WillRetryUntil.Format(time.RFC1123Z))
			}
		}
		if rc.Diagnostic != "" && rc.Diagnostic != rc.Reason {
			if rc.RemoteMTA != "" {
				fmt.Fprintf(&b, "    The server %s said: %s\r\n", clean(rc.RemoteMTA), clean(rc.Diagnostic))
			} else {
				fmt.Fprintf(&b, "    Diagnostic: %s\r\n", clean(rc.Diagnostic))
			}
		}
		b.WriteString("\r\n")
	}
	return b.String()
}

// statusFields is the body of the message/delivery-status part: the per-message fields,
// then one block of per-recipient fields per recipient, blocks separated by empty lines
// (RFC 3464 §2.1).
func (r *Report) statusFields() string {
	var b strings.Builder
	// RFC 3464 §2.2.1: Original-Envelope-Id, if the sender gave an ENVID.
	if r.EnvID != "" {
		fmt.Fprintf(&b, "Original-Envelope-Id: %s\r\n", clean(r.EnvID))
	}
	// §2.2.2: Reporting-MTA is required.
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", clean(r.Hostname))
	// §3: extension fields begin with X-.
	if r.QueueID != "" {
		fmt.Fprintf(&b, "X-Postern-Queue-ID: %s\r\n", clean(r.QueueID))
	}
	// §2.2.5: Arrival-Date.
	if !r.Arrival.IsZero() {
		fmt.Fprintf(&b, "Arrival-Date: %s\r\n", r.Arrival.Format(time.RFC1123Z))
	}
	for _, rc := range r.Recipients {
		b.WriteString("\r\n")
		// §2.3.1: Original-Recipient, only when known, with its address type.
		if o := bareAddress(rc.Original); o != "" && !strings.EqualFold(o, rc.Final) {
			fmt.Fprintf(&b, "Original-Recipient: %s\r\n", r.typedAddress(rc.Original))
		}
		// §2.3.2: Final-Recipient is required.
		fmt.Fprintf(&b, "Final-Recipient: %s\r\n", r.typedAddress(rc.Final))
		// §2.3.3, §2.3.4: Action and Status are required.
		fmt.Fprintf(&b, "Action: %s\r\n", rc.Action)
		fmt.Fprintf(&b, "Status: %s\r\n", statusCode(rc))
		// §2.3.5: Remote-MTA, when a remote server answered.
		if rc.RemoteMTA != "" {
			fmt.Fprintf(&b, "Remote-MTA: dns; %s\r\n", clean(rc.RemoteMTA))
		}
		// §2.3.6: Diagnostic-Code, when there was one.
		if rc.Diagnostic != "" {
			typ := rc.DiagnosticType
			if typ == "" {
				typ = "smtp"
			}
			fmt.Fprintf(&b, "Diagnostic-Code: %s; %s\r\n", clean(typ), clean(rc.Diagnostic))
		}
		// §2.3.7: Last-Attempt-Date.
		if !rc.LastAttempt.IsZero() {
			fmt.Fprintf(&b, "Last-Attempt-Date: %s\r\n", rc.LastAttempt.Format(time.RFC1123Z))
		}
		// §2.3.9: Will-Retry-Until, for delayed recipients.
		if rc.Action == ActionDelayed && !rc.WillRetryUntil.IsZero() {
			fmt.Fprintf(&b, "Will-Retry-Until: %s\r\n", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	return b.String()
}

// statusCode returns the recipient's status, made consistent with its action: a failure
// is reported with a 5 class and a delay with a 4 class (RFC 3464 §2.3.4), and a status
// that is not an enhanced code at all becomes X.0.0.
func statusCode(rc Recipient) string {
	class := "5"
	if rc.Action == ActionDelayed {
		class = "4"
	}
	parts := strings.Split(rc.Status, ".")
	if len(parts) != 3 || !digits(parts[0], 1) || !digits(parts[1], 3) || !digits(parts[2], 3) {
		return class + ".0.0"
	}
	return class + "." + parts[1] + "." + parts[2]
}

func digits(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// typedAddress writes an address with its address type (RFC 3464 §2.1.2): rfc822 for
// ASCII addresses, utf-8 for internationalized ones (RFC 6533 §3). An address that
// already carries a type (an ORCPT value) keeps it.
func (r *Report) typedAddress(a string) string {
	a = clean(a)
	if t, rest, ok := strings.Cut(a, ";"); ok && isAtom(t) && !strings.Contains(t, "@") {
		return t + ";" + strings.TrimSpace(rest)
	}
	if r.UTF8 && !isASCII(a) {
		return "utf-8;" + a
	}
	return "rfc822;" + a
}

// bareAddress strips an address type from an ORCPT-style value.
func bareAddress(a string) string {
	if t, rest, ok := strings.Cut(a, ";"); ok && isAtom(t) && !strings.Contains(t, "@") {
		return strings.TrimSpace(rest)
	}
	return a
}

func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// describe gives words for an enhanced status code (RFC 3463 §3) when nothing better is
// known.
func describe(code string) string {
	parts := strings.SplitN(code, ".", 2)
	if len(parts) == 2 {
		switch parts[1] {
		case "1.1":
			return "mailbox unavailable"
		case "2.2":
			return "mailbox full"
		case "4.7":
			return "delivery time expired"
		case "3.1":
			return "mail system full"
		}
	}
	if strings.HasPrefix(code, "4") {
		return "temporary failure"
	}
	return "delivery failed"
}

// clean makes text safe for one header or text line: no control characters (so no CR or
// LF that would end the line early), no invalid UTF-8, at most maxText bytes.
func clean(s string) string {
	if len(s) > maxText {
		cut := maxText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError:
			return '?'
		case r == '\t':
			return ' '
		case r < ' ' || r == 0x7f:
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// newBoundary returns a MIME boundary (RFC 2046 §5.1.1) that does not occur in the
// original: 128 random bits make a collision with any text practically impossible.
func newBoundary() string {
	var b [16]byte
	rand.Read(b[:])
	return "=_postern_" + hex.EncodeToString(b[:])
}

// newMessageID makes a unique Message-ID (RFC 5322 §3.6.4) for a notification.
func newMessageID(qid, host string, t time.Time) string {
	var b [6]byte
	rand.Read(b[:])
	if qid == "" {
		qid = "dsn"
	}
	return fmt.Sprintf("%s.%d.%s@%s", qid, t.Unix(), hex.EncodeToString(b[:]), host)
}

// copyMessage copies the whole original, ending it with CRLF if it did not so the
// boundary that follows starts a line (RFC 2046 §5.1.1).
func copyMessage(w *bufio.Writer, r io.Reader) error {
	buf := make([]byte, 32<<10)
	var last byte = '\n'
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			last = buf[n-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if last != '\n' {
		_, err := w.WriteString("\r\n")
		return err
	}
	return nil
}

// copyHeaders copies the header section of the original: its lines up to the empty line
// that ends it, at most maxHeaderCopy bytes. Lines are copied as read, in pieces of at
// most 4 KiB when they are long.
func copyHeaders(w *bufio.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 4096)
	var copied int
	atLineStart := true
	lastNL := true
	for copied < maxHeaderCopy {
		piece, err := br.ReadSlice('\n')
		if len(piece) > 0 {
			if atLineStart && (string(piece) == "\r\n" || string(piece) == "\n") {
				return nil // the empty line: the header section ends
			}
			w.Write(piece)
			copied += len(piece)
			lastNL = piece[len(piece)-1] == '\n'
			atLineStart = lastNL
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if !lastNL {
		w.WriteString("\r\n")
	}
	return nil
}

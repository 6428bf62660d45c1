// Package mailq prints what qmgr's queue.list answers the way Postfix's mailq does, and
// makes text from the network safe to print on a terminal. mailctl's queue list and
// sendmail's mailq (-bp) share it.
package mailq

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"postern/pkg/control"
	"postern/pkg/queue"
)

// stateMarks are the marks after a queue ID, as in Postfix's mailq.
var stateMarks = map[string]string{
	queue.Active:  "*",
	queue.Hold:    "!",
	queue.Corrupt: "#",
}

// Write prints the queue the way mailq does: one block per message, a blank line between
// them, and a summary.
func Write(w io.Writer, msgs []control.QueueEntry) {
	if len(msgs) == 0 {
		fmt.Fprintln(w, "Mail queue is empty")
		return
	}
	// Recipients line up under the sender: 17 (ID and mark) + 1 + 8 (size) + 1 + 20
	// (arrival) + 2.
	indent := strings.Repeat(" ", 49)
	fmt.Fprintln(w, "-Queue ID-------- --Size-- ----Arrival Time---- -Sender/Recipient-------")
	var total int64
	for _, m := range msgs {
		total += m.Size
		from := Clean(m.From)
		if from == "" {
			from = "MAILER-DAEMON" // the null sender <>, as mailq shows it
		}
		fmt.Fprintf(w, "%-17s %8d %20s  %s\n", Clean(m.ID)+stateMarks[m.State], m.Size, m.Arrival.Local().Format("Mon Jan _2 15:04:05"), from)
		reason := ""
		for _, r := range m.Recipients {
			if r.Status == "delivered" {
				continue
			}
			// A reason applies to the recipients listed under it, as in mailq.
			if r.Reason != reason && r.Reason != "" {
				fmt.Fprintf(w, "(%s)\n", Clean(r.Reason))
			}
			reason = r.Reason
			fmt.Fprintf(w, "%s%s\n", indent, Clean(r.Addr))
		}
		fmt.Fprintln(w)
	}
	requests := "Requests"
	if len(msgs) == 1 {
		requests = "Request"
	}
	fmt.Fprintf(w, "-- %d Kbytes in %d %s.\n", (total+1023)/1024, len(msgs), requests)
}

// Clean makes a string that came from the network (a sender, a deferral reason, a
// header) safe to print on a terminal: control characters, which could move the cursor
// or change the terminal's settings, are shown as ^X or \xNN.
func Clean(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f || c >= 0x80 {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20:
			b.WriteByte('^')
			b.WriteByte(byte(r) + '@')
		case r == 0x7f:
			b.WriteString("^?")
		case r >= 0x80 && r < 0xa0: // C1 controls
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

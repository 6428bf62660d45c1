package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/queue"
	"postern/pkg/spamcheck"
)

// What cleanup does with inbound mail (not from an authenticated user, not a bounce):
// before the queue file is marked complete it asks spamd for a verdict, so that a refusal
// is a 5xx to the client and never a bounce, and it puts spamd's Authentication-Results
// and X-Spam-Status in front of the message.

// verdictRoom is the room reserved in front of an inbound message for the headers of
// the verdict and the envelope's growth (the junk mark).
const verdictRoom = 4096

// junkMarkRoom is the room reserved per recipient for its own junk mark
// (queue.Recipient.Spam: `,"spam":true`).
const junkMarkRoom = 16

// SpamPolicy is how cleanup uses spamd.
type SpamPolicy struct {
	// Client asks spamd; nil checks nothing.
	Client *spamcheck.Client
	// Tempfail says that a message without a verdict (spamd down or slow) gets 451
	// instead of being queued unchecked.
	Tempfail bool
	// AuthservID names this host in Authentication-Results (RFC 8601 §2.5).
	AuthservID string
}

// checked reports whether a message is one spamd judges.
func (c *Cleanup) checked(env *enqueue.Envelope) bool {
	return c.Spam.Client != nil && !env.Submission && !env.Bounce && env.AuthUser == "" && env.ClientAddr != ""
}

// judge asks spamd about the message written so far into w, and applies the verdict:
// a refusal comes back as the ipc error to answer; a junk verdict marks the envelope;
// the headers go in front of the message at Commit.
func (c *Cleanup) judge(ctx context.Context, w *queueWriter, env *enqueue.Envelope) *ipc.Error {
	id := w.env.ID
	noVerdict := func(err error) *ipc.Error {
		if c.Spam.Tempfail {
			c.Log.Warn("no verdict from spamd, message refused for now", "id", id, "err", err)
			return enqueue.Refusal(enqueue.CodeTempfail, "4.7.1", "Message checks unavailable, try again later")
		}
		c.Log.Warn("no verdict from spamd, message accepted unchecked", "id", id, "err", err)
		return nil
	}
	if err := w.Flush(); err != nil {
		c.Log.Error("queue file not written", "id", id, "err", err)
		return ipc.Errorf("temporary", "queue file error")
	}
	// spamd reads the message through its own read-only descriptor of the file.
	f, err := os.Open(w.Path())
	if err != nil {
		return noVerdict(err)
	}
	defer f.Close()
	req := &spamcheck.Request{
		QueueID: id, From: env.From, ClientAddr: env.ClientAddr, ClientName: env.ClientName,
		Helo: env.Helo, TLS: env.TLS, Offset: w.BodyOffset(), Size: w.Size(),
	}
	// The recipients after alias expansion, as queued: the accounts (and forwarding
	// addresses) the message goes to, so that spamd judges it with the corpus of the
	// account that will file it, not of the alias it was sent to, and applies that
	// account's own block and allow lists. spamd takes at most MaxRecipients.
	for _, r := range w.env.Recipients[:min(len(w.env.Recipients), spamcheck.MaxRecipients)] {
		req.Recipients = append(req.Recipients, r.Addr)
	}
	v, err := c.Spam.Client.Check(ctx, f, req)
	if err != nil {
		return noVerdict(err)
	}
	// spamd logs the verdict (id, action, score, reasons, client): not again here.
	switch v.Action {
	case spamcheck.Reject:
		return enqueue.Refusal(enqueue.CodeRejected, cmp.Or(v.Code, "5.7.1"), printable(cmp.Or(v.Text, "Message refused")))
	case spamcheck.Tempfail:
		return enqueue.Refusal(enqueue.CodeTempfail, cmp.Or(v.Code, "4.7.1"), printable(cmp.Or(v.Text, "Try again later")))
	}
	if markJunk(w.env, v) {
		if err := w.Rewrite(w.env); err != nil {
			return noVerdict(err)
		}
	}
	if err := w.Prepend(verdictHeaders(v, c.Spam.AuthservID, verdictRoom-512)); err != nil {
		c.Log.Warn("verdict headers not added", "id", id, "err", err)
	}
	return nil
}

// markJunk records in env where each recipient's copy goes: into Junk for all when the
// verdict is junk, but for the recipients whose own allow list has the sender (v.Inbox);
// into Junk for the recipients whose own block list has it (v.Junk) otherwise. It
// reports whether env changed.
func markJunk(env *queue.Envelope, v *spamcheck.Verdict) bool {
	in := func(list []string, addr string) bool {
		return slices.ContainsFunc(list, func(a string) bool { return strings.EqualFold(a, addr) })
	}
	if v.Action == spamcheck.Junk && len(v.Inbox) == 0 {
		env.Spam = true
		return true
	}
	if v.Action != spamcheck.Junk && len(v.Junk) == 0 {
		return false
	}
	all, changed := true, false
	for i := range env.Recipients {
		r := &env.Recipients[i]
		if v.Action == spamcheck.Junk && !in(v.Inbox, r.Addr) || v.Action != spamcheck.Junk && in(v.Junk, r.Addr) {
			r.Spam, changed = true, true
		} else {
			all = false
		}
	}
	if all {
		env.Spam = true
	}
	return changed
}

// verdictHeaders formats Authentication-Results (RFC 8601) and X-Spam-Status, within
// room octets: reasons that do not fit are left out.
func verdictHeaders(v *spamcheck.Verdict, authservID string, room int) []byte {
	var b bytes.Buffer
	ar := headerText(v.AuthResults)
	if ar == "" {
		ar = authservID + "; none"
	}
	if len(ar) < room/2 {
		fmt.Fprintf(&b, "Authentication-Results: %s\r\n", ar)
	}
	yes := "No"
	if v.Action == spamcheck.Junk {
		yes = "Yes"
	}
	fmt.Fprintf(&b, "X-Spam-Status: %s, score=%.1f", yes, v.Score)
	if len(v.Reasons) > 0 {
		b.WriteString("\r\n\ttests=")
		line := 7
		for i, r := range v.Reasons {
			r = headerText(r)
			if b.Len()+len(r)+8 > room {
				break
			}
			if i > 0 {
				b.WriteByte(',')
				if line+len(r) > 70 {
					b.WriteString("\r\n\t")
					line = 1
				}
			}
			b.WriteString(r)
			line += len(r) + 1
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// headerText keeps spamd's text to what a header field body may hold: printable ASCII,
// and folding only as CRLF followed by a tab (RFC 5322 §2.2.3).
func headerText(s string) string {
	lines := strings.Split(s, "\r\n")
	for i, l := range lines {
		lines[i] = strings.Map(func(r rune) rune {
			if r == '\t' || (r >= ' ' && r <= '~') {
				return r
			}
			return -1
		}, l)
	}
	out := lines[:0]
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			out = append(out, strings.TrimLeft(l, " \t"))
		}
	}
	return strings.Join(out, "\r\n\t")
}

// lastFieldEnd returns the offset just past the last complete header field of a header
// section read in part: the last CRLF followed by the start of another field.
func lastFieldEnd(b []byte) int {
	for i := len(b) - 3; i >= 0; i-- {
		if b[i] == '\r' && b[i+1] == '\n' && b[i+2] != ' ' && b[i+2] != '\t' {
			return i + 2
		}
	}
	return 0
}

// removeOwnResults removes from a header section the Authentication-Results fields whose
// authserv-id is ours: a message cannot come with results this host did not write (RFC
// 8601 §5). Comparison of the authserv-id is case-insensitive (it is a domain name).
func removeOwnResults(section []byte, authservID string) []byte {
	if authservID == "" || !bytes.Contains(bytes.ToLower(section), []byte("authentication-results")) {
		return section
	}
	var out []byte
	drop := false
	for len(section) > 0 {
		line := section
		if i := bytes.Index(section, []byte("\r\n")); i >= 0 {
			line, section = section[:i+2], section[i+2:]
		} else {
			section = nil
		}
		if line[0] != ' ' && line[0] != '\t' {
			drop = false
			if name, value, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(strings.TrimSpace(string(name)), "Authentication-Results") {
				drop = strings.EqualFold(resultsAuthservID(string(value)), authservID)
			}
		}
		if !drop {
			out = append(out, line...)
		}
	}
	return out
}

// resultsAuthservID returns the authserv-id an Authentication-Results value starts with
// (RFC 8601 §2.2), comments (CFWS) skipped.
func resultsAuthservID(v string) string {
	v = strings.TrimLeft(v, " \t\r\n")
	for strings.HasPrefix(v, "(") {
		i := strings.IndexByte(v, ')')
		if i < 0 {
			return ""
		}
		v = strings.TrimLeft(v[i+1:], " \t\r\n")
	}
	end := strings.IndexAny(v, "; \t\r\n(")
	if end >= 0 {
		v = v[:end]
	}
	return strings.TrimSuffix(v, ".")
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"postern/pkg/auth"
	"postern/pkg/dkim"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
)

// What cleanup does to outbound mail — submissions of authenticated users and the
// bounces qmgr makes — once it has read the header section: it checks that a user's
// message is written in the name of one of the user's addresses, and it DKIM-signs the
// message for the domain of its From: address.

// checkAuthor refuses an authenticated submission whose From: (and Sender:, Resent-From:,
// Resent-Sender:, if any) names an address, or a display name that is an address, the
// user may not send as (authd's sendas answer): a user writes in their own name only, not
// just in the envelope (smtpd checks MAIL FROM). The refusal is an ipc error of code enqueue.CodeRejected, which smtpd answers with 550 5.7.1 at the
// end of the data.
func (c *Cleanup) checkAuthor(ctx context.Context, id string, env *enqueue.Envelope, h *headerFixer) *ipc.Error {
	if !env.Submission && !env.AutoReply || env.AuthUser == "" {
		return nil
	}
	if !h.complete {
		return ipc.Errorf(enqueue.CodeRejected, "Header section too large to check the author (over %d octets)", maxHeaderScan)
	}
	// RFC 5322 §3.6.6: a message resent (a mail client's "bounce" or "redirect") carries
	// Resent-From: and Resent-Sender: in the user's name, as From: and Sender: of a new
	// one. Each resending prepends its block, so they may appear more than once.
	authors := []struct {
		name  string
		once  bool
		boxes []*mail.Address
	}{{name: "From", once: true}, {name: "Sender", once: true}, {name: "Resent-From"}, {name: "Resent-Sender"}}
	for i := range authors {
		f := &authors[i]
		var err error
		if f.boxes, err = headerMailboxes(h.section, f.name, f.once); err != nil {
			return ipc.Errorf(enqueue.CodeRejected, "Cannot parse the %s: header: %s", f.name, printable(err.Error()))
		}
		if f.name == "From" && len(f.boxes) == 0 {
			// RFC 5322 §3.6: every message has a From: field.
			return ipc.Errorf(enqueue.CodeRejected, "Message has no From: header")
		}
	}
	sa := auth.SendAsResult{Addresses: env.SendAs}
	if len(sa.Addresses) == 0 {
		var err error
		if sa, err = c.Auth.SendAs(ctx, env.AuthUser); err != nil {
			c.Log.Warn("sender addresses lookup failed", "id", id, "auth", env.AuthUser, "err", err)
			return ipc.Errorf("temporary", "sender lookup failed")
		}
	}
	for _, f := range authors {
		for _, a := range f.boxes {
			if !sa.Allows(a.Address) {
				return ipc.Errorf(enqueue.CodeRejected, "%s: header address <%s> not owned by user %s", f.name, printable(a.Address), env.AuthUser)
			}
			// Most mail clients show the display name alone: "demo@example.test"
			// <bob@example.test> reads as mail from demo. A display name that is
			// itself an address must be one of the user's too.
			if other := nameAddress(a.Name, sa); other != "" {
				return ipc.Errorf(enqueue.CodeRejected, "%s: header display name %q is an address not owned by user %s", f.name, printable(other), env.AuthUser)
			}
		}
	}
	return nil
}

// errDuplicateField is a header section with a field that must appear once appearing
// more often.
var errDuplicateField = errors.New("the field appears more than once")

// headerAddresses returns the addresses of the header field name (From, Sender ...):
// none if the field is absent, an error if it does not parse or appears twice (RFC 5322
// §3.6 allows one From: and one Sender:). Display names may use any charset: they are
// not looked at.
func headerAddresses(section []byte, name string) ([]string, error) {
	list, err := headerMailboxes(section, name, true)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out, nil
}

// headerMailboxes returns the mailboxes (display name and address) of every field
// called name, or of the only one when once is true (an error when there are more).
// Encoded words in display names are decoded, in any charset.
func headerMailboxes(section []byte, name string, once bool) ([]*mail.Address, error) {
	values := fieldValues(section, name)
	if once && len(values) > 1 {
		return nil, fmt.Errorf("%s: %w", name, errDuplicateField)
	}
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	var out []*mail.Address
	for _, v := range values {
		list, err := p.ParseList(v)
		if err != nil {
			return nil, err
		}
		out = append(out, list...)
	}
	return out, nil
}

// nameAddress returns the first thing in a display name that looks like an address
// (text@text, quotes and brackets aside; fullwidth and small at signs count as @) and
// that sa does not allow, or "" when there is none.
func nameAddress(name string, sa auth.SendAsResult) string {
	if name == "" {
		return ""
	}
	name = strings.NewReplacer("\uff20", "@", "\ufe6b", "@").Replace(name)
	stop := func(r rune) bool { return strings.ContainsRune(" \t\"'<>()[],;:`", r) }
	for _, word := range strings.FieldsFunc(name, stop) {
		at := strings.LastIndexByte(word, '@')
		if at <= 0 || at == len(word)-1 {
			continue
		}
		if !sa.Allows(word) {
			return word
		}
	}
	return ""
}

// fieldValues returns the unfolded values of every field called name in a header
// section (RFC 5322 §2.2.3: unfolding removes the CRLF before whitespace).
func fieldValues(section []byte, name string) []string {
	var out []string
	lines := bytes.Split(section, []byte("\r\n"))
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if !strings.EqualFold(strings.TrimRight(string(line[:colon]), " \t"), name) {
			continue
		}
		v := append([]byte(nil), line[colon+1:]...)
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			v = append(v, lines[i]...)
		}
		out = append(out, strings.TrimSpace(string(v)))
	}
	return out
}

// printable keeps text fit for an SMTP reply: printable ASCII only.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return '?'
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// signer starts the DKIM signatures of an outbound message: with the keys of the
// domain of its (single) From: address or, failing that, of the nearest parent domain
// that has keys (relaxed alignment, RFC 7489 §3.1.1: a bounce From:
// MAILER-DAEMON@mail.example.org is aligned with d=example.org). It reserves room for the
// signatures in the queue file. nil means the message goes unsigned: no key, or no
// usable From:.
func (c *Cleanup) signer(section []byte, w *queueWriter) *dkim.Signer {
	if c.DKIM == nil {
		return nil
	}
	from, err := headerAddresses(section, "From")
	if err != nil || len(from) != 1 {
		return nil
	}
	domain := strings.ToLower(from[0][strings.LastIndexByte(from[0], '@')+1:])
	for {
		keys, err := c.DKIM.Keys(domain)
		if err != nil {
			c.Log.Error("DKIM keys unreadable, message not signed", "id", w.env.ID, "domain", domain, "err", err)
			return nil
		}
		if len(keys) > 0 {
			s, err := dkim.NewSigner(keys)
			if err == nil {
				err = w.Reserve(len(keys) * dkim.MaxSignatureSize)
			}
			if err != nil {
				if s != nil {
					s.Abort()
				}
				c.Log.Error("DKIM signing not started, message not signed", "id", w.env.ID, "domain", domain, "err", err)
				return nil
			}
			var sels []string
			for _, k := range keys {
				sels = append(sels, k.Selector)
			}
			w.signedBy = domain + ":" + strings.Join(sels, ",")
			return s
		}
		_, parent, ok := strings.Cut(domain, ".")
		if !ok || !strings.Contains(parent, ".") {
			return nil
		}
		domain = parent
	}
}

package main

import (
	"context"
	"time"

	"postern/pkg/auth"
	"postern/pkg/spamcheck"
)

// greylistTimeout bounds smtpd's question to spamd about greylisting: without an
// answer the recipient is accepted, for greylisting only delays mail.
const greylistTimeout = 2 * time.Second

// greylisted asks spamd whether a local recipient of mail from this client and sender
// passes greylisting (RFC 6647), on port 25 for unauthenticated clients when [spamd]
// greylist is on. A triplet that does not pass gets 451 4.7.1: a temporary failure
// (RFC 5321 §4.2.1), which a real mail server retries later (RFC 3463 X.7.1: delivery
// not authorized, for now). When spamd cannot answer, the recipient is accepted.
func (s *session) greylisted(tx *transaction, addr string, res *auth.ResolveResult) (reply, bool) {
	if s.srv.greylist == nil || s.policy.submission || s.authUser != "" || !res.Local {
		return reply{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), greylistTimeout)
	defer cancel()
	ans, err := s.srv.greylist.Greylist(ctx, &spamcheck.GreylistRequest{ClientAddr: s.ip.Unmap().String(), From: tx.from.String(), Rcpt: addr, Helo: s.helo})
	if err != nil {
		s.log.Warn("greylisting not checked, recipient accepted", "to", "<"+addr+">", "err", err)
		return reply{}, false
	}
	if ans.Pass {
		return reply{}, false
	}
	return newReply(451, "4.7.1", "<%s>: Recipient address rejected: Greylisted, try again in %d seconds", addr, ans.Retry), true
}

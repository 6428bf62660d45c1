package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"postern/pkg/auth"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/ratelimit"
	"postern/pkg/smtp"
)

// transaction is a mail transaction: from MAIL to the end of DATA or BDAT LAST, RSET,
// EHLO/HELO or STARTTLS (RFC 5321 §3.3).
type transaction struct {
	from      smtp.Address
	body      smtp.Body
	smtputf8  bool
	envID     string // RFC 3461 §4.4, xtext-decoded
	ret       string // RFC 3461 §4.3: FULL or HDRS
	size      int64  // the SIZE declared in MAIL (RFC 1870); 0 when none
	rcpts     []enqueue.Recipient
	rcptTries int // RCPT commands in this transaction, accepted or not
	// bdat is the message being received in chunks (RFC 3030); nil before the first
	// BDAT.
	bdat *bdatTransfer
}

// resetTx ends the transaction, discarding a message partly sent to cleanup.
func (s *session) resetTx() {
	if s.tx == nil {
		return
	}
	if s.tx.bdat != nil {
		s.tx.bdat.abort()
	}
	s.tx = nil
}

// cmdMail serves MAIL (RFC 5321 §4.1.1.2).
func (s *session) cmdMail(arg string) {
	switch {
	case s.helo == "":
		s.reply(rHeloFirst) // RFC 5321 §4.1.4
		return
	case s.tx != nil:
		s.reply(rNestedMail)
		return
	case s.policy.submission && s.authUser == "":
		// RFC 6409 §4.3 and RFC 4954 §6: the submission ports take mail only from
		// authenticated users.
		s.reply(rAuthRequired)
		return
	case !hasPrefixFold(arg, "FROM:"):
		s.reply(rMailSyntax)
		return
	}
	// SMTPUTF8 is offered, so a non-ASCII reverse-path is accepted when the command
	// carries the SMTPUTF8 parameter (RFC 6531 §3.4).
	from, params, err := smtp.ParseMailFrom(arg, true)
	if err != nil {
		s.reply(parseError(err, rNonASCIISender, rLongSender, rBadSender))
		return
	}
	if s.authUser != "" && from.String() != "" && !s.sendAs.Allows(from.String()) {
		// RFC 6409 §6.1: the submission server may check that the sender is one the
		// user is entitled to; a user sends as their own addresses only. (The null
		// reverse-path is allowed: receipts and notifications use it; the From:
		// header is checked by cleanup all the same.)
		s.reply(newReply(553, "5.7.1", "<%s>: Sender address rejected: not owned by user %s", from.String(), s.authUser))
		return
	}
	tx := &transaction{from: from}
	for _, p := range params {
		switch p.Key {
		case "SIZE":
			// RFC 1870 §6.1: a declared size over the limit is refused at once.
			n, _, err := params.Size()
			if err != nil {
				s.reply(rBadParam)
				return
			}
			if n > s.srv.maxSize {
				s.reply(rTooBig, "from", "<"+from.String()+">", "size", n)
				return
			}
			tx.size = n
		case "BODY":
			b, err := params.Body()
			if err != nil {
				s.reply(rBadParam)
				return
			}
			if b == smtp.BodyBinaryMIME {
				// BINARYMIME (RFC 3030 §3) is not offered: line endings are
				// normalized, which binary content does not survive.
				s.reply(rBinaryMIME)
				return
			}
			tx.body = b
		case "SMTPUTF8":
			if _, err := params.SMTPUTF8(); err != nil {
				s.reply(rBadParam)
				return
			}
			tx.smtputf8 = true
		case "RET":
			v := strings.ToUpper(p.Value)
			if v != "FULL" && v != "HDRS" { // RFC 3461 §4.3
				s.reply(rBadParam)
				return
			}
			tx.ret = v
		case "ENVID":
			id, ok := parseEnvID(p.Value)
			if !ok {
				s.reply(rBadParam)
				return
			}
			tx.envID = id
		default:
			// RFC 5321 §4.1.1.11: 555 for a parameter not recognized.
			s.reply(newReply(555, "5.5.4", "Unsupported parameter %s", p.Key))
			return
		}
	}
	if r, refused := s.accountRate(false); refused {
		s.reply(r, "user", s.authUser)
		return
	}
	if !s.exempt && !s.srv.clientRate.Take(ratelimit.Site(s.ip), false) {
		s.reply(rClientMessages)
		return
	}
	s.tx = tx
	s.reply(rMailOK)
}

// cmdRcpt serves RCPT (RFC 5321 §4.1.1.3).
func (s *session) cmdRcpt(arg string) {
	tx := s.tx
	switch {
	case tx == nil:
		s.reply(rNeedMail)
		return
	case tx.bdat != nil:
		// The envelope went to cleanup with the first chunk.
		s.reply(rRcptInBdat)
		return
	}
	tx.rcptTries++
	if r, refused := s.relayPolicy(); refused {
		s.reply(r)
		return
	}
	if !hasPrefixFold(arg, "TO:") {
		s.reply(rRcptSyntax)
		return
	}
	to, params, err := smtp.ParseRcptTo(arg, tx.smtputf8)
	if err != nil {
		s.reply(parseError(err, rNonASCIIRcpt, rLongRcpt, rBadRcpt))
		return
	}
	rcpt := enqueue.Recipient{Addr: to.String()}
	if to.Domain == "" {
		// RFC 5321 §4.5.1: <postmaster> without a domain must be accepted.
		rcpt.Addr = s.srv.postmaster
	}
	for _, p := range params {
		switch p.Key {
		case "NOTIFY":
			n, ok := smtp.ParseNotify(p.Value)
			if !ok {
				s.reply(rBadParam)
				return
			}
			rcpt.Notify = n
		case "ORCPT":
			o, ok := parseORcpt(p.Value)
			if !ok {
				s.reply(rBadParam)
				return
			}
			rcpt.ORcpt = o
		default:
			s.reply(newReply(555, "5.5.4", "Unsupported parameter %s", p.Key))
			return
		}
	}
	// RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted; past the limit,
	// 452 lets the client send the rest in another transaction (§4.5.3.1.10).
	if len(tx.rcpts) >= s.srv.maxRcpts {
		s.reply(rTooManyRcpts, "to", "<"+rcpt.Addr+">")
		return
	}
	res, r := s.recipientPolicy(rcpt.Addr)
	if res == nil {
		s.reply(r, "from", "<"+tx.from.String()+">", "to", "<"+rcpt.Addr+">")
		if r.code == 550 && !s.exempt && s.srv.maxUnknown > 0 {
			// A dictionary attack tries address after address: after a few unknown
			// ones the session ends (Postfix's smtpd_hard_error_limit, for this kind
			// of error alone).
			if s.unknown++; s.unknown >= s.srv.maxUnknown && !s.quit {
				s.log.Info("too many unknown recipients", "unknown", s.unknown)
				s.write(s.srv.r.tooManyUnknown)
				s.quit = true
			}
		}
		return
	}
	if ok, never, full := res.Fits(tx.size); !ok {
		// No backscatter: a mailbox that cannot take the message is refused now,
		// while the client (the real sender or a spammer) still holds it, not bounced
		// later to a sender address that may be forged. RFC 3463 X.2.2: mailbox full;
		// 552 when the declared SIZE is larger than the quota itself (RFC 1870 §6.1),
		// else 452, for the mailbox may have room later.
		r := newReply(452, "4.2.2", "<%s>: Recipient address rejected: Mailbox full", rcpt.Addr)
		if never {
			r = newReply(552, "5.2.2", "<%s>: Recipient address rejected: Message size exceeds the mailbox's quota", rcpt.Addr)
		}
		s.reply(r, "from", "<"+tx.from.String()+">", "to", "<"+rcpt.Addr+">", "mailbox", full, "size", tx.size)
		return
	}
	if r, refused := s.greylisted(tx, rcpt.Addr, res); refused {
		s.reply(r, "from", "<"+tx.from.String()+">", "to", "<"+rcpt.Addr+">")
		return
	}
	rcpt.Resolution = res // cleanup need not ask authd again
	if r, refused := s.accountRate(true); refused {
		s.reply(r, "user", s.authUser, "to", "<"+rcpt.Addr+">")
		return
	}
	if !s.exempt && !s.srv.clientRate.Take(ratelimit.Site(s.ip), true) {
		s.reply(rClientRecipients, "to", "<"+rcpt.Addr+">")
		return
	}
	tx.rcpts = append(tx.rcpts, rcpt)
	s.reply(rRcptOK)
}

// accountRate counts a message or a recipient of the authenticated user against the
// hourly submission limits, which authd keeps (they survive a restart of smtpd). It
// returns the refusal when the limit is reached or authd cannot be asked.
func (s *session) accountRate(recipient bool) (reply, bool) {
	if s.authUser == "" || !s.srv.accountRates {
		return reply{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.timeout)
	defer cancel()
	ok, err := s.srv.auth.TakeRate(ctx, s.authUser, recipient)
	switch {
	case err != nil:
		s.log.Warn("submission rate lookup failed", "user", s.authUser, "err", err)
		return rLookupFail, true
	case ok:
		return reply{}, false
	case recipient:
		return rRateRecipients, true
	}
	return rRateMessages, true
}

// relayPolicy decides whether this session may give recipients at all. On the
// submission listeners only authenticated users may (RFC 6409 §4.3, RFC 4954 §6).
func (s *session) relayPolicy() (reply, bool) {
	if s.policy.submission && s.authUser == "" {
		return rAuthRequired, true
	}
	return reply{}, false
}

// recipientPolicy asks authd about a recipient: an address of ours that leads somewhere
// is accepted, one of ours that does not is unknown, and any other is refused, for
// Postern is no open relay — but for authenticated users, whose mail to other domains
// is relayed (RFC 6409 §3.3, RFC 4954 §6). It returns authd's answer for an accepted
// recipient, and nil with the reply for a refused one.
func (s *session) recipientPolicy(addr string) (*auth.ResolveResult, reply) {
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.timeout)
	defer cancel()
	res, err := s.srv.auth.ResolveUsage(ctx, addr)
	if ipc.IsCode(err, "notfound") || ipc.IsCode(err, "invalid") {
		// authd could not make an account of it: as unknown as can be.
		err, res = nil, auth.ResolveResult{Local: true}
	}
	switch {
	case err != nil:
		s.log.Warn("recipient lookup failed", "to", "<"+addr+">", "err", err)
		return nil, rLookupFail
	case !res.Local && s.authUser != "":
		return &res, reply{}
	case !res.Local:
		// RFC 5321 §3.6.2 relaying is refused: 554, RFC 3463 X.7.1.
		return nil, newReply(554, "5.7.1", "<%s>: Relay access denied", addr)
	case !res.Found:
		// RFC 3463 X.1.1: bad destination mailbox address.
		return nil, newReply(550, "5.1.1", "<%s>: Recipient address rejected: User unknown", addr)
	}
	return &res, reply{}
}

// quotaAtEnd checks, at the end of the message and before cleanup queues it, that the
// message of size octets fits into the mailboxes of its recipients, whose usage authd
// gave at RCPT. With one reply for all recipients (RFC 5321 §4.2.5), the message is
// refused only when no recipient can take it: 552 5.2.2 when it is larger than every
// quota, else 452 4.2.2. Recipients that cannot take it beside others that can are
// left to local, which bounces for them.
func (s *session) quotaAtEnd(tx *transaction, size int64) (reply, bool) {
	refused, never := 0, 0
	for _, r := range tx.rcpts {
		if r.Resolution == nil || len(r.Resolution.Usage) == 0 {
			continue
		}
		if ok, nv, _ := r.Resolution.Fits(size); !ok {
			refused++
			if nv {
				never++
			}
		}
	}
	switch {
	case refused == 0:
		return reply{}, false
	case refused < len(tx.rcpts):
		s.log.Info("some recipients' mailboxes are full; local will bounce for them", "over_quota", refused, "nrcpt", len(tx.rcpts), "size", size)
		return reply{}, false
	case never == refused:
		return newReply(552, "5.2.2", "Message size exceeds the recipients' mailbox quota"), true
	}
	return newReply(452, "4.2.2", "Recipients' mailboxes are full"), true
}

// parseError picks the reply to a MAIL or RCPT argument that pkg/smtp refused.
func parseError(err error, nonASCII, tooLong, bad reply) reply {
	switch {
	case errors.Is(err, smtp.ErrNonASCII):
		// RFC 6531 §3.5: 553 with X.6.7 (non-ASCII address not permitted).
		return nonASCII
	case errors.Is(err, smtp.ErrParam):
		return rBadParam
	case errors.Is(err, smtp.ErrPathTooLong):
		return tooLong // RFC 5321 §4.5.3.1.10: 501 path too long
	}
	return bad
}

// envelope is what cleanup learns about the message of the transaction.
func (s *session) envelope(tx *transaction) *enqueue.Envelope {
	env := &enqueue.Envelope{
		From:       tx.from.String(),
		Recipients: tx.rcpts,
		ClientAddr: s.ip.String(),
		// ClientName: reverse DNS is not looked up yet.
		Helo:     s.helo,
		Protocol: s.protocol(tx),
		TLS:      s.tlsInfo,
		AuthUser: s.authUser,
		SendAs:   s.sendAs.Addresses,
		// RFC 6409: mail from our own authenticated users is a submission.
		Submission: s.policy.submission && s.authUser != "",
		BodyType:   string(tx.body),
		SMTPUTF8:   tx.smtputf8,
		EnvID:      tx.envID,
		Ret:        tx.ret,
	}
	if !s.ip.IsValid() {
		env.ClientAddr = ""
	}
	return env
}

// protocol is the WITH clause of the Received header: RFC 3848's SMTP, ESMTP,
// ESMTPS, ESMTPA, ESMTPSA, and RFC 6531 §3.7.4's UTF8SMTP variants for SMTPUTF8
// transactions.
func (s *session) protocol(tx *transaction) string {
	if !s.esmtp {
		return "SMTP"
	}
	p := "ESMTP"
	if s.tlsInfo != "" {
		p += "S"
	}
	if s.authUser != "" {
		p += "A"
	}
	if tx.smtputf8 {
		p = "UTF8SMTP" + p[len("ESMTP"):]
	}
	return p
}

// hasPrefixFold reports whether s starts with prefix, ASCII case ignored.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		a, b := s[i], prefix[i]
		if 'a' <= a && a <= 'z' {
			a -= 'a' - 'A'
		}
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// txDeadline bounds the exchange with cleanup for one message: the time the client
// has to send it, and a command timeout more for cleanup to answer.
func (s *session) txDeadline(dataDeadline time.Time) time.Time {
	return dataDeadline.Add(s.srv.timeout)
}

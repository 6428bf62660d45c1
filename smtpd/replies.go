package main

import (
	"strconv"
	"strings"

	"postern/pkg/smtp"
)

// reply is an SMTP reply rendered once for the wire by pkg/smtp.
type reply struct {
	code int
	wire string // with CRLF
	// enhanced is the enhanced status code (RFC 3463), the reason label of
	// metrics.Rejected; "" for none.
	enhanced string
}

func newReply(code int, enhanced, format string, args ...any) reply {
	return reply{code: code, wire: smtp.NewReply(code, enhanced, format, args...).String(), enhanced: enhanced}
}

// text is the reply without its line ending, for logs.
func (r reply) text() string {
	if n := len(r.wire); n >= 2 {
		return r.wire[:n-2]
	}
	return r.wire
}

// Replies that do not depend on the host name. Enhanced status codes are those of
// RFC 3463 (and RFC 5248's registry); reply codes those of RFC 5321 §4.2.
var (
	rOK        = newReply(250, "2.0.0", "Ok")
	rMailOK    = newReply(250, "2.1.0", "Ok")
	rRcptOK    = newReply(250, "2.1.5", "Ok")
	rStartData = newReply(354, "", "End data with <CR><LF>.<CR><LF>")
	rBye       = newReply(221, "2.0.0", "Bye")
	// RFC 5321 §3.5.3: 252 when the server will not verify but accepts mail for the
	// address anyway; VRFY would otherwise help harvest addresses.
	rVrfy     = newReply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery")
	rHelp     = newReply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH")
	rReadyTLS = newReply(220, "2.0.0", "Ready to start TLS")

	// Sequence errors: RFC 5321 §4.1.4 and §4.2.4, 503; RFC 3463 X.5.1.
	rHeloFirst  = newReply(503, "5.5.1", "Error: send HELO/EHLO first")
	rNestedMail = newReply(503, "5.5.1", "Error: nested MAIL command")
	rNeedMail   = newReply(503, "5.5.1", "Error: need MAIL command")
	rNeedRcpt   = newReply(503, "5.5.1", "Error: need RCPT command")
	rRcptInBdat = newReply(503, "5.5.1", "Error: RCPT after BDAT")
	// RFC 3030 §2: DATA and BDAT cannot be used in the same transaction.
	rMixedBdat = newReply(503, "5.5.1", "Error: DATA and BDAT may not be mixed in one transaction")
	rTLSActive = newReply(503, "5.5.1", "Error: TLS already active")
	// RFC 5321 §3.3: DATA after every RCPT was refused.
	rNoValidRcpt = newReply(554, "5.5.1", "Error: no valid recipients")

	// Unknown and unimplemented commands, bad lines: RFC 5321 §4.2.4; RFC 3463 X.5.2
	// (syntax error, command unrecognized) and X.5.1 (unsupported command).
	rBadSyntax   = newReply(500, "5.5.2", "Error: bad syntax")
	rLineTooLong = newReply(500, "5.5.2", "Error: line too long")
	rUnknown     = newReply(502, "5.5.2", "Error: command not recognized")
	rNotImpl     = newReply(502, "5.5.1", "Error: command not implemented")
	rNotHTTP     = newReply(221, "2.7.0", "Error: this is an SMTP server")

	// Arguments: 501, RFC 3463 X.5.4 (invalid command arguments), X.1.7 and X.1.3 (bad
	// sender and destination mailbox syntax).
	rEhloSyntax     = newReply(501, "5.5.4", "Syntax: EHLO hostname")
	rHeloSyntax     = newReply(501, "5.5.4", "Syntax: HELO hostname")
	rMailSyntax     = newReply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
	rRcptSyntax     = newReply(501, "5.5.4", "Syntax: RCPT TO:<address>")
	rBdatSyntax     = newReply(501, "5.5.4", "Syntax: BDAT size [LAST]")
	rVrfySyntax     = newReply(501, "5.5.4", "Syntax: VRFY address")
	rNoArgs         = newReply(501, "5.5.4", "Syntax error: no arguments allowed")
	rBadSender      = newReply(501, "5.1.7", "Bad sender address syntax")
	rBadRcpt        = newReply(501, "5.1.3", "Bad recipient address syntax")
	rLongSender     = newReply(501, "5.1.7", "Sender address too long")
	rLongRcpt       = newReply(501, "5.1.3", "Recipient address too long")
	rBadParam       = newReply(501, "5.5.4", "Invalid parameter")
	rBinaryMIME     = newReply(555, "5.5.4", "BODY=BINARYMIME is not supported")
	rNonASCIISender = newReply(553, "5.6.7", "Non-ASCII sender address requires SMTPUTF8")
	rNonASCIIRcpt   = newReply(553, "5.6.7", "Non-ASCII recipient address requires SMTPUTF8")

	// Message content. RFC 1870 §6 and RFC 5321 §4.5.3.1.10: 552 for a message over
	// the size limit, RFC 3463 X.3.4 (message too big for system). A line longer than
	// the limit makes the content unacceptable: 554, RFC 3463 X.6.0 (other media error).
	rTooBig    = newReply(552, "5.3.4", "Error: message size exceeds fixed limit")
	rLongLines = newReply(554, "5.6.0", "Error: message contains over-long lines")

	// RFC 5321 §4.5.3.1.10: 452 for too many recipients; RFC 3463 X.5.3.
	rTooManyRcpts = newReply(452, "4.5.3", "Error: too many recipients")
	// RFC 4954 §6: 530 5.7.0 when a command needs authentication.
	rAuthRequired = newReply(530, "5.7.0", "Authentication required")
	// Per-account submission rates ([submission] in postern.toml): RFC 3463 X.7.1
	// (delivery not authorized), temporary, so that the client tries again later.
	rRateMessages   = newReply(451, "4.7.1", "Error: too many messages sent in the last hour, try again later")
	rRateRecipients = newReply(451, "4.7.1", "Error: too many recipients in the last hour, try again later")
	// Per client address (smtpd.message_rate, recipient_rate): 450, try later.
	rClientMessages   = newReply(450, "4.7.0", "Error: too many messages from your address in the last minute, try again later")
	rClientRecipients = newReply(450, "4.7.0", "Error: too many recipients from your address in the last minute, try again later")
	// Our own temporary failures: RFC 3463 X.3.0 (other mail system status).
	rQueueFail  = newReply(451, "4.3.0", "Error: queue file write error, try again later")
	rLookupFail = newReply(451, "4.3.0", "Error: temporary recipient lookup failure")
)

// hostReplies are the replies that carry the host name.
type hostReplies struct {
	greeting      reply
	ehloPlain     reply // EHLO response offering STARTTLS
	ehloTLS       reply // EHLO response in a TLS session, or without a certificate
	ehloAuth      reply // EHLO response in a TLS session of a submission listener
	helo          reply
	timeout       reply
	shutdown      reply
	tooManyErrors reply
	tooManyConns  reply
	tooManyFromIP reply
	// tooManyFromNet: too many sessions from the client's /24 or /64.
	tooManyFromNet reply
	connRate       reply // too many new connections from the client in a minute
	tooManyUnknown reply // too many unknown recipients in the session
	earlyTalker    reply // the client talked before the greeting
}

func newHostReplies(host string, maxSize int64, startTLS bool) hostReplies {
	ext := func(tlsOffered, authOffered bool) reply {
		lines := []string{
			host,
			"PIPELINING",                             // RFC 2920
			"SIZE " + strconv.FormatInt(maxSize, 10), // RFC 1870
			"8BITMIME",                               // RFC 6152
			"SMTPUTF8",                               // RFC 6531
			"ENHANCEDSTATUSCODES",                    // RFC 2034
			"CHUNKING",                               // RFC 3030
			"DSN",                                    // RFC 3461
		}
		if tlsOffered {
			lines = append(lines, "STARTTLS") // RFC 3207
		}
		if authOffered {
			lines = append(lines, "AUTH "+strings.Join(saslMechanisms, " ")) // RFC 4954 §3
		}
		// RFC 2034 §3: no enhanced status codes in the EHLO response.
		return reply{code: 250, wire: smtp.Reply{Code: 250, Lines: lines}.String()}
	}
	return hostReplies{
		// RFC 5321 §4.3.1 greeting; no enhanced code (RFC 2034 §3).
		greeting:       newReply(220, "", "%s ESMTP Postern", host),
		ehloPlain:      ext(startTLS, false),
		ehloTLS:        ext(false, false),
		ehloAuth:       ext(false, true),
		helo:           newReply(250, "", "%s", host),
		timeout:        newReply(421, "4.4.2", "%s Error: timeout exceeded", host),
		shutdown:       newReply(421, "4.3.2", "%s Service shutting down", host),
		tooManyErrors:  newReply(421, "4.7.0", "%s Error: too many errors", host),
		tooManyConns:   newReply(421, "4.7.0", "%s Error: too many connections", host),
		tooManyFromIP:  newReply(421, "4.7.0", "%s Error: too many connections from your address", host),
		tooManyFromNet: newReply(421, "4.7.0", "%s Error: too many connections from your network", host),
		connRate:       newReply(421, "4.7.0", "%s Error: too many connections from your address in the last minute, try again later", host),
		tooManyUnknown: newReply(421, "4.7.0", "%s Error: too many unknown recipients", host),
		// RFC 5321 §4.3.1: the client waits for the greeting. 554 at the greeting
		// refuses the session (RFC 5321 §3.1); X.5.0: a protocol error.
		earlyTalker: newReply(554, "5.5.0", "%s Error: you talked before the greeting", host),
	}
}

// Package smtp holds the SMTP wire format shared by Postern's SMTP server (smtpd) and its
// outbound client (remote): command lines, mailboxes and paths, ESMTP parameters, replies,
// and the message data stream.
//
// It does no networking of its own. Every reader works on a *bufio.Reader that the caller
// owns and never reads past the end of what it parses, so pipelined commands that follow
// (RFC 2920) stay in the buffer for the caller.
//
// The pieces, by RFC:
//
//   - ParseCommand, ReadLine: command lines (RFC 5321 §4.1, §4.5.3.1.4).
//   - ParseAddress, ParseDomain, ParseMailFrom, ParseRcptTo: mailboxes, domains and paths
//     (RFC 5321 §4.1.2, §4.1.3), with internationalized addresses (RFC 6531) only when the
//     caller says SMTPUTF8 is in force.
//   - Params: ESMTP parameters, with typed access to SIZE (RFC 1870), BODY (RFC 6152,
//     RFC 3030) and SMTPUTF8 (RFC 6531).
//   - Reply, NewReply, ReadReply: replies, single and multi-line (RFC 5321 §4.2), with
//     enhanced status codes (RFC 2034, RFC 3463).
//   - DataReader: the DATA stream (RFC 5321 §4.1.1.4, §4.5.2) with dot-unstuffing, line
//     ending normalization and size limits, immune to "SMTP smuggling": end of data is
//     recognised only on the exact sequence CRLF "." CRLF.
//   - LineNormalizer: line ending normalization and limits for BDAT chunks (RFC 3030).
//   - DataWriter: dot-stuffing for the client side of DATA.
//
// Errors are wrapped sentinels (ErrSyntax, ErrLineTooLong, ...), so that the server picks
// its reply with errors.Is and never has to parse an error string.
package smtp

import "errors"

// Limits of RFC 5321 §4.5.3.1 and its extensions.
const (
	// MaxCommandLine is the longest command line, command word and CRLF included
	// (RFC 5321 §4.5.3.1.4).
	MaxCommandLine = 512

	// MaxExtendedCommandLine is the longest MAIL or RCPT command line, CRLF included.
	// Every extension that adds parameters to these commands raises the 512 octet limit
	// (SIZE by 26 octets, RFC 1870 §3; RET and ENVID by 100 and NOTIFY and ORCPT by 500,
	// RFC 3461 §4; AUTH= and SMTPUTF8 likewise), so a server that reads command lines
	// must accept this many octets; ParseCommand applies MaxCommandLine to all other verbs.
	MaxExtendedCommandLine = 2048

	// MaxReplyLine is the longest reply line, reply code and CRLF included
	// (RFC 5321 §4.5.3.1.5). ReadReply tolerates longer lines, up to 2048 octets.
	MaxReplyLine = 512

	// MaxTextLineLength is the longest line of message content, CRLF excluded
	// (RFC 5321 §4.5.3.1.6: 1000 octets with the CRLF). It is the usual value of
	// DataOptions.MaxLineLength.
	MaxTextLineLength = 998

	// MaxLocalPart is the longest local part of a mailbox (RFC 5321 §4.5.3.1.1).
	MaxLocalPart = 64

	// MaxDomain is the longest domain (RFC 5321 §4.5.3.1.2).
	MaxDomain = 255

	// MaxPath is the longest reverse-path or forward-path, angle brackets and source
	// route included (RFC 5321 §4.5.3.1.3).
	MaxPath = 256
)

// Errors returned by this package, always wrapped with details; test them with errors.Is.
var (
	// ErrSyntax: a command, path, address or reply does not follow the grammar.
	ErrSyntax = errors.New("smtp: syntax error")

	// ErrLineTooLong: a command line, reply line or line of message content is longer
	// than allowed. Usual replies: 500 5.5.6 for a command, 552 5.3.4 for message
	// content.
	ErrLineTooLong = errors.New("smtp: line too long")

	// ErrPathTooLong: a local part, domain or path exceeds RFC 5321 §4.5.3.1; reply
	// 501 5.1.3 (or 553).
	ErrPathTooLong = errors.New("smtp: path too long")

	// ErrNonASCII: an address holds UTF-8 but SMTPUTF8 is not in force; reply
	// 553 5.6.7 (RFC 6531 §3.5).
	ErrNonASCII = errors.New("smtp: non-ASCII address without SMTPUTF8")

	// ErrParam: an ESMTP parameter is malformed, repeated, or has a bad value; reply
	// 501 5.5.4.
	ErrParam = errors.New("smtp: invalid parameter")

	// ErrMessageTooLarge: the message content exceeds DataOptions.MaxSize; reply
	// 552 5.3.4 (RFC 1870 §6).
	ErrMessageTooLarge = errors.New("smtp: message too large")

	// ErrClosed: a write to a DataWriter after Close.
	ErrClosed = errors.New("smtp: write after close")
)

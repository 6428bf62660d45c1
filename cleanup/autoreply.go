package main

import (
	"strings"

	"postern/pkg/enqueue"
	"postern/pkg/ipc"
)

// local queues the automatic replies of its users' Sieve scripts (vacation, RFC 5230)
// here, so that they are durable, retried and DKIM-signed like the users' own mail. It is
// held to that: the envelope is marked AutoReply, names the account it answers for
// (AuthUser, whose addresses the From: must be one of, checked by checkAuthor as for a
// submission), comes from the null sender (RFC 5230 §5.1) to one recipient, with no
// client, submission, bounce or report claims. When local runs as a user of its own,
// a peer of that uid may send nothing else than these and its forwarded messages
// (Cleanup.OnlyLocal).

// checkAutoReplyEnvelope holds an auto-reply's envelope to what an auto-reply is, before
// anything is written.
func checkAutoReplyEnvelope(env *enqueue.Envelope) *ipc.Error {
	if !env.AutoReply {
		return nil
	}
	if env.From != "" || env.Submission || env.Bounce || env.Report || len(env.SendAs) > 0 ||
		env.ClientAddr != "" || env.ClientName != "" || env.Helo != "" || env.TLS != "" {
		return ipc.Errorf("invalid", "an automatic reply comes from the null sender, without client, submission, bounce or report")
	}
	if env.AuthUser == "" || strings.ContainsAny(env.AuthUser, " \t\r\n") {
		return ipc.Errorf("invalid", "an automatic reply names the account it answers for")
	}
	if len(env.Recipients) != 1 {
		return ipc.Errorf("invalid", "an automatic reply has one recipient")
	}
	// cleanup resolves the recipient itself.
	env.Recipients[0].Resolution = nil
	env.Protocol = "local"
	return nil
}

package main

import (
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
)

// Messages local forwards (a Sieve redirect, RFC 5228 §4.2) enter the queue here as
// envelopes marked Forward: the original envelope sender, the redirect's target as the
// recipient, no client, account, bounce or report claims. cleanup marks each recipient
// queue.Recipient.Forward, so that qmgr sends it from the SRS form of the sender
// (pkg/srs); it does not DKIM-sign it (the From: is the original author's, not ours to
// sign) and spamd does not judge it a second time. When local runs as a user of its own
// (vmail), a peer of that uid may send nothing else than these and its automatic replies
// (Cleanup.OnlyLocal).

// checkForwardEnvelope holds a forwarded message's envelope to what a forward is, before
// anything is written.
func checkForwardEnvelope(env *enqueue.Envelope) *ipc.Error {
	if !env.Forward {
		return nil
	}
	if env.Submission || env.Bounce || env.Report || env.AuthUser != "" || len(env.SendAs) > 0 ||
		env.ClientAddr != "" || env.ClientName != "" || env.Helo != "" || env.TLS != "" {
		return ipc.Errorf("invalid", "a forwarded message comes without client, account, bounce or report")
	}
	for i := range env.Recipients {
		// cleanup resolves a forward's recipients itself.
		env.Recipients[i].Resolution = nil
	}
	env.Protocol = "local"
	return nil
}

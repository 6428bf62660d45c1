package main

import (
	"strings"

	"postern/pkg/enqueue"
	"postern/pkg/ipc"
)

// Reports spamd makes (DMARC aggregate reports, RFC 7489 §7.2) enter the queue here, as
// local submissions, so that they are durable and retried like any other mail. spamd is
// held to that: its envelope is marked Report, comes from the null sender with no
// client, account or bounce claims, and its From: is the configured reporter address;
// cleanup DKIM-signs it for that address's domain, so that the report passes DMARC as
// §7.2.1.1 asks. When spamd runs as a user of its own (postern-spam), a peer of that
// uid may send nothing else.

// ReportPolicy is what cleanup accepts as a report.
type ReportPolicy struct {
	// From is the only From: address a report may carry ([spamd] dmarc_report_from).
	From string
	// OnlyReports tells a peer that may send reports alone (spamd's uid); nil: none.
	OnlyReports func(ipc.Cred) bool
}

// checkReportEnvelope holds a report's envelope (and any envelope of a peer that may
// send only reports) to what a report is, before anything is written.
func (c *Cleanup) checkReportEnvelope(peer ipc.Cred, env *enqueue.Envelope) *ipc.Error {
	if !env.Report {
		if c.Reports.OnlyReports != nil && c.Reports.OnlyReports(peer) {
			return ipc.Errorf("denied", "this peer may queue reports only")
		}
		return nil
	}
	if env.From != "" || env.Submission || env.Bounce || env.AuthUser != "" || len(env.SendAs) > 0 ||
		env.ClientAddr != "" || env.ClientName != "" || env.Helo != "" || env.TLS != "" {
		return ipc.Errorf("invalid", "a report comes from the null sender, without client, account or bounce")
	}
	for i := range env.Recipients {
		// cleanup resolves a report's recipients itself.
		env.Recipients[i].Resolution = nil
	}
	env.Protocol = "local"
	return nil
}

// checkReportAuthor refuses a report whose From: is not the configured reporter
// address: spamd may not write in anybody else's name.
func (c *Cleanup) checkReportAuthor(env *enqueue.Envelope, h *headerFixer) *ipc.Error {
	if !env.Report {
		return nil
	}
	from, err := headerAddresses(h.section, "From")
	if err != nil || len(from) != 1 || !h.complete || !strings.EqualFold(from[0], c.Reports.From) {
		return ipc.Errorf(enqueue.CodeRejected, "A report must come From: <%s>", c.Reports.From)
	}
	return nil
}

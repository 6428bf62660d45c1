package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"postern/pkg/control"
)

// The commands of this file show and send spamd's DMARC aggregate reports (RFC 7489
// §7.2), over control/spamd.

func runSpamReportsList(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.SpamReportsListResult
	if err := a.call(cfg, "spamd", control.SpamReportsList, nil, &res); err != nil {
		return err
	}
	if !res.Enabled {
		fmt.Fprintln(a.stdout, "DMARC reports are off (dmarc_reports in [spamd])")
	} else {
		fmt.Fprintf(a.stdout, "DMARC reports every %s; next run %s\n", res.Interval, res.Next.UTC().Format(time.RFC3339))
	}
	if len(res.Domains) == 0 {
		fmt.Fprintln(a.stdout, "no evaluations pending")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tMESSAGES\tSOURCES\tFIRST\tLAST")
	for _, d := range res.Domains {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", clean(d.Domain), d.Messages, d.Sources,
			d.Begin.UTC().Format(time.RFC3339), d.End.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func runSpamReportsSend(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.SpamReportsSendResult
	if err := a.call(cfg, "spamd", control.SpamReportsSend, nil, &res); err != nil {
		return err
	}
	if len(res.Reports) == 0 {
		fmt.Fprintln(a.stdout, "nothing to report")
	}
	for _, r := range res.Reports {
		switch {
		case r.QueueID != "":
			fmt.Fprintf(a.stdout, "%s: %d messages, report %s queued as %s to %s\n", clean(r.Domain), r.Messages, clean(r.ReportID), clean(r.QueueID), clean(strings.Join(r.To, ", ")))
		case r.Kept:
			fmt.Fprintf(a.stdout, "%s: %d messages, not sent now (%s); kept for the next run\n", clean(r.Domain), r.Messages, clean(r.Error))
		default:
			fmt.Fprintf(a.stdout, "%s: %d messages, not sent (%s)\n", clean(r.Domain), r.Messages, clean(r.Error))
		}
		if r.QueueID != "" && r.Error != "" {
			fmt.Fprintf(a.stdout, "  %s\n", clean(r.Error))
		}
		for _, s := range r.Skipped {
			fmt.Fprintf(a.stdout, "  skipped %s\n", clean(s))
		}
	}
	return nil
}

package main

import (
	"fmt"

	"postern/pkg/control"
	"postern/pkg/stats"
)

// runStats prints qmgr's delivery statistics, per hour (the last 48) or, with --days,
// per day (the last 60).
func runStats(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.StatsResult
	if err := a.call(cfg, "qmgr", control.Stats, control.StatsRequest{}, &res); err != nil {
		return err
	}
	periods, layout, what := res.Hours, "2006-01-02 15:00", "HOUR"
	if o.days {
		periods, layout, what = res.Days, "2006-01-02", "DAY"
	}
	// The label left, the numbers right under their headings.
	w := len(layout)
	fmt.Fprintf(a.stdout, "%-*s  %8s  %9s  %8s  %7s  %8s  %6s\n", w, what, "RECEIVED", "DELIVERED", "DEFERRED", "BOUNCED", "REJECTED", "JUNK")
	row := func(label string, c stats.Counts) {
		fmt.Fprintf(a.stdout, "%-*s  %8d  %9d  %8d  %7d  %8d  %6d\n", w, label, c.Received, c.Delivered, c.Deferred, c.Bounced, c.Rejected, c.Junk)
	}
	for _, p := range periods {
		row(p.Start.Local().Format(layout), p.Counts)
	}
	row("total", stats.Sum(periods))
	return nil
}

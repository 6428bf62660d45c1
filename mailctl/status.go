package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/queue"
)

func runStatus(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var st control.MasterStatusResult
	if err := a.call(cfg, "master", control.MasterStatus, nil, &st); err != nil {
		return err
	}
	now := time.Now()
	writeStatus(a.stdout, st, now)
	var counts control.QueueCountsResult
	if err := a.call(cfg, "qmgr", control.QueueCounts, nil, &counts); err != nil {
		fmt.Fprintf(a.stdout, "\nqueue: unknown (%v)\n", err)
		return nil
	}
	writeCounts(a.stdout, counts.Counts)
	return nil
}

func writeStatus(w io.Writer, st control.MasterStatusResult, now time.Time) {
	fmt.Fprintf(w, "master: running, pid %d, up %s, config %s\n\n", st.PID, uptime(st.Started, now), clean(st.Config))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DAEMON\tUSER\tPID\tSTATE\tUPTIME\tRESTARTS\tLAST EXIT")
	for _, d := range st.Daemons {
		pid, up := "-", "-"
		if d.PID > 0 {
			pid = fmt.Sprint(d.PID)
		}
		if d.State == "running" && !d.Started.IsZero() {
			up = uptime(d.Started, now)
		}
		last := "-"
		if d.LastExit != "" {
			last = clean(d.LastExit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", clean(d.Name), clean(d.User), pid, clean(d.State), up, d.Restarts, last)
	}
	tw.Flush()
}

func writeCounts(w io.Writer, counts map[string]int) {
	var parts []string
	total := 0
	for _, dir := range queue.Dirs {
		parts = append(parts, fmt.Sprintf("%s %d", dir, counts[dir]))
		total += counts[dir]
	}
	noun := "messages"
	if total == 1 {
		noun = "message"
	}
	fmt.Fprintf(w, "\nqueue: %d %s (%s)\n", total, noun, strings.Join(parts, ", "))
}

// uptime formats the time since t briefly: 45s, 12m3s, 5h2m, 3d4h.
func uptime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func runReload(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.call(cfg, "master", control.MasterReload, nil, nil); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "master reloaded the configuration")
	return nil
}

func runConfigCheck(a *app, o *options, args []string) error {
	cfg, err := config.Load(a.configPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s: ok\n", cfg.Path)
	return nil
}

package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"postern/pkg/control"
	"postern/pkg/mailq"
	"postern/pkg/queue"
)

// The commands of this file ask qmgr, the sole owner of the queue after incoming/, over
// control/qmgr.

func runQueueList(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.QueueListResult
	if err := a.call(cfg, "qmgr", control.QueueList, nil, &res); err != nil {
		return err
	}
	mailq.Write(a.stdout, res.Messages)
	return nil
}

func runQueueShow(a *app, o *options, args []string) error {
	ids, err := queueIDs(args)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.QueueShowResult
	if err := a.call(cfg, "qmgr", control.QueueShow, control.IDsRequest{IDs: ids}, &res); err != nil {
		return err
	}
	writeQueueShow(a.stdout, res, time.Now())
	return nil
}

func writeQueueShow(w io.Writer, res control.QueueShowResult, now time.Time) {
	e := res.Entry
	fmt.Fprintf(w, "Queue ID:  %s\n", clean(e.ID))
	state := clean(e.State)
	switch {
	case e.Attempts == 1:
		state += ", 1 delivery attempt"
	case e.Attempts > 1:
		state += fmt.Sprintf(", %d delivery attempts", e.Attempts)
	}
	if !e.Next.IsZero() {
		state += ", next attempt " + e.Next.Local().Format("2006-01-02 15:04:05")
		if d := e.Next.Sub(now); d > 0 {
			state += " (in " + d.Round(time.Second).String() + ")"
		}
	}
	fmt.Fprintf(w, "State:     %s\n", state)
	fmt.Fprintf(w, "Size:      %d bytes\n", e.Size)
	fmt.Fprintf(w, "Arrival:   %s\n", e.Arrival.Local().Format("2006-01-02 15:04:05 -0700"))
	fmt.Fprintf(w, "Sender:    <%s>\n", clean(e.From))
	fmt.Fprintf(w, "Recipients:\n")
	for _, r := range e.Recipients {
		status := r.Status
		if status == "" {
			status = "pending"
		}
		line := fmt.Sprintf("  <%s>", clean(r.Addr))
		if r.ORcpt != "" && !strings.EqualFold(r.ORcpt, "rfc822;"+r.Addr) {
			line += fmt.Sprintf(" (originally %s)", clean(r.ORcpt))
		}
		line += ": " + clean(status)
		if r.Reason != "" {
			line += ": " + clean(r.Reason)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "\nHeader section:\n")
	headers := strings.ReplaceAll(res.Headers, "\r\n", "\n")
	for _, l := range strings.SplitAfter(strings.TrimRight(headers, "\n"), "\n") {
		fmt.Fprintln(w, clean(strings.TrimSuffix(l, "\n")))
	}
}

func runQueueFlush(a *app, o *options, args []string) error {
	return a.queueAction(control.QueueFlush, args, "%d message%s will be tried again now\n")
}

func runQueueHold(a *app, o *options, args []string) error {
	return a.queueAction(control.QueueHold, args, "%d message%s put on hold\n")
}

func runQueueRelease(a *app, o *options, args []string) error {
	return a.queueAction(control.QueueRelease, args, "%d message%s released from hold\n")
}

func runQueueDelete(a *app, o *options, args []string) error {
	return a.queueAction(control.QueueDelete, args, "%d message%s deleted\n")
}

// queueAction sends op for the messages args and reports how many it touched.
func (a *app) queueAction(op string, args []string, report string) error {
	ids, err := queueIDs(args)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.CountResult
	if err := a.call(cfg, "qmgr", op, control.IDsRequest{IDs: ids}, &res); err != nil {
		return err
	}
	plural := "s"
	if res.Count == 1 {
		plural = ""
	}
	fmt.Fprintf(a.stdout, report, res.Count, plural)
	return nil
}

// queueIDs checks the queue IDs on the command line. IDs are upper case; lower case is
// accepted for convenience.
func queueIDs(args []string) ([]string, error) {
	var ids []string
	for _, s := range args {
		id := strings.ToUpper(strings.TrimSpace(strings.TrimRight(s, "*!#")))
		if !queue.ValidID(id) {
			return nil, fmt.Errorf("%q is not a queue ID (%d characters of 0-9 and A-Z, as queue list shows them)", s, queue.IDLen)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

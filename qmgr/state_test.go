package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"postern/pkg/control"
	"postern/pkg/queue"
	"postern/pkg/stats"
)

func TestStatistics(t *testing.T) {
	h := newHarness(t)
	h.stopLocal()
	h.start()
	// Two messages while local is down: received, their recipients deferred.
	a := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test", "carol@example.test")})
	b := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test"), spam: true})
	h.waitState(a, queue.Deferred)
	h.waitState(b, queue.Deferred)
	h.startLocal()
	if err := h.call(control.QueueFlush, control.IDsRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitState(a, "")
	h.waitState(b, "")
	// One to an unknown account: bounced, and the bounce (Postern's own) not received.
	c := h.queue(message{from: "alice@far.test", rcpts: rcpts("nobody@example.test")})
	h.waitState(c, "")
	h.dsn()
	// smtpd's report.
	if _, err := h.priv.Call(context.Background(), stats.OpAdd, stats.Counts{Rejected: 3}, nil); err != nil {
		t.Fatal(err)
	}
	want := stats.Counts{Received: 3, Delivered: 3, Deferred: 3, Bounced: 1, Rejected: 3, Junk: 1}
	var res control.StatsResult
	if err := h.call(control.Stats, control.StatsRequest{Hours: 2, Days: 3}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Hours) != 2 || len(res.Days) != 3 {
		t.Fatalf("stats answered %d hours and %d days", len(res.Hours), len(res.Days))
	}
	// The events fall into this hour, or the last one if the hour turned meanwhile.
	if got := stats.Sum(res.Hours); got != want {
		t.Errorf("hours: %+v; want %+v", got, want)
	}
	if got := stats.Sum(res.Days); got != want {
		t.Errorf("days: %+v; want %+v", got, want)
	}
	if res.Total != want {
		t.Errorf("total: %+v; want %+v", res.Total, want)
	}
	if _, err := h.priv.Call(context.Background(), stats.OpAdd, stats.Counts{Rejected: -5}, nil); err == nil {
		t.Error("negative counts accepted")
	}

	// A restart keeps them (stored when qmgr stops).
	h.restart()
	res = control.StatsResult{}
	if err := h.call(control.Stats, nil, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Hours) != stats.HourKeep || len(res.Days) != stats.DayKeep {
		t.Errorf("stats without a request answered %d hours and %d days", len(res.Hours), len(res.Days))
	}
	if got := stats.Sum(res.Hours); got != want {
		t.Errorf("hours after a restart: %+v; want %+v", got, want)
	}
	if !res.Total.Zero() {
		t.Errorf("total after a restart: %+v", res.Total)
	}
}

func TestQueueAudit(t *testing.T) {
	h := newHarness(t)
	h.stopLocal()
	h.start()
	a := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test")})
	b := h.queue(message{from: "alice@far.test", rcpts: rcpts("bob@example.test")})
	h.waitState(a, queue.Deferred)
	h.waitState(b, queue.Deferred)
	origin := control.Origin{Actor: "admin@example.test", RemoteIP: "203.0.113.5"}
	for _, c := range []struct {
		op  string
		req control.IDsRequest
	}{
		{control.QueueHold, control.IDsRequest{IDs: []string{a}}},
		{control.QueueRelease, control.IDsRequest{IDs: []string{a}, Origin: origin}},
		{control.QueueDelete, control.IDsRequest{IDs: []string{b}}},
		{control.QueueList, control.IDsRequest{}}, // reads are not recorded
		{control.QueueFlush, control.IDsRequest{}},
	} {
		if err := h.call(c.op, c.req, nil); err != nil {
			t.Fatalf("%s: %v", c.op, err)
		}
	}
	var res control.AuditResult
	if err := h.call(control.AuditList, control.AuditRequest{}, &res); err != nil {
		t.Fatal(err)
	}
	ops := []string{control.QueueHold, control.QueueRelease, control.QueueDelete, control.QueueFlush}
	if len(res.Entries) != len(ops) {
		t.Fatalf("audit.list = %+v", res.Entries)
	}
	for i, e := range res.Entries {
		if e.Op != ops[i] || e.Daemon != "qmgr" || e.UID != os.Getuid() || e.Seq != uint64(i+1) {
			t.Errorf("entry %d = %+v; want %s", i, e, ops[i])
		}
	}
	if e := res.Entries[1]; e.Target != a || e.Web != "admin@example.test" || e.IP != "203.0.113.5" || e.Detail != "1 message" {
		t.Errorf("release entry = %+v", e)
	}
	if e := res.Entries[3]; e.Target != "all deferred" {
		t.Errorf("flush entry = %+v", e)
	}
	if !strings.Contains(h.logBuf.String(), "msg=audit seq=3 op=queue.delete target="+b) {
		t.Error("the log lacks the audit line of queue.delete")
	}
	// Kept across a restart, and numbered on.
	h.restart()
	if err := h.call(control.QueueFlush, control.IDsRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	res = control.AuditResult{}
	if err := h.call(control.AuditList, control.AuditRequest{Limit: 2}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 2 || res.Entries[0].Op != control.QueueFlush || res.Entries[1].Seq != 5 {
		t.Errorf("audit.list after a restart = %+v", res.Entries)
	}
}

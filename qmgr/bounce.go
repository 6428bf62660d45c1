package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"postern/pkg/dsn"
	"postern/pkg/enqueue"
	"postern/pkg/queue"
)

// bounce sends the sender one notification that the recipients rcpts failed for good,
// and reports whether it was queued.
func (q *Qmgr) bounce(ctx context.Context, qf *queue.File, rcpts []int) bool {
	var list []dsn.Recipient
	for _, i := range rcpts {
		st, _ := qf.Last(i)
		list = append(list, q.dsnRecipient(qf, i, st, dsn.ActionFailed))
	}
	return q.notify(ctx, qf, dsn.Failure, list)
}

// warn sends the sender one notification that the recipients rcpts are delayed and
// still being tried until expires, and reports whether it was queued.
func (q *Qmgr) warn(ctx context.Context, qf *queue.File, rcpts []int, expires time.Time) bool {
	var list []dsn.Recipient
	for _, i := range rcpts {
		st, _ := qf.Last(i)
		r := q.dsnRecipient(qf, i, st, dsn.ActionDelayed)
		r.WillRetryUntil = expires
		list = append(list, r)
	}
	return q.notify(ctx, qf, dsn.Delay, list)
}

// dsnRecipient describes recipient i, whose latest record is st, for a notification.
func (q *Qmgr) dsnRecipient(qf *queue.File, i int, st queue.Status, action string) dsn.Recipient {
	r := qf.Envelope.Recipients[i]
	out := dsn.Recipient{
		Final:       r.Addr,
		Original:    r.ORcpt,
		Action:      action,
		Status:      st.Code,
		Reason:      st.Reason,
		LastAttempt: st.At,
	}
	if st.Reason != "" {
		if st.Relay == "" || st.Relay == "local" || st.Relay == "none" {
			// Postern's own words, not a remote server's reply (RFC 3464 §2.3.6: a
			// private diagnostic type starts with X-).
			out.DiagnosticType = "X-Postern"
			out.Diagnostic = st.Reason
		} else {
			// A remote server answered; the remote agent puts its reply in Reason and
			// the server in Relay as "host[ip]:port". The report says the status in
			// words and then the server's own (RFC 3464 §2.3.5: Remote-MTA is a host).
			out.DiagnosticType = "smtp"
			out.Diagnostic = st.Reason
			out.RemoteMTA, _, _ = strings.Cut(st.Relay, "[")
			out.Reason = ""
		}
	}
	return out
}

// notify composes a notification and submits it through cleanup, from the null sender
// so that it never bounces itself (RFC 5321 §4.5.5, RFC 3461 §6.2).
func (q *Qmgr) notify(ctx context.Context, qf *queue.File, kind dsn.Kind, rcpts []dsn.Recipient) bool {
	env := &qf.Envelope
	report := &dsn.Report{
		Kind:       kind,
		Hostname:   q.Hostname,
		To:         env.From,
		QueueID:    env.ID,
		Arrival:    arrivalOf(env),
		EnvID:      env.EnvID,
		Ret:        env.Ret,
		Size:       qf.BodySize(),
		EightBit:   strings.EqualFold(env.BodyType, "8BITMIME"),
		UTF8:       env.SMTPUTF8,
		Recipients: rcpts,
	}
	denv := &enqueue.Envelope{
		From:       "",
		Recipients: []enqueue.Recipient{{Addr: env.From}},
		Bounce:     true,
		SMTPUTF8:   env.SMTPUTF8,
	}
	if report.EightBit || report.UTF8 {
		denv.BodyType = "8BITMIME"
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	id, err := q.submit(cctx, denv, report, qf)
	what := "bounce"
	if kind == dsn.Delay {
		what = "delay warning"
	}
	if err != nil {
		q.Log.Warn(what+" not sent", "id", env.ID, "to", "<"+env.From+">", "err", err)
		return false
	}
	if kind == dsn.Delay {
		q.Log.Info("delay warning", "id", env.ID, "dsn_id", id, "to", "<"+env.From+">")
	} else {
		q.Log.Info("bounce", "id", env.ID, "dsn_id", id, "to", "<"+env.From+">")
	}
	return true
}

// submit streams the notification to cleanup and returns its queue ID.
func (q *Qmgr) submit(ctx context.Context, env *enqueue.Envelope, report *dsn.Report, qf *queue.File) (string, error) {
	tx, err := q.Bounces.Begin(ctx, env)
	if err != nil {
		return "", err
	}
	if err := dsn.Write(tx, report, qf.Body()); err != nil {
		tx.Abort()
		return "", err
	}
	res, err := tx.Commit()
	if err != nil {
		return "", err
	}
	if res.QueueID == "" {
		return "", fmt.Errorf("cleanup answered without a queue ID")
	}
	return res.QueueID, nil
}

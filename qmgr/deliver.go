package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"postern/pkg/delivery"
	"postern/pkg/ipc"
	"postern/pkg/metrics"
	"postern/pkg/queue"
	"postern/pkg/stats"
)

// process makes one delivery attempt for the message id in active/ and files it away:
// removed when nothing is left to do, in deferred/ otherwise.
//
// What a crash (kill -9) at each step leaves, and what the next start does with it:
//   - before the status records are appended: the file is in active/ with the records of
//     earlier attempts; every recipient not recorded as done is delivered again, marked
//     MaybeDelivered, so that local finds the copy a delivery that had just finished made
//     (its file name is derived from the queue ID and the recipient) instead of writing a
//     second one;
//   - after the append, before the notification is queued: the failures are recorded
//     and not yet marked bounced; the notification is sent at the next attempt;
//   - after the notification is queued, before that is recorded: it is sent again (the
//     one duplicate that cannot be avoided without a transaction spanning two files);
//   - before the unlink or the move to deferred/: the file is in active/ and is tried
//     again at once; its recorded recipients are not delivered again.
func (q *Qmgr) process(ctx context.Context, id string) {
	qf, err := queue.Open(q.Spool.Path(queue.Active, id))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			q.quarantine(id, queue.Active, err)
		}
		q.finishClaim(id, "", time.Time{})
		return
	}
	defer qf.Close()

	q.mu.Lock()
	c := *q.claimed[id]
	q.claimed[id].fresh = false
	q.mu.Unlock()
	if c.fresh && !qf.Envelope.Bounce {
		q.count(stats.Received, 1)
		if qf.Envelope.Spam {
			q.count(stats.Junk, 1)
		}
	}
	if c.remove || c.hold {
		// Asked for while the message waited in the run queue.
		q.settle(id, qf, false, time.Time{})
		return
	}
	// Until this attempt's outcome is in the file, a delivery it makes may go unrecorded:
	// the next attempt must then look for it.
	q.mu.Lock()
	unsure := q.unsure[id]
	q.unsure[id] = true
	q.mu.Unlock()
	a := q.attempt(ctx, qf, unsure)
	q.settle(id, qf, a.finished, a.next)
}

// recorded notes that the outcome of the attempts on id is in its queue file (or that
// the file is gone): the next attempt need not look for unrecorded deliveries.
func (q *Qmgr) recorded(id string) {
	q.mu.Lock()
	delete(q.unsure, id)
	q.mu.Unlock()
}

// attemptResult is how a delivery attempt ended.
type attemptResult struct {
	// finished is true when the message needs nothing more: no recipient is pending
	// and every failure has been reported (or needs no report).
	finished bool
	// next is when to try again otherwise.
	next time.Time
}

// attempt delivers the message to its pending recipients, records the outcome in the
// queue file and sends the notifications that are due. unsure says that an earlier
// attempt may have delivered to some of them without recording it.
func (q *Qmgr) attempt(ctx context.Context, qf *queue.File, unsure bool) attemptResult {
	env := &qf.Envelope
	now := time.Now()
	arrival := arrivalOf(env)
	expires := arrival.Add(q.Queue.MaxLifetime.D())
	sched := qf.Schedule()

	var pending []int
	for i := range env.Recipients {
		if !qf.Done(i) {
			pending = append(pending, i)
		}
	}
	var recs []queue.Status
	attempts := sched.Attempts
	if len(pending) > 0 {
		attempts++
		results := q.deliver(ctx, qf, pending, unsure)
		expired := !now.Before(expires)
		end := time.Now()
		for k, i := range pending {
			res := results[k]
			st := queue.Status{Rcpt: i, Code: res.Code, Reason: res.Reason, Relay: res.Relay, At: end}
			switch res.Status {
			case delivery.Sent:
				st.Action = queue.Delivered
			case delivery.Bounced:
				st.Action = queue.Failed
			default:
				st.Action = queue.Delayed
				if expired {
					// RFC 3463 X.4.7: delivery time expired, now for good.
					st.Action = queue.Failed
					st.Code = "5.4.7"
					st.Reason = fmt.Sprintf("message expired after %s in the queue (last error: %s)", days(end.Sub(arrival)), res.Reason)
				}
			}
			recs = append(recs, st)
			q.logDelivery(env, i, st, end.Sub(arrival))
			countDelivery(st, end.Sub(arrival))
		}
		if expired {
			q.Log.Info("expired", "id", env.ID, "from", "<"+env.From+">", "age", days(now.Sub(arrival)))
		}
	}

	// Where the message stands after this attempt.
	delayed := false
	for _, st := range recs {
		if st.Action == queue.Delayed {
			delayed = true
		}
	}
	failed := unbounced(append(qf.Statuses[:len(qf.Statuses):len(qf.Statuses)], recs...))
	notifyFail := q.wantNotice(env, failed, "FAILURE")
	if len(failed) > 0 && len(notifyFail) == 0 && env.From == "" {
		q.Log.Info("bounce not sent: null sender", "id", env.ID, "failed", len(failed))
	}

	if !delayed && len(notifyFail) == 0 {
		// Everything delivered, or failed with nobody to tell. No record is needed: the
		// unlink is the record.
		return attemptResult{finished: true}
	}

	next := now.Add(q.backoff(attempts))
	if next.After(expires) {
		// Try once more right at the end of the lifetime rather than long after it.
		next = expires
	}
	if next.Before(now) {
		next = now.Add(q.Queue.MinBackoff.D())
	}
	msg := queue.Status{Rcpt: -1, At: now, Next: next, Attempts: attempts, Warned: sched.Warned}
	if len(failed) > 0 && len(notifyFail) == 0 {
		// Nobody to report the failures to: mark them reported.
		msg.Bounced = true
	}
	if len(recs) > 0 || msg.Bounced {
		if err := qf.Append(append(recs, msg)...); err != nil {
			q.Log.Error("cannot record delivery status", "id", env.ID, "err", err)
			// The file still says what it said before: retry the whole attempt later.
			return attemptResult{next: next}
		}
		q.recorded(env.ID)
	}

	// Notifications: each failure is reported once, a delay once per message.
	notified := false
	if len(notifyFail) > 0 {
		if !q.bounce(ctx, qf, notifyFail) {
			// cleanup is unreachable: the failures stay unreported and the file stays
			// in the queue until the notification goes out.
			return attemptResult{next: next}
		}
		msg.Bounced = true
		notified = true
	}
	if delayed && !msg.Warned && q.Queue.DelayWarning > 0 && !now.Before(arrival.Add(q.Queue.DelayWarning.D())) {
		if rcpts := q.wantNotice(env, delayedRecipients(qf), "DELAY"); len(rcpts) > 0 && q.warn(ctx, qf, rcpts, expires) {
			msg.Warned = true
			notified = true
		}
	}
	if !delayed {
		return attemptResult{finished: true}
	}
	if notified {
		msg.At = time.Now()
		if err := qf.Append(msg); err != nil {
			q.Log.Error("cannot record notification", "id", env.ID, "err", err)
		}
	}
	return attemptResult{next: next}
}

// deliver routes each pending recipient and hands them to their transports: one request
// per transport with all of its recipients. It returns a result per pending recipient.
//
// A local recipient goes as MaybeDelivered when unsure says an unrecorded attempt may
// have delivered the message, or when the recipient was tried before (an agent that
// died mid-delivery, or whose answer was lost, is recorded as a deferral): local then
// looks for the copy such an attempt made. The first attempt, nearly every delivery,
// skips that look.
func (q *Qmgr) deliver(ctx context.Context, qf *queue.File, pending []int, unsure bool) []delivery.Result {
	env := &qf.Envelope
	results := make([]delivery.Result, len(pending))
	var local, remote, forward []int // indexes into pending
	var localRcpts, remoteRcpts, forwardRcpts []delivery.Recipient
	for k, i := range pending {
		r := env.Recipients[i]
		route, rcpt, res := q.route(ctx, env.ID, r)
		rcpt.Rcpt = i
		switch route {
		case routeLocal:
			if _, tried := qf.Last(i); unsure || tried {
				rcpt.MaybeDelivered = true
			}
			local = append(local, k)
			localRcpts = append(localRcpts, rcpt)
		case routeRemote:
			if r.Forward && q.SRS != nil {
				forward = append(forward, k)
				forwardRcpts = append(forwardRcpts, rcpt)
				break
			}
			remote = append(remote, k)
			remoteRcpts = append(remoteRcpts, rcpt)
		default:
			results[k] = res
		}
	}
	run := func(t Transport, relay, from string, idx []int, rcpts []delivery.Recipient) {
		if len(idx) == 0 {
			return
		}
		res, err := t.Deliver(ctx, qf, from, rcpts)
		for n, k := range idx {
			if err != nil {
				// RFC 3463 X.3.0: the mail system cannot deliver just now.
				results[k] = delivery.Result{Status: delivery.Deferred, Code: "4.3.0", Reason: err.Error(), Relay: relay}
				continue
			}
			results[k] = res[n]
		}
	}
	// The two agents work side by side: the local recipients need not wait for a slow
	// remote server. Each reads the message with pread(2) (delivery.Body), so sharing
	// the queue file's descriptor is safe, and each fills its own results. A message
	// with no remote recipient, most of them, needs no second goroutine.
	var remoteDone sync.WaitGroup
	if len(remote) > 0 {
		// An unreachable remote agent named no server: relay=none, as Postfix logs it.
		remoteDone.Go(func() { run(q.Remote, "none", env.From, remote, remoteRcpts) })
	}
	if len(forward) > 0 {
		remoteDone.Go(func() { run(q.Remote, "none", q.forwardSender(env, len(forwardRcpts)), forward, forwardRcpts) })
	}
	run(q.Local, "local", env.From, local, localRcpts)
	remoteDone.Wait()
	return results
}

// forwardSender is the envelope sender of the transaction of their own in which remote
// gets the nrcpt recipients this host forwards to (queue.Recipient.Forward): the SRS
// form of the message's sender (pkg/srs), so that the receiver's SPF check asks about
// our domain, not the original sender's, whose record does not name us. A sender that
// cannot be rewritten (no domain) goes as it is, which is what forwarding without SRS
// does.
func (q *Qmgr) forwardSender(env *queue.Envelope, nrcpt int) string {
	from, err := q.SRS.Forward(env.From)
	if err != nil {
		q.Log.Warn("sender not rewritten for forwarding", "id", env.ID, "from", "<"+env.From+">", "err", err)
		from = env.From
	}
	if from != env.From {
		q.Log.Info("forwarding with an SRS sender", "id", env.ID, "from", "<"+env.From+">", "srs", "<"+from+">", "nrcpt", nrcpt)
	}
	return from
}

// Routes of a recipient.
const (
	routeNone = iota // decided already: the Result says what happened
	routeLocal
	routeRemote
)

// route decides where mail for r goes: an account of ours (local delivery), another
// host (remote), or nowhere (a result saying why).
func (q *Qmgr) route(ctx context.Context, id string, r queue.Recipient) (int, delivery.Recipient, delivery.Result) {
	lookupFailed := func(err error) (int, delivery.Recipient, delivery.Result) {
		if ipc.IsCode(err, "invalid") {
			// RFC 3463 X.1.3: bad destination mailbox address syntax.
			return routeNone, delivery.Recipient{}, delivery.Result{Status: delivery.Bounced, Code: "5.1.3", Reason: "bad destination mailbox address"}
		}
		// RFC 3463 X.3.0; authd is down or restarting.
		q.Log.Warn("recipient lookup failed", "id", id, "to", "<"+r.Addr+">", "err", err)
		return routeNone, delivery.Recipient{}, delivery.Result{Status: delivery.Deferred, Code: "4.3.0", Reason: "account lookup failed (" + shortError(err) + ")"}
	}
	mb, err := q.Dir.Mailbox(ctx, r.Addr)
	if err != nil {
		return lookupFailed(err)
	}
	if mb.Exists {
		addr := mb.Address
		if addr == "" {
			addr = r.Addr
		}
		return routeLocal, delivery.Recipient{Addr: addr, ORcpt: r.ORcpt, Maildir: mb.Maildir, Quota: mb.Quota, Spam: r.Spam}, delivery.Result{}
	}
	if mb.LocalDomain {
		// The account went away after the message was accepted (RFC 3463 X.1.1).
		return routeNone, delivery.Recipient{}, delivery.Result{Status: delivery.Bounced, Code: "5.1.1", Reason: "mailbox unavailable", Relay: "local"}
	}
	return routeRemote, delivery.Recipient{Addr: r.Addr, ORcpt: r.ORcpt, Notify: r.Notify}, delivery.Result{}
}

// settle files the message away after an attempt: removed when finished, in deferred/
// due at next otherwise, and in hold/ or removed if the administrator asked for that
// meanwhile.
func (q *Qmgr) settle(id string, qf *queue.File, finished bool, next time.Time) {
	q.mu.Lock()
	c := *q.claimed[id]
	q.mu.Unlock()
	switch {
	case c.remove:
		if err := q.Spool.Remove(queue.Active, id); err != nil {
			q.Log.Error("cannot remove message", "id", id, "err", err)
		} else {
			q.Log.Info("removed", "id", id, "reason", "deleted by the administrator")
		}
		q.finishClaim(id, "", time.Time{})
	case c.hold:
		if err := q.Spool.Move(id, queue.Active, queue.Hold); err != nil {
			q.Log.Error("cannot put message on hold", "id", id, "err", err)
			q.finishClaim(id, queue.Active, time.Now().Add(q.Queue.MinBackoff.D()))
			return
		}
		q.Log.Info("held", "id", id)
		q.finishClaim(id, queue.Hold, time.Time{})
	case finished:
		// The directory is not fsynced after the unlink: should the machine lose power
		// right now, the file may come back; it is then in active/ at the next start,
		// and its recipients' copies are found rather than delivered again.
		if err := q.Spool.Remove(queue.Active, id); err != nil {
			q.Log.Error("cannot remove finished message", "id", id, "err", err)
			q.finishClaim(id, queue.Active, time.Now().Add(q.Queue.MinBackoff.D()))
			return
		}
		q.Log.Info("removed", "id", id)
		q.finishClaim(id, "", time.Time{})
	default:
		if err := q.Spool.Move(id, queue.Active, queue.Deferred); err != nil {
			q.Log.Error("cannot move message to the deferred queue", "id", id, "err", err)
			q.finishClaim(id, queue.Active, next)
			return
		}
		q.finishClaim(id, queue.Deferred, next)
	}
}

// finishClaim ends this process's hold on id, which is now in state (or gone: ""). A
// message left in active/ by a failed move is tried again at next. Requests made by the
// administrator while the message was being filed away are carried out here.
func (q *Qmgr) finishClaim(id, state string, next time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.claimed[id]
	if state == queue.Active {
		// Keep the claim; deliver again later.
		*c = claim{}
		go func() {
			time.Sleep(time.Until(next))
			q.run(id)
		}()
		return
	}
	delete(q.claimed, id)
	if state == "" {
		delete(q.unsure, id)
	}
	if state != queue.Deferred {
		return
	}
	switch {
	case c.remove:
		if err := q.Spool.Remove(queue.Deferred, id); err == nil {
			q.Log.Info("removed", "id", id, "reason", "deleted by the administrator")
			return
		}
	case c.hold:
		if err := q.Spool.Move(id, queue.Deferred, queue.Hold); err == nil {
			q.Log.Info("held", "id", id)
			return
		}
	}
	q.deferred[id] = next
	if q.backlog {
		q.poke()
	}
	if time.Until(next) < q.Queue.ScanInterval.D() {
		q.poke()
	}
}

// backoff is the wait after the n-th failed attempt: MinBackoff, doubling with every
// attempt, at most MaxBackoff.
func (q *Qmgr) backoff(n int) time.Duration {
	d := q.Queue.MinBackoff.D()
	maxd := q.Queue.MaxBackoff.D()
	for i := 1; i < n && d < maxd; i++ {
		d *= 2
	}
	return min(d, maxd)
}

// unbounced returns the recipients that failed and were not yet reported: failures
// recorded after the last message-level record that says a notification was queued.
func unbounced(sts []queue.Status) []int {
	failed := map[int]bool{}
	var order []int
	for _, s := range sts {
		switch {
		case s.Rcpt < 0 && s.Bounced:
			clear(failed)
			order = order[:0]
		case s.Rcpt >= 0 && s.Action == queue.Failed && !failed[s.Rcpt]:
			failed[s.Rcpt] = true
			order = append(order, s.Rcpt)
		}
	}
	return order
}

// delayedRecipients returns the recipients whose latest record says delayed.
func delayedRecipients(qf *queue.File) []int {
	var out []int
	for i := range qf.Envelope.Recipients {
		if s, ok := qf.Last(i); ok && s.Action == queue.Delayed {
			out = append(out, i)
		}
	}
	return out
}

// wantNotice returns those of rcpts who asked for notices of the kind ("FAILURE" or
// "DELAY") by RFC 3461's NOTIFY parameter (§4.1). Without NOTIFY a failure is reported
// and a delay is not (Postfix's default; RFC 3461 leaves it to the MTA). Nothing is sent
// to the null sender: notifications about notifications would never end (RFC 3461 §6.2,
// RFC 5321 §4.5.5).
func (q *Qmgr) wantNotice(env *queue.Envelope, rcpts []int, kind string) []int {
	if env.From == "" {
		return nil
	}
	var out []int
	for _, i := range rcpts {
		notify := strings.ToUpper(env.Recipients[i].Notify)
		if notify == "" {
			if kind == "FAILURE" {
				out = append(out, i)
			}
			continue
		}
		for _, n := range strings.Split(notify, ",") {
			if strings.TrimSpace(n) == kind {
				out = append(out, i)
				break
			}
		}
	}
	return out
}

// logDelivery writes the line Postfix writes for every recipient of every attempt.
func (q *Qmgr) logDelivery(env *queue.Envelope, i int, st queue.Status, delay time.Duration) {
	r := env.Recipients[i]
	status, kind := "deferred", stats.Deferred
	switch st.Action {
	case queue.Delivered:
		status, kind = "sent", stats.Delivered
	case queue.Failed:
		status, kind = "bounced", stats.Bounced
	}
	q.count(kind, 1)
	attrs := []any{"id", env.ID, "to", "<" + r.Addr + ">"}
	if r.ORcpt != "" && r.ORcpt != r.Addr {
		attrs = append(attrs, "orig_to", "<"+r.ORcpt+">")
	}
	relay := st.Relay
	if relay == "" {
		relay = "none"
	}
	attrs = append(attrs, "relay", relay, "delay", strconv.FormatFloat(delay.Seconds(), 'f', 2, 64)+"s",
		"dsn", st.Code, "status", status, "reason", st.Reason)
	q.Log.Info("delivery", attrs...)
}

// countDelivery counts one recipient's attempt in pkg/metrics, and the time a
// successful one took since the message arrived.
func countDelivery(st queue.Status, delay time.Duration) {
	transport := "remote"
	if st.Relay == "" || st.Relay == "local" || st.Relay == "none" {
		transport = "local"
	}
	switch st.Action {
	case queue.Delivered:
		metrics.Inc(metrics.Delivered, "transport", transport)
		metrics.Observe(metrics.DeliveryDuration, delay.Seconds(), "transport", transport)
	case queue.Failed:
		metrics.Inc(metrics.Bounced, "transport", transport)
	default:
		metrics.Inc(metrics.Deferred, "transport", transport)
	}
}

// arrivalOf returns when the message was queued, from the envelope or, failing that,
// from its queue ID.
func arrivalOf(env *queue.Envelope) time.Time {
	if !env.Arrival.IsZero() {
		return env.Arrival
	}
	return queue.IDTime(env.ID)
}

// days formats a queue age for people: "5d", "3h", "42s".
func days(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d >= 2*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d >= 2*time.Minute:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	}
	return strconv.Itoa(int(d/time.Second)) + "s"
}

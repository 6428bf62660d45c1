package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/queue"
	"postern/pkg/stats"
)

// maxShowHeaders bounds the header section returned by queue.show.
const maxShowHeaders = 64 << 10

// PrivateServer returns the server of private/qmgr, where cleanup announces new
// messages.
func (q *Qmgr) PrivateServer(allow func(ipc.Cred) bool) *ipc.Server {
	if q.claimed == nil {
		q.init()
	}
	s := &ipc.Server{Name: "qmgr", Allow: allow, Logger: q.Log}
	s.Handle(queue.OpWakeup, func(_ context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
		ipc.CloseFiles(files)
		var w queue.Wakeup
		if err := json.Unmarshal(body, &w); err != nil {
			return nil, ipc.Errorf("invalid", "decoding wakeup: %v", err)
		}
		q.Wakeup(w.ID)
		return nil, nil
	})
	// smtpd's counts (stats.Rejected).
	s.Handle(stats.OpAdd, func(_ context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
		ipc.CloseFiles(files)
		var cs stats.Counts
		if err := json.Unmarshal(body, &cs); err != nil {
			return nil, ipc.Errorf("invalid", "decoding statistics: %v", err)
		}
		if cs.Received < 0 || cs.Delivered < 0 || cs.Deferred < 0 || cs.Bounced < 0 || cs.Rejected < 0 || cs.Junk < 0 {
			return nil, ipc.Errorf("invalid", "negative statistics")
		}
		if q.Stats != nil {
			q.Stats.AddCounts(cs)
		}
		return nil, nil
	})
	return s
}

// ControlServer returns the server of control/qmgr: queue administration.
func (q *Qmgr) ControlServer(allow func(ipc.Cred) bool) *ipc.Server {
	if q.claimed == nil {
		q.init()
	}
	s := &ipc.Server{Name: "qmgr-control", Allow: allow, Logger: q.Log}
	s.Handle(control.AuditList, func(_ context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
		ipc.CloseFiles(files)
		var req control.AuditRequest
		if len(body) > 0 && string(body) != "null" {
			if err := json.Unmarshal(body, &req); err != nil {
				return nil, ipc.Errorf("invalid", "decoding request: %v", err)
			}
		}
		return q.auditList(req.Limit)
	})
	s.Handle(control.Stats, func(_ context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
		ipc.CloseFiles(files)
		var req control.StatsRequest
		if len(body) > 0 && string(body) != "null" {
			if err := json.Unmarshal(body, &req); err != nil {
				return nil, ipc.Errorf("invalid", "decoding request: %v", err)
			}
		}
		return q.statsResult(req), nil
	})
	handle := func(op string, f func(req control.IDsRequest) (any, error)) {
		s.Handle(op, func(_ context.Context, peer ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
			ipc.CloseFiles(files)
			var req control.IDsRequest
			if len(body) > 0 && string(body) != "null" {
				if err := json.Unmarshal(body, &req); err != nil {
					return nil, ipc.Errorf("invalid", "decoding request: %v", err)
				}
			}
			for _, id := range req.IDs {
				if !queue.ValidID(id) {
					return nil, ipc.Errorf("invalid", "%q is not a queue ID", id)
				}
			}
			res, err := f(req)
			if err == nil && op != control.QueueList && op != control.QueueShow && op != control.QueueCounts {
				q.Log.Info("queue administration", "op", op, "ids", len(req.IDs), "uid", peer.UID)
				n := 0
				if c, ok := res.(control.CountResult); ok {
					n = c.Count
				}
				if err := q.record(peer, req.Origin, op, req.IDs, n); err != nil {
					return nil, err
				}
			}
			return res, err
		})
	}
	handle(control.QueueList, func(control.IDsRequest) (any, error) { return q.List(nil) })
	handle(control.QueueShow, func(r control.IDsRequest) (any, error) {
		if len(r.IDs) != 1 {
			return nil, ipc.Errorf("invalid", "queue.show takes one queue ID")
		}
		return q.Show(r.IDs[0])
	})
	counted := func(f func([]string) (int, error)) func(control.IDsRequest) (any, error) {
		return func(r control.IDsRequest) (any, error) {
			n, err := f(r.IDs)
			if err != nil {
				return nil, err
			}
			return control.CountResult{Count: n}, nil
		}
	}
	handle(control.QueueFlush, counted(q.Flush))
	handle(control.QueueHold, counted(q.Hold))
	handle(control.QueueRelease, counted(q.Release))
	handle(control.QueueDelete, counted(q.Delete))
	handle(control.QueueCounts, func(control.IDsRequest) (any, error) { return q.Counts() })
	return s
}

// listed are the queue directories that queue.list shows, in mailq's order.
var listed = []string{queue.Active, queue.Incoming, queue.Deferred, queue.Hold, queue.Corrupt}

// List describes the messages in the queue, like mailq: every one when keep is nil, else
// those whose envelope keep accepts (a corrupt file, whose envelope cannot be read, is
// then left out).
func (q *Qmgr) List(keep func(*queue.Envelope) bool) (control.QueueListResult, error) {
	res := control.QueueListResult{Messages: []control.QueueEntry{}}
	for _, state := range listed {
		ids, err := q.Spool.List(state)
		if err != nil {
			return res, ipc.Errorf("temporary", "reading the queue: %v", err)
		}
		for _, id := range ids {
			e, ok, err := q.entry(state, id, keep)
			if err != nil || !ok {
				continue // moved or removed meanwhile, or incomplete, or not shown
			}
			res.Messages = append(res.Messages, e)
		}
	}
	return res, nil
}

// PublicServer returns the ipc server of public/qmgr, open to every local user: it
// answers queue.list (mailq) and nothing else, with what queue.mailq_users lets the
// caller see. Root and the admin group (admin) see the whole queue, as on the control
// socket; with "own", another user sees the messages they submitted with sendmail, whose
// queue files record their uid as the kernel gave it to cleanup (SO_PEERCRED); with
// "all", the whole queue, as Postfix's mailq shows it to anyone; with "admin", nothing:
// the call is denied.
func (q *Qmgr) PublicServer(admin func(ipc.Cred) bool) *ipc.Server {
	s := &ipc.Server{Name: "qmgr-public", Logger: q.Log}
	s.Handle(control.QueueList, func(_ context.Context, peer ipc.Cred, _ json.RawMessage, files []*os.File) (any, error) {
		ipc.CloseFiles(files)
		switch {
		case admin(peer) || q.Queue.MailqUsers == config.MailqAll:
			return q.List(nil)
		case q.Queue.MailqUsers == config.MailqOwn:
			return q.List(func(env *queue.Envelope) bool { return env.Local && env.LocalUID == peer.UID })
		}
		return nil, ipc.Errorf("denied", "the queue is shown to administrators only (queue.mailq_users = %q)", q.Queue.MailqUsers)
	})
	return s
}

// Show describes one message and returns its header section.
func (q *Qmgr) Show(id string) (control.QueueShowResult, error) {
	for try := 0; try < 3; try++ {
		state, err := q.Spool.Find(id)
		if err != nil {
			return control.QueueShowResult{}, ipc.Errorf("notfound", "no message %s in the queue", id)
		}
		qf, err := queue.Open(q.Spool.Path(state, id))
		if errors.Is(err, fs.ErrNotExist) {
			continue // it moved on: look again
		}
		if err != nil {
			return control.QueueShowResult{}, ipc.Errorf("invalid", "message %s (%s): %v", id, state, err)
		}
		defer qf.Close()
		headers, err := headerSection(qf.Body())
		if err != nil {
			return control.QueueShowResult{}, ipc.Errorf("temporary", "reading message %s: %v", id, err)
		}
		return control.QueueShowResult{Entry: q.describe(state, qf), Headers: headers}, nil
	}
	return control.QueueShowResult{}, ipc.Errorf("notfound", "no message %s in the queue", id)
}

// entry describes the message id in state, when keep (nil: every message) accepts its
// envelope.
func (q *Qmgr) entry(state, id string, keep func(*queue.Envelope) bool) (control.QueueEntry, bool, error) {
	path := q.Spool.Path(state, id)
	qf, err := queue.Open(path)
	if err != nil {
		if state != queue.Corrupt || keep != nil {
			return control.QueueEntry{}, false, err
		}
		// A corrupt file says little; list it anyway, for the postmaster.
		st, serr := os.Stat(path)
		if serr != nil {
			return control.QueueEntry{}, false, serr
		}
		return control.QueueEntry{ID: id, State: state, Size: st.Size(), Arrival: queue.IDTime(id), Recipients: []control.QueueRecipient{}}, true, nil
	}
	defer qf.Close()
	if keep != nil && !keep(&qf.Envelope) {
		return control.QueueEntry{}, false, nil
	}
	return q.describe(state, qf), true, nil
}

// describe makes the queue entry of an open queue file.
func (q *Qmgr) describe(state string, qf *queue.File) control.QueueEntry {
	env := &qf.Envelope
	e := control.QueueEntry{
		ID:         env.ID,
		State:      state,
		Size:       qf.BodySize(),
		Arrival:    arrivalOf(env),
		From:       env.From,
		Recipients: make([]control.QueueRecipient, 0, len(env.Recipients)),
	}
	for i, r := range env.Recipients {
		qr := control.QueueRecipient{Addr: r.Addr, ORcpt: r.ORcpt}
		if st, ok := qf.Last(i); ok {
			qr.Status = st.Action
			qr.Reason = st.Reason
		}
		e.Recipients = append(e.Recipients, qr)
	}
	sched := qf.Schedule()
	e.Attempts = sched.Attempts
	if state == queue.Deferred {
		e.Next = sched.Next
		q.mu.Lock()
		if next, ok := q.deferred[env.ID]; ok {
			e.Next = next
		}
		q.mu.Unlock()
	}
	return e
}

// headerSection reads the message's header fields, up to the empty line that ends them
// and at most maxShowHeaders bytes.
func headerSection(r io.Reader) (string, error) {
	br := bufio.NewReader(io.LimitReader(r, maxShowHeaders))
	var b bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 && len(line) > 0 {
			break
		}
		b.Write(line)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// Flush makes deferred messages due now: the named ones, or all of them. Named messages
// in incoming/ are picked up too.
func (q *Qmgr) Flush(ids []string) (int, error) {
	now := time.Now()
	n := 0
	q.mu.Lock()
	if len(ids) == 0 {
		for id := range q.deferred {
			q.deferred[id] = now
			n++
		}
	}
	var incoming []string
	for _, id := range ids {
		if _, ok := q.deferred[id]; ok {
			q.deferred[id] = now
			n++
		} else if q.claimed[id] != nil {
			n++ // being delivered right now
		} else if st, err := q.Spool.Find(id); err == nil && st == queue.Incoming {
			incoming = append(incoming, id)
		}
	}
	q.mu.Unlock()
	for _, id := range incoming {
		q.Wakeup(id)
		n++
	}
	if len(ids) == 0 {
		// Messages that reached deferred/ without passing through this process.
		q.loadDeferred()
		q.mu.Lock()
		for id, next := range q.deferred {
			if next.After(now) {
				q.deferred[id] = now
				n++
			}
		}
		q.mu.Unlock()
	}
	q.poke()
	if n == 0 && len(ids) > 0 {
		return 0, ipc.Errorf("notfound", "no such deferred message")
	}
	return n, nil
}

// Hold puts messages on hold: they stay in hold/ untouched until released. A message
// being delivered is put on hold when the attempt ends.
func (q *Qmgr) Hold(ids []string) (int, error) {
	return q.each(ids, "held", func(id, state string) (bool, error) {
		switch {
		case state == queue.Hold:
			return true, nil
		case state == queue.Corrupt, !q.complete(state, id):
			return false, nil
		}
		if err := q.Spool.Move(id, state, queue.Hold); err != nil {
			return false, err
		}
		delete(q.deferred, id)
		return true, nil
	}, func(c *claim) { c.hold = true })
}

// Release moves held messages to deferred/, due now.
func (q *Qmgr) Release(ids []string) (int, error) {
	n, err := q.each(ids, "released", func(id, state string) (bool, error) {
		if state != queue.Hold {
			return false, nil
		}
		if err := q.Spool.Move(id, queue.Hold, queue.Deferred); err != nil {
			return false, err
		}
		q.deferred[id] = time.Now()
		return true, nil
	}, func(c *claim) { c.hold = false })
	q.poke()
	return n, err
}

// Delete removes messages from the queue, wherever they are. A message being delivered
// is removed when the attempt ends.
func (q *Qmgr) Delete(ids []string) (int, error) {
	return q.each(ids, "removed", func(id, state string) (bool, error) {
		if !q.complete(state, id) {
			return false, nil
		}
		if err := q.Spool.Remove(state, id); err != nil {
			return false, err
		}
		delete(q.deferred, id)
		return true, nil
	}, func(c *claim) { c.remove = true })
}

// each applies an administrative operation to the named messages (all of hold/ for a
// release without IDs). Messages this process is delivering get the request noted in
// their claim; the others are acted on at once, under the lock that keeps the scheduler
// from taking them meanwhile.
func (q *Qmgr) each(ids []string, verb string, act func(id, state string) (bool, error), note func(*claim)) (int, error) {
	if len(ids) == 0 {
		if verb != "released" {
			return 0, ipc.Errorf("invalid", "name the messages")
		}
		held, err := q.Spool.List(queue.Hold)
		if err != nil {
			return 0, ipc.Errorf("temporary", "reading the queue: %v", err)
		}
		ids = held
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, id := range ids {
		if c := q.claimed[id]; c != nil {
			note(c)
			n++
			continue
		}
		state, err := q.Spool.Find(id)
		if err != nil {
			continue
		}
		ok, err := act(id, state)
		if err != nil {
			q.Log.Error("queue administration failed", "id", id, "op", verb, "err", err)
			continue
		}
		if ok {
			n++
			if verb == "removed" {
				q.Log.Info("removed", "id", id, "reason", "deleted by the administrator")
			} else {
				q.Log.Info(verb, "id", id)
			}
		}
	}
	if n == 0 && len(ids) > 0 {
		return 0, ipc.Errorf("notfound", "no such message in the queue")
	}
	return n, nil
}

// complete reports whether the message may be touched: anything but a file in incoming/
// that cleanup is still writing (it lacks the owner-execute bit, see pkg/queue).
func (q *Qmgr) complete(state, id string) bool {
	if state != queue.Incoming {
		return true
	}
	st, err := os.Stat(q.Spool.Path(state, id))
	return err == nil && st.Mode().Perm()&0o100 != 0
}

// Counts returns the number of messages in each queue directory.
func (q *Qmgr) Counts() (control.QueueCountsResult, error) {
	res := control.QueueCountsResult{Counts: map[string]int{}}
	for _, state := range queue.Dirs {
		ids, err := q.Spool.List(state)
		if err != nil {
			return res, ipc.Errorf("temporary", "reading the queue: %v", err)
		}
		n := 0
		for _, id := range ids {
			// A file cleanup is writing, or one a dead cleanup left, is no message yet.
			if q.complete(state, id) {
				n++
			}
		}
		res.Counts[state] = n
	}
	return res, nil
}

package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/delivery"
	"postern/pkg/enqueue"
	"postern/pkg/queue"
	"postern/pkg/srs"
	"postern/pkg/stats"

	bolt "go.etcd.io/bbolt"
)

// Timings of the queue manager that are not configurable.
const (
	// incomingScan is how often incoming/ is scanned besides cleanup's wakeups: a
	// wakeup lost while qmgr restarted delays a message by at most this long.
	incomingScan = 3 * time.Second
	// staleIncoming is the age after which an incomplete file in incoming/ that no
	// cleanup holds locked (queue.RemoveAbandoned) is removed: the leftover of a cleanup
	// that died mid-write, whose client never got a 250. The lock says whether its
	// writer lives; the age only spares a file created an instant ago, not yet locked.
	staleIncoming = 10 * time.Second
	// activeLimit bounds the messages held in active/ at once (Postfix's
	// qmgr_message_active_limit), so that a flood of mail cannot exhaust memory.
	activeLimit = 10000
	// shutdownGrace is how long a stopping qmgr lets deliveries in flight finish.
	// Whatever is left in active/ is tried again at the next start.
	shutdownGrace = 20 * time.Second
)

// Directory is what qmgr asks authd: is there an account, and if not, is its domain
// ours (auth.MailboxResult.LocalDomain). *auth.Client implements it.
type Directory interface {
	Mailbox(ctx context.Context, addr string) (auth.MailboxResult, error)
}

// Qmgr is the queue manager.
type Qmgr struct {
	// Hostname names this host in delivery status notifications.
	Hostname string
	Spool    queue.Spool
	// Queue holds the retry schedule and concurrency.
	Queue config.Queue
	// Dir answers where recipients' mail goes.
	Dir Directory
	// Local delivers to this host's mailboxes; Remote to other hosts.
	Local  Transport
	Remote Transport
	// Bounces submits delivery status notifications to cleanup.
	Bounces *enqueue.Client
	// SRS rewrites the envelope sender of the recipients this host forwards to other
	// hosts (queue.Recipient.Forward); nil sends them with the original sender.
	SRS *srs.Rewriter
	Log *slog.Logger
	// Stats counts what happens to mail (pkg/stats); nil counts nothing. OpenState
	// sets it and keeps it in the state database.
	Stats *stats.Counters

	// state is qmgr's state database (OpenState), nil when not opened.
	state *bolt.DB

	mu sync.Mutex
	// claimed are the messages this process has in active/: waiting in runq or being
	// delivered. Administrative requests on them are noted here and carried out when
	// the delivery attempt ends.
	claimed map[string]*claim
	runq    []string
	cond    *sync.Cond
	// deferred is the schedule: when each message in deferred/ is due again.
	deferred map[string]time.Time
	stopping bool
	// backlog is set when activeLimit held messages back.
	backlog bool
	// unsure holds the messages whose last attempt's outcome may be missing from their
	// queue file: those found in active/ at start, and those whose attempt could not be
	// recorded. Their next attempt asks local to look for copies made before.
	unsure map[string]bool

	wake chan string   // IDs announced by cleanup
	kick chan struct{} // "look at the schedule again"
	// recovered is closed when the start-up recovery is done.
	recovered chan struct{}
}

// claim is a message in active/ owned by this process.
type claim struct {
	// hold or remove were asked for while the message was being delivered.
	hold, remove bool
	// fresh: taken from incoming/, not yet counted as received.
	fresh bool
}

// New returns the queue manager of an instance, talking to authd, local and cleanup on
// their private sockets.
func New(cfg *config.Config, log *slog.Logger) *Qmgr {
	return &Qmgr{
		Hostname: cfg.Hostname,
		Spool:    queue.Spool{Root: cfg.SpoolDir},
		Queue:    cfg.Queue,
		Dir:      auth.NewClient(cfg.PrivateSocket("auth")),
		Local:    NewAgent("local", delivery.NewClient(cfg.PrivateSocket("local")), cfg.Queue.LocalConcurrency),
		Remote:   remoteTransport(cfg),
		Bounces:  enqueue.NewClient(cfg.PrivateSocket("cleanup")),
		Log:      log,
	}
}

// remoteTransport is the remote delivery agent on private/remote, or, when the
// configuration disables it, a transport that keeps mail for other domains waiting in
// deferred/ until it is enabled.
func remoteTransport(cfg *config.Config) Transport {
	if s := cfg.Service("remote"); s == nil || !s.Enable {
		return Unavailable{Relay: "none", Reason: "remote delivery is disabled ([services.remote] enable = false)"}
	}
	return NewAgent("remote", delivery.NewClient(cfg.PrivateSocket("remote")), cfg.Queue.RemoteConcurrency)
}

func (q *Qmgr) init() {
	q.claimed = map[string]*claim{}
	q.deferred = map[string]time.Time{}
	q.unsure = map[string]bool{}
	q.cond = sync.NewCond(&q.mu)
	q.wake = make(chan string, 1024)
	q.kick = make(chan struct{}, 1)
	q.recovered = make(chan struct{})
	if q.Log == nil {
		q.Log = slog.Default()
	}
}

// Run recovers the queue left by the last run, then delivers until ctx is cancelled.
// Deliveries in flight at that moment get shutdownGrace to finish.
func (q *Qmgr) Run(ctx context.Context) {
	if q.claimed == nil {
		q.init()
	}
	// Deliveries run on their own context: a SIGTERM should not cut a delivery in half,
	// only stop new ones from starting.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go q.keepStats(ctx)
	workers := max(q.Queue.LocalConcurrency+q.Queue.RemoteConcurrency, 1)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id, ok := q.next()
				if !ok {
					return
				}
				q.process(work, id)
			}
		}()
	}

	// Workers first, so that the interrupted deliveries start while incoming/ and
	// deferred/ are read.
	q.recover()
	close(q.recovered)

	q.schedule(ctx)

	q.mu.Lock()
	q.stopping = true
	q.cond.Broadcast()
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		q.Log.Warn("deliveries still running at shutdown; they are tried again at the next start")
	}
}

// schedule is the scheduler loop: it moves messages into active/ as they arrive in
// incoming/ or come due in deferred/.
func (q *Qmgr) schedule(ctx context.Context) {
	scanIncoming := time.NewTicker(incomingScan)
	defer scanIncoming.Stop()
	scanDeferred := time.NewTicker(q.Queue.ScanInterval.D())
	defer scanDeferred.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-q.wake:
			q.takeIncoming(id)
			continue // the timer needs no reset
		case <-scanIncoming.C:
			q.scanIncoming()
		case <-scanDeferred.C:
			q.loadDeferred()
		case <-timer.C:
		case <-q.kick:
		}
		q.dispatch()
		timer.Reset(q.untilNext())
	}
}

// Wakeup tells the scheduler that cleanup finished the message id in incoming/.
func (q *Qmgr) Wakeup(id string) {
	if !queue.ValidID(id) {
		return
	}
	select {
	case q.wake <- id:
	default:
		// Many at once: the periodic scan of incoming/ picks them up.
	}
}

// poke makes the scheduler look at the schedule again.
func (q *Qmgr) poke() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// next takes the next message to deliver, waiting until there is one; false means stop.
func (q *Qmgr) next() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.runq) == 0 && !q.stopping {
		q.cond.Wait()
	}
	if q.stopping {
		return "", false
	}
	id := q.runq[0]
	q.runq[0] = ""
	q.runq = q.runq[1:]
	return id, true
}

// claimLocked marks id as this process's and reports whether it was free to take. The
// caller holds q.mu.
func (q *Qmgr) claimLocked(id string) bool {
	if _, ok := q.claimed[id]; ok {
		return false
	}
	q.claimed[id] = &claim{}
	return true
}

// run queues a claimed message in active/ for delivery.
func (q *Qmgr) run(id string) {
	q.mu.Lock()
	q.runq = append(q.runq, id)
	q.cond.Signal()
	q.mu.Unlock()
}

// unclaim gives up a claim that did not lead to a delivery.
func (q *Qmgr) unclaim(id string) {
	q.mu.Lock()
	delete(q.claimed, id)
	q.mu.Unlock()
}

// fullLocked reports whether active/ holds as many messages as it may, noting the backlog.
// The caller holds q.mu.
func (q *Qmgr) fullLocked() bool {
	if len(q.claimed) >= activeLimit {
		q.backlog = true
		return true
	}
	return false
}

// recover takes up what the last run left behind (ARCHITECTURE.md, "The queue"): every
// message in active/ was being delivered when qmgr stopped or crashed and is tried again
// at once; complete files in incoming/ were never picked up; deferred/ is read to build
// the schedule.
func (q *Qmgr) recover() {
	ids, err := q.Spool.List(queue.Active)
	if err != nil {
		q.Log.Error("cannot read the active queue", "err", err)
	}
	for _, id := range ids {
		q.mu.Lock()
		ok := q.claimLocked(id)
		// Its deliveries may have finished without their results being recorded.
		q.unsure[id] = true
		q.mu.Unlock()
		if ok {
			q.run(id)
		}
	}
	if len(ids) > 0 {
		q.Log.Info("recovered interrupted deliveries", "count", len(ids))
	}
	q.scanIncoming()
	q.loadDeferred()
}

// scanIncoming moves every complete file of incoming/ to active/ and removes the stale
// remains of interrupted writes.
func (q *Qmgr) scanIncoming() {
	ids, err := q.Spool.List(queue.Incoming)
	if err != nil {
		q.Log.Error("cannot read the incoming queue", "err", err)
		return
	}
	for _, id := range ids {
		if !q.takeIncoming(id) {
			return // active/ is full
		}
	}
}

// takeIncoming moves id from incoming/ to active/ and queues it, if its file is
// complete. It returns false when active/ is full.
func (q *Qmgr) takeIncoming(id string) bool {
	path := q.Spool.Path(queue.Incoming, id)
	st, err := os.Stat(path)
	if err != nil {
		return true // gone already (a wakeup after a scan took it)
	}
	if st.Mode().Perm()&0o100 == 0 {
		// Still being written by cleanup, or abandoned when it died: its client never
		// got a 250, so removing it once no cleanup holds it loses nothing acknowledged.
		if time.Since(st.ModTime()) > staleIncoming {
			removed, err := queue.RemoveAbandoned(path, staleIncoming)
			switch {
			case err != nil:
				q.Log.Error("cannot remove incomplete queue file", "id", id, "err", err)
			case removed:
				q.Log.Warn("removed incomplete queue file", "id", id, "size", st.Size(),
					"age", time.Since(st.ModTime()).Round(time.Second).String(), "reason", "its cleanup died before finishing it")
			}
		}
		return true
	}
	q.mu.Lock()
	if q.fullLocked() {
		q.mu.Unlock()
		return false
	}
	ok := q.claimLocked(id)
	if ok {
		q.claimed[id].fresh = true
	}
	q.mu.Unlock()
	if !ok {
		return true
	}
	if err := q.Spool.Activate(id, queue.Incoming); err != nil {
		q.unclaim(id)
		if !errors.Is(err, fs.ErrNotExist) {
			q.Log.Error("cannot move message to the active queue", "id", id, "err", err)
		}
		return true
	}
	q.run(id)
	return true
}

// loadDeferred adds the messages of deferred/ that the schedule does not know yet, due
// at the time their last status record says.
func (q *Qmgr) loadDeferred() {
	ids, err := q.Spool.List(queue.Deferred)
	if err != nil {
		q.Log.Error("cannot read the deferred queue", "err", err)
		return
	}
	q.mu.Lock()
	var unknown []string
	for _, id := range ids {
		if _, ok := q.deferred[id]; !ok && q.claimed[id] == nil {
			unknown = append(unknown, id)
		}
	}
	q.mu.Unlock()
	for _, id := range unknown {
		qf, err := queue.Open(q.Spool.Path(queue.Deferred, id))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				q.quarantine(id, queue.Deferred, err)
			}
			continue
		}
		next := qf.Schedule().Next
		qf.Close()
		q.mu.Lock()
		if q.claimed[id] == nil {
			if _, ok := q.deferred[id]; !ok {
				q.deferred[id] = next
			}
		}
		q.mu.Unlock()
	}
}

// dispatch moves the deferred messages that are due into active/.
func (q *Qmgr) dispatch() {
	now := time.Now()
	q.mu.Lock()
	var due []string
	for id, next := range q.deferred {
		if next.After(now) {
			continue
		}
		if q.fullLocked() {
			break
		}
		if q.claimLocked(id) {
			delete(q.deferred, id)
			due = append(due, id)
		}
	}
	backlog := q.backlog && len(q.claimed) < activeLimit
	if backlog {
		q.backlog = false
	}
	q.mu.Unlock()
	for _, id := range due {
		if err := q.Spool.Activate(id, queue.Deferred); err != nil {
			q.unclaim(id)
			if !errors.Is(err, fs.ErrNotExist) {
				q.Log.Error("cannot move message to the active queue", "id", id, "err", err)
			}
			continue
		}
		q.run(id)
	}
	if backlog {
		// Room again in active/: take what incoming/ holds back.
		q.scanIncoming()
	}
}

// untilNext returns how long until the earliest deferred message is due.
func (q *Qmgr) untilNext() time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.Queue.ScanInterval.D()
	now := time.Now()
	for _, next := range q.deferred {
		if w := next.Sub(now); w < d {
			d = w
		}
	}
	return max(d, 0)
}

// quarantine moves a queue file that cannot be read to corrupt/, where it waits for the
// postmaster.
func (q *Qmgr) quarantine(id, from string, cause error) {
	if err := q.Spool.Move(id, from, queue.Corrupt); err != nil {
		q.Log.Error("cannot move unreadable queue file to corrupt/", "id", id, "queue", from, "err", err)
		return
	}
	q.Log.Error("queue file unreadable, moved to corrupt/", "id", id, "queue", from, "err", cause)
}

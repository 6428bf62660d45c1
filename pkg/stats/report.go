package stats

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"postern/pkg/ipc"
)

// OpAdd is the operation on private/qmgr by which other daemons (smtpd) add their
// counts to qmgr's; its body is Counts.
const OpAdd = "stats.add"

// Reporter gathers a daemon's counts and sends them to qmgr, the counters' owner, every
// so often, so that counting costs the daemon no call per event. Counts that qmgr does
// not take (it is down) are kept and sent with the next ones.
type Reporter struct {
	client *ipc.Client
	log    *slog.Logger

	mu      sync.Mutex
	pending Counts
}

// NewReporter returns a Reporter that sends to qmgr's private socket at path.
func NewReporter(path string, log *slog.Logger) *Reporter {
	if log == nil {
		log = slog.Default()
	}
	return &Reporter{client: ipc.NewClient(path), log: log}
}

// Add counts n events of kind k. A nil Reporter counts nothing.
func (r *Reporter) Add(k Kind, n int64) {
	if r == nil || n <= 0 {
		return
	}
	r.mu.Lock()
	if p := r.pending.field(k); p != nil {
		*p += n
	}
	r.mu.Unlock()
}

// Pending returns the counts not yet sent.
func (r *Reporter) Pending() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending
}

// Flush sends the pending counts to qmgr.
func (r *Reporter) Flush(ctx context.Context) error {
	r.mu.Lock()
	cs := r.pending
	r.pending = Counts{}
	r.mu.Unlock()
	if cs.Zero() {
		return nil
	}
	if _, err := r.client.Call(ctx, OpAdd, cs, nil); err != nil {
		r.mu.Lock()
		r.pending = r.pending.Plus(cs)
		r.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every interval until ctx ends, then once more.
func (r *Reporter) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := r.Flush(fctx); err != nil {
				r.log.Warn("statistics not sent to qmgr", "err", err)
			}
			cancel()
			r.client.Close()
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := r.Flush(cctx); err != nil {
				r.log.Debug("statistics not sent to qmgr yet", "err", err)
			}
			cancel()
		}
	}
}

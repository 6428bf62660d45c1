package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/auth"
	"postern/pkg/dmarc"
	"postern/pkg/ipc"
	"postern/pkg/junk"
	"postern/pkg/spamcheck"
)

// Spamd serves verdicts over private/spamd.
type Spamd struct {
	Checker *Checker
	// Junk learns what imapd reports (OpLearn); nil refuses it.
	Junk *junk.DB
	Log  *slog.Logger
}

// Server returns the ipc server of private/spamd: check admits the peers that may ask
// for verdicts (cleanup), learn those that may report moves into and out of Junk
// (imapd). Peers are told apart by uid only, so in a one-user instance (master not
// root) every daemon may call both.
func (d *Spamd) Server(check, learn func(ipc.Cred) bool) *ipc.Server {
	s := &ipc.Server{Name: "spamd", Allow: ipc.AnyOf(check, learn), Logger: d.Log}
	s.Handle(spamcheck.OpCheck, ipc.Only(check, d.serveCheck))
	s.Handle(spamcheck.OpLearn, ipc.Only(learn, d.serveLearn))
	return s
}

// serveLearn learns a message a user moved into Junk or out of it, into the user's own
// corpus.
func (d *Spamd) serveLearn(_ context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
	defer ipc.CloseFiles(files)
	var req spamcheck.LearnRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, ipc.Errorf("invalid", "decoding learn request: %v", err)
	}
	if req.User == "" || d.Junk == nil {
		return nil, ipc.Errorf("invalid", "learn request without a user or a classifier")
	}
	if _, err := learnMessage(d.Junk, d.Log, strings.ToLower(req.User), req.Spam, false, files, 0, req.Size); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (d *Spamd) serveCheck(ctx context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
	defer ipc.CloseFiles(files)
	req, err := spamcheck.DecodeRequest(body)
	if err != nil {
		return nil, ipc.Errorf("invalid", "%v", err)
	}
	if len(files) != 1 {
		return nil, ipc.Errorf("invalid", "check request with %d descriptors, want the message's", len(files))
	}
	// cleanup stops waiting after [spamd] timeout; the checks (DNS above all) stop then too.
	ctx, cancel := context.WithTimeout(ctx, d.Checker.Policy.Timeout.D())
	defer cancel()
	start := time.Now()
	v := d.Checker.Check(ctx, req, files[0])
	log := d.Log
	if len(v.Junk) > 0 || len(v.Inbox) > 0 {
		// The recipients whose own lists decided where their copy goes.
		log = log.With("junk_for", v.Junk, "inbox_for", v.Inbox)
	}
	log.Info("verdict", "id", req.QueueID, "action", v.Action, "score", v.Score, "reasons", v.Reasons,
		"client", req.ClientAddr, "from", "<"+req.From+">", "ms", float64(time.Since(start).Microseconds())/1000)
	return v, nil
}

// authDomains asks authd whether a domain is ours, and remembers the answer for a
// minute: the From: domains of a burst of mail are few, and a domain added with mailctl
// counts as ours within that time.
type authDomains struct {
	c     *auth.Client
	mu    sync.Mutex
	cache map[string]localAnswer
}

type localAnswer struct {
	local   bool
	expires time.Time
}

// IsLocal implements LocalDomains: an address at a local domain resolves as Local.
func (a *authDomains) IsLocal(ctx context.Context, domain string) (bool, error) {
	a.mu.Lock()
	ans, ok := a.cache[domain]
	a.mu.Unlock()
	if ok && time.Now().Before(ans.expires) {
		return ans.local, nil
	}
	r, err := a.c.Resolve(ctx, "postmaster@"+domain)
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache == nil || len(a.cache) > 10000 {
		a.cache = map[string]localAnswer{}
	}
	a.cache[domain] = localAnswer{r.Local, time.Now().Add(time.Minute)}
	return r.Local, nil
}

// dmarcRecord is one DMARC evaluation, kept for aggregate reports (RFC 7489 §7.2).
type dmarcRecord struct {
	At           time.Time `json:"at"`
	QueueID      string    `json:"queue_id"`
	SourceIP     string    `json:"source_ip"`
	HeaderFrom   string    `json:"header_from"`
	RecordDomain string    `json:"record_domain"`
	Published    string    `json:"published"`
	Applied      string    `json:"applied"`
	Result       string    `json:"result"`
	SPFDomain    string    `json:"spf_domain"`
	SPF          string    `json:"spf"`
	SPFAligned   bool      `json:"spf_aligned"`
	DKIMDomains  []string  `json:"dkim_domains,omitempty"`
	DKIMAligned  bool      `json:"dkim_aligned"`
	Disposition  string    `json:"disposition"`
	// For the aggregate reports (reports.go): the record's policy as published, the
	// SPF scope ("mfrom", or "helo" for the null sender), and the result of every
	// DKIM signature.
	Policy   dmarc.PolicyPublished  `json:"policy"`
	SPFScope string                 `json:"spf_scope,omitempty"`
	DKIM     []dmarc.DKIMAuthResult `json:"dkim,omitempty"`
}

// dmarcBucket holds the evaluations, keyed by a sequence number (bbolt's NextSequence),
// so they read back in order.
var dmarcBucket = []byte("dmarc")

// recorder writes DMARC evaluations into spamd's database off the verdict's path: a
// verdict never waits on the disk. Records that arrive faster than the database takes
// them are dropped (and counted in the log): reports are statistics, mail is not held
// up for them.
type recorder struct {
	db  *bolt.DB
	ch  chan dmarcRecord
	log *slog.Logger
}

func newRecorder(db *bolt.DB, log *slog.Logger) (*recorder, error) {
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(dmarcBucket)
		return err
	}); err != nil {
		return nil, fmt.Errorf("creating the dmarc bucket: %w", err)
	}
	return &recorder{db: db, ch: make(chan dmarcRecord, 1024), log: log}, nil
}

// Record queues r for writing.
func (r *recorder) Record(rec dmarcRecord) {
	select {
	case r.ch <- rec:
	default:
		r.log.Warn("DMARC evaluation not recorded: the database is behind", "id", rec.QueueID)
	}
}

// run writes what Record queued, many records per transaction, until ctx ends.
func (r *recorder) run(ctx context.Context) {
	for {
		var batch []dmarcRecord
		select {
		case <-ctx.Done():
			return
		case rec := <-r.ch:
			batch = append(batch, rec)
		}
	more:
		for len(batch) < 1000 {
			select {
			case rec := <-r.ch:
				batch = append(batch, rec)
			default:
				break more
			}
		}
		err := r.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(dmarcBucket)
			for _, rec := range batch {
				seq, err := b.NextSequence()
				if err != nil {
					return err
				}
				v, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			r.log.Error("DMARC evaluations not recorded", "n", len(batch), "err", err)
		}
	}
}

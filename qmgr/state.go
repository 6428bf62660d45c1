package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"postern/pkg/audit"
	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/stats"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// qmgr's state database, <spool>/qmgr/qmgr.db (bbolt), is qmgr's alone: the delivery
// statistics (pkg/stats) and the audit log of queue administration (pkg/audit).

var (
	bucketStats = []byte("stats")
	bucketAudit = []byte("audit")
)

// statsSave is how often the statistics are stored: a kill -9 forgets that much.
const statsSave = time.Minute

// OpenState opens (creating it and its directory) qmgr's state database at path, and
// loads the statistics stored there into q.Stats.
func (q *Qmgr) OpenState(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating qmgr's state directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("opening %s: another qmgr holds it", path)
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	if q.Stats == nil {
		q.Stats = &stats.Counters{}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, n := range [][]byte{bucketStats, bucketAudit} {
			if _, err := tx.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		return q.Stats.Load(tx.Bucket(bucketStats))
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("opening %s: %w", path, err)
	}
	q.state = db
	return nil
}

// CloseState stores the statistics and closes the state database.
func (q *Qmgr) CloseState() error {
	if q.state == nil {
		return nil
	}
	err := q.saveStats()
	if cerr := q.state.Close(); err == nil {
		err = cerr
	}
	return err
}

// saveStats stores the statistics counted since the last time.
func (q *Qmgr) saveStats() error {
	if q.state == nil || q.Stats == nil {
		return nil
	}
	return q.state.Update(func(tx *bolt.Tx) error { return q.Stats.Save(tx.Bucket(bucketStats)) })
}

// keepStats stores the statistics every statsSave until ctx ends.
func (q *Qmgr) keepStats(ctx context.Context) {
	if q.state == nil {
		return
	}
	t := time.NewTicker(statsSave)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := q.saveStats(); err != nil {
				q.Log.Warn("storing the delivery statistics", "err", err)
			}
		}
	}
}

// count adds n events of kind k to the statistics, if they are kept.
func (q *Qmgr) count(k stats.Kind, n int64) {
	if q.Stats != nil {
		q.Stats.Add(k, n)
	}
}

// record appends a queue administration, done, to the audit log and writes it to the
// log. Without a state database it fails, saying the change was made nevertheless.
func (q *Qmgr) record(peer ipc.Cred, o control.Origin, op string, ids []string, n int) error {
	target := strings.Join(ids, " ")
	if target == "" && op == control.QueueFlush {
		target = "all deferred"
	}
	if len(target) > 1000 {
		target = target[:1000] + "…"
	}
	e := audit.By("qmgr", peer.UID, o.Actor, o.RemoteIP)
	e.Op, e.Target, e.Detail = op, target, messages(n)
	err := errors.New("qmgr's state database is not open")
	if q.state != nil {
		err = q.state.Update(func(tx *bolt.Tx) error {
			var err error
			e, err = audit.Append(tx.Bucket(bucketAudit), e)
			return err
		})
	}
	if err != nil {
		q.Log.Error("writing the audit log", "op", op, "uid", peer.UID, "err", err)
		return ipc.Errorf("temporary", "%s was done (%s), but could not be written to the audit log: %v", op, messages(n), err)
	}
	args := []any{"seq", e.Seq, "op", op, "target", target, "who", e.Who(), "count", n}
	if e.IP != "" {
		args = append(args, "ip", e.IP)
	}
	q.Log.Info("audit", args...)
	return nil
}

// auditList reads the last n entries of the audit log.
func (q *Qmgr) auditList(n int) (control.AuditResult, error) {
	if q.state == nil {
		return control.AuditResult{Entries: []audit.Entry{}}, nil
	}
	var res control.AuditResult
	err := q.state.View(func(tx *bolt.Tx) error {
		var err error
		res.Entries, err = audit.Read(tx.Bucket(bucketAudit), n)
		return err
	})
	return res, err
}

// statsResult answers control.Stats.
func (q *Qmgr) statsResult(req control.StatsRequest) control.StatsResult {
	c := q.Stats
	if c == nil {
		c = &stats.Counters{}
	}
	hours, days := req.Hours, req.Days
	if hours <= 0 {
		hours = stats.HourKeep
	}
	if days <= 0 {
		days = stats.DayKeep
	}
	return control.StatsResult{Hours: c.Hours(hours), Days: c.Days(days), Total: c.Total()}
}

// messages says how many messages, in words: "1 message", "2 messages".
func messages(n int) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}

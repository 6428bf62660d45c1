package main

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"time"

	"postern/pkg/auth"
	"postern/pkg/ipc"
)

// watchers are the subscriptions to account changes (auth.OpWatch): imapd drops its
// cached logins and ends the sessions of a disabled or deleted account, spamd drops a
// deleted account's lists and corpus.
type watchers struct {
	mu   sync.Mutex
	subs map[*subscription]struct{}
}

type subscription struct {
	uid  int
	conn *ipc.Conn
	ch   chan notice
	gone chan struct{} // closed when the subscription ends
}

// notice is one change on its way to one subscriber; done gets the outcome.
type notice struct {
	ev   auth.AccountEvent
	done chan error
}

// watch serves auth.OpWatch: it keeps the connection, sends each change and waits for
// its acknowledgement, until the subscriber goes away, fails to answer in time, or authd
// stops.
func (a *Authd) watch(ctx context.Context, peer ipc.Cred, c *ipc.Conn, _ json.RawMessage, files []*os.File) error {
	ipc.CloseFiles(files)
	sub := &subscription{uid: peer.UID, conn: c, ch: make(chan notice, 16), gone: make(chan struct{})}
	a.watchers.mu.Lock()
	if a.watchers.subs == nil {
		a.watchers.subs = map[*subscription]struct{}{}
	}
	a.watchers.subs[sub] = struct{}{}
	a.watchers.mu.Unlock()
	defer func() {
		a.watchers.mu.Lock()
		delete(a.watchers.subs, sub)
		a.watchers.mu.Unlock()
		close(sub.gone)
	}()
	if err := c.Reply(nil, nil); err != nil {
		return err
	}
	a.Log.Debug("account change subscriber", "uid", peer.UID)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case n := <-sub.ch:
			c.SetDeadline(time.Now().Add(a.watchTimeout()))
			err := c.Send(n.ev)
			if err == nil {
				var ack auth.WatchAck
				_, err = c.Receive(&ack)
			}
			n.done <- err
			if err != nil {
				a.Log.Warn("an account change subscriber did not acknowledge; hanging up on it", "uid", peer.UID, "user", n.ev.Address, "change", n.ev.Change, "err", err)
				return err
			}
			c.SetDeadline(time.Time{})
		}
	}
}

// accountChanged tells every subscriber about a change of the account addr, already
// written to users.db, and returns when each has acknowledged it, or failed to in time
// (it is then hung up on, and drops everything it cached when it notices). The
// account's web sessions end when it is disabled or deleted.
func (a *Authd) accountChanged(addr, change string) {
	ev := auth.AccountEvent{Address: addr, Change: change}
	if ev.Ends() {
		a.Web.RevokeAccount(addr)
	}
	a.watchers.mu.Lock()
	var pending []chan error
	var gone []chan struct{}
	for sub := range a.watchers.subs {
		n := notice{ev: ev, done: make(chan error, 1)}
		select {
		case sub.ch <- n:
			pending = append(pending, n.done)
			gone = append(gone, sub.gone)
		default:
			// Too far behind to be told: hung up on, it drops what it cached.
			a.Log.Warn("an account change subscriber is behind; hanging up on it", "uid", sub.uid, "user", addr, "change", change)
			sub.conn.Close()
		}
	}
	a.watchers.mu.Unlock()
	timeout := time.NewTimer(a.watchTimeout() + time.Second)
	defer timeout.Stop()
	for i, done := range pending {
		select {
		case <-done:
		case <-gone[i]: // it ended before it took the change: it dropped its cache
		case <-timeout.C:
			a.Log.Warn("account change subscribers did not answer in time", "user", addr, "change", change)
			return
		}
	}
}

// watchTimeout is WatchTimeout, or auth.WatchAckTimeout.
func (a *Authd) watchTimeout() time.Duration {
	if a.WatchTimeout > 0 {
		return a.WatchTimeout
	}
	return auth.WatchAckTimeout
}

package auth

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"postern/pkg/ipc"
)

// OpWatch subscribes to changes of accounts: the daemons that keep something about an
// account beyond one request (imapd's login cache and open sessions, spamd's per-user
// lists and corpus) hear from authd, the one owner of users.db, when an account is
// disabled or deleted, its password changed or an app password revoked.
//
// The exchange, on one connection of private/auth that stays open: the subscriber sends
// the request, authd answers with an empty response, then sends one AccountEvent frame per
// change, and the subscriber answers each with a WatchAck once it has acted on it. authd
// waits for that answer (WatchAckTimeout at most) before it answers the administrator,
// so that when `mailctl user disable` returns, no cached login of the account is left
// anywhere. A subscriber that does not answer in time is hung up on.
const OpWatch = "account.watch"

// Kinds of AccountEvent.Change.
const (
	ChangeDisabled    = "disabled"    // the account may no longer log in
	ChangeDeleted     = "deleted"     // the account is gone
	ChangePassword    = "password"    // its password changed
	ChangeAppPassword = "apppassword" // one of its app passwords was revoked
)

// WatchAckTimeout bounds authd's wait for a subscriber's WatchAck.
const WatchAckTimeout = 10 * time.Second

// AccountEvent is a change of the account Address.
type AccountEvent struct {
	Address string `json:"address"`
	Change  string `json:"change"`
}

// Ends reports whether the change ends the account's sessions (disabled or deleted),
// not only its cached logins.
func (e AccountEvent) Ends() bool {
	return e.Change == ChangeDisabled || e.Change == ChangeDeleted
}

// WatchAck answers an AccountEvent: the subscriber has acted on it.
type WatchAck struct{}

// Watcher is what a subscriber does with the subscription.
type Watcher interface {
	// Subscribed is called each time the subscription is established: from now on
	// every change is heard. Changes made while it was not (authd restarted, or this
	// daemon) were missed: the subscriber checks again what it keeps.
	Subscribed()
	// Lost is called when the subscription broke: changes may be missed from now on
	// until the next Subscribed, so nothing kept may be trusted meanwhile.
	Lost(err error)
	// Changed acts on one change; authd hears the acknowledgement when it returns.
	Changed(AccountEvent)
}

// Watch keeps a subscription to authd's account changes at path (private/auth) until ctx
// is done, dialing again a second after it broke, and calls w.
func Watch(ctx context.Context, path string, log *slog.Logger, w Watcher) {
	for ctx.Err() == nil {
		err := watchOnce(ctx, path, w)
		if ctx.Err() != nil {
			return
		}
		log.Debug("account change subscription ended; dialing authd again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func watchOnce(ctx context.Context, path string, w Watcher) error {
	c, err := ipc.Dial(path)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Call(OpWatch, nil, nil); err != nil {
		return fmt.Errorf("subscribing to account changes: %w", err)
	}
	c.SetDeadline(time.Time{})
	w.Subscribed()
	for {
		var ev AccountEvent
		if _, err := c.Receive(&ev); err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // stopping: nothing is served from now on
			}
			w.Lost(err)
			return fmt.Errorf("reading an account change: %w", err)
		}
		w.Changed(ev)
		c.SetDeadline(time.Now().Add(WatchAckTimeout))
		if err := c.Send(WatchAck{}); err != nil {
			w.Lost(err)
			return fmt.Errorf("acknowledging an account change: %w", err)
		}
		c.SetDeadline(time.Time{})
	}
}

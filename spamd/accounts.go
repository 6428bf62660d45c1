package main

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"postern/pkg/auth"
	"postern/pkg/junk"
)

// accountSweeper drops what spamd keeps of an account that authd deleted: its own block
// and allow lists and its classifier corpus. It hears deletions from authd
// (auth.Watch), and each time it subscribes (spamd's start, authd's restart) it sweeps:
// a user with lists or a corpus but no account (deleted while the subscription was down)
// loses them too.
type accountSweeper struct {
	lists *senderLists
	junk  *junk.DB // nil without a classifier
	// exists asks authd whether an account exists.
	exists func(ctx context.Context, addr string) (bool, error)
	log    *slog.Logger
}

// Subscribed sweeps, in the background: the subscription's reader must go on.
func (w *accountSweeper) Subscribed() { go w.sweep() }

// Lost needs nothing: the next Subscribed sweeps.
func (w *accountSweeper) Lost(error) {}

// Changed forgets a deleted account before authd hears the acknowledgement.
func (w *accountSweeper) Changed(ev auth.AccountEvent) {
	if ev.Change == auth.ChangeDeleted {
		w.forget(ev.Address)
	}
}

// forget drops user's lists and corpus; both are kept under the lower-cased address.
func (w *accountSweeper) forget(addr string) {
	user := strings.ToLower(addr)
	n, err := w.lists.forgetUser(user)
	if err != nil {
		w.log.Error("dropping a deleted account's lists", "user", user, "err", err)
	}
	corpus := false
	if w.junk != nil {
		if corpus, err = w.junk.Forget(user); err != nil {
			w.log.Error("dropping a deleted account's classifier corpus", "user", user, "err", err)
		}
	}
	if n > 0 || corpus {
		w.log.Info("deleted account forgotten", "user", user, "list_entries", n, "corpus", corpus)
	}
}

// sweep forgets the users with lists or a corpus whose account authd does not know. An
// unanswered question keeps the user's data.
func (w *accountSweeper) sweep() {
	users := w.lists.users()
	if w.junk != nil {
		us, err := w.junk.Users()
		if err != nil {
			w.log.Warn("listing the classifier's users", "err", err)
		}
		users = append(users, us...)
	}
	slices.Sort(users)
	for _, u := range slices.Compact(users) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ok, err := w.exists(ctx, u)
		cancel()
		if err != nil {
			w.log.Warn("asking authd whether an account exists", "user", u, "err", err)
			continue
		}
		if !ok {
			w.forget(u)
		}
	}
}

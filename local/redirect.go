package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"postern/pkg/delivery"
	"postern/pkg/dirsync"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
)

// Sieve's redirect (RFC 5228 §4.2) sends the message on as a new message through the
// queue: local streams it from the queue file to cleanup (enqueue.Envelope.Forward),
// with the original envelope sender and the redirect's addresses as recipients, and a
// Delivered-To field naming the recipient in front, which is the loop check: a message
// that carries the recipient's Delivered-To already went through this redirect once
// (filter keeps it instead of redirecting it again). qmgr sends it to other hosts from
// the SRS form of the sender (pkg/srs), so that it passes SPF there.
//
// The recipient is reported delivered only once cleanup answered with the new queue ID,
// when the new message is durable. A redirect that cannot be queued now (cleanup down)
// defers the recipient, and the redirect is tried again with the next attempt; one that
// cleanup refuses for good keeps the message in the mailbox instead: mail is never lost
// to a filter. A crash between cleanup's answer and local's result must not send the
// message twice: local writes a marker into the Maildir's tmp/ as soon as the message is
// queued, and an attempt that may follow an unrecorded one (MaybeDelivered) looks for
// it first. Only a kill -9 in the instant between cleanup's answer and the marker's
// fsync can still send a second copy (the same window qmgr's bounces have).

// redirectTimeout bounds the hand-over of one redirected message to cleanup.
const redirectTimeout = 2 * time.Minute

// markerAge is how long a redirect marker is kept: longer than a message stays in the
// queue ([queue] max_lifetime, 5 days by default), after which no attempt can follow.
const markerAge = 30 * 24 * time.Hour

// errRedirectRefused is a redirect cleanup refused for good (an address it will not take).
var errRedirectRefused = errors.New("redirect refused")

// redirect queues the message for the addresses to, unless an earlier attempt did.
func (a *Agent) redirect(ctx context.Context, f *os.File, req *delivery.Request, r delivery.Recipient, root string, to []string, log *slog.Logger) error {
	if a.Cleanup == nil {
		return fmt.Errorf("%w: no queue to send through", errRedirectRefused)
	}
	tmp := filepath.Join(root, "tmp")
	marker := filepath.Join(tmp, "redirect-Q"+req.QueueID+"R"+strconv.Itoa(r.Rcpt))
	defer a.claim(marker)()
	if r.MaybeDelivered {
		if _, err := os.Lstat(marker); err == nil {
			log.Info("redirected before, not again", "redirect", strings.Join(to, ","))
			return nil
		}
	}
	env := &enqueue.Envelope{
		Forward:  true,
		From:     req.From,
		BodyType: req.BodyType,
		SMTPUTF8: req.SMTPUTF8,
		EnvID:    req.EnvID,
		Ret:      req.Ret,
	}
	for _, t := range to {
		env.Recipients = append(env.Recipients, enqueue.Recipient{Addr: t})
	}
	cctx, cancel := context.WithTimeout(ctx, redirectTimeout)
	defer cancel()
	// The message streams from the queue file (pread, never whole in memory), behind
	// the loop check's field.
	id, err := a.submit(cctx, env, strings.NewReader("Delivered-To: "+headerSafe(r.Addr)+"\r\n"), delivery.Body(f, req.Offset, req.Size))
	if err != nil {
		if ipc.IsCode(err, enqueue.CodeRejected) || ipc.IsCode(err, "invalid") {
			return fmt.Errorf("%w: %w", errRedirectRefused, err)
		}
		return err
	}
	log.Info("redirected", "redirect", strings.Join(to, ","), "redirect_id", id)
	if err := a.writeMarker(tmp, marker); err != nil {
		// The message is queued: a repeated attempt would send it twice only if this
		// one is not recorded, which is what the marker was for.
		log.Warn("cannot record the redirect; a repeated attempt would send it again", "file", marker, "err", err)
	}
	return nil
}

// markerSweepEvery is how often the old markers of one Maildir are looked for: listing
// tmp/ at every redirect would cost a directory read and a stat per marker kept (a month
// of them for a user who redirects all their mail) for each message.
const markerSweepEvery = 24 * time.Hour

// writeMarker creates the empty file path in the Maildir's tmp/ durably, and removes
// the markers older than markerAge beside it when it has not done so for
// markerSweepEvery. Whether a redirect was made is looked up by the marker's own name
// (os.Lstat in redirect), never by reading tmp/.
func (a *Agent) writeMarker(tmp, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		// A Maildir without tmp/: made for the marker alone (the message went
		// elsewhere).
		if err = os.MkdirAll(tmp, 0o700); err == nil {
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
		}
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// The marker counts once its directory entry is durable too.
	if err := dirsync.Sync(tmp); err != nil {
		return err
	}
	now := time.Now()
	if last, ok := a.swept.Load(tmp); ok && now.Sub(last.(time.Time)) < markerSweepEvery {
		return nil
	}
	a.swept.Store(tmp, now)
	sweepMarkers(tmp, now)
	return nil
}

// sweepMarkers removes the redirect markers in tmp older than markerAge.
func sweepMarkers(tmp string, now time.Time) {
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "redirect-") {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > markerAge {
			os.Remove(filepath.Join(tmp, e.Name()))
		}
	}
}

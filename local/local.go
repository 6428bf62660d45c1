package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"postern/pkg/auth"
	"postern/pkg/delivery"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/maildir"
	"postern/pkg/metrics"
	"postern/pkg/queue"
	"postern/pkg/sieve"
)

// Agent is the local delivery agent.
type Agent struct {
	// MailRoot is the directory every Maildir lives under (<data>/mail); local refuses
	// to write anywhere else.
	MailRoot string
	// SieveRoot is the directory of the users' Sieve scripts (<data>/sieve), which
	// sieved writes and local reads: "" runs no scripts.
	SieveRoot string
	// SieveLimits bound the scripts (postern.toml's [sieve]); zero means
	// sieve.DefaultLimits.
	SieveLimits sieve.Limits
	// Cleanup queues the messages Sieve scripts redirect (redirect.go); nil keeps them
	// instead.
	Cleanup *enqueue.Client
	Log     *slog.Logger

	// Vacations is the memory of the vacation replies sent (vacation.go); nil sends
	// none. Submit queues a reply through cleanup, SendAs asks authd for an account's
	// addresses.
	Vacations *vacationMemory
	Submit    func(ctx context.Context, env *enqueue.Envelope, msg []byte) (string, error)
	SendAs    func(ctx context.Context, user string) (auth.SendAsResult, error)

	// checked remembers, by Maildir path, when mailbox last found it safe: resolving
	// every symbolic link of the path costs more than writing a small message, and the
	// tree under the mail root belongs to local's own user.
	checked sync.Map // string → time.Time
	// scripts keeps each active Sieve script parsed, by path, with the file it came
	// from (sieve.go's loadScript): a recipient's script is parsed once, not per message.
	scripts sync.Map // string → *cachedScript
	// swept remembers, by tmp/ directory, when writeMarker last removed the old redirect
	// markers there (redirect.go).
	swept sync.Map // string → time.Time

	// busy holds the deliveries in progress by the path their file gets in new/, each
	// with a channel closed when it ends: a repeated delivery waits for the first to
	// finish before it looks for its file (qmgr restarted and asked again while this
	// process was still writing the first copy).
	busyMu sync.Mutex
	busy   map[string]chan struct{}
}

// recheckAfter is how long a Maildir path found safe stays trusted.
const recheckAfter = time.Minute

// Server returns the server of private/local.
func (a *Agent) Server(allow func(ipc.Cred) bool) *ipc.Server {
	if a.Log == nil {
		a.Log = slog.Default()
	}
	s := &ipc.Server{Name: "local", Allow: allow, Logger: a.Log}
	delivery.Handle(s, a.serveDeliver)
	s.Handle(delivery.OpCreateMailbox, a.serveCreateMailbox)
	s.Handle(delivery.OpUsage, a.serveUsage)
	return s
}

func (a *Agent) serveDeliver(ctx context.Context, req *delivery.Request, f *os.File) []delivery.Result {
	results := make([]delivery.Result, len(req.Recipients))
	if !queue.ValidID(req.QueueID) {
		// The queue ID goes into file names: a request without a real one is a bug in
		// qmgr, which may be fixed by the time it tries again (RFC 3463 X.3.0).
		a.Log.Error("refusing a delivery request without a valid queue ID", "id", req.QueueID)
		for i := range results {
			results[i] = result(delivery.Deferred, "4.3.0", "invalid delivery request")
		}
		return results
	}
	for i, r := range req.Recipients {
		results[i] = a.deliver(ctx, f, req, r)
	}
	return results
}

// fileBase returns the base name of the Maildir file of delivery r of req: the same at
// every attempt, so that a delivery made again after a crash finds the first one's file
// (ARCHITECTURE: kill -9 delivers nothing twice). The queue ID is unique on this host and
// says when the message arrived; the recipient's index tells apart the recipients of one
// message that share a mailbox.
func fileBase(req *delivery.Request, r delivery.Recipient) string {
	return maildir.StableName(queue.IDTime(req.QueueID), "Q"+req.QueueID+"R"+strconv.Itoa(r.Rcpt))
}

// claim marks the delivery whose file is key as in progress, after waiting for one of
// the same file that is in progress already, and returns the function that ends it.
func (a *Agent) claim(key string) (release func()) {
	for {
		a.busyMu.Lock()
		if a.busy == nil {
			a.busy = map[string]chan struct{}{}
		}
		ch, ok := a.busy[key]
		if !ok {
			ch = make(chan struct{})
			a.busy[key] = ch
			a.busyMu.Unlock()
			return func() {
				a.busyMu.Lock()
				delete(a.busy, key)
				a.busyMu.Unlock()
				close(ch)
			}
		}
		a.busyMu.Unlock()
		<-ch
	}
}

// deliver writes the message into one recipient's mailbox, or where the recipient's
// Sieve script sends it.
func (a *Agent) deliver(ctx context.Context, f *os.File, req *delivery.Request, r delivery.Recipient) delivery.Result {
	log := a.Log.With("id", req.QueueID, "to", "<"+r.Addr+">")
	root, err := a.mailbox(r.Maildir)
	if err != nil {
		// Defense in depth: authd names Maildirs under the mail root only, so this is a
		// bug or an attack, not a state that waiting would fix (RFC 3463 X.3.0).
		log.Error("refusing to deliver outside the mail directory", "maildir", r.Maildir, "err", err)
		return result(delivery.Bounced, "5.3.0", "mailbox location refused")
	}
	if r.Rcpt < 0 {
		log.Error("refusing a delivery request with a negative recipient index", "rcpt", r.Rcpt)
		return result(delivery.Deferred, "4.3.0", "invalid delivery request")
	}
	p := a.filter(f, req, r, root, log)
	res := a.deliverPlan(ctx, f, req, r, root, p, log)
	if p.vacation != nil && res.Status == delivery.Sent {
		a.vacation(req, r, p.vacation, p.header, log)
	}
	return res
}

// deliverPlan carries out what the recipient's script decided: the copies to store,
// the redirects or the rejection.
func (a *Agent) deliverPlan(ctx context.Context, f *os.File, req *delivery.Request, r delivery.Recipient, root string, p plan, log *slog.Logger) delivery.Result {
	if p.reject != "" {
		// RFC 5429 §2.1: the message was accepted already, so the refusal travels as a
		// DSN, which qmgr sends to the envelope sender for a bounced recipient (none to
		// <>). ereject at delivery time is the same (§2.1.1). X.7.1: delivery not
		// authorized, message refused (RFC 3463).
		log.Info("rejected by the recipient's Sieve script")
		return result(delivery.Bounced, "5.7.1", "rejected by the recipient: "+oneLine(p.reject))
	}
	if len(p.targets) == 0 && len(p.redirects) == 0 {
		log.Info("discarded by the recipient's Sieve script")
		return result(delivery.Sent, "2.0.0", "discarded by the recipient's filter")
	}
	prefix := []byte("Return-Path: <" + headerSafe(req.From) + ">\r\nDelivered-To: " + headerSafe(r.Addr) + "\r\n")
	size := int64(len(prefix)) + req.Size
	if r.Quota > 0 && len(p.targets) > 0 {
		q := maildir.Quota{Bytes: r.Quota}
		used, count, err := maildir.Usage(root, q)
		if errors.Is(err, fs.ErrNotExist) {
			// No Maildir yet (it is created below, when the message is written): empty.
			used, count, err = 0, 0, nil
		}
		if err != nil {
			log.Error("cannot read the mailbox's quota", "maildir", root, "err", err)
			return writeFailure(err)
		}
		n := int64(len(p.targets))
		if q.Exceeded(used+n*size, count+n) {
			// RFC 3463 X.2.2: mailbox full. Permanent, as Postfix's and Dovecot's
			// default (quota_full_tempfail = no): the sender learns now rather than
			// after days of retries into a mailbox nobody empties.
			log.Info("mailbox full", "used", used, "quota", r.Quota, "size", size)
			return result(delivery.Bounced, "5.2.2", "mailbox full")
		}
	}
	if len(p.redirects) > 0 {
		err := a.redirect(ctx, f, req, r, root, p.redirects, log)
		switch {
		case errors.Is(err, errRedirectRefused):
			// Mail is never lost to a filter: what cannot go on stays here.
			log.Error("sieve: redirect refused; keeping the message instead", "redirect", strings.Join(p.redirects, ","), "err", err)
			p.keep(defaultFolder(req, r))
		case err != nil:
			// RFC 3463 X.3.0: the queue cannot take the redirect now; the whole
			// delivery is tried again later (what was done is found, not redone).
			log.Warn("sieve: redirect not queued; deferring", "redirect", strings.Join(p.redirects, ","), "err", err)
			return result(delivery.Deferred, "4.3.0", "cannot queue the redirected message now")
		}
	}
	for _, t := range p.targets {
		if res, ok := a.store(f, req, r, root, t, prefix, log); !ok {
			return res
		}
	}
	if len(p.targets) == 0 {
		return result(delivery.Sent, "2.0.0", "redirected by the recipient's filter")
	}
	if defaultFolder(req, r) == "Junk" {
		metrics.Inc(metrics.Junk)
	}
	return result(delivery.Sent, "2.0.0", "delivered to maildir")
}

// store writes one copy of the message into the folder of t, unless an earlier attempt
// did; ok is false with the failure's result when it cannot.
func (a *Agent) store(f *os.File, req *delivery.Request, r delivery.Recipient, root string, t target, prefix []byte, log *slog.Logger) (delivery.Result, bool) {
	folder, err := maildir.FolderPath(root, t.folder)
	if err != nil {
		log.Error("refusing a folder name", "folder", t.folder, "err", err)
		return result(delivery.Deferred, "4.3.0", "invalid folder name"), false
	}
	base := fileBase(req, r)
	defer a.claim(filepath.Join(folder, base))()
	if r.MaybeDelivered {
		// An earlier attempt may have written the message without its result reaching
		// the queue file. Its file has the same base name, in new/ or, once imapd took
		// it, in cur/. (A copy the user deleted or moved to another folder meanwhile is
		// not found, and the message is delivered again.)
		p, err := maildir.Find(folder, base)
		if err == nil {
			log.Info("delivered before, not again", "file", p)
			return delivery.Result{}, true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			log.Error("cannot look for an earlier delivery", "maildir", folder, "err", err)
			return writeFailure(err), false
		}
	}

	// pread(2) through a SectionReader: the message is never read whole into memory,
	// and the descriptor's offset, shared with qmgr, is never moved.
	path, n, err := maildir.DeliverNamedKeywords(folder, base, t.flags, t.keywords, prefix, delivery.Body(f, req.Offset, req.Size))
	if errors.Is(err, fs.ErrNotExist) {
		// The folder is missing, or part of it (tmp/ or new/; a message file written
		// to tmp/ was removed): a new account whose Maildir authd has not had created,
		// a Junk folder a user deleted, or a folder a Sieve script files into for the
		// first time. Create what is missing and write the message again, once.
		// Looking first would cost a stat(2) for every message.
		if cerr := a.createMailbox(root, t.folder, log); cerr != nil {
			return writeFailure(cerr), false
		}
		path, n, err = maildir.DeliverNamedKeywords(folder, base, t.flags, t.keywords, prefix, delivery.Body(f, req.Offset, req.Size))
	}
	if err != nil {
		log.Error("delivery failed", "maildir", folder, "err", err)
		return writeFailure(err), false
	}
	if r.Quota > 0 {
		if err := maildir.AddUsage(root, n, 1); err != nil {
			log.Warn("cannot update the mailbox's quota", "maildir", root, "err", err)
		}
	}
	log.Info("delivered", "file", path, "size", n)
	return delivery.Result{}, true
}

// oneLine keeps a Sieve reject reason to one line of printable text for the DSN.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200]
	}
	return headerSafe(s)
}

// createMailbox creates a Maildir with its standard folders, or completes one: a new
// account whose Maildir authd has not had created, or a Junk folder someone removed.
// Create keeps what is there. extra, when not "" (INBOX) nor a standard folder, is one
// more folder to create: the one a Sieve script files into.
func (a *Agent) createMailbox(root, extra string, log *slog.Logger) error {
	folders := maildir.DefaultFolders
	if extra != "" && !slices.Contains(folders, extra) {
		folders = append(slices.Clip(folders), extra)
	}
	if err := maildir.Create(root, folders); err != nil {
		log.Error("cannot create the mailbox", "maildir", root, "err", err)
		return err
	}
	log.Info("created mailbox", "maildir", root)
	return nil
}

func (a *Agent) serveCreateMailbox(_ context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
	ipc.CloseFiles(files)
	var req delivery.CreateMailboxRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, ipc.Errorf("invalid", "decoding request: %v", err)
	}
	root, err := a.mailbox(req.Maildir)
	if err != nil {
		return nil, ipc.Errorf("invalid", "%v", err)
	}
	if err := a.createMailbox(root, "", a.Log); err != nil {
		return nil, ipc.Errorf("temporary", "creating the mailbox failed: %s", errnoText(err))
	}
	return nil, nil
}

// serveUsage tells how full a Maildir is, from its maildirsize as a delivery reads it
// (recalculated when missing or stale); a Maildir not created yet is empty.
func (a *Agent) serveUsage(_ context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
	ipc.CloseFiles(files)
	var req delivery.UsageRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, ipc.Errorf("invalid", "decoding request: %v", err)
	}
	root, err := a.mailbox(req.Maildir)
	if err != nil {
		return nil, ipc.Errorf("invalid", "%v", err)
	}
	used, count, err := maildir.Usage(root, maildir.Quota{Bytes: req.Quota})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return delivery.UsageResult{}, nil
	case err != nil:
		a.Log.Error("cannot read the mailbox's quota", "maildir", root, "err", err)
		return nil, ipc.Errorf("temporary", "reading the mailbox's usage failed: %s", errnoText(err))
	}
	return delivery.UsageResult{Bytes: used, Count: count}, nil
}

// mailbox checks that p is a Maildir under the mail root and returns it cleaned: an
// absolute path strictly below the root, not leading out of it through a symbolic link
// in a part that exists already.
func (a *Agent) mailbox(p string) (string, error) {
	root := filepath.Clean(a.MailRoot)
	if p == "" || !filepath.IsAbs(p) {
		return "", fmt.Errorf("maildir %q is not an absolute path", p)
	}
	p = filepath.Clean(p)
	if !below(root, p) {
		return "", fmt.Errorf("maildir %s is not under %s", p, root)
	}
	if t, ok := a.checked.Load(p); ok && time.Since(t.(time.Time)) < recheckAfter {
		return p, nil
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return p, nil // no mail root yet: nothing there to lead elsewhere
	}
	existing := p
	for existing != root {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		existing = filepath.Dir(existing)
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", fmt.Errorf("maildir %s: %w", p, err)
	}
	if real != realRoot && !below(realRoot, real) {
		return "", fmt.Errorf("maildir %s leads to %s, outside %s", p, real, realRoot)
	}
	if existing == p {
		a.checked.Store(p, time.Now())
	}
	return p, nil
}

// below reports whether the clean path p lies strictly inside the clean directory dir.
func below(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func result(status, code, reason string) delivery.Result {
	return delivery.Result{Status: status, Code: code, Reason: reason, Relay: "local"}
}

// writeFailure turns an error of the file system into a temporary failure: the disk
// may be freed, the permission fixed.
func writeFailure(err error) delivery.Result {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// RFC 3463 X.3.1: mail system full.
		return result(delivery.Deferred, "4.3.1", "mail system full ("+errnoText(err)+")")
	}
	return result(delivery.Deferred, "4.3.0", "cannot write to the mailbox ("+errnoText(err)+")")
}

// errnoText names the system error behind err in a few words, without the paths that
// the full error carries (the reason reaches senders in notifications; the log has the
// whole error).
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	if errors.Is(err, delivery.ErrShort) {
		return "queue file shorter than announced"
	}
	return "internal error"
}

// headerSafe keeps an address from breaking the header line it goes into.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '<' || r == '>' {
			return '?'
		}
		return r
	}, s)
}

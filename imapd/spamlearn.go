package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"postern/pkg/spamcheck"
)

// spamLearner tells spamd about the messages users move into Junk (spam) and out of it
// (ham), so that the classifier learns each user's taste (issue 10.4). A move never
// waits on it: the messages go into a bounded queue that one goroutine sends to spamd,
// and what does not fit is dropped (and logged) — training is statistics, not mail.
type spamLearner struct {
	client *spamcheck.Client
	log    *slog.Logger
	ch     chan learnJob
}

// learnJob is one message to learn: its file in the destination folder.
type learnJob struct {
	user, path string
	spam       bool
}

// learnQueue bounds the messages waiting for spamd.
const learnQueue = 1000

func newSpamLearner(socket string, log *slog.Logger) *spamLearner {
	l := &spamLearner{client: spamcheck.NewClient(socket, 10*time.Second), log: log, ch: make(chan learnJob, learnQueue)}
	go l.run()
	return l
}

// add queues the messages at paths, without waiting.
func (l *spamLearner) add(user string, paths []string, spam bool) {
	for i, p := range paths {
		select {
		case l.ch <- learnJob{user, p, spam}:
		default:
			l.log.Warn("spamd is behind: moved messages not learned", "user", user, "n", len(paths)-i)
			return
		}
	}
}

func (l *spamLearner) run() {
	for j := range l.ch {
		f, err := os.Open(j.path)
		if err != nil {
			// Renamed for a flag change or expunged since: not learned.
			l.log.Debug("moved message not learned", "user", j.user, "err", err)
			continue
		}
		fi, err := f.Stat()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = l.client.Learn(ctx, f, &spamcheck.LearnRequest{User: j.user, Spam: j.spam, Size: fi.Size()})
			cancel()
		}
		f.Close()
		if err != nil {
			l.log.Warn("moved message not learned", "user", j.user, "err", err)
		}
	}
}

// learnMoved tells spamd about messages copied or moved from src into dst, now at
// dstUIDs: into Junk they are spam, out of Junk (except into Trash) ham.
func (s *Session) learnMoved(src, dst *Mailbox, dstUIDs []uint32) {
	l := s.acct.srv.spam
	if l == nil || len(dstUIDs) == 0 {
		return
	}
	// The special use (RFC 6154 §2) given at CREATE, else that of the standard folders:
	// one read of the account's folders for both names.
	created := s.acct.createdUses()
	srcJunk, dstJunk := hasUse(created, src.name, `\Junk`), hasUse(created, dst.name, `\Junk`)
	// A message thrown away out of Junk (into \Trash) is not ham.
	if srcJunk == dstJunk || (srcJunk && hasUse(created, dst.name, `\Trash`)) {
		return
	}
	dst.mu.RLock()
	paths := make([]string, 0, len(dstUIDs))
	for _, u := range dstUIDs {
		if m := dst.lookup(u); m != nil {
			paths = append(paths, dst.path(m))
		}
	}
	dst.mu.RUnlock()
	l.add(s.acct.addr, paths, dstJunk)
}

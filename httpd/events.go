package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// IDLE is renewed this often (RFC 2177: a client should stop and restart IDLE at least
// every 29 minutes, for servers log idle clients out after 30), and the event stream
// gets a comment this often so that proxies keep it open.
const (
	idleRenew = 20 * time.Minute
	heartbeat = 25 * time.Second
	// maxStreams is the most event streams a session may hold open.
	maxStreams = 4
)

// events is a stream of server-sent events (text/event-stream) that says "change"
// whenever the folder f gets or loses messages: a connection of its own to imapd waits
// in IDLE (RFC 2177) and the page reloads its list. The stream ends with the session.
func (s *Server) events(w http.ResponseWriter, r *http.Request, sess *session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	// Each stream holds a connection to imapd: a few tabs per session, not more.
	if sess.streams.Add(1) > maxStreams {
		sess.streams.Add(-1)
		http.Error(w, "too many open tabs", http.StatusTooManyRequests)
		return
	}
	defer sess.streams.Add(-1)
	folder := r.URL.Query().Get("f")
	if folder == "" {
		folder = "INBOX"
	}
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	c, err := s.dialIMAP(sess, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { poke() },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				poke()
			}
		},
	}})
	if err != nil {
		s.log.Warn("event stream: connecting to imapd", "user", sess.user, "err", err)
		http.Error(w, "mail server unavailable", http.StatusBadGateway)
		return
	}
	defer c.Close()
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		http.Error(w, "no such folder", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 5000\n\n")
	fl.Flush()
	// One heartbeat for the whole stream and one renewal timer, reset for each IDLE
	// (Go 1.23 timers: Reset needs no draining); both stop when the stream ends.
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	renew := time.NewTimer(idleRenew)
	defer renew.Stop()
	for {
		idle, err := c.Idle()
		if err != nil {
			return
		}
		renew.Reset(idleRenew)
	wait:
		for {
			select {
			case <-r.Context().Done():
				idle.Close()
				return
			case <-c.Closed():
				return
			case <-changed:
				fmt.Fprint(w, "event: change\ndata: {}\n\n")
				fl.Flush()
			case <-beat.C:
				if !s.sessions.alive(sess) {
					idle.Close()
					return
				}
				fmt.Fprint(w, ": keep-alive\n\n")
				fl.Flush()
			case <-renew.C:
				break wait
			}
		}
		if err := idle.Close(); err != nil {
			return
		}
		if err := idle.Wait(); err != nil {
			return
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"postern/pkg/auth"
)

// Each session keeps a few IMAP connections to imapd open between requests, logged in
// with the session's token: a page costs no new connection and login. A connection idle
// for poolIdle is closed, and so is one older than poolMaxAge, so that a busy session
// logs in again from time to time, which keeps its token alive at authd (the token idles
// out unless used, see pkg/auth).
const (
	poolSize   = 4
	poolIdle   = 2 * time.Minute
	poolMaxAge = 10 * time.Minute
	imapDial   = 10 * time.Second
)

// webSASL is the client side of auth.WebMechanism.
type webSASL struct{ user, token string }

func (w webSASL) Start() (string, []byte, error) {
	return auth.WebMechanism, auth.WebResponse(w.user, w.token), nil
}

func (w webSASL) Next([]byte) ([]byte, error) {
	return auth.WebResponse(w.user, w.token), nil
}

// imapConn is a logged-in connection of a session.
type imapConn struct {
	*imapclient.Client
	born, used time.Time
	// view is what the last SELECT said of the selected folder; changed is set when
	// imapd announced new or expunged messages since (EXISTS, EXPUNGE), so that the
	// next selectFolder selects again and view stays true (see orderKey).
	view    folderView
	changed atomic.Bool
}

// folderView is the state of a folder as a SELECT reports it. The three numbers fix
// the set of its messages: UIDs only grow (RFC 9051 §2.3.1.1), so at one UIDNEXT,
// EXISTS can only fall, and two views with the same numbers hold the same messages.
type folderView struct {
	name                         string
	uidValidity, uidNext, exists uint32
}

// imapPool is a session's IMAP connections.
type imapPool struct {
	srv  *Server
	sess *session
	sem  chan struct{} // one per connection in use

	mu     sync.Mutex
	idle   []*imapConn
	closed bool
}

func (s *Server) newPool(sess *session) *imapPool {
	return &imapPool{srv: s, sess: sess, sem: make(chan struct{}, poolSize)}
}

// errSessionClosed is the error of a pool whose session ended.
var errSessionClosed = errors.New("the session has ended")

// dialIMAP opens a connection to imapd and logs in as the session's user with its token.
func (s *Server) dialIMAP(sess *session, opts *imapclient.Options) (*imapclient.Client, error) {
	if s.imapAddr == "" {
		return nil, errors.New("imapd has no imap listener that httpd can reach")
	}
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.Dialer = &net.Dialer{Timeout: imapDial}
	c, err := imapclient.DialInsecure(s.imapAddr, opts) // loopback, see localAddr
	if err != nil {
		return nil, fmt.Errorf("connecting to imapd at %s: %w", s.imapAddr, err)
	}
	if err := c.Authenticate(webSASL{sess.user, sess.token}); err != nil {
		c.Close()
		return nil, fmt.Errorf("logging in to imapd with the web session token: %w", err)
	}
	return c, nil
}

// get returns a connection for one request: an idle one, or a new one.
func (p *imapPool) get(ctx context.Context) (*imapConn, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.sem
		return nil, errSessionClosed
	}
	var stale []*imapConn
	var c *imapConn
	for len(p.idle) > 0 && c == nil {
		last := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if p.usable(last, now) {
			c = last
		} else {
			stale = append(stale, last)
		}
	}
	p.mu.Unlock()
	for _, s := range stale {
		s.Close()
	}
	if c != nil {
		return c, nil
	}
	c = &imapConn{born: now, used: now}
	changed := func() { c.changed.Store(true) }
	cl, err := p.srv.dialIMAP(p.sess, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { changed() },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				changed()
			}
		},
	}})
	if err != nil {
		<-p.sem
		return nil, err
	}
	c.Client = cl
	return c, nil
}

// usable reports whether an idle connection may serve another request.
func (p *imapPool) usable(c *imapConn, now time.Time) bool {
	select {
	case <-c.Closed():
		return false
	default:
	}
	return now.Sub(c.used) < poolIdle && now.Sub(c.born) < poolMaxAge
}

// put gives a connection back after a request; a connection that failed (err is not an
// IMAP NO or BAD) is closed instead.
func (p *imapPool) put(c *imapConn, err error) {
	defer func() { <-p.sem }()
	var imapErr *imap.Error
	if err != nil && !errors.As(err, &imapErr) {
		c.Close()
		return
	}
	c.used = time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// prune closes the idle connections past poolIdle or poolMaxAge.
func (p *imapPool) prune(now time.Time) {
	if p == nil {
		return
	}
	p.mu.Lock()
	var keep, stale []*imapConn
	for _, c := range p.idle {
		if p.usable(c, now) {
			keep = append(keep, c)
		} else {
			stale = append(stale, c)
		}
	}
	p.idle = keep
	p.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
}

// close closes every idle connection; those in use are closed when given back.
func (p *imapPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.Logout().Wait()
		c.Close()
	}
}

// withIMAP runs fn with a logged-in connection of the session.
func (s *Server) withIMAP(ctx context.Context, sess *session, fn func(c *imapConn) error) error {
	c, err := sess.pool.get(ctx)
	if err != nil {
		return err
	}
	err = fn(c)
	sess.pool.put(c, err)
	return err
}

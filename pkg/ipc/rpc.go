package ipc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Request is the JSON frame that starts every exchange.
type Request struct {
	Op   string          `json:"op"`
	Body json.RawMessage `json:"body,omitempty"`
}

// Response is the JSON frame that answers a Request.
type Response struct {
	// Error is empty on success; Code classifies it (see Error).
	Error string          `json:"error,omitempty"`
	Code  string          `json:"code,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
}

// Error is a failure reported by the other side of a call. Code is a short word the
// caller may act on ("notfound", "exists", "denied", "invalid", "temporary"); Message
// is for people.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf makes an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Call sends a request and reads its response on c. req and resp may be nil.
func (c *Conn) Call(op string, req, resp any, files ...*os.File) ([]*os.File, error) {
	if err := c.SendRequest(op, req, files...); err != nil {
		// A server that refuses the peer answers and hangs up without reading, so the
		// write may fail (EPIPE) with the answer waiting to be read: it says more. The
		// failed write marked c broken, so that Client.Put closes it. A request that
		// was never written (it cannot be encoded, or is too large) has no answer.
		if c.broken {
			var e *Error
			if _, rerr := c.ReadResponse(nil); errors.As(rerr, &e) {
				return nil, rerr
			}
		}
		return nil, err
	}
	return c.ReadResponse(resp)
}

// SendRequest sends the request frame of a call; the caller reads the response with
// ReadResponse, possibly after streaming data.
func (c *Conn) SendRequest(op string, req any, files ...*os.File) error {
	r := Request{Op: op}
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("ipc: encoding %s request: %w", op, err)
		}
		r.Body = b
	}
	return c.Send(&r, files...)
}

// ReadResponse reads a response frame into resp; a response that carries an error
// becomes an *Error.
func (c *Conn) ReadResponse(resp any) ([]*os.File, error) {
	var r Response
	files, err := c.Receive(&r)
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		closeFiles(files)
		return nil, &Error{Code: r.Code, Message: r.Error}
	}
	if resp != nil && len(r.Body) > 0 {
		if err := json.Unmarshal(r.Body, resp); err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("ipc: decoding response: %w", err)
		}
	}
	return files, nil
}

// Reply sends the response to a request: body on success, err otherwise.
func (c *Conn) Reply(body any, err error, files ...*os.File) error {
	var r Response
	if err != nil {
		r.Error = err.Error()
		var e *Error
		if errors.As(err, &e) {
			r.Code = e.Code
		}
	} else if body != nil {
		b, merr := json.Marshal(body)
		if merr != nil {
			r.Error = "encoding response: " + merr.Error()
		} else {
			r.Body = b
		}
	}
	return c.Send(&r, files...)
}

// Client keeps a pool of connections to one socket and makes calls on them, dialing again
// after the daemon at the other end restarted. It is safe for concurrent use.
type Client struct {
	Path string
	// Timeout bounds one call; zero means 30 seconds.
	Timeout time.Duration

	mu   sync.Mutex
	idle []*Conn
}

// NewClient returns a client of the socket at path.
func NewClient(path string) *Client { return &Client{Path: path} }

// Get takes a connection from the pool, dialing a new one if none is idle. Give it back
// with Put when the exchange completed, or Close it when it failed.
func (cl *Client) Get() (*Conn, error) {
	cl.mu.Lock()
	if n := len(cl.idle); n > 0 {
		c := cl.idle[n-1]
		cl.idle = cl.idle[:n-1]
		cl.mu.Unlock()
		return c, nil
	}
	cl.mu.Unlock()
	return Dial(cl.Path)
}

// Put returns a healthy connection to the pool.
func (cl *Client) Put(c *Conn) {
	if c.broken {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(cl.idle) >= 64 {
		c.Close()
		return
	}
	cl.idle = append(cl.idle, c)
}

// Close closes the idle connections.
func (cl *Client) Close() {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, c := range cl.idle {
		c.Close()
	}
	cl.idle = nil
}

// Call makes one request. A pooled connection that turns out to be dead (the daemon
// restarted) is replaced by a fresh one once, before anything was sent on it.
func (cl *Client) Call(ctx context.Context, op string, req, resp any, files ...*os.File) ([]*os.File, error) {
	timeout := cl.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for attempt := 0; ; attempt++ {
		c, err := cl.Get()
		if err != nil {
			return nil, err
		}
		c.SetDeadline(deadline)
		out, err := c.Call(op, req, resp, files...)
		if err == nil {
			cl.Put(c)
			return out, nil
		}
		var e *Error
		if errors.As(err, &e) {
			cl.Put(c)
			return nil, err
		}
		c.Close()
		// A stale pooled connection fails at once with EPIPE/ECONNRESET/EOF; try a
		// fresh one, but only once, and never after the deadline.
		if attempt > 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("%s on %s: %w", op, cl.Path, err)
		}
	}
}

// HandlerFunc serves one request. The files are the descriptors that came with it; the
// handler owns them. It returns the response body (or nil) and an error.
type HandlerFunc func(ctx context.Context, peer Cred, body json.RawMessage, files []*os.File) (any, error)

// StreamHandlerFunc serves a request that needs the connection itself, for streaming.
// It sends its responses with c.Reply: one, unless its protocol says otherwise (the
// delivery agents acknowledge a request before they answer it, pkg/delivery).
type StreamHandlerFunc func(ctx context.Context, peer Cred, c *Conn, body json.RawMessage, files []*os.File) error

// Server serves requests on Unix sockets. Each connection is served by its own goroutine,
// one request after another; clients that want concurrency open several connections.
type Server struct {
	// Name is used in logs.
	Name string
	// Allow decides whether a peer may talk to this server; nil allows everybody.
	Allow func(Cred) bool
	// Logger receives connection-level errors; nil means slog.Default().
	Logger *slog.Logger

	handlers map[string]HandlerFunc
	streams  map[string]StreamHandlerFunc

	mu    sync.Mutex
	conns map[*Conn]struct{}
	wg    sync.WaitGroup
	done  bool
}

// Handle registers a handler for op.
func (s *Server) Handle(op string, h HandlerFunc) {
	if s.handlers == nil {
		s.handlers = map[string]HandlerFunc{}
	}
	s.handlers[op] = h
}

// HandleStream registers a streaming handler for op.
func (s *Server) HandleStream(op string, h StreamHandlerFunc) {
	if s.streams == nil {
		s.streams = map[string]StreamHandlerFunc{}
	}
	s.streams[op] = h
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Serve accepts connections on l until l is closed or ctx is done.
func (s *Server) Serve(ctx context.Context, l *net.UnixListener) error {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		uc, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.logger().Warn("accept failed", "server", s.Name, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c := NewConn(uc)
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			c.Close()
			continue
		}
		if s.conns == nil {
			s.conns = map[*Conn]struct{}{}
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(ctx, c)
	}
}

// Shutdown closes every connection after its current request and waits for them, or
// until ctx is done.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.done = true
	for c := range s.conns {
		// Unblock readers waiting for the next request; a handler mid-request finishes
		// its work and fails only when it writes the reply.
		c.uc.CloseRead()
	}
	s.mu.Unlock()
	ch := make(chan struct{})
	go func() { s.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

func (s *Server) serveConn(ctx context.Context, c *Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	peer, err := c.Peer()
	if err != nil {
		s.logger().Warn("peer credentials unavailable", "server", s.Name, "err", err)
		return
	}
	if s.Allow != nil && !s.Allow(peer) {
		s.logger().Warn("peer refused", "server", s.Name, "uid", peer.UID, "pid", peer.PID)
		c.Reply(nil, Errorf("denied", "%s: uid %d may not use this socket", s.Name, peer.UID))
		return
	}
	for {
		var req Request
		files, err := c.Receive(&req)
		if err != nil {
			return
		}
		if h, ok := s.streams[req.Op]; ok {
			if err := h(ctx, peer, c, req.Body, files); err != nil {
				s.logger().Debug("stream handler ended connection", "server", s.Name, "op", req.Op, "err", err)
				return
			}
			continue
		}
		h, ok := s.handlers[req.Op]
		if !ok {
			closeFiles(files)
			if c.Reply(nil, Errorf("invalid", "%s: unknown operation %q", s.Name, req.Op)) != nil {
				return
			}
			continue
		}
		body, herr := h(ctx, peer, req.Body, files)
		if err := c.Reply(body, herr); err != nil {
			return
		}
	}
}

// Only wraps h so that only the peers allow admits may call its op; the others get a
// "denied" error and the connection stays open. A server whose ops serve different
// peers admits them all on its socket (Server.Allow) and each op only its own.
func Only(allow func(Cred) bool, h HandlerFunc) HandlerFunc {
	return func(ctx context.Context, peer Cred, body json.RawMessage, files []*os.File) (any, error) {
		if !allow(peer) {
			closeFiles(files)
			return nil, Errorf("denied", "uid %d may not use this operation", peer.UID)
		}
		return h(ctx, peer, body, files)
	}
}

// AnyOf returns an Allow function that admits the peers any of allows admits.
func AnyOf(allows ...func(Cred) bool) func(Cred) bool {
	return func(c Cred) bool {
		for _, a := range allows {
			if a(c) {
				return true
			}
		}
		return false
	}
}

// AllowUIDs returns an Allow function that admits root and the given uids.
func AllowUIDs(uids ...int) func(Cred) bool {
	return func(c Cred) bool {
		if c.UID == 0 {
			return true
		}
		for _, u := range uids {
			if c.UID == u {
				return true
			}
		}
		return false
	}
}

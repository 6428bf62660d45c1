// Package delivery is the protocol between qmgr and the delivery agents (local and
// remote): qmgr hands an agent one message — the queue file as an open descriptor plus
// where the message lies in it — with the recipients the agent should deliver it to. The
// agent acknowledges the request at once, with an empty response, and answers with one
// result per recipient when it is done: a delivery may take minutes (a slow remote
// server), but an agent that does not even take the request (crashing, in master's
// restart backoff while its socket stays bound) is noticed within AckTimeout.
package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"postern/pkg/ipc"
)

// Operations of a delivery agent's socket.
const (
	// OpDeliver delivers one message; the request carries the queue file's descriptor.
	OpDeliver = "deliver"
	// OpCreateMailbox creates an account's Maildir with its standard folders (local only).
	OpCreateMailbox = "create-mailbox"
	// OpUsage measures a Maildir's usage against its quota (local only): authd asks on
	// behalf of smtpd, which may not read the Maildirs, to refuse mail for a full
	// mailbox at RCPT instead of bouncing it later.
	OpUsage = "usage"
)

// Request asks an agent to deliver one message.
type Request struct {
	QueueID string `json:"queue_id"`
	// From is the envelope sender, empty for <>.
	From string `json:"from"`
	// Offset and Size locate the message in the descriptor sent along.
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
	// Recipients are the recipients this agent handles, in the order results come back.
	Recipients []Recipient `json:"recipients"`
	// Spam is spamd's junk verdict (queue.Envelope.Spam): true files the message into Junk.
	Spam bool `json:"spam,omitempty"`
	// What remote needs to relay the message as it came (queue.Envelope): the body type
	// (RFC 6152) and SMTPUTF8 (RFC 6531), and the DSN parameters ENVID and RET of
	// MAIL FROM (RFC 3461 §4.3, §4.4).
	BodyType string `json:"body_type,omitempty"`
	SMTPUTF8 bool   `json:"smtputf8,omitempty"`
	EnvID    string `json:"envid,omitempty"`
	Ret      string `json:"ret,omitempty"`
}

// Recipient is one recipient of a Request.
type Recipient struct {
	// Addr is the envelope recipient as queued; ORcpt the address the client gave.
	Addr  string `json:"addr"`
	ORcpt string `json:"orcpt,omitempty"`
	// Notify is RFC 3461's NOTIFY parameter, passed on by remote.
	Notify string `json:"notify,omitempty"`
	// For local delivery: the account's Maildir and quota (bytes, 0 = none).
	Maildir string `json:"maildir,omitempty"`
	Quota   int64  `json:"quota,omitempty"`
	// Rcpt is the recipient's index in the queue file's envelope: with the queue ID it
	// names this delivery, and local derives the Maildir file's name from the two, so
	// that a delivery made again finds the file it made before.
	Rcpt int `json:"rcpt"`
	// MaybeDelivered says that an earlier delivery to this recipient may have succeeded
	// without its result being recorded (qmgr or the agent died, or the answer was
	// lost): local then looks for the file of that delivery before writing another.
	// Every other delivery skips the look, which costs a read of the folder's cur/.
	MaybeDelivered bool `json:"maybe_delivered,omitempty"`
	// Spam files this recipient's copy into Junk (queue.Recipient.Spam), as
	// Request.Spam does for all.
	Spam bool `json:"spam,omitempty"`
}

// Status values of a Result.
const (
	Sent     = "sent"
	Deferred = "deferred"
	Bounced  = "bounced"
)

// Result is the outcome for one recipient.
type Result struct {
	Status string `json:"status"`
	// Code is the enhanced status code (RFC 3463), Reason the words for logs and DSNs.
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Relay names where the message went ("local", or a host for remote).
	Relay string `json:"relay,omitempty"`
}

// Response answers a Request with one Result per recipient.
type Response struct {
	Results []Result `json:"results"`
}

// CreateMailboxRequest asks local to create a Maildir.
type CreateMailboxRequest struct {
	Maildir string `json:"maildir"`
}

// UsageRequest asks for the usage of the Maildir of an account whose quota is Quota
// bytes.
type UsageRequest struct {
	Maildir string `json:"maildir"`
	Quota   int64  `json:"quota"`
}

// UsageResult answers a UsageRequest: the octets and messages stored, all folders
// included (Maildir++ maildirsize, pkg/maildir.Usage).
type UsageResult struct {
	Bytes int64 `json:"bytes"`
	Count int64 `json:"count"`
}

// Client talks to one delivery agent. It is safe for concurrent use; concurrent calls
// use separate connections.
type Client struct {
	c *ipc.Client
}

// Timeouts of Deliver.
const (
	// AckTimeout bounds the wait for the agent to take a request.
	AckTimeout = 30 * time.Second
	// DeliverTimeout bounds the wait for its results: a large message to many
	// mailboxes, or a slow remote server, takes a while; a hung agent must not hold the
	// message for ever either.
	DeliverTimeout = 10 * time.Minute
)

// The timeouts Deliver uses; tests shorten them.
var ackTimeout, deliverTimeout = AckTimeout, DeliverTimeout

// NewClient returns a client of the agent listening at path.
func NewClient(path string) *Client {
	cl := ipc.NewClient(path)
	cl.Timeout = DeliverTimeout // for CreateMailbox
	return &Client{c: cl}
}

// Deliver hands the agent a message. f is the open queue file. An agent that does not
// acknowledge the request within AckTimeout, or answer within DeliverTimeout, is an
// error, as is one that cannot be reached.
func (c *Client) Deliver(ctx context.Context, f *os.File, req *Request) ([]Result, error) {
	for attempt := 0; ; attempt++ {
		conn, err := c.c.Get()
		if err != nil {
			return nil, err
		}
		results, fresh, err := deliverOn(ctx, conn, f, req)
		var ie *ipc.Error
		switch {
		case err == nil:
			c.c.Put(conn)
			return results, nil
		case errors.As(err, &ie):
			c.c.Put(conn) // the agent answered, with an error: the connection is fine
			return nil, err
		}
		conn.Close()
		// A pooled connection to an agent that restarted fails at once, before the
		// acknowledgement: try a fresh one, once.
		if !fresh || attempt > 0 || ctx.Err() != nil {
			return nil, err
		}
	}
}

// deliverOn makes one Deliver exchange on conn. fresh reports a failure before the
// acknowledgement that was not a timeout, after which a new connection may do better.
func deliverOn(ctx context.Context, conn *ipc.Conn, f *os.File, req *Request) (results []Result, fresh bool, err error) {
	deadline := func(d time.Duration) {
		t := time.Now().Add(d)
		if cd, ok := ctx.Deadline(); ok && cd.Before(t) {
			t = cd
		}
		conn.SetDeadline(t)
	}
	deadline(ackTimeout)
	// The acknowledgement is an empty response: Call sends the request and reads it (or
	// the agent's refusal, even when the refusing agent hung up before reading).
	if _, err := conn.Call(OpDeliver, req, nil, f); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, false, fmt.Errorf("the delivery agent did not take the message within %s", ackTimeout)
		}
		return nil, true, err
	}
	deadline(deliverTimeout)
	var resp Response
	if _, err := conn.ReadResponse(&resp); err != nil {
		return nil, false, err
	}
	if len(resp.Results) != len(req.Recipients) {
		return nil, false, fmt.Errorf("delivery agent answered %d results for %d recipients", len(resp.Results), len(req.Recipients))
	}
	return resp.Results, false, nil
}

// DeliverFunc is an agent's work on a checked request: one result per recipient, in
// order. f is the queue file; the caller closes it.
type DeliverFunc func(ctx context.Context, req *Request, f *os.File) []Result

// Handle serves OpDeliver on s with deliver: each request is decoded and checked
// (decodeRequest), acknowledged, delivered, and answered with the results.
func Handle(s *ipc.Server, deliver DeliverFunc) {
	s.HandleStream(OpDeliver, func(ctx context.Context, _ ipc.Cred, c *ipc.Conn, body json.RawMessage, files []*os.File) error {
		req, f, err := decodeRequest(body, files)
		if err != nil {
			ipc.CloseFiles(files)
			return c.Reply(nil, err)
		}
		if err := c.Reply(nil, nil); err != nil { // the acknowledgement
			ipc.CloseFiles(files)
			return err
		}
		results := deliver(ctx, req, f)
		// Closed before the answer: once qmgr has it, the agent holds no queue file.
		ipc.CloseFiles(files)
		return c.Reply(Response{Results: results}, nil)
	})
}

// CreateMailbox asks the agent to create a Maildir.
func (c *Client) CreateMailbox(ctx context.Context, maildir string) error {
	_, err := c.c.Call(ctx, OpCreateMailbox, CreateMailboxRequest{Maildir: maildir}, nil)
	return err
}

// Usage asks the agent how full a Maildir is.
func (c *Client) Usage(ctx context.Context, maildir string, quota int64) (UsageResult, error) {
	var r UsageResult
	_, err := c.c.Call(ctx, OpUsage, UsageRequest{Maildir: maildir, Quota: quota}, &r)
	return r, err
}

// Close closes idle connections.
func (c *Client) Close() { c.c.Close() }

// decodeRequest is the agent's side of Deliver: it decodes a request and checks the one
// descriptor that came with it, a regular file holding the message where the request
// says. The errors are ipc errors with code "invalid", fit to return to qmgr.
func decodeRequest(body json.RawMessage, files []*os.File) (*Request, *os.File, error) {
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, nil, ipc.Errorf("invalid", "decoding delivery request: %v", err)
	}
	if len(files) != 1 {
		return nil, nil, ipc.Errorf("invalid", "a delivery request carries one descriptor, not %d", len(files))
	}
	f := files[0]
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, nil, ipc.Errorf("invalid", "the descriptor sent is not a queue file")
	}
	if req.Offset < 0 || req.Size < 0 || req.Offset > st.Size() || req.Size > st.Size()-req.Offset {
		return nil, nil, ipc.Errorf("invalid", "message at %d+%d lies outside the %d-byte queue file", req.Offset, req.Size, st.Size())
	}
	return &req, f, nil
}

// ErrShort is the error of a message whose queue file ends before the size its request
// gives.
var ErrShort = errors.New("message shorter than announced")

// ReadError is a failure to read the message from the queue file, as opposed to one to
// write it where it goes (a Maildir, a network connection).
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// Body returns a reader of the size bytes at off in f, the message a request locates in
// its queue file. It reads with pread(2) as it goes, so the message is never held in
// memory whole and the descriptor's offset, shared with qmgr, never moves; and it fails
// unless it yields exactly size bytes, so that a queue file cut short is never taken for
// a shorter message. Its errors are *ReadError; an early end wraps ErrShort.
func Body(f io.ReaderAt, off, size int64) io.Reader {
	return &exactReader{r: io.NewSectionReader(f, off, size), left: size}
}

type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, &ReadError{ErrShort}
	}
	if err != nil && err != io.EOF {
		return n, &ReadError{err}
	}
	return n, nil
}

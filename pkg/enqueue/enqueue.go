// Package enqueue is how a message enters the queue: the protocol of cleanup's socket
// (<spool>/private/cleanup) and the client that smtpd (and qmgr, for bounces; spamd,
// for reports; local, for the messages Sieve redirects and for vacation replies) use.
//
// An exchange on one connection: the client sends an OpEnqueue request with the envelope,
// streams the message as data frames (ipc.Conn.WriteStream), then sends an End frame that
// says whether the stream is complete. cleanup writes the queue file as the data arrives,
// and only after End{Complete: true} fsyncs it and answers with the queue ID. Anything
// else — End{Complete: false}, a broken connection — discards the file. The client reads
// the answer; the message is the queue's only once the answer carries a queue ID.
package enqueue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"postern/pkg/auth"
	"postern/pkg/ipc"
)

// OpEnqueue is the operation cleanup serves on <spool>/private/cleanup.
const OpEnqueue = "enqueue"

// OpSubmit is the operation cleanup serves on <spool>/public/cleanup, for sendmail(1):
// the same exchange as OpEnqueue, with a Local envelope. Any local user may connect;
// cleanup trusts nothing in the request but the addresses, and takes the user from the
// socket's peer credentials (SO_PEERCRED).
const OpSubmit = "submit"

// CodeRejected is the ipc error code of a message cleanup refuses for its content (an
// authenticated user's From: naming someone else, say): a permanent failure, which
// smtpd answers with 550 5.7.1 and the error's message. It is distinct from "denied",
// which ipc uses for a peer that may not use the socket (a configuration error, to be
// retried, not bounced).
const CodeRejected = "rejected"

// CodeTempfail is the ipc error code of a message cleanup cannot take now (spamd could
// not judge it and the configuration says to wait): smtpd answers 451 at the end of the
// data, and the client tries again later.
const CodeTempfail = "tempfail"

// Refusal returns the ipc error of a refusal (code CodeRejected or CodeTempfail) whose
// reply carries the enhanced status code enhanced (RFC 3463), such as 5.7.23 for an SPF
// failure (RFC 7372).
func Refusal(code, enhanced, text string) *ipc.Error {
	return ipc.Errorf(code, "%s %s", enhanced, text)
}

// SplitRefusal returns the enhanced status code a Refusal's message starts with (def if
// it starts with none whose class is def's) and the rest of the text.
func SplitRefusal(msg, def string) (enhanced, text string) {
	code, rest, ok := strings.Cut(msg, " ")
	if ok && isEnhanced(code) && code[0] == def[0] {
		return code, rest
	}
	return def, msg
}

// isEnhanced reports whether s is class.subject.detail (RFC 3463 §2), class 2, 4 or 5.
func isEnhanced(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		for _, r := range p {
			if r < '0' || r > '9' {
				return false
			}
		}
	}
	return true
}

// Envelope is what the client knows about a message.
type Envelope struct {
	// From is the envelope sender; empty for the null reverse-path <>.
	From       string      `json:"from"`
	Recipients []Recipient `json:"recipients"`

	// The connection the message came on, for the Received header (RFC 5321 §4.4).
	ClientAddr string `json:"client_addr,omitempty"` // IP address
	ClientName string `json:"client_name,omitempty"` // reverse DNS name, if verified
	Helo       string `json:"helo,omitempty"`
	// Protocol is the WITH of the Received header: SMTP, ESMTP, ESMTPS, ESMTPSA ...
	// (RFC 3848).
	Protocol string `json:"protocol,omitempty"`
	// TLS describes the TLS session, e.g. "TLS1.3 TLS_AES_128_GCM_SHA256".
	TLS string `json:"tls,omitempty"`
	// AuthUser is the authenticated account, for submissions.
	AuthUser string `json:"auth_user,omitempty"`
	// SendAs are the addresses AuthUser may send as, as authd told smtpd at AUTH; cleanup
	// checks the From: header against them instead of asking authd again for every
	// message. Empty means cleanup asks authd.
	SendAs []string `json:"send_as,omitempty"`
	// Submission is true for mail from an authenticated user of ours (RFC 6409): cleanup
	// then adds Message-ID and Date when they are missing.
	Submission bool `json:"submission,omitempty"`
	// Bounce is true for a delivery status notification made by qmgr.
	Bounce bool `json:"bounce,omitempty"`
	// Report is true for a report made by spamd (a DMARC aggregate report, RFC 7489
	// §7.2): from the null sender, with the From: address cleanup is configured to
	// expect, DKIM-signed like outbound mail and never judged by spamd.
	Report bool `json:"report,omitempty"`
	// Forward is true for a message local forwards for a recipient (a Sieve redirect,
	// RFC 5228 §4.2): From is the original envelope sender, every recipient is marked
	// queue.Recipient.Forward (qmgr sends it from the SRS form of From), and cleanup
	// neither DKIM-signs it (its From: is not ours to sign) nor has spamd judge it again.
	Forward bool `json:"forward,omitempty"`
	// AutoReply is true for an automatic reply local makes on behalf of the account
	// AuthUser (a Sieve vacation reply, RFC 5230): from the null sender (RFC 5230 §5.1)
	// to one recipient, its From: one of AuthUser's addresses, which cleanup checks as
	// for a submission, DKIM-signed like outbound mail and never judged by spamd.
	AutoReply bool `json:"auto_reply,omitempty"`

	BodyType string `json:"body_type,omitempty"`
	SMTPUTF8 bool   `json:"smtputf8,omitempty"`
	EnvID    string `json:"envid,omitempty"`
	Ret      string `json:"ret,omitempty"`
}

// Recipient is one recipient as the client gave it.
type Recipient struct {
	Addr   string `json:"addr"`
	Notify string `json:"notify,omitempty"`
	// ORcpt is RFC 3461's ORCPT parameter, if the client gave one.
	ORcpt string `json:"orcpt,omitempty"`
	// Resolution is what authd answered smtpd about Addr at RCPT, if smtpd asked:
	// cleanup expands the recipient with it instead of asking authd again, and the
	// message goes where the recipient was accepted for. Nil makes cleanup ask.
	Resolution *auth.ResolveResult `json:"resolution,omitempty"`
}

// Local is the envelope of a message a local user submits with sendmail(1).
type Local struct {
	// Sender is the envelope sender (sendmail -f); empty means user@hostname, the
	// submitting Unix user at the configured host name, unless NullSender is set, for
	// the null reverse-path <> (-f '<>').
	Sender     string `json:"sender,omitempty"`
	NullSender bool   `json:"null_sender,omitempty"`
	// FullName is the display name of the From: field cleanup adds when the message
	// has none (sendmail -F).
	FullName   string   `json:"full_name,omitempty"`
	Recipients []string `json:"recipients"`
	// BodyType is 7BIT or 8BITMIME (sendmail -B), or empty when the user did not say.
	BodyType string `json:"body_type,omitempty"`
	// The DSN requests of RFC 3461: NOTIFY for every recipient (sendmail -N), RET
	// (-R, FULL or HDRS) and ENVID (-V, printable ASCII).
	Notify string `json:"notify,omitempty"`
	Ret    string `json:"ret,omitempty"`
	EnvID  string `json:"envid,omitempty"`
}

// End closes the data stream of an enqueue exchange.
type End struct {
	Complete bool `json:"complete"`
}

// Result is cleanup's answer.
type Result struct {
	QueueID string `json:"queue_id"`
	Size    int64  `json:"size"`
}

// Client submits messages to cleanup over pooled connections. Safe for concurrent use.
type Client struct {
	c *ipc.Client
}

// NewClient returns a client of cleanup's socket at path.
func NewClient(path string) *Client { return &Client{c: ipc.NewClient(path)} }

// Close closes idle connections.
func (c *Client) Close() { c.c.Close() }

// Tx is one message being streamed to cleanup. Write the message with Write, then call
// Commit or Abort exactly once.
type Tx struct {
	cl    *Client
	conn  *ipc.Conn
	w     io.WriteCloser
	err   error
	ended bool
}

// Begin starts a message. The timeout bounds the whole exchange: ctx's deadline if it
// has one, else ten minutes.
func (c *Client) Begin(ctx context.Context, env *Envelope) (*Tx, error) {
	return c.begin(ctx, OpEnqueue, env)
}

// BeginLocal starts a message on cleanup's public socket (NewClient of
// config.PublicSocket("cleanup")), as sendmail does.
func (c *Client) BeginLocal(ctx context.Context, env *Local) (*Tx, error) {
	return c.begin(ctx, OpSubmit, env)
}

func (c *Client) begin(ctx context.Context, op string, env any) (*Tx, error) {
	conn, err := c.c.Get()
	if err != nil {
		return nil, fmt.Errorf("connecting to cleanup: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Minute)
	}
	conn.SetDeadline(deadline)
	if err := conn.SendRequest(op, env); err != nil {
		// A pooled connection to a cleanup that restarted; one fresh try.
		conn.Close()
		if conn, err = c.c.Get(); err != nil {
			return nil, fmt.Errorf("connecting to cleanup: %w", err)
		}
		conn.SetDeadline(deadline)
		if err := conn.SendRequest(op, env); err != nil {
			conn.Close()
			return nil, fmt.Errorf("sending envelope to cleanup: %w", err)
		}
	}
	return &Tx{cl: c, conn: conn, w: conn.StreamWriter()}, nil
}

// Write streams message content.
func (t *Tx) Write(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.w.Write(p)
	if err != nil {
		t.err = fmt.Errorf("streaming to cleanup: %w", err)
	}
	return n, t.err
}

// ReadFrom streams message content from r.
func (t *Tx) ReadFrom(r io.Reader) (int64, error) {
	if t.err != nil {
		return 0, t.err
	}
	buf := make([]byte, 64<<10)
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := t.Write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// Commit ends the stream and waits until cleanup has made the queue file durable. Only a
// nil error means the message is queued.
func (t *Tx) Commit() (Result, error) {
	if t.ended {
		return Result{}, errors.New("enqueue: transaction already ended")
	}
	t.ended = true
	var res Result
	if t.err != nil {
		t.conn.Close()
		return res, t.err
	}
	err := t.w.Close()
	if err == nil {
		err = t.conn.Send(End{Complete: true})
	}
	if err == nil {
		_, err = t.conn.ReadResponse(&res)
	}
	if err != nil {
		var ie *ipc.Error
		if errors.As(err, &ie) {
			t.cl.c.Put(t.conn)
		} else {
			t.conn.Close()
		}
		return res, fmt.Errorf("queueing message: %w", err)
	}
	t.cl.c.Put(t.conn)
	return res, nil
}

// Abort discards the message.
func (t *Tx) Abort() {
	if t.ended {
		return
	}
	t.ended = true
	if t.err != nil {
		t.conn.Close()
		return
	}
	if t.w.Close() != nil || t.conn.Send(End{Complete: false}) != nil {
		t.conn.Close()
		return
	}
	if _, err := t.conn.ReadResponse(nil); err != nil {
		var ie *ipc.Error
		if !errors.As(err, &ie) {
			t.conn.Close()
			return
		}
	}
	t.cl.c.Put(t.conn)
}

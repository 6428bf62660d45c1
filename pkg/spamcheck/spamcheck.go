// Package spamcheck is the protocol of spamd's socket (<spool>/private/spamd): cleanup
// asks for a verdict on an inbound message before it queues it.
//
// A request carries the message as a file descriptor (SCM_RIGHTS) — the queue file being
// written, read-only — with where the message lies in it, the envelope, and what smtpd
// knew of the client (address, name, HELO, TLS). The answer is a Verdict: an action, the
// score and its reasons, and the Authentication-Results value (RFC 8601) cleanup adds.
package spamcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"postern/pkg/ipc"
)

// OpCheck asks for a verdict (cleanup).
const OpCheck = "check"

// Request asks for the verdict on one message.
type Request struct {
	QueueID string `json:"queue_id"`
	// From is the envelope sender (MAIL FROM), empty for <>.
	From string `json:"from"`
	// Recipients are the envelope recipients after cleanup's alias expansion: account
	// addresses (canonical, lower-case) and forwarding addresses, each once.
	Recipients []string `json:"rcpt"`
	ClientAddr string   `json:"client_addr"`
	ClientName string   `json:"client_name,omitempty"`
	Helo       string   `json:"helo,omitempty"`
	TLS        string   `json:"tls,omitempty"`
	// Offset and Size locate the message in the descriptor sent along.
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
}

// Actions of a Verdict.
const (
	Accept   = "accept"
	Junk     = "junk"
	Reject   = "reject"
	Tempfail = "tempfail"
)

// Verdict is spamd's answer.
type Verdict struct {
	Action string `json:"action"`
	// Code is the enhanced status code (RFC 3463) of a rejection or tempfail, Text
	// the words of the SMTP reply.
	Code string `json:"code,omitempty"`
	Text string `json:"text,omitempty"`
	// Score is the sum of the weights of the signals that fired; Reasons name them,
	// each as NAME=weight.
	Score   float64  `json:"score"`
	Reasons []string `json:"reasons,omitempty"`
	// AuthResults is the value of the Authentication-Results field (RFC 8601 §2.2),
	// starting with the authserv-id.
	AuthResults string `json:"auth_results,omitempty"`
	// Junk names the recipients whose copy goes into Junk although the action is
	// accept (their own block list has the sender); Inbox those whose copy stays out of
	// Junk although the action is junk (their own allow list has the sender). Both as
	// the request gave them.
	Junk  []string `json:"junk,omitempty"`
	Inbox []string `json:"inbox,omitempty"`
}

// maxRequest bounds the fields of a request, so that a broken peer cannot make spamd
// hold much.
const (
	maxField = 1024
	// MaxRecipients bounds the recipients of a request.
	MaxRecipients = 1000
)

// DecodeRequest decodes and checks a request body.
func DecodeRequest(body []byte) (*Request, error) {
	var r Request
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decoding check request: %w", err)
	}
	if r.Offset < 0 || r.Size < 0 || r.Offset > 1<<40 || r.Size > 1<<40 {
		return nil, errors.New("check request: bad message offset or size")
	}
	if net.ParseIP(r.ClientAddr) == nil {
		return nil, fmt.Errorf("check request: client address %q is not an IP address", trim(r.ClientAddr))
	}
	if len(r.Recipients) == 0 || len(r.Recipients) > MaxRecipients {
		return nil, fmt.Errorf("check request: %d recipients", len(r.Recipients))
	}
	for _, s := range append([]string{r.QueueID, r.From, r.ClientName, r.Helo, r.TLS}, r.Recipients...) {
		if len(s) > maxField || strings.ContainsAny(s, "\r\n\x00") {
			return nil, fmt.Errorf("check request: bad field %q", trim(s))
		}
	}
	return &r, nil
}

func trim(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Client asks spamd over pooled connections. Safe for concurrent use.
type Client struct {
	c *ipc.Client
}

// NewClient returns a client of spamd's socket at path whose calls give up after
// timeout.
func NewClient(path string, timeout time.Duration) *Client {
	c := ipc.NewClient(path)
	c.Timeout = timeout
	return &Client{c: c}
}

// Check asks for the verdict on the message at req.Offset in f.
func (c *Client) Check(ctx context.Context, f *os.File, req *Request) (*Verdict, error) {
	var v Verdict
	if _, err := c.c.Call(ctx, OpCheck, req, &v, f); err != nil {
		return nil, fmt.Errorf("asking spamd: %w", err)
	}
	switch v.Action {
	case Accept, Junk, Reject, Tempfail:
	default:
		return nil, fmt.Errorf("spamd answered the unknown action %q", v.Action)
	}
	return &v, nil
}

// OpLearn teaches spamd's classifier a message a user moved into Junk (spam) or out of
// it (ham): imapd sends it, the message file as the descriptor.
const OpLearn = "learn"

// LearnRequest is the body of OpLearn. User is the account, whose own corpus learns the
// message.
type LearnRequest struct {
	User string `json:"user"`
	Spam bool   `json:"spam"`
	Size int64  `json:"size"`
}

// Learn asks spamd to learn the message in f.
func (c *Client) Learn(ctx context.Context, f *os.File, req *LearnRequest) error {
	if _, err := c.c.Call(ctx, OpLearn, req, nil, f); err != nil {
		return fmt.Errorf("asking spamd to learn a message: %w", err)
	}
	return nil
}

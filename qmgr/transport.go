package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"postern/pkg/delivery"
	"postern/pkg/ipc"
	"postern/pkg/queue"
)

// Transport hands a message to the delivery agent for one kind of destination: local
// mailboxes now, other hosts later. from is the envelope sender to give ("" for <>):
// the queue file's, or its SRS form for forwarded recipients. Deliver returns one result
// per recipient, in order; an error means the agent gave no answer at all (it is down,
// or died mid-delivery), and every recipient is deferred.
type Transport interface {
	Deliver(ctx context.Context, qf *queue.File, from string, rcpts []delivery.Recipient) ([]delivery.Result, error)
}

// Agent is a Transport that talks to a delivery agent over its private socket with the
// pkg/delivery protocol, at most Concurrency messages at once.
type Agent struct {
	// Relay names the agent in logs when it does not say itself ("local").
	Relay  string
	client *delivery.Client
	sem    chan struct{}
}

// NewAgent returns the transport of the agent served by client.
func NewAgent(relay string, client *delivery.Client, concurrency int) *Agent {
	return &Agent{Relay: relay, client: client, sem: make(chan struct{}, max(concurrency, 1))}
}

// Deliver implements Transport.
func (a *Agent) Deliver(ctx context.Context, qf *queue.File, from string, rcpts []delivery.Recipient) ([]delivery.Result, error) {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-a.sem }()
	env := &qf.Envelope
	req := &delivery.Request{
		QueueID:    env.ID,
		From:       from,
		Offset:     qf.BodyOffset(),
		Size:       qf.BodySize(),
		Recipients: rcpts,
		BodyType:   env.BodyType,
		SMTPUTF8:   env.SMTPUTF8,
		EnvID:      env.EnvID,
		Ret:        env.Ret,
		Spam:       env.Spam,
	}
	// The queue file's descriptor is read-only (queue.Open): the agent, which may run as
	// another user, has no business writing the queue.
	res, err := a.client.Deliver(ctx, qf.OSFile(), req)
	if err != nil {
		return nil, fmt.Errorf("%s delivery agent unavailable (%s)", a.Relay, shortError(err))
	}
	for i := range res {
		if res[i].Relay == "" {
			res[i].Relay = a.Relay
		}
	}
	return res, nil
}

// Unavailable is the Transport of a delivery agent that does not exist (yet): it
// defers every recipient with Reason.
type Unavailable struct {
	Relay  string
	Reason string
}

// Deliver implements Transport.
func (u Unavailable) Deliver(_ context.Context, _ *queue.File, _ string, rcpts []delivery.Recipient) ([]delivery.Result, error) {
	res := make([]delivery.Result, len(rcpts))
	for i := range res {
		res[i] = delivery.Result{Status: delivery.Deferred, Code: "4.3.0", Reason: u.Reason, Relay: u.Relay}
	}
	return res, nil
}

// shortError says in a few words why a call to another daemon failed, for logs and for
// the reasons shown to senders and in mailq: "connection refused", not a socket path.
func shortError(err error) string {
	var ie *ipc.Error
	var errno syscall.Errno
	switch {
	case errors.As(err, &ie):
		return ie.Message
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection lost"
	case errors.As(err, &errno):
		return errno.Error()
	}
	return err.Error()
}

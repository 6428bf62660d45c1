package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"postern/pkg/enqueue"
)

// Messages local makes or sends on (Sieve redirects, redirect.go) enter the queue
// through cleanup, as qmgr's bounces and spamd's reports do: local never writes the queue.

// submit streams a new message, made of parts, to cleanup with the envelope env and
// returns its queue ID, once cleanup has made the queue file durable.
func (a *Agent) submit(ctx context.Context, env *enqueue.Envelope, parts ...io.Reader) (string, error) {
	tx, err := a.Cleanup.Begin(ctx, env)
	if err != nil {
		return "", err
	}
	if _, err := tx.ReadFrom(io.MultiReader(parts...)); err != nil {
		tx.Abort()
		return "", fmt.Errorf("streaming the message to cleanup: %w", err)
	}
	res, err := tx.Commit()
	if err != nil {
		return "", err
	}
	if res.QueueID == "" {
		return "", errors.New("cleanup answered without a queue ID")
	}
	return res.QueueID, nil
}

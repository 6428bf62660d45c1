package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/junk"
)

// junkClassifier is the Classifier of pkg/junk: the global corpus, plus the recipient's
// own when spamd names one.
type junkClassifier struct {
	db  *junk.DB
	log *slog.Logger
}

// SpamProbability implements Classifier; no opinion until the corpora hold junk's
// minimums of spam and ham.
func (j junkClassifier) SpamProbability(ctx context.Context, user string, msg io.ReaderAt, size int64) (float64, bool, error) {
	v, err := j.db.Classify(user, msg, size)
	if err != nil || !v.OK {
		return 0.5, false, err
	}
	if j.log != nil && j.log.Enabled(ctx, slog.LevelDebug) {
		var clues []string
		for _, c := range v.Clues[:min(len(v.Clues), 10)] {
			clues = append(clues, c.Token)
		}
		j.log.Debug("classifier", "user", user, "prob", v.Prob, "clues", clues)
	}
	return v.Prob, true, nil
}

// trainer serves control/spamd: mailctl spam train and spam status.
type trainer struct {
	db  *junk.DB
	log *slog.Logger
}

// ControlServer returns the ipc server of control/spamd.
func (t *trainer) ControlServer(allow func(ipc.Cred) bool) *ipc.Server {
	s := &ipc.Server{Name: "control/spamd", Allow: allow, Logger: t.log}
	s.Handle(control.SpamLearn, t.serveLearn)
	s.Handle(control.SpamStatus, t.serveStatus)
	return s
}

// maxLearn bounds a message learned; the tokenizer bounds its own work as well.
const maxLearn = 1 << 30

func (t *trainer) serveLearn(_ context.Context, peer ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
	defer ipc.CloseFiles(files)
	var req control.SpamLearnRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, ipc.Errorf("invalid", "decoding spam.learn: %v", err)
	}
	if len(files) != 1 {
		return nil, ipc.Errorf("invalid", "spam.learn with %d descriptors, want the message's", len(files))
	}
	if req.Offset < 0 || req.Size < 0 || req.Size > maxLearn || req.Offset > 1<<40 {
		return nil, ipc.Errorf("invalid", "spam.learn: bad message offset or size")
	}
	changed, err := t.db.Learn(req.User, io.NewSectionReader(files[0], req.Offset, req.Size), req.Size, req.Spam)
	if errors.Is(err, junk.ErrUser) {
		return nil, ipc.Errorf("invalid", "%v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("learning a message: %w", err)
	}
	t.log.Info("learned", "spam", req.Spam, "user", req.User, "changed", changed, "uid", peer.UID)
	return control.SpamLearnResult{Changed: changed}, nil
}

func (t *trainer) serveStatus(context.Context, ipc.Cred, json.RawMessage, []*os.File) (any, error) {
	var res control.SpamStatusResult
	res.MinSpam, res.MinHam = t.db.Minimums()
	st, err := t.db.Stats("")
	if err != nil {
		return nil, err
	}
	res.Global = control.SpamCorpus{Spam: st.Spam, Ham: st.Ham, Tokens: st.Tokens}
	users, err := t.db.Users()
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		st, err := t.db.Stats(u)
		if err != nil {
			return nil, err
		}
		res.Users = append(res.Users, control.SpamCorpus{User: u, Spam: st.Spam, Ham: st.Ham, Tokens: st.Tokens})
	}
	return res, nil
}

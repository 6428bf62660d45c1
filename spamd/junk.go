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
func (j junkClassifier) SpamProbability(ctx context.Context, id, user string, msg io.ReaderAt, size int64) (float64, bool, error) {
	v, err := j.db.Classify(user, msg, size)
	if err != nil || !v.OK {
		return 0.5, false, err
	}
	if j.log != nil && j.log.Enabled(ctx, slog.LevelDebug) {
		var clues []string
		for _, c := range v.Clues[:min(len(v.Clues), 10)] {
			clues = append(clues, c.Token)
		}
		j.log.Debug("classifier", "id", id, "user", user, "prob", v.Prob, "clues", clues)
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
	changed, err := learnMessage(t.db, t.log.With("uid", peer.UID), req.User, req.Spam, req.OnError, files, req.Offset, req.Size)
	if err != nil {
		return nil, err
	}
	return control.SpamLearnResult{Changed: changed}, nil
}

// learnMessage learns the one message handed over in files (size octets from offset) as spam
// or ham into user's corpus ("" for the global one), with onError only when the
// classifier gets it wrong or is unsure (junk.DB.LearnOnError): the work of both learn
// ops, the admin's spam.learn on control/spamd and imapd's learn on private/spamd (a
// user's move into or out of Junk, always learned).
func learnMessage(db *junk.DB, log *slog.Logger, user string, spam, onError bool, files []*os.File, offset, size int64) (bool, error) {
	if len(files) != 1 {
		return false, ipc.Errorf("invalid", "learn request with %d descriptors, want the message's", len(files))
	}
	if offset < 0 || size < 0 || size > maxLearn || offset > 1<<40 {
		return false, ipc.Errorf("invalid", "learn request with a bad message offset or size")
	}
	learn := db.Learn
	if onError {
		learn = db.LearnOnError
	}
	changed, err := learn(user, io.NewSectionReader(files[0], offset, size), size, spam)
	if errors.Is(err, junk.ErrUser) {
		return false, ipc.Errorf("invalid", "%v", err)
	}
	if err != nil {
		return false, fmt.Errorf("learning a message of %q: %w", user, err)
	}
	log.Info("learned", "spam", spam, "user", user, "on_error", onError, "changed", changed)
	return changed, nil
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

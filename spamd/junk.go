package main

import (
	"context"
	"io"
	"log/slog"

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

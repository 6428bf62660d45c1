package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/junk"
	"postern/pkg/spamcheck"
)

func spamMsg(i int) string {
	return fmt.Sprintf("From: deals%d@pharma-offers.test\r\nSubject: Cheap pills and instant loans %d\r\n\r\n"+
		"Buy cheap viagra pills now, no prescription, casino bonus, instant payday loan approval.\r\n"+
		"Click http://pills%d.example/buy for the best discount offer %d.\r\n", i, i, i, i)
}

func hamMsg(i int) string {
	return fmt.Sprintf("From: colleague%d@work.test\r\nSubject: Meeting notes for sprint %d\r\n\r\n"+
		"Hi, the code review of the parser refactoring is tomorrow at %d. Please look at the\r\n"+
		"pull request and the failing unit test before the meeting. Thanks, Alice\r\n", i, i, i%12+1)
}

// learn teaches db n spam and n ham messages in user's corpus.
func learn(t *testing.T, db *junk.DB, user string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		for _, m := range []struct {
			s    string
			spam bool
		}{{spamMsg(i), true}, {hamMsg(i), false}} {
			if _, err := db.Learn(user, strings.NewReader(m.s), int64(len(m.s)), m.spam); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestJunkClassifier checks that pkg/junk, plugged in as the Classifier, adds nothing
// before it has learned enough, and once it has, files spam into Junk with a BAYES_
// reason and lowers the score of ham; and that a single local recipient's own corpus
// counts.
func TestJunkClassifier(t *testing.T) {
	db, err := junk.Open(filepath.Join(t.TempDir(), "junk.db"), &junk.Options{MinSpam: 5, MinHam: 5, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, _, _ := newChecker(t)
	c.Classifier = junkClassifier{db: db, log: c.Log}
	spam := "From: x@soft.test\r\nSubject: Cheap pills and loans\r\n\r\nCheap viagra pills, casino bonus, payday loan: http://pills99.example/buy\r\n"
	ham := "From: x@soft.test\r\nSubject: Meeting notes\r\n\r\nThe code review of the parser is tomorrow; see the pull request and the unit test.\r\n"
	bayes := func(v *spamcheck.Verdict) string {
		for _, r := range v.Reasons {
			if strings.HasPrefix(r, "BAYES_") {
				return r
			}
		}
		return ""
	}
	if v := check(c, "203.0.113.5", "x@soft.test", spam); v.Action != spamcheck.Accept || bayes(v) != "" {
		t.Errorf("untrained classifier gave an opinion: %+v", v)
	}
	// The recipient's own corpus (a@example.test, local) and the global one together
	// reach the minimums; the global corpus alone does not.
	learn(t, db, "", 3)
	learn(t, db, "a@example.test", 3)
	v := check(c, "203.0.113.5", "x@soft.test", spam)
	if v.Action != spamcheck.Junk || !strings.HasPrefix(bayes(v), "BAYES_9") {
		t.Errorf("spam: %+v", v)
	}
	if v := check(c, "203.0.113.5", "x@soft.test", ham); v.Action != spamcheck.Accept || !strings.HasPrefix(bayes(v), "BAYES_0") || !strings.Contains(bayes(v), "=-") {
		t.Errorf("ham: %+v", v)
	}
	req := &spamcheck.Request{QueueID: "Q2", From: "x@soft.test", Recipients: []string{"a@example.test", "b@example.test"}, ClientAddr: "203.0.113.5", Helo: "client.test", Size: int64(len(spam))}
	if v := c.Check(t.Context(), req, strings.NewReader(spam)); bayes(v) != "" {
		t.Errorf("two recipients used the global corpus of 3+3 messages alone, want no opinion: %+v", v)
	}
}

// trainerClient serves control/spamd for db on a socket of the test and returns a
// client of it.
func trainerClient(t *testing.T, db *junk.DB) *ipc.Client {
	t.Helper()
	tr := &trainer{db: db, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	sock := filepath.Join(t.TempDir(), "ctl")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	srv := tr.ControlServer(func(ipc.Cred) bool { return true })
	go srv.Serve(t.Context(), l)
	cl := ipc.NewClient(sock)
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestTrainerOnError checks spam.learn with on_error (mailctl spam train --on-error): a
// message the trained classifier is sure of is not learned, one it gets wrong is.
func TestTrainerOnError(t *testing.T) {
	db, err := junk.Open(filepath.Join(t.TempDir(), "junk.db"), &junk.Options{MinSpam: 5, MinHam: 5, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	learn(t, db, "", 10)
	cl := trainerClient(t, db)
	learnOne := func(msg string, spam bool) bool {
		t.Helper()
		f, err := os.CreateTemp(t.TempDir(), "msg")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.WriteString(msg)
		var res control.SpamLearnResult
		req := control.SpamLearnRequest{Spam: spam, Size: int64(len(msg)), OnError: true}
		if _, err := cl.Call(t.Context(), control.SpamLearn, req, &res, f); err != nil {
			t.Fatal(err)
		}
		return res.Changed
	}
	if learnOne(spamMsg(50), true) {
		t.Error("on_error learned a spam message the classifier was sure of")
	}
	if !learnOne(hamMsg(51), true) {
		t.Error("on_error did not learn a message the classifier got wrong")
	}
	if st, err := db.Stats(""); err != nil || st.Spam != 11 || st.Ham != 10 {
		t.Errorf("stats %+v %v, want 11 spam and 10 ham", st, err)
	}
}

// TestTrainer checks control/spamd: spam.learn reads the message from the descriptor at
// its offset, learning it twice changes nothing, and spam.status counts what was learned.
func TestTrainer(t *testing.T) {
	dir := t.TempDir()
	db, err := junk.Open(filepath.Join(dir, "junk.db"), &junk.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cl := trainerClient(t, db)

	// An mbox-like file: two messages, learned by offset and size.
	first, second := spamMsg(1), hamMsg(2)
	path := filepath.Join(dir, "msgs")
	if err := os.WriteFile(path, []byte(first+second), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	learnOne := func(req control.SpamLearnRequest) bool {
		t.Helper()
		var res control.SpamLearnResult
		if _, err := cl.Call(t.Context(), control.SpamLearn, req, &res, f); err != nil {
			t.Fatal(err)
		}
		return res.Changed
	}
	if !learnOne(control.SpamLearnRequest{Spam: true, Size: int64(len(first))}) {
		t.Error("first learn changed nothing")
	}
	if learnOne(control.SpamLearnRequest{Spam: true, Size: int64(len(first))}) {
		t.Error("learning the same message again changed the corpus")
	}
	if !learnOne(control.SpamLearnRequest{User: "a@example.test", Offset: int64(len(first)), Size: int64(len(second))}) {
		t.Error("ham learn changed nothing")
	}
	if _, err := cl.Call(t.Context(), control.SpamLearn, control.SpamLearnRequest{Spam: true, Size: 10}, nil); err == nil {
		t.Error("spam.learn without a descriptor succeeded")
	}
	var st control.SpamStatusResult
	if _, err := cl.Call(t.Context(), control.SpamStatus, nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Global.Spam != 1 || st.Global.Ham != 0 || st.Global.Tokens == 0 || len(st.Users) != 1 ||
		st.Users[0].User != "a@example.test" || st.Users[0].Ham != 1 || st.MinSpam != 50 {
		t.Errorf("status %+v", st)
	}
	// The ham message's tokens: learned in the user's corpus, not the global one.
	v, err := db.Classify("a@example.test", strings.NewReader(second), int64(len(second)))
	if err != nil || v.Ham != 1 || v.Spam != 1 {
		t.Errorf("classify for the user: %+v %v", v, err)
	}
}

package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

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
	if v.Action != spamcheck.Junk || !strings.HasPrefix(bayes(v), "BAYES_99=") {
		t.Errorf("spam: %+v", v)
	}
	if v := check(c, "203.0.113.5", "x@soft.test", ham); v.Action != spamcheck.Accept || !strings.HasPrefix(bayes(v), "BAYES_00=-") {
		t.Errorf("ham: %+v", v)
	}
	req := &spamcheck.Request{QueueID: "Q2", From: "x@soft.test", Recipients: []string{"a@example.test", "b@example.test"}, ClientAddr: "203.0.113.5", Helo: "client.test", Size: int64(len(spam))}
	if v := c.Check(t.Context(), req, strings.NewReader(spam)); bayes(v) != "" {
		t.Errorf("two recipients used the global corpus of 3+3 messages alone, want no opinion: %+v", v)
	}
}

package junk

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Training sets built from a few patterns with varying words, so that the corpus has
// more messages than the minimum and the tokens that matter recur.
var (
	spamWords = []string{"viagra", "casino", "winner", "lottery", "bitcoin", "pharmacy", "discount", "unclaimed", "prize", "jackpot"}
	hamWords  = []string{"meeting", "agenda", "minutes", "quarterly", "budget", "review", "patch", "release", "deadline", "roadmap"}
)

func spamMsg(i int) string {
	w := spamWords[i%len(spamWords)]
	return fmt.Sprintf("From: \"Best Offers\" <promo%d@deals.example>\r\nTo: victim@example.test\r\n"+
		"Subject: You are a %s! Claim now\r\nX-Mailer: MassMailer 9\r\n"+
		"Content-Type: text/html; charset=utf-8\r\n\r\n"+
		"<html><body><p>Cheap %s and %s, claim your <b>free</b> prize today!!</p>"+
		"<a href=\"http://claim.deals.example/win?id=%d\">click here</a></body></html>\r\n",
		i, w, w, spamWords[(i+3)%len(spamWords)], i)
}

func hamMsg(i int) string {
	w := hamWords[i%len(hamWords)]
	return fmt.Sprintf("From: Alice Example <alice@example.test>\r\nTo: bob@example.test\r\n"+
		"Subject: Re: %s on thursday\r\nUser-Agent: Mutt/2.2\r\n"+
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n"+
		"Hi Bob,\r\n\r\nthe %s and the %s are attached to the wiki page; see you at the %d meeting.\r\n\r\nAlice\r\n",
		w, w, hamWords[(i+3)%len(hamWords)], i)
}

func openTest(t *testing.T, o *Options) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "junk.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func learn(t *testing.T, db *DB, user, msg string, spam bool) bool {
	t.Helper()
	changed, err := db.Learn(user, strings.NewReader(msg), int64(len(msg)), spam)
	if err != nil {
		t.Fatal(err)
	}
	return changed
}

func classify(t *testing.T, db *DB, user, msg string) Verdict {
	t.Helper()
	v, err := db.Classify(user, strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func train(t *testing.T, db *DB, user string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		learn(t, db, user, spamMsg(i), true)
		learn(t, db, user, hamMsg(i), false)
	}
}

// A fresh database, and one trained below the minimum, give no opinion.
func TestNoOpinionBeforeTraining(t *testing.T) {
	db := openTest(t, &Options{MinSpam: 5, MinHam: 5})
	v := classify(t, db, "", spamMsg(1))
	if v.OK || v.Prob != 0.5 || len(v.Clues) != 0 {
		t.Fatalf("fresh database: %+v, want no opinion", v)
	}
	train(t, db, "", 4)
	if v := classify(t, db, "", spamMsg(100)); v.OK {
		t.Fatalf("4 spam and 4 ham learned, minimum 5: %+v, want no opinion", v)
	}
	// Without an opinion to give, the message is not even read.
	if v, err := db.Classify("", failingReader{}, 100); err != nil || v.OK || v.Spam != 4 || v.Ham != 4 {
		t.Fatalf("below the minimum, unreadable message: %+v, %v; want no opinion, 4 and 4, no error", v, err)
	}
	learn(t, db, "", spamMsg(4), true)
	learn(t, db, "", hamMsg(4), false)
	if v := classify(t, db, "", spamMsg(100)); !v.OK {
		t.Fatalf("5 and 5 learned: no opinion")
	}
	// The defaults are what the documentation says.
	def := openTest(t, nil)
	train(t, def, "", DefaultMinSpam-1)
	if v := classify(t, def, "", spamMsg(100)); v.OK {
		t.Fatalf("defaults: opinion after %d messages of each", DefaultMinSpam-1)
	}
}

// After training, new messages like the spam score near 1, like the ham near 0, and the
// clues name the tokens that decided.
func TestClassify(t *testing.T) {
	db := openTest(t, &Options{MinSpam: 10, MinHam: 10})
	train(t, db, "", 20)
	for i := 100; i < 110; i++ {
		if v := classify(t, db, "", spamMsg(i)); !v.OK || v.Prob < 0.9 {
			t.Errorf("spam %d: prob %.3f ok %v, want > 0.9; clues %v", i, v.Prob, v.OK, v.Clues)
		}
		if v := classify(t, db, "", hamMsg(i)); !v.OK || v.Prob > 0.2 {
			t.Errorf("ham %d: prob %.3f ok %v, want < 0.2; clues %v", i, v.Prob, v.OK, v.Clues)
		}
	}
	v := classify(t, db, "", spamMsg(200))
	var toks []string
	for _, c := range v.Clues {
		toks = append(toks, c.Token)
		if c.Prob < 0 || c.Prob > 1 || math.Abs(c.Prob-0.5) < minStrength {
			t.Errorf("clue %+v out of range", c)
		}
	}
	for _, want := range []string{"url:deals.example", "from:domain:deals.example", "x-mailer:massmailer 9"} {
		if !slices.Contains(toks, want) {
			t.Errorf("clues %v lack %q", toks, want)
		}
	}
	// A message of neither kind (its only known token is in every message) is unsure.
	neutral := "Content-Type: text/enriched\r\n\r\nqwertyuiop asdfghjkl zxcvbnm\r\n"
	if v := classify(t, db, "", neutral); v.Prob < 0.2 || v.Prob > 0.8 {
		t.Errorf("unknown tokens only: prob %.3f, want near 0.5", v.Prob)
	}
}

// LearnOnError learns everything until the corpus gives an opinion, then only what it
// gets wrong or is unsure of; a message it is sure of but that was learned as the other
// kind still moves.
func TestLearnOnError(t *testing.T) {
	db := openTest(t, &Options{MinSpam: 5, MinHam: 5})
	learnOnError := func(user, msg string, spam bool) bool {
		t.Helper()
		changed, err := db.LearnOnError(user, strings.NewReader(msg), int64(len(msg)), spam)
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	for i := 0; i < 5; i++ {
		if !learnOnError("", spamMsg(i), true) || !learnOnError("", hamMsg(i), false) {
			t.Fatalf("message %d not learned before the corpus gives an opinion", i)
		}
	}
	for i := 0; i < 15; i++ {
		learnOnError("", spamMsg(i+5), true)
		learnOnError("", hamMsg(i+5), false)
	}
	// The corpus is sure of these: nothing learned, counts unchanged.
	before, _ := db.Stats("")
	if v := classify(t, db, "", spamMsg(100)); v.Prob < 0.5+OnErrorMargin {
		t.Fatalf("trained corpus unsure of a spam message: %.3f", v.Prob)
	}
	if learnOnError("", spamMsg(100), true) || learnOnError("", hamMsg(100), false) {
		t.Error("LearnOnError learned messages the corpus was sure of")
	}
	if after, _ := db.Stats(""); after != before {
		t.Errorf("stats %+v after LearnOnError of known kinds, were %+v", after, before)
	}
	// A message it gets wrong is learned.
	wrong := hamMsg(101)
	if !learnOnError("", wrong, true) {
		t.Error("LearnOnError skipped a message the corpus got wrong")
	}
	if after, _ := db.Stats(""); after.Spam != before.Spam+1 {
		t.Errorf("spam count %d after learning a mistake, want %d", after.Spam, before.Spam+1)
	}
	// A spam message learned as ham by mistake moves when learned as spam, even though
	// the corpus is sure it is spam.
	spam := spamMsg(102)
	learn(t, db, "", spam, false)
	if !learnOnError("", spam, true) {
		t.Error("LearnOnError did not move a message learned as the other kind")
	}
	if learn(t, db, "", spam, true) {
		t.Error("the moved message was not learned as spam")
	}
}

// Unlearning a message restores the counts exactly; learning twice counts once;
// learning the other way moves the message (Junk → INBOX).
// Both storage layouts: the global corpus (a key per token) and a user's (packed).
func TestUnlearnReversesLearn(t *testing.T) {
	for _, user := range []string{"", "dave@example.test"} {
		t.Run("user="+user, func(t *testing.T) { testUnlearnReversesLearn(t, user) })
	}
}

func testUnlearnReversesLearn(t *testing.T, user string) {
	db := openTest(t, &Options{MinSpam: 5, MinHam: 5})
	train(t, db, user, 10)
	before, _ := db.Stats(user)
	probe := spamMsg(300)
	vBefore := classify(t, db, user, probe)

	extra := spamMsg(7) + "unique words here: borogoves mimsy\r\n"
	if !learn(t, db, user, extra, true) {
		t.Fatal("first Learn: changed = false")
	}
	if learn(t, db, user, extra, true) {
		t.Fatal("second Learn of the same message: changed = true")
	}
	mid, _ := db.Stats(user)
	if mid.Spam != before.Spam+1 || mid.Ham != before.Ham || mid.Tokens <= before.Tokens {
		t.Fatalf("after Learn: %+v, before %+v", mid, before)
	}
	changed, err := db.Unlearn(user, strings.NewReader(extra), int64(len(extra)))
	if err != nil || !changed {
		t.Fatalf("Unlearn: %v %v", changed, err)
	}
	after, _ := db.Stats(user)
	if after != before {
		t.Fatalf("after Unlearn %+v, want %+v", after, before)
	}
	if v := classify(t, db, user, probe); v.Prob != vBefore.Prob {
		t.Fatalf("verdict after learn+unlearn %.6f, before %.6f", v.Prob, vBefore.Prob)
	}
	if changed, _ := db.Unlearn(user, strings.NewReader(extra), int64(len(extra))); changed {
		t.Fatal("Unlearn of a message not learned: changed = true")
	}

	// Moved out of Junk: learned as spam, then as ham.
	learn(t, db, user, extra, true)
	if !learn(t, db, user, extra, false) {
		t.Fatal("Learn as ham of a spam-learned message: changed = false")
	}
	moved, _ := db.Stats(user)
	if moved.Spam != before.Spam || moved.Ham != before.Ham+1 {
		t.Fatalf("after the move %+v, before %+v", moved, before)
	}
	// A copy with a filter's X-Spam-* header is the same message.
	withHeader := "X-Spam-Status: Yes, score=9\r\n" + extra
	if changed, _ := db.Unlearn(user, strings.NewReader(withHeader), int64(len(withHeader))); !changed {
		t.Fatal("Unlearn of the copy with an X-Spam-Status header: not found")
	}
	if s, _ := db.Stats(user); s != before {
		t.Fatalf("after unlearning the moved message %+v, want %+v", s, before)
	}
}

// A user's corpus adds to the global one for that user only.
func TestPerUser(t *testing.T) {
	db := openTest(t, &Options{MinSpam: 5, MinHam: 5})
	train(t, db, "", 10)
	// bob gets newsletters he wants; to the global corpus they look unknown.
	news := func(i int) string {
		return fmt.Sprintf("From: news@knitting.example\r\nSubject: knitting digest %d\r\n\r\nyarn needles pattern wool %d\r\n", i, i)
	}
	for i := 0; i < 10; i++ {
		learn(t, db, "bob", news(i), false)
	}
	for i := 0; i < 10; i++ {
		learn(t, db, "carol", news(i), true)
	}
	vb := classify(t, db, "bob", news(99))
	vc := classify(t, db, "carol", news(99))
	vg := classify(t, db, "", news(99))
	if !(vb.Prob < 0.2 && vc.Prob > 0.8) {
		t.Fatalf("bob %.3f (want ham), carol %.3f (want spam), global %.3f", vb.Prob, vc.Prob, vg.Prob)
	}
	if s, _ := db.Stats("bob"); s.Ham != 10 || s.Spam != 0 || s.Tokens == 0 {
		t.Fatalf("bob's stats %+v", s)
	}
	if s, _ := db.Stats("nobody"); s != (Stats{}) {
		t.Fatalf("stats of a user without a corpus: %+v", s)
	}
	users, err := db.Users()
	if err != nil || !slices.Equal(users, []string{"bob", "carol"}) {
		t.Fatalf("Users: %v %v", users, err)
	}
	if _, err := db.Learn(strings.Repeat("x", 1001), strings.NewReader(news(1)), 10, true); err == nil {
		t.Fatal("over-long user name accepted")
	}
}

// Concurrent learning and classifying (as spamd does) neither races nor loses counts.
func TestConcurrent(t *testing.T) {
	db := openTest(t, &Options{MinSpam: 1, MinHam: 1, NoSync: true})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				n := g*100 + i
				m := spamMsg(n) + fmt.Sprintf("nonce%d\r\n", n)
				if _, err := db.Learn("", strings.NewReader(m), int64(len(m)), true); err != nil {
					t.Error(err)
				}
				h := hamMsg(n)
				if _, err := db.Learn("u", strings.NewReader(h), int64(len(h)), false); err != nil {
					t.Error(err)
				}
				if _, err := db.Classify("u", strings.NewReader(h), int64(len(h))); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	if s, _ := db.Stats(""); s.Spam != 40 {
		t.Fatalf("global spam %d, want 40", s.Spam)
	}
	if s, _ := db.Stats("u"); s.Ham != 40 {
		t.Fatalf("u's ham %d, want 40", s.Ham)
	}
}

// The combination follows the textbook figures: all-spam clues give 1, all-ham 0,
// balanced 0.5.
func TestCombine(t *testing.T) {
	mk := func(ps ...float64) []Clue {
		var cs []Clue
		for i, p := range ps {
			cs = append(cs, Clue{Token: fmt.Sprint(i), Prob: p})
		}
		return cs
	}
	if p, _ := combine(mk(0.99, 0.99, 0.95, 0.9)); p < 0.99 {
		t.Errorf("spam clues: %.4f", p)
	}
	if p, _ := combine(mk(0.01, 0.02, 0.05, 0.1)); p > 0.01 {
		t.Errorf("ham clues: %.4f", p)
	}
	if p, _ := combine(mk(0.99, 0.01)); math.Abs(p-0.5) > 1e-9 {
		t.Errorf("balanced clues: %.4f", p)
	}
	if p, kept := combine(mk(0.5, 0.55, 0.45)); p != 0.5 || len(kept) != 0 {
		t.Errorf("weak clues only: %.4f %v", p, kept)
	}
	// Robinson's f(w): unseen is x; seen only in spam tends to 1 with more evidence.
	if p := tokenProb(counts{}, 10, 10); p != unknownProb {
		t.Errorf("unseen token: %v", p)
	}
	p1, p10 := tokenProb(counts{1, 0}, 10, 10), tokenProb(counts{10, 0}, 10, 10)
	if !(0.5 < p1 && p1 < p10 && p10 < 1) {
		t.Errorf("f(w) for 1 and 10 spam: %v %v", p1, p10)
	}
	// With five times as much ham as spam, a token in 10 of 100 ham and no spam is as
	// certain as one in 2 of 20 ham of a balanced corpus (10 % of each class's worth of
	// mail either way), not as certain as one in 10 of 20: the larger class counts at the
	// weight of the smaller one. Likewise the other way round.
	if got, want := tokenProb(counts{0, 10}, 20, 100), tokenProb(counts{0, 2}, 20, 20); math.Abs(got-want) > 1e-12 {
		t.Errorf("10 of 100 ham (20 spam): f(w) %v, want %v as for 2 of 20 ham (20 spam)", got, want)
	}
	if got, want := tokenProb(counts{10, 0}, 100, 20), tokenProb(counts{2, 0}, 20, 20); math.Abs(got-want) > 1e-12 {
		t.Errorf("10 of 100 spam (20 ham): f(w) %v, want %v as for 2 of 20 spam (20 ham)", got, want)
	}
	// A balanced corpus is unchanged: Robinson's (s x + n p) / (s + n) with n = 3, p = 1.
	if got, want := tokenProb(counts{3, 0}, 50, 50), (strength*unknownProb+3)/(strength+3); math.Abs(got-want) > 1e-12 {
		t.Errorf("3 of 50 spam (50 ham): f(w) %v, want %v", got, want)
	}
	// chi2Q against known values: Q(2, 2) = e^-1, Q(0, n) = 1.
	if q := chi2Q(2, 2); math.Abs(q-math.Exp(-1)) > 1e-12 {
		t.Errorf("chi2Q(2,2) = %v", q)
	}
	if q := chi2Q(0, 10); q != 1 {
		t.Errorf("chi2Q(0,10) = %v", q)
	}
}

// The packed layout of users' corpora counts exactly as the global one does.
func TestLayoutsAgree(t *testing.T) {
	global := openTest(t, &Options{MinSpam: 5, MinHam: 5})
	user := openTest(t, &Options{MinSpam: 5, MinHam: 5})
	for i := 0; i < 30; i++ {
		learn(t, global, "", spamMsg(i), true)
		learn(t, user, "u", spamMsg(i), true)
		learn(t, global, "", hamMsg(i), false)
		learn(t, user, "u", hamMsg(i), false)
	}
	for i := 0; i < 30; i += 3 { // unlearn a few, move a few
		m := spamMsg(i)
		global.Unlearn("", strings.NewReader(m), int64(len(m)))
		user.Unlearn("u", strings.NewReader(m), int64(len(m)))
		learn(t, global, "", hamMsg(i+1), true)
		learn(t, user, "u", hamMsg(i+1), true)
	}
	gs, _ := global.Stats("")
	us, _ := user.Stats("u")
	if gs != us || gs.Tokens == 0 {
		t.Fatalf("stats: global %+v, user %+v", gs, us)
	}
	for i := 100; i < 105; i++ {
		for _, m := range []string{spamMsg(i), hamMsg(i)} {
			g, u := classify(t, global, "", m), classify(t, user, "u", m)
			if g.Prob != u.Prob || !slices.Equal(g.Clues, u.Clues) {
				t.Fatalf("global %v %v, user %v %v", g.Prob, g.Clues, u.Prob, u.Clues)
			}
		}
	}
}

// failingReader is a message that cannot be read.
type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("read") }

package junk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
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
	var sum float64
	for i, c := range v.Clues {
		toks = append(toks, c.Token)
		sum += c.Weight
		if i > 0 && math.Abs(c.Weight) > math.Abs(v.Clues[i-1].Weight) {
			t.Errorf("clue %+v stronger than the one before it, %+v", c, v.Clues[i-1])
		}
	}
	if len(v.Clues) == 0 || len(v.Clues) > maxClues || sum <= 0 {
		t.Errorf("clues of a spam message: %v (sum %.3f), want 1 to %d that add up towards spam", v.Clues, sum, maxClues)
	}
	found := false
	for _, want := range []string{"url:deals.example", "from:domain:deals.example", "x-mailer:massmailer 9", "url:claim.deals.example"} {
		found = found || slices.Contains(toks, want)
	}
	if !found {
		t.Errorf("clues %v name none of the spam's own tokens", toks)
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

// Learning counts a message once and moves one learned the other way (Junk → INBOX);
// each Learn takes a step towards the right verdict, smaller as the verdict gets right.
// Both storage layouts: the global corpus (a key per feature) and a user's (packed).
func TestLearnCountsOnceAndSteps(t *testing.T) {
	for _, user := range []string{"", "dave@example.test"} {
		t.Run("user="+user, func(t *testing.T) { testLearnCountsOnceAndSteps(t, user) })
	}
}

func testLearnCountsOnceAndSteps(t *testing.T, user string) {
	db := openTest(t, &Options{MinSpam: 5, MinHam: 5})
	train(t, db, user, 10)
	before, _ := db.Stats(user)
	extra := hamMsg(7) + "unique words here: borogoves mimsy\r\n"
	p0 := classify(t, db, user, extra).Prob
	if !learn(t, db, user, extra, true) {
		t.Fatal("first Learn: changed = false")
	}
	p1 := classify(t, db, user, extra).Prob
	if learn(t, db, user, extra, true) {
		t.Fatal("second Learn of the same message: changed = true")
	}
	p2 := classify(t, db, user, extra).Prob
	if !(p0 < p1 && p1 < p2) || p2-p1 > p1-p0 {
		t.Fatalf("verdicts %.4f, then %.4f, then %.4f after learning it as spam twice: want each higher, the second step smaller", p0, p1, p2)
	}
	mid, _ := db.Stats(user)
	if mid.Spam != before.Spam+1 || mid.Ham != before.Ham || mid.Tokens <= before.Tokens {
		t.Fatalf("after Learn: %+v, before %+v", mid, before)
	}
	// Moved out of Junk: learned as ham now.
	if !learn(t, db, user, extra, false) {
		t.Fatal("Learn as ham of a spam-learned message: changed = false")
	}
	moved, _ := db.Stats(user)
	if moved.Spam != before.Spam || moved.Ham != before.Ham+1 {
		t.Fatalf("after the move %+v, before %+v", moved, before)
	}
	if p3 := classify(t, db, user, extra).Prob; p3 >= p2 {
		t.Fatalf("verdict %.4f after learning it as ham, %.4f before", p3, p2)
	}
	// A copy with a filter's X-Spam-* header is the same message.
	withHeader := "X-Spam-Status: Yes, score=9\r\n" + extra
	if learn(t, db, user, withHeader, false) {
		t.Fatal("the copy with an X-Spam-Status header counted as a new message")
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

// The model's arithmetic: the logistic function, the scale, and a step that goes the
// right way by the error times the learning rate.
func TestModel(t *testing.T) {
	if logistic(0) != 0.5 || logistic(1000) != logistic(maxLogit) || logistic(-1000) <= 0 {
		t.Errorf("logistic: %v %v %v", logistic(0), logistic(1000), logistic(-1000))
	}
	if scale(100) != 1 || scale(400) != 0.5 || scale(0) != 0 {
		t.Errorf("scale: %v %v %v", scale(100), scale(400), scale(0))
	}
	m := &model{bias: 0, weights: make([]float64, 400), scale: scale(400)}
	if m.logit() != 0 {
		t.Fatalf("empty model: logit %v", m.logit())
	}
	b, w := m.step(true)
	if b != learningRate*0.5 || w != b*0.5 {
		t.Errorf("first step towards spam: bias %+v, weight %+v; want %v and %v", b, w, learningRate*0.5, learningRate*0.25)
	}
	for i := range m.weights {
		m.weights[i] += w
	}
	m.bias += b
	// One step moves the message's log-odds by learningRate × error × (1 + normFeatures).
	if got, want := m.logit(), learningRate*0.5*(1+normFeatures); math.Abs(got-want) > 1e-9 {
		t.Errorf("log-odds after one step %v, want %v", got, want)
	}
	if b2, _ := m.step(true); !(b2 > 0 && b2 < b) {
		t.Errorf("second step towards spam %v after %v: want smaller and positive", b2, b)
	}
	if b3, _ := m.step(false); b3 >= 0 {
		t.Errorf("step towards ham %v: want negative", b3)
	}
	// Features: every token, then every pair in order; their names for clues.
	toks := Tokens{"a", "b", "c"}
	keys := features(toks)
	if len(keys) != 5 || keys[0] != tokenKey("a") || keys[3] != pairKey("a", "b") || keys[4] != pairKey("b", "c") {
		t.Errorf("features of a b c: %v", keys)
	}
	if featureName(toks, 2) != "c" || featureName(toks, 3) != "a b" || featureName(toks, 4) != "b c" {
		t.Errorf("feature names %q %q %q", featureName(toks, 2), featureName(toks, 3), featureName(toks, 4))
	}
	if pairKey("a", "b") == tokenKey("a b") || pairKey("ab", "") == pairKey("a", "b") {
		t.Error("a pair's key equals a token's or another pair's")
	}
	// The keys are hash/fnv's FNV-1a 64: the files written before stay readable.
	for _, tok := range []string{"", "a", "subject:viagra", "ünïcode \x00 bytes"} {
		h := fnv.New64a()
		h.Write([]byte(tok))
		if k := tokenKey(tok); binary.BigEndian.Uint64(k[:]) != h.Sum64() {
			t.Errorf("tokenKey(%q) is not FNV-1a 64", tok)
		}
		h.Write([]byte{0})
		h.Write([]byte("next"))
		if k := pairKey(tok, "next"); binary.BigEndian.Uint64(k[:]) != h.Sum64() {
			t.Errorf("pairKey(%q, next) is not FNV-1a 64 of the two joined by NUL", tok)
		}
	}
}

// The packed layout of users' corpora learns exactly as the global one does.
func TestLayoutsAgree(t *testing.T) {
	global := openTest(t, &Options{MinSpam: 5, MinHam: 5})
	user := openTest(t, &Options{MinSpam: 5, MinHam: 5})
	for i := 0; i < 30; i++ {
		learn(t, global, "", spamMsg(i), true)
		learn(t, user, "u", spamMsg(i), true)
		learn(t, global, "", hamMsg(i), false)
		learn(t, user, "u", hamMsg(i), false)
	}
	for i := 0; i < 30; i += 3 { // learn a few again, move a few
		learn(t, global, "", spamMsg(i), true)
		learn(t, user, "u", spamMsg(i), true)
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

// A file of the Bayesian classifier that came before (token counts, no format mark) is
// emptied on Open, which says so; a file of this one is kept.
func TestOpenEmptiesBayesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		g, _ := tx.CreateBucket(bucketGlobal)
		g.Put(keyCounts, []byte{0, 0, 0, 60, 0, 0, 1, 44})
		tb, _ := g.CreateBucket(bucketTokens)
		tb.Put([]byte("12345678"), []byte{0, 0, 0, 3, 0, 0, 0, 1})
		u, _ := tx.CreateBucket(bucketUsers)
		_, err := u.CreateBucket([]byte("bob"))
		return err
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := db.Stats(""); !db.Emptied() || st != (Stats{}) {
		t.Fatalf("Bayes file: Emptied %v, stats %+v; want true and empty", db.Emptied(), st)
	}
	if users, _ := db.Users(); len(users) != 0 {
		t.Fatalf("Bayes file: users %v kept", users)
	}
	train(t, db, "", 3)
	db.Close()
	db, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if st, _ := db.Stats(""); db.Emptied() || st.Spam != 3 || st.Ham != 3 {
		t.Fatalf("reopened: Emptied %v, stats %+v; want false and 3/3", db.Emptied(), st)
	}
	// A fresh file is not "emptied".
	if fresh := openTest(t, nil); fresh.Emptied() {
		t.Fatal("fresh file: Emptied")
	}
}

// The global weights that verdicts read from memory are the file's: a database opened
// again gives the same verdicts to the last bit, and learning goes on from them.
func TestGlobalWeightsReopened(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	db, err := Open(path, &Options{MinSpam: 5, MinHam: 5})
	if err != nil {
		t.Fatal(err)
	}
	train(t, db, "", 10)
	learn(t, db, "u", hamMsg(3), true) // a user's corpus reads the global weights too
	probes := []string{spamMsg(100), hamMsg(100), spamMsg(101)}
	var before []float64
	for _, m := range probes {
		before = append(before, classify(t, db, "", m).Prob)
	}
	user := classify(t, db, "u", hamMsg(3)).Prob
	db.Close()
	db, err = Open(path, &Options{MinSpam: 5, MinHam: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, m := range probes {
		if p := classify(t, db, "", m).Prob; p != before[i] {
			t.Errorf("probe %d: %v after reopening, %v before", i, p, before[i])
		}
	}
	if p := classify(t, db, "u", hamMsg(3)).Prob; p != user {
		t.Errorf("user's verdict %v after reopening, %v before", p, user)
	}
	learn(t, db, "", hamMsg(100), true)
	if p := classify(t, db, "", hamMsg(100)).Prob; p <= before[1] {
		t.Errorf("learning after reopening: %v, was %v", p, before[1])
	}
}

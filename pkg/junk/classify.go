package junk

import (
	"math"
	"sort"
)

// Parameters of the classifier, SpamBayes' defaults.
const (
	// strength is Robinson's s: how many messages' worth of weight the prior x has
	// against a token's own counts.
	strength = 0.45
	// unknownProb is Robinson's x: the probability of a token never seen.
	unknownProb = 0.5
	// minStrength drops tokens whose probability is nearer than this to 0.5.
	minStrength = 0.1
	// maxClues is the most tokens (the strongest) that take part in a verdict.
	maxClues = 150
)

// Clue is one token that took part in a verdict.
type Clue struct {
	Token string  // the token, as Tokenize made it
	Prob  float64 // Robinson's f(w): the probability that a message with it is spam
	Spam  int     // trained spam messages that contained it
	Ham   int     // trained ham messages that contained it
}

// counts are the trained messages that contained a token.
type counts struct{ spam, ham uint32 }

// tokenProb is Robinson's f(w) (with s and x above) of a token seen in c.spam of nspam
// spam and c.ham of nham ham messages: the ratio of its spam and ham frequencies, pulled
// towards x by strength when it was seen little.
//
// How much a token was seen, Robinson's n, counts the messages of the larger class at the
// weight of the smaller one (SpamBayes' experimental_ham_spam_imbalance_adjustment): a
// corpus of 1,000 ham and 200 spam that has a word in 10 ham and no spam has seen it in
// 2 % of each class's worth, as much as in 2 ham of 200, not as much as in 10 messages of
// a balanced corpus. Without it, every word of everyday prose that the larger ham corpus
// happened to hold and the spam did not counted as certain ham, and long spam written as
// prose came out as ham. Chosen by cross-validation on the training half of bench/spam
// (see bench/README.md).
func tokenProb(c counts, nspam, nham int) float64 {
	if nspam == 0 || nham == 0 {
		return unknownProb
	}
	sr := float64(c.spam) / float64(nspam)
	hr := float64(c.ham) / float64(nham)
	p := unknownProb
	if sr+hr > 0 {
		p = sr / (sr + hr)
	}
	spam2ham := min(float64(nspam)/float64(nham), 1)
	ham2spam := min(float64(nham)/float64(nspam), 1)
	n := float64(c.spam)*ham2spam + float64(c.ham)*spam2ham
	return (strength*unknownProb + n*p) / (strength + n)
}

// chi2Q is the probability that a chi-squared variable with v (even) degrees of freedom
// exceeds x2: the series of the Poisson tail, as SpamBayes computes it.
func chi2Q(x2 float64, v int) float64 {
	m := x2 / 2
	term := math.Exp(-m)
	sum := term
	for i := 1; i < v/2; i++ {
		term *= m / float64(i)
		sum += term
	}
	return math.Min(sum, 1)
}

// combine returns the spam indicator (1 + S - H) / 2 of the clues (Fisher's method on
// both tails: H from the product of f(w), S from the product of 1 - f(w)) and the clues
// that took part, strongest first. With no clue it is 0.5.
func combine(clues []Clue) (float64, []Clue) {
	kept := clues[:0]
	for _, c := range clues {
		if math.Abs(c.Prob-0.5) >= minStrength {
			kept = append(kept, c)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool {
		return math.Abs(kept[i].Prob-0.5) > math.Abs(kept[j].Prob-0.5)
	})
	if len(kept) > maxClues {
		kept = kept[:maxClues]
	}
	if len(kept) == 0 {
		return 0.5, kept
	}
	// Sums of logarithms: products of 150 small numbers underflow.
	var lnH, lnS float64
	for _, c := range kept {
		p := math.Min(math.Max(c.Prob, 1e-12), 1-1e-12)
		lnH += math.Log(p)
		lnS += math.Log(1 - p)
	}
	n := 2 * len(kept)
	h := 1 - chi2Q(-2*lnH, n) // near 1 when the clues say ham...
	s := 1 - chi2Q(-2*lnS, n) // ...near 1 when they say spam
	return (1 + s - h) / 2, kept
}

package junk

import (
	"cmp"
	"math"
	"slices"
)

// Parameters of the classifier, chosen by cross-validation on the training half of
// bench/spam (see bench/README.md).
const (
	// learningRate is the size of a learning step (η of stochastic gradient descent).
	learningRate = 0.3
	// normFeatures scales a message's sum of weights by sqrt(normFeatures / n) for its n
	// features, so that a long message, which has many features, does not get a surer
	// verdict for its length alone, and a learning step moves a long message's verdict
	// as far as a short one's.
	normFeatures = 100
	// maxClues is the most features a verdict reports as its clues.
	maxClues = 20
	// maxLogit bounds the model's output before the logistic function: a verdict is never
	// more certain than 1 - 1e-13.
	maxLogit = 30
)

// Clue is one feature of a message that took part in a verdict.
type Clue struct {
	// Token is the token as Tokenize made it, or two tokens found one after the other,
	// joined by a space.
	Token string
	// Weight is what the feature added to the verdict's log-odds: above 0 towards spam,
	// below 0 towards ham.
	Weight float64
}

// features returns the keys of the features of a message: its tokens, then each pair of
// tokens that Tokenize found one after the other (words of a phrase, header fields in
// their order), as bogofilter and DSPAM chain tokens. A linear model learns from a pair
// what neither word says alone.
func features(toks Tokens) [][8]byte {
	if len(toks) == 0 {
		return nil
	}
	keys := make([][8]byte, 0, 2*len(toks)-1)
	for _, t := range toks {
		keys = append(keys, tokenKey(t))
	}
	for i := 1; i < len(toks); i++ {
		keys = append(keys, pairKey(toks[i-1], toks[i]))
	}
	return keys
}

// featureName is the name of feature i of features(toks), for a Clue.
func featureName(toks Tokens, i int) string {
	if i < len(toks) {
		return toks[i]
	}
	i -= len(toks) - 1
	return toks[i-1] + " " + toks[i]
}

// scale is what a message of n features multiplies its sum of weights by (normFeatures).
func scale(n int) float64 {
	if n == 0 {
		return 0
	}
	return math.Sqrt(normFeatures / float64(n))
}

// logistic is 1 / (1 + e^-z), with z bounded by maxLogit.
func logistic(z float64) float64 {
	z = math.Max(-maxLogit, math.Min(maxLogit, z))
	return 1 / (1 + math.Exp(-z))
}

// model is the part of one or two corpora that a verdict or a learning step reads: the
// biases and the weights of a message's features, global and the user's own.
type model struct {
	bias    float64   // the global corpus's and the user's together
	weights []float64 // of each feature, global and the user's added
	scale   float64
}

// logit is the model's log-odds that the message is spam, before the correction for the
// proportion of spam in the corpus (see Verdict.Prob).
func (m *model) logit() float64 {
	var sum float64
	for _, w := range m.weights {
		sum += w
	}
	return m.bias + m.scale*sum
}

// step is the change that learning the message as spam (or ham) makes to the bias and
// to the weight of each of its features: one step of stochastic gradient descent on the
// logistic loss, learningRate times the error, spread over the features by scale.
func (m *model) step(spam bool) (bias, weight float64) {
	y := 0.0
	if spam {
		y = 1
	}
	g := learningRate * (y - logistic(m.logit()))
	return g, g * m.scale
}

// clues returns the features that moved the verdict most, strongest first.
func (m *model) clues(toks Tokens) []Clue {
	// The maxClues strongest, kept sorted by insertion: a message has a thousand
	// features and a verdict wants twenty.
	top := make([]int, 0, maxClues+1)
	for i, w := range m.weights {
		if w == 0 || len(top) == maxClues && math.Abs(w) <= math.Abs(m.weights[top[maxClues-1]]) {
			continue
		}
		j, _ := slices.BinarySearchFunc(top, math.Abs(w), func(e int, t float64) int {
			return cmp.Compare(t, math.Abs(m.weights[e]))
		})
		top = slices.Insert(top, j, i)
		if len(top) > maxClues {
			top = top[:maxClues]
		}
	}
	out := make([]Clue, len(top))
	for n, i := range top {
		out[n] = Clue{Token: featureName(toks, i), Weight: m.weights[i] * m.scale}
	}
	return out
}

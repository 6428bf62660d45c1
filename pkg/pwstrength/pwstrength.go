// Package pwstrength estimates how many guesses a password takes, in the manner of
// Dropbox's zxcvbn (Wheeler, "zxcvbn: Low-Budget Password Strength Estimation", USENIX
// Security 2016), in a small way: the password is split into the pieces an attacker
// would try — common passwords and words (also reversed or with l33t substitutions),
// the user's own name and domain, keyboard walks, sequences, repeats, years and dates —
// and the rest guessed character by character; the cheapest split gives the estimate.
// The lists are embedded and short (a few hundred entries each), so the estimate is
// cruder than zxcvbn's, never kinder than its own parts: it serves to refuse the
// passwords that fall to a dictionary attack, not to rank the good ones.
package pwstrength

import (
	_ "embed"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Scores, as zxcvbn gives them.
const (
	// TooGuessable: fewer than 10^3 guesses.
	TooGuessable = iota
	// VeryGuessable: fewer than 10^6 guesses; falls to throttled online guessing.
	VeryGuessable
	// SomewhatGuessable: fewer than 10^8 guesses; falls to unthrottled online guessing.
	SomewhatGuessable
	// SafelyUnguessable: fewer than 10^10 guesses; resists an offline attack on a slow
	// hash (argon2id) for a while.
	SafelyUnguessable
	// VeryUnguessable: 10^10 guesses and more.
	VeryUnguessable
)

// maxEstimated bounds the characters examined for patterns; the rest count as random.
const maxEstimated = 100

// Estimate is the outcome of Check.
type Estimate struct {
	// Guesses is the estimated number of guesses, Log10 its decimal logarithm.
	Guesses float64
	Log10   float64
	// Score is 0 (TooGuessable) to 4 (VeryUnguessable).
	Score int
	// Pattern names the weakest thing found ("a common password", "a keyboard walk",
	// ...), empty when the password is guessed character by character.
	Pattern string
}

// Score estimates pw. userInputs are words an attacker knows of the user (the local part
// and domain of the address): they count as the first words tried.
func Score(pw string, userInputs ...string) Estimate {
	runes := []rune(pw)
	tail := 0
	if len(runes) > maxEstimated {
		tail = len(runes) - maxEstimated
		runes = runes[:maxEstimated]
	}
	ms := matches(runes, userDict(userInputs))
	guesses, pattern := cheapest(runes, ms)
	log := math.Log10(guesses) + float64(tail)*math.Log10(bruteforceCardinality)
	e := Estimate{Log10: log, Guesses: math.Pow(10, log), Pattern: pattern}
	switch {
	case log < 3:
		e.Score = TooGuessable
	case log < 6:
		e.Score = VeryGuessable
	case log < 8:
		e.Score = SomewhatGuessable
	case log < 10:
		e.Score = SafelyUnguessable
	default:
		e.Score = VeryUnguessable
	}
	return e
}

// Policy is a minimum that passwords must meet.
type Policy struct {
	// MinLength is the fewest characters (Unicode code points).
	MinLength int
	// MinScore is the lowest Score (0 accepts any password of MinLength).
	MinScore int
}

// Check returns nil if pw meets the policy, else an error that says why, for the person
// who chose it (it never repeats the password).
func (p Policy) Check(pw string, userInputs ...string) error {
	n := utf8.RuneCountInString(pw)
	if n < p.MinLength {
		return fmt.Errorf("the password is too short: %d characters, at least %d are needed (a few unrelated words make a good one)", n, p.MinLength)
	}
	if p.MinScore <= 0 {
		return nil
	}
	e := Score(pw, userInputs...)
	if e.Score >= p.MinScore {
		return nil
	}
	why := "it is short and simple"
	if e.Pattern != "" {
		why = "it is " + e.Pattern
	}
	return fmt.Errorf("the password is too easy to guess (about 10^%.0f guesses, strength %d of 4, at least %d needed): %s; add a few unrelated words or random characters", math.Floor(e.Log10), e.Score, p.MinScore, why)
}

// A match is a piece of the password, runes [i, j], that an attacker guesses in
// guesses tries.
type match struct {
	i, j    int
	guesses float64
	pattern string
}

// bruteforceCardinality is the guesses per character of a piece no pattern explains
// (zxcvbn's BRUTEFORCE_CARDINALITY).
const bruteforceCardinality = 10

// cheapest finds the split of runes into matches and brute-forced runs with the fewest
// guesses: the product of the pieces' guesses, times k! for k pieces (the attacker tries
// the few pieces in any order), plus nothing for free: at least the password's length.
// It returns the guesses and the pattern of the costliest-to-defend (cheapest) match.
func cheapest(runes []rune, ms []match) (float64, string) {
	n := len(runes)
	if n == 0 {
		return 1, "empty"
	}
	byEnd := make([][]match, n)
	for _, m := range ms {
		byEnd[m.j] = append(byEnd[m.j], m)
	}
	// best[k][j]: the fewest log-guesses covering runes[:j+1] with k pieces; a piece is a
	// match or a brute-forced run.
	inf := math.Inf(1)
	best := make([][]float64, n+1)
	from := make([][]*match, n+1)
	for k := range best {
		best[k] = make([]float64, n)
		from[k] = make([]*match, n)
		for j := range best[k] {
			best[k][j] = inf
		}
	}
	for j := 0; j < n; j++ {
		var cands []match
		cands = append(cands, byEnd[j]...)
		for i := 0; i <= j; i++ {
			cands = append(cands, match{i: i, j: j, guesses: math.Pow(bruteforceCardinality, float64(j-i+1))})
		}
		for c := range cands {
			m := cands[c]
			lg := math.Log10(max(m.guesses, 1))
			if m.i == 0 {
				if lg < best[1][j] {
					best[1][j], from[1][j] = lg, &cands[c]
				}
				continue
			}
			for k := 1; k < n; k++ {
				if prev := best[k][m.i-1]; prev+lg < best[k+1][j] {
					best[k+1][j], from[k+1][j] = prev+lg, &cands[c]
				}
			}
		}
	}
	bestLog, bestK := inf, 0
	for k := 1; k <= n; k++ {
		if best[k][n-1] == inf {
			continue
		}
		lg := best[k][n-1] + logFactorial(k)
		if lg < bestLog {
			bestLog, bestK = lg, k
		}
	}
	// The pattern of the split: the cheapest named match in it.
	pattern, cheapestMatch := "", inf
	for j, k := n-1, bestK; k > 0 && j >= 0; k-- {
		m := from[k][j]
		if m.pattern != "" && m.guesses < cheapestMatch {
			pattern, cheapestMatch = m.pattern, m.guesses
		}
		j = m.i - 1
	}
	if bestLog < math.Log10(float64(n)) {
		bestLog = math.Log10(float64(n))
	}
	return math.Pow(10, bestLog), pattern
}

func logFactorial(k int) float64 {
	s := 0.0
	for i := 2; i <= k; i++ {
		s += math.Log10(float64(i))
	}
	return s
}

// matches finds every pattern in runes.
func matches(runes []rune, user map[string]int) []match {
	lower := []rune(strings.ToLower(string(runes)))
	if len(lower) != len(runes) {
		lower = make([]rune, len(runes))
		for i, r := range runes {
			lower[i] = unicode.ToLower(r)
		}
	}
	var ms []match
	ms = append(ms, dictionaryMatches(runes, lower, user)...)
	ms = append(ms, keyboardMatches(lower)...)
	ms = append(ms, sequenceMatches(lower)...)
	ms = append(ms, repeatMatches(runes, user)...)
	ms = append(ms, dateMatches(runes)...)
	return ms
}

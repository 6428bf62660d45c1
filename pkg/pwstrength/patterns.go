package pwstrength

import (
	"bufio"
	_ "embed"
	"math"
	"strconv"
	"strings"
	"unicode"
)

//go:embed common.txt
var commonText string

//go:embed words.txt
var wordsText string

// ranked dictionaries: lower-case entry → rank (1 is the most common).
var (
	commonPasswords = rankedList(commonText)
	commonWords     = rankedList(wordsText)
)

func rankedList(text string) map[string]int {
	m := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(text))
	rank := 0
	for sc.Scan() {
		w := strings.TrimSpace(sc.Text())
		if w == "" || strings.HasPrefix(w, "#") {
			continue
		}
		rank++
		if _, ok := m[w]; !ok {
			m[w] = rank
		}
	}
	return m
}

// userDict makes the user's own words (address parts, split at punctuation) a
// dictionary tried first.
func userDict(inputs []string) map[string]int {
	m := map[string]int{}
	rank := 0
	add := func(w string) {
		w = strings.ToLower(w)
		if len([]rune(w)) >= 3 {
			if _, ok := m[w]; !ok {
				rank++
				m[w] = rank
			}
		}
	}
	for _, in := range inputs {
		add(in)
		for _, f := range strings.FieldsFunc(in, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			add(f)
		}
	}
	return m
}

// maxWordLen bounds the dictionary lookups.
const maxWordLen = 32

// l33t maps the usual substitutions back to letters; 1 stands for i or l.
var l33t = map[rune][]rune{
	'4': {'a'}, '@': {'a'}, '8': {'b'}, '(': {'c'}, '{': {'c'}, '3': {'e'}, '6': {'g'},
	'1': {'i', 'l'}, '!': {'i'}, '|': {'i', 'l'}, '0': {'o'}, '$': {'s'}, '5': {'s'},
	'7': {'t'}, '+': {'t'}, '2': {'z'}, '%': {'x'},
}

// dictionaryMatches finds the dictionaries' entries in the password: as they are,
// reversed, and with l33t substitutions undone.
func dictionaryMatches(runes, lower []rune, user map[string]int) []match {
	dicts := []struct {
		m    map[string]int
		name string
	}{{user, "made of your own address"}, {commonPasswords, "a common password"}, {commonWords, "a common word"}}
	// Two readings with the substitutions undone: 1 and | as i, then as l.
	unl33t := func(alt int) ([]rune, bool) {
		out := make([]rune, len(lower))
		changed := false
		for i, r := range lower {
			if subs, ok := l33t[r]; ok {
				out[i] = subs[min(alt, len(subs)-1)]
				changed = true
			} else {
				out[i] = r
			}
		}
		return out, changed
	}
	readings := [][]rune{lower}
	for alt := 0; alt < 2; alt++ {
		if u, ok := unl33t(alt); ok {
			readings = append(readings, u)
		}
	}
	var ms []match
	n := len(lower)
	for i := 0; i < n; i++ {
		for j := i + 2; j < n && j-i < maxWordLen; j++ {
			for ri, rd := range readings {
				word := string(rd[i : j+1])
				rev := reverse(word)
				for _, d := range dicts {
					for _, w := range []struct {
						s        string
						reversed bool
					}{{word, false}, {rev, true}} {
						rank, ok := d.m[w.s]
						if !ok {
							continue
						}
						g := float64(rank) * uppercaseVariations(runes[i:j+1])
						pattern := d.name
						if ri > 0 {
							g *= l33tVariations(lower[i:j+1], rd[i:j+1])
							if g == float64(rank)*uppercaseVariations(runes[i:j+1]) {
								continue // no substitution in this piece: found as it is
							}
							pattern += " with symbols for letters"
						}
						if w.reversed {
							if w.s == word {
								continue // a palindrome: found forwards
							}
							g *= 2
							pattern += " reversed"
						}
						ms = append(ms, match{i: i, j: j, guesses: max(g, 1), pattern: pattern})
					}
				}
			}
		}
	}
	return ms
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// uppercaseVariations is zxcvbn's: capitalised, all upper or a final capital double the
// guesses; other mixes count the ways to choose the capitals.
func uppercaseVariations(w []rune) float64 {
	var up, low int
	for _, r := range w {
		switch {
		case unicode.IsUpper(r):
			up++
		case unicode.IsLower(r):
			low++
		}
	}
	if up == 0 {
		return 1
	}
	if low == 0 || (up == 1 && (unicode.IsUpper(w[0]) || unicode.IsUpper(w[len(w)-1]))) {
		return 2
	}
	v := 0.0
	for i := 1; i <= min(up, low); i++ {
		v += binomial(up+low, i)
	}
	return v
}

// l33tVariations doubles the guesses per substituted letter kind, as zxcvbn does at
// least.
func l33tVariations(orig, read []rune) float64 {
	kinds := map[rune]bool{}
	for i := range orig {
		if orig[i] != read[i] {
			kinds[orig[i]] = true
		}
	}
	if len(kinds) == 0 {
		return 1
	}
	return math.Pow(2, float64(len(kinds)))
}

func binomial(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

// The keyboard: QWERTY rows, each row shifted half a key right of the one above, so a
// key's neighbours are left and right, the two above (same column and one right) and
// the two below (one left and same column).
var keyboardRows = []string{"`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./"}

type keyPos struct{ row, col int }

var keyPositions = func() map[rune]keyPos {
	m := map[rune]keyPos{}
	for r, row := range keyboardRows {
		for c, k := range row {
			m[k] = keyPos{r, c}
		}
	}
	return m
}()

// keyboardStarts and keyboardDegree are the keys and the average neighbours of a key,
// for the guesses of a walk (zxcvbn's spatial formula).
const (
	keyboardStarts = 47
	keyboardDegree = 4.6
)

// adjacent reports whether b is next to a on the keyboard, and in which direction.
func adjacent(a, b rune) (int, bool) {
	pa, ok1 := keyPositions[a]
	pb, ok2 := keyPositions[b]
	if !ok1 || !ok2 {
		return 0, false
	}
	dr, dc := pb.row-pa.row, pb.col-pa.col
	switch {
	case dr == 0 && dc == -1:
		return 1, true
	case dr == 0 && dc == 1:
		return 2, true
	case dr == -1 && dc == 0:
		return 3, true
	case dr == -1 && dc == 1:
		return 4, true
	case dr == 1 && dc == -1:
		return 5, true
	case dr == 1 && dc == 0:
		return 6, true
	}
	return 0, false
}

// keyboardMatches finds walks of three keys or more, each next to the one before.
func keyboardMatches(lower []rune) []match {
	var ms []match
	n := len(lower)
	for i := 0; i < n-2; {
		j, turns, dir := i, 0, 0
		for j+1 < n {
			d, ok := adjacent(lower[j], lower[j+1])
			if !ok {
				break
			}
			if d != dir {
				turns++
				dir = d
			}
			j++
		}
		if j-i+1 >= 3 {
			ms = append(ms, match{i: i, j: j, guesses: walkGuesses(j-i+1, turns), pattern: "a row of keys next to each other on the keyboard"})
			i = j
			continue
		}
		i++
	}
	return ms
}

func walkGuesses(length, turns int) float64 {
	g := 0.0
	for i := 2; i <= length; i++ {
		for j := 1; j <= min(turns, i-1); j++ {
			g += binomial(i-1, j-1) * keyboardStarts * math.Pow(keyboardDegree, float64(j))
		}
	}
	return g
}

// sequenceMatches finds runs of three or more characters a constant step apart (abc,
// 2468, zyx).
func sequenceMatches(lower []rune) []match {
	var ms []match
	n := len(lower)
	for i := 0; i < n-2; {
		d := lower[i+1] - lower[i]
		if d == 0 || d > 2 || d < -2 {
			i++
			continue
		}
		j := i + 1
		for j+1 < n && lower[j+1]-lower[j] == d {
			j++
		}
		if j-i+1 >= 3 {
			base := 26.0
			switch {
			case strings.ContainsRune("az019", lower[i]):
				base = 4
			case unicode.IsDigit(lower[i]):
				base = 10
			}
			g := base * float64(j-i+1)
			if d < 0 {
				g *= 2
			}
			ms = append(ms, match{i: i, j: j, guesses: g, pattern: "a sequence like abc or 1234"})
			i = j
			continue
		}
		i++
	}
	return ms
}

// maxRepeatUnit bounds the unit of a repeat that is estimated on its own.
const maxRepeatUnit = 20

// repeatMatches finds a unit written two or more times (aaa, abcabc): the unit's
// guesses times the repeats.
func repeatMatches(runes []rune, user map[string]int) []match {
	var ms []match
	n := len(runes)
	memo := map[string]float64{}
	for u := 1; u <= min(n/2, maxRepeatUnit); u++ {
		for i := 0; i+2*u <= n; {
			k := 1
			for i+(k+1)*u <= n && string(runes[i+k*u:i+(k+1)*u]) == string(runes[i:i+u]) {
				k++
			}
			if k < 2 || (u == 1 && k < 3) {
				i++
				continue
			}
			unit := string(runes[i : i+u])
			g, ok := memo[unit]
			if !ok {
				ur := runes[i : i+u]
				if u == 1 {
					g = bruteforceCardinality
				} else {
					lower := []rune(strings.ToLower(unit))
					if len(lower) != len(ur) {
						lower = ur
					}
					var sub []match
					sub = append(sub, dictionaryMatches(ur, lower, user)...)
					sub = append(sub, keyboardMatches(lower)...)
					sub = append(sub, sequenceMatches(lower)...)
					sub = append(sub, dateMatches(ur)...)
					g, _ = cheapest(ur, sub)
				}
				memo[unit] = g
			}
			ms = append(ms, match{i: i, j: i + k*u - 1, guesses: g * float64(k), pattern: "a repeat like aaa or abcabc"})
			i += k * u
		}
	}
	return ms
}

// Years and dates: guessed in the years around now.
const (
	referenceYear = 2026
	minYearSpace  = 20
)

func yearSpace(y int) float64 {
	return math.Max(math.Abs(float64(y-referenceYear)), minYearSpace)
}

// dateMatches finds years (1900-2099) and dates (day, month and year in the usual
// orders, with or without separators).
func dateMatches(runes []rune) []match {
	var ms []match
	n := len(runes)
	isDigit := func(r rune) bool { return r >= '0' && r <= '9' }
	for i := 0; i < n; i++ {
		if !isDigit(runes[i]) {
			continue
		}
		// Digits only, 4 to 8 of them.
		for j := i + 3; j < n && j-i < 8 && isDigit(runes[j]); j++ {
			s := string(runes[i : j+1])
			if len(s) == 4 {
				if y, _ := strconv.Atoi(s); y >= 1900 && y <= 2099 {
					ms = append(ms, match{i: i, j: j, guesses: yearSpace(y), pattern: "a year"})
				}
			}
			if y, ok := digitDate(s); ok {
				ms = append(ms, match{i: i, j: j, guesses: 365 * yearSpace(y), pattern: "a date"})
			}
		}
		// With separators: d-m-y, y-m-d.
		for j := i + 5; j < n && j-i < 10; j++ {
			if y, ok := separatedDate(string(runes[i : j+1])); ok {
				ms = append(ms, match{i: i, j: j, guesses: 4 * 365 * yearSpace(y), pattern: "a date"})
			}
		}
	}
	return ms
}

// digitDate reads s (4 to 8 digits) as a date without separators: dmy, mdy or ymd with
// one- or two-digit day and month and a two- or four-digit year.
func digitDate(s string) (int, bool) {
	for _, yl := range []int{4, 2} {
		for _, yearFirst := range []bool{false, true} {
			if len(s) <= yl {
				continue
			}
			var ys, rest string
			if yearFirst {
				ys, rest = s[:yl], s[yl:]
			} else {
				ys, rest = s[len(s)-yl:], s[:len(s)-yl]
			}
			y, ok := year(ys)
			if !ok || len(rest) < 2 || len(rest) > 4 {
				continue
			}
			for split := 1; split < len(rest); split++ {
				a, _ := strconv.Atoi(rest[:split])
				b, _ := strconv.Atoi(rest[split:])
				if split > 2 || len(rest)-split > 2 {
					continue
				}
				if dayMonth(a, b) || dayMonth(b, a) {
					return y, true
				}
			}
		}
	}
	return 0, false
}

// separatedDate reads s as three numbers with the same separator between them.
func separatedDate(s string) (int, bool) {
	for _, sep := range []string{"-", "/", ".", "_", " ", "\\"} {
		parts := strings.Split(s, sep)
		if len(parts) != 3 {
			continue
		}
		nums := make([]int, 3)
		ok := true
		for k, p := range parts {
			v, err := strconv.Atoi(p)
			if err != nil || p == "" || len(p) > 4 {
				ok = false
				break
			}
			nums[k] = v
		}
		if !ok {
			continue
		}
		if y, yok := year(parts[2]); yok && (dayMonth(nums[0], nums[1]) || dayMonth(nums[1], nums[0])) {
			return y, true
		}
		if y, yok := year(parts[0]); yok && len(parts[0]) == 4 && dayMonth(nums[2], nums[1]) {
			return y, true
		}
	}
	return 0, false
}

func year(s string) (int, bool) {
	y, err := strconv.Atoi(s)
	switch {
	case err != nil:
		return 0, false
	case len(s) == 4 && y >= 1900 && y <= 2099:
		return y, true
	case len(s) == 2:
		if y > 50 {
			return 1900 + y, true
		}
		return 2000 + y, true
	}
	return 0, false
}

func dayMonth(d, m int) bool { return d >= 1 && d <= 31 && m >= 1 && m <= 12 }

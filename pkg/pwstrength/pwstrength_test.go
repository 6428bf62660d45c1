package pwstrength

import (
	"strings"
	"testing"
)

func TestScore(t *testing.T) {
	for _, c := range []struct {
		pw       string
		maxScore int    // the score is at most this
		minScore int    // and at least this
		pattern  string // the weakest pattern found, when it matters
	}{
		{"abc", 0, 0, "sequence"},
		{"password", 0, 0, "common password"},
		{"password123", 0, 0, "common password"},
		{"P@ssw0rd", 0, 0, "with symbols for letters"},
		{"drowssap", 0, 0, "reversed"},
		{"Password", 0, 0, "common password"},
		{"qwertyuiop", 0, 0, ""},
		{"asdfghjkl;'", 1, 0, ""},
		{"zxcvfrewq", 1, 0, "keyboard"},
		{"aaaaaaaaaaaa", 0, 0, "repeat"},
		{"abcabcabcabc", 1, 0, "repeat"},
		{"abcdefghijklmnop", 1, 0, "sequence"},
		{"9876543210", 1, 0, "sequence"},
		{"13/05/1987", 2, 0, "date"},
		{"19870513", 2, 0, "date"},
		{"michael1985", 1, 0, ""},
		{"iloveyou2024", 1, 0, ""},
		{"hunter2hunter2", 2, 0, ""},
		{"bob@example.test", 2, 0, "your own address"},
		{"examplebob2000", 2, 0, ""},
		// Good ones.
		{"correct horse battery staple", 4, 4, ""},
		{"Correct horse, battery staple 42!", 4, 4, ""},
		{"kx8Qm2vLp9Zr4Tw7", 4, 4, ""},
		{"tangerine-ocelot-parsnip", 4, 3, ""},
	} {
		e := Score(c.pw, "bob@example.test")
		if e.Score > c.maxScore || e.Score < c.minScore {
			t.Errorf("%q: score %d (10^%.1f guesses, %s), want %d to %d", c.pw, e.Score, e.Log10, e.Pattern, c.minScore, c.maxScore)
		}
		if c.pattern != "" && !strings.Contains(e.Pattern, c.pattern) {
			t.Errorf("%q: pattern %q, want one with %q", c.pw, e.Pattern, c.pattern)
		}
	}
}

// TestScoreMonotonic: more random characters never make a password weaker.
func TestScoreMonotonic(t *testing.T) {
	base := "Xk"
	prev := Score(base).Log10
	for _, r := range "9qP2vL7mZ4" {
		base += string(r)
		l := Score(base).Log10
		if l < prev {
			t.Errorf("%q: 10^%.1f, less than without its last character (10^%.1f)", base, l, prev)
		}
		prev = l
	}
}

// TestScoreLong: a long password is estimated quickly and counts its tail as random.
func TestScoreLong(t *testing.T) {
	long := strings.Repeat("a", 1024)
	if e := Score(long); e.Score != VeryUnguessable {
		// 100 a's are one repeat; the 924 after them are counted as random.
		t.Errorf("1024 characters: score %d", e.Score)
	}
	if e := Score(strings.Repeat("a", 100)); e.Score > VeryGuessable {
		t.Errorf("100 a's: score %d", e.Score)
	}
}

func TestPolicyCheck(t *testing.T) {
	p := Policy{MinLength: 10, MinScore: 3}
	for pw, want := range map[string]string{
		"abc":              "too short: 3 characters, at least 10",
		"password123":      "too easy to guess",
		"qwertyuiop":       "too easy to guess",
		"bob-example-test": "your own address",
	} {
		err := p.Check(pw, "bob@example.test")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", pw, err, want)
		} else if strings.Contains(err.Error(), pw) {
			t.Errorf("%q: the error repeats the password: %v", pw, err)
		}
	}
	if err := p.Check("correct horse battery staple", "bob@example.test"); err != nil {
		t.Errorf("a passphrase: %v", err)
	}
	// Score 0 checks the length alone; the length counts characters, not octets.
	if err := (Policy{MinLength: 4}).Check("aaaa"); err != nil {
		t.Errorf("length only: %v", err)
	}
	if err := (Policy{MinLength: 4}).Check("äöü"); err == nil {
		t.Error("three characters passed a minimum of four")
	}
}

// FuzzScore: any string is estimated without a panic, with a score in range.
func FuzzScore(f *testing.F) {
	for _, s := range []string{"", "abc", "P@ssw0rd", "13/05/1987", "abcabc", "\xff\xfe", "ÄÖÜäöü1990"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Score(s, "bob@example.test")
		if e.Score < 0 || e.Score > 4 || e.Log10 < 0 {
			t.Fatalf("%q: %+v", s, e)
		}
	})
}

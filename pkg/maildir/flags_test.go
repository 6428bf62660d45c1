package maildir

import (
	"slices"
	"testing"
)

func TestFlagLetters(t *testing.T) {
	letters, rest := FlagLetters([]string{`\seen`, "$Work", `\DELETED`, `\Draft`, `\Recent`, `\Flagged`, `\Answered`, `\Seen`})
	if letters != "DFRST" {
		t.Errorf("letters = %q, want DFRST", letters)
	}
	if want := []string{"$Work", `\Recent`}; !slices.Equal(rest, want) {
		t.Errorf("rest = %q, want %q", rest, want)
	}
	if letters, rest := FlagLetters(nil); letters != "" || rest != nil {
		t.Errorf("FlagLetters(nil) = %q, %q", letters, rest)
	}
	// P is no IMAP flag: an empty flag is not it.
	if letters, rest := FlagLetters([]string{""}); letters != "" || len(rest) != 1 {
		t.Errorf(`FlagLetters("") = %q, %q`, letters, rest)
	}
}

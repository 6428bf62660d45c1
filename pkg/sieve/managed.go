package sieve

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The out-of-office reply of the account page lives in the user's active script as a
// block of its own between two marker comments, as Roundcube's managesieve plugin keeps
// its rules: placed after the script's require commands and before the first of the
// user's own commands, so that it runs whatever the user's filters do next (a stop, a
// discard), and replaced or removed whole when the page changes it. The rest of the
// script, the user's own filters from any client, is kept as it is.

// The marker lines of the managed block.
const (
	ManagedBegin = "# BEGIN postern vacation (set on the account page; edits in this block are replaced)"
	ManagedEnd   = "# END postern vacation"
)

// When the user's script requires variables, the block's strings are expanded as the
// script runs (RFC 5229 §3), so a "${" typed on the page is written "${postern_dollar}{"
// after the block sets postern_dollar to "$": an expansion is not expanded again, and
// the reply says "${" as typed.
const (
	dollarSet = "set \"postern_dollar\" \"$\";\n"
	dollarRef = "${postern_dollar}"
)

// ManagedVacation is the out-of-office reply the account page sets.
type ManagedVacation struct {
	Subject string
	Message string
	Days    int
	// First and Last are the first and last days of the reply, YYYY-MM-DD, "" for no
	// bound. The block tests them with currentdate (RFC 5260 §5), whose days are those
	// of the time of delivery in the local time zone of the delivering process (Run's
	// Message.Now).
	First, Last string
}

// ErrVacationDates is CheckVacationDates's error.
var ErrVacationDates = errors.New("the first and last days are dates YYYY-MM-DD, the last not before the first")

// CheckVacationDates checks the bounds of a reply: each empty or a date YYYY-MM-DD,
// and the last not before the first.
func CheckVacationDates(first, last string) error {
	for _, d := range []string{first, last} {
		if d == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d); err != nil || len(d) != len(time.DateOnly) {
			return fmt.Errorf("%w: %q is not a date", ErrVacationDates, d)
		}
	}
	if first != "" && last != "" && last < first {
		return fmt.Errorf("%w: %s is before %s", ErrVacationDates, last, first)
	}
	return nil
}

// ErrOwnVacation is SetManagedVacation's error for a script whose own commands, outside
// the managed block, take a vacation action already: two would fail the script at run
// time (RFC 5230 §4.7).
var ErrOwnVacation = errors.New("the script has a vacation rule of its own")

// GetManagedVacation returns the managed reply of script, if it has one.
func GetManagedVacation(script []byte) (ManagedVacation, bool) {
	block, _, ok := cutManaged(string(script))
	if !ok {
		return ManagedVacation{}, false
	}
	escaped := strings.Contains(block, dollarSet)
	if escaped {
		block = "require \"variables\";\n" + block
	}
	s, err := Parse([]byte(block))
	if err != nil {
		return ManagedVacation{}, false
	}
	unescape := func(s string) string {
		if escaped {
			s = strings.ReplaceAll(s, dollarRef+"{", "${")
		}
		return s
	}
	var first, last string
	for _, c := range s.Commands {
		if c.Name == "if" && len(c.Tests) == 1 && len(c.Block) == 1 {
			// The reply between its first and last days (SetManagedVacation).
			first, last = managedDates(c.Tests[0])
			c = c.Block[0]
		}
		if c.vacation != nil {
			v := c.vacation
			return ManagedVacation{Subject: unescape(v.Subject), Message: unescape(strings.ReplaceAll(v.Reason, "\r\n", "\n")),
				Days: int(v.Period / (24 * time.Hour)), First: first, Last: last}, true
		}
	}
	return ManagedVacation{}, false
}

// managedDates reads the first and last days of the test that SetManagedVacation
// writes: allof(currentdate :value "ge" "date" first, currentdate :value "le" "date" last).
func managedDates(t *Test) (first, last string) {
	if t.Name != "allof" {
		return "", ""
	}
	for _, c := range t.Tests {
		if c.Name != "currentdate" || c.match != ":value" || c.date == nil || c.date.part != "date" || len(c.keys) != 1 {
			continue
		}
		switch c.rel {
		case "ge":
			first = c.keys[0]
		case "le":
			last = c.keys[0]
		}
	}
	return first, last
}

// SetManagedVacation returns script with its managed block replaced by one for v, or
// removed when v is nil. The script must parse (sieved stores no other), and so does
// the result.
func SetManagedVacation(script []byte, v *ManagedVacation) ([]byte, error) {
	_, rest, _ := cutManaged(string(script))
	s, err := Parse([]byte(rest))
	if err != nil {
		return nil, fmt.Errorf("the active script: %w", err)
	}
	if v == nil {
		return []byte(rest), nil
	}
	if hasVacation(s.Commands) {
		return nil, ErrOwnVacation
	}
	if err := CheckVacationDates(v.First, v.Last); err != nil {
		return nil, err
	}
	days := min(max(v.Days, MinVacationDays), MaxVacationDays)
	subj, msg := strings.Join(strings.Fields(v.Subject), " "), v.Message
	block := ManagedBegin + "\n" +
		"require \"vacation\";\n"
	var bounds []string
	if v.First != "" {
		bounds = append(bounds, `currentdate :value "ge" "date" "`+v.First+`"`)
	}
	if v.Last != "" {
		bounds = append(bounds, `currentdate :value "le" "date" "`+v.Last+`"`)
	}
	if bounds != nil {
		// RFC 5260 §5 (currentdate, date-part "date": YYYY-MM-DD) with RFC 5231's
		// :value, whose "ge" and "le" order such dates as they order days.
		block = ManagedBegin + "\n" + "require [\"vacation\", \"date\", \"relational\"];\n"
	}
	if s.Requires["variables"] && strings.Contains(subj+msg, "${") {
		// The user's script requires variables, so the block's strings are expanded
		// too (RFC 5229 §3): a "${" typed on the page is kept as typed.
		block += dollarSet
		subj, msg = strings.ReplaceAll(subj, "${", dollarRef+"{"), strings.ReplaceAll(msg, "${", dollarRef+"{")
	}
	reply := fmt.Sprintf("vacation :days %d", days)
	if subj != "" {
		reply += " :subject " + quoteString(subj)
	}
	reply += " " + quoteString(msg) + ";\n"
	if bounds != nil {
		reply = "if allof(" + strings.Join(bounds, ", ") + ") {\n" + reply + "}\n"
	}
	block += reply + ManagedEnd + "\n"
	// The block goes before the first command that is not require (RFC 5228 §3.2:
	// require comes first), at the start of its line when it starts one.
	at := len(rest)
	for _, c := range s.Commands {
		if c.Name != "require" {
			at = offsetOf(rest, c.Pos)
			break
		}
	}
	prefix := rest[:at]
	if prefix != "" && !strings.HasSuffix(prefix, "\n") {
		prefix += "\n"
	}
	out := prefix + block + rest[at:]
	if _, err := Parse([]byte(out)); err != nil {
		return nil, fmt.Errorf("the script with the reply: %w", err)
	}
	return []byte(out), nil
}

// cutManaged splits script into its managed block (the text between the markers) and
// the rest.
func cutManaged(script string) (block, rest string, ok bool) {
	i := strings.Index(script, ManagedBegin)
	if i < 0 || (i > 0 && script[i-1] != '\n') {
		return "", script, false
	}
	j := strings.Index(script[i:], ManagedEnd)
	if j < 0 {
		return "", script, false
	}
	end := i + j + len(ManagedEnd)
	if end < len(script) && script[end] == '\r' {
		end++
	}
	if end < len(script) && script[end] == '\n' {
		end++
	}
	return script[i+len(ManagedBegin) : i+j], script[:i] + script[end:], true
}

// hasVacation reports whether any command, in any block, is vacation.
func hasVacation(cmds []*Command) bool {
	for _, c := range cmds {
		if c.Name == "vacation" || hasVacation(c.Block) {
			return true
		}
	}
	return false
}

// offsetOf returns the byte offset of p in src (the lexer counts columns in bytes).
func offsetOf(src string, p Pos) int {
	off := 0
	for line := 1; line < p.Line; line++ {
		i := strings.IndexByte(src[off:], '\n')
		if i < 0 {
			return len(src)
		}
		off += i + 1
	}
	return min(off+p.Col-1, len(src))
}

// quoteString writes s as a Sieve quoted string (RFC 5228 §2.4.2), which may span lines.
func quoteString(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", "\r\n")
	return `"` + r.Replace(s) + `"`
}

package sieve

import (
	"strings"
	"testing"
	"time"
)

// The message of RFC 5231 §6.
const relMsg = "Received: ...\n" +
	"Received: ...\n" +
	"Subject: example\n" +
	"To: foo@example.com, baz@example.com\n" +
	"CC: qux@example.com\n" +
	"X-Priority: 2 (High)\n" +
	"X-Spam-Score: 007\n" +
	"\n" +
	"body\n"

// TestRelational runs the examples of RFC 5231 §6 and the orderings of the
// comparators.
func TestRelational(t *testing.T) {
	const req = `require ["relational", "comparator-i;ascii-numeric", "fileinto"];` + "\n"
	yes := []Action{into("yes")}
	no := []Action{keep()}
	checkCases(t, req, crlf(relMsg), time.Now(), []extCase{
		{`if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"] { fileinto "yes"; }`, yes},
		{`if anyof (address :count "ge" :comparator "i;ascii-numeric" ["to"] ["3"], address :count "ge" :comparator "i;ascii-numeric" ["cc"] ["3"]) { fileinto "yes"; }`, no},
		{`if header :count "ge" :comparator "i;ascii-numeric" ["received"] ["3"] { fileinto "yes"; }`, no},
		{`if header :count "ge" :comparator "i;ascii-numeric" ["received", "subject"] ["3"] { fileinto "yes"; }`, yes},
		{`if header :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"] { fileinto "yes"; }`, no},
		{`if header :count "eq" :comparator "i;ascii-numeric" "x-absent" "0" { fileinto "yes"; }`, yes},
		{`if header :count "ne" :comparator "i;ascii-numeric" "subject" ["2", "3"] { fileinto "yes"; }`, yes},
		// :value with i;ascii-numeric: the leading digits, RFC 4790 §9.1.1.
		{`if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "yes"; }`, yes},
		{`if header :value "eq" :comparator "i;ascii-numeric" "x-spam-score" "7" { fileinto "yes"; }`, yes},
		{`if header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "10" { fileinto "yes"; }`, no},
		{`if header :value "gt" :comparator "i;ascii-numeric" "subject" "99999999999999999999999" { fileinto "yes"; }`, yes}, // no digits: infinity
		{`if header :is :comparator "i;ascii-numeric" "x-spam-score" "7" { fileinto "yes"; }`, yes},
		// :value with the other comparators: octets, ASCII case folded or not.
		{`if header :value "gt" "subject" "EXAMPLD" { fileinto "yes"; }`, yes},
		{`if header :value "gt" :comparator "i;octet" "subject" "exampleZ" { fileinto "yes"; }`, no},
		{`if header :value "lt" :comparator "i;octet" "subject" "exampleZ" { fileinto "yes"; }`, yes},
		{`if header :value "le" "subject" "EXAMPLE" { fileinto "yes"; }`, yes},
		{`if header :value "ge" "subject" "f" { fileinto "yes"; }`, no},
		{`if address :value "eq" :domain "cc" "EXAMPLE.com" { fileinto "yes"; }`, yes},
	})
}

// TestRelationalEnvelope counts the envelope addresses.
func TestRelationalEnvelope(t *testing.T) {
	acts := runOn(t, `require ["relational", "comparator-i;ascii-numeric", "fileinto", "envelope"];
if envelope :count "eq" :comparator "i;ascii-numeric" ["from", "to"] "2" { fileinto "yes"; }`, crlf(relMsg), time.Now())
	if len(acts) != 1 || acts[0].Arg != "yes" {
		t.Errorf("%+v", acts)
	}
}

func TestNumericCompare(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1", "2", -1}, {"10", "9", 1}, {"007", "7", 0}, {"0", "", -1}, {"", "x", 0},
		{"12abc", "12", 0}, {"123456789012345678901234567890", "123456789012345678901234567891", -1},
		{"5", "five", -1}, {"000", "0", 0},
	} {
		if got := numericCompare(c.a, c.b); got != c.want {
			t.Errorf("numericCompare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestRelationalParseErrors(t *testing.T) {
	for _, c := range []struct{ script, want string }{
		{`if header :value "gt" "a" "b" {}`, `needs require "relational"`},
		{`require "relational"; if header :value "gte" "a" "b" {}`, "unknown relation"},
		{`require "relational"; if header :value "gt" :is "a" "b" {}`, "more than one match type"},
		{`require "relational"; if header :count :is "a" "b" {}`, "needs an argument"},
		{`if header :comparator "i;ascii-numeric" "a" "b" {}`, `needs require "comparator-i;ascii-numeric"`},
		{`require "comparator-i;ascii-numeric"; if header :contains :comparator "i;ascii-numeric" "a" "b" {}`, "does not support :contains"},
		{`require "comparator-i;ascii-numeric"; if header :matches :comparator "i;ascii-numeric" "a" "b" {}`, "does not support :matches"},
	} {
		_, err := Parse([]byte(c.script))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want %q", c.script, err, c.want)
		}
	}
}

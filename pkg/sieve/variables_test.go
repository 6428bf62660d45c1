package sieve

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const listMsg = "List-ID: <acme-users@lists.example.org>\n" +
	"Subject: [acme-users] [fwd] version 1.0 is out\n" +
	"To: coyote@ACME.Example.COM\n" +
	"X-Count: 12\n" +
	"\n" +
	"body\n"

// TestVariables runs the examples of RFC 5229 and more.
func TestVariables(t *testing.T) {
	const req = `require ["fileinto", "variables", "reject", "imap4flags", "relational", "envelope", "subaddress", "comparator-i;ascii-numeric"];` + "\n"
	checkCases(t, req, crlf(listMsg), time.Now(), []extCase{
		// §3: expansion, case-insensitive names, references that are not ones.
		{`set "company" "ACME"; fileinto "${company}";`, []Action{into("ACME")}},
		{`set "company" "ACME"; fileinto "${COMPANY}";`, []Action{into("ACME")}},
		{`fileinto "x${full}y";`, []Action{into("xy")}},
		{`fileinto "&%${}!";`, []Action{into("&%${}!")}},
		{`fileinto "${doh!}";`, []Action{into("${doh!}")}},
		{`set "company" "ACME"; fileinto "${BAD${Company}";`, []Action{into("${BADACME")}},
		{`set "company" "ACME"; fileinto "${President, ${Company} Inc.}";`, []Action{into("${President, ACME Inc.}")}},
		{`set "a" "${b}"; set "b" "x"; fileinto "[${a}]";`, []Action{into("[]")}},    // expanded when set
		{`set "a" "$"; set "b" "{a}"; fileinto "${a}${b}";`, []Action{into("${a}")}}, // not expanded twice
		// §4: the vacation example (the reason of a reject here).
		{`set "honorific"  "Mr";
set "first_name" "Wile";
set "last_name"  "Coyote";
set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;
reject "${vacation}";`, []Action{{Kind: Reject, Arg: "Dear Mr Coyote,\nI'm out, please leave a message after the meep.\n"}}},
		// §4.1: modifiers.
		{`set "a" "juMBlEd lETteRS"; fileinto "${a}";`, []Action{into("juMBlEd lETteRS")}},
		{`set "a" "juMBlEd lETteRS"; set :length "b" "${a}"; fileinto "${b}";`, []Action{into("15")}},
		{`set "a" "juMBlEd lETteRS"; set :lower "b" "${a}"; fileinto "${b}";`, []Action{into("jumbled letters")}},
		{`set "a" "juMBlEd lETteRS"; set :upperfirst "b" "${a}"; fileinto "${b}";`, []Action{into("JuMBlEd lETteRS")}},
		{`set "a" "juMBlEd lETteRS"; set :upperfirst :lower "b" "${a}"; fileinto "${b}";`, []Action{into("Jumbled letters")}},
		{`set :lowerfirst "b" "ABC"; fileinto "${b}";`, []Action{into("aBC")}},
		{`set :upper "b" "abc"; fileinto "${b}";`, []Action{into("ABC")}},
		{`set :quotewildcard "b" "Rock*"; fileinto "${b}";`, []Action{into(`Rock\*`)}},
		{`set :length :quotewildcard "b" "a*?"; fileinto "${b}";`, []Action{into("5")}}, // quote first, then count
		{`set :length "b" "café"; fileinto "${b}";`, []Action{into("4")}},               // characters, not octets
		// §3.2: match variables.
		{`if header :matches "List-ID" "*<*@*" { fileinto "INBOX.lists.${2}"; stop; }`, []Action{into("INBOX.lists.acme-users")}},
		{`if header :matches "Subject" "[*] *" { fileinto "INBOX.lists.${1}"; stop; }`, []Action{into("INBOX.lists.acme-users")}},
		{`if address :matches ["To", "Cc"] ["coyote@**.com", "wile@**.com"] { fileinto "INBOX.business.${2}|${1}|${0}"; stop; }`,
			[]Action{into("INBOX.business.ACME.Example|" + "|coyote@ACME.Example.COM")}},
		{`if header :matches "Subject" "[*] *" {} if anyof (true, address :domain :matches "To" "*.com") { fileinto "${1}"; }`, []Action{into("acme-users")}},
		{`if header :matches "Subject" "[*] *" {} if header :matches "Subject" "nothing*" {} fileinto "${1}";`, []Action{into("acme-users")}}, // a failed test keeps them
		{`if header :matches "Subject" "?acme*" { fileinto "${1}|${2}|${9}|${01}"; }`, []Action{into("[|-users] [fwd] version 1.0 is out||[")}},
		{`if header :is "Subject" "[acme-users] [fwd] version 1.0 is out" { fileinto "[${0}]"; }`, []Action{into("[]")}}, // :is sets none
		// §5: the string test.
		{`set "state" "${state} pending"; if string :matches " ${state} " "* pending *" { fileinto "yes"; }`, []Action{into("yes")}},
		{`set "x" ""; if string :is "${x}" "" { fileinto "empty"; }`, []Action{into("empty")}},
		{`if string :count "eq" :comparator "i;ascii-numeric" ["${a}", "b", ""] "1" { fileinto "one"; }`, []Action{into("one")}},
		{`set "n" "12"; if string :value "gt" :comparator "i;ascii-numeric" "${n}" "9" { fileinto "more"; }`, []Action{into("more")}},
		{`if string :contains ["abc", "def"] "E" { fileinto "casemap"; }`, []Action{into("casemap")}},
		// Expansion in header names, keys and flags; variables of imap4flags (RFC 5232 §3).
		{`set "h" "x-count"; if header :is "${h}" "12" { fileinto "h"; }`, []Action{into("h")}},
		{`set "k" "coyote"; if address :localpart "to" "${k}" { fileinto "k"; }`, []Action{into("k")}},
		{`set "f" "\\Seen"; addflag "${f} $Work"; keep;`, []Action{keep(`\Seen`, "$Work")}},
		{`addflag "mine" ["a", "b"]; removeflag "mine" "a"; fileinto :flags "${mine}" "F";`, []Action{into("F", "b")}},
		{`setflag "mine" "x y"; if hasflag :count "eq" :comparator "i;ascii-numeric" "mine" "2" { fileinto "two"; }`, []Action{into("two")}},
		{`setflag "mine" "x"; if hasflag "mine" "x" { fileinto "named"; } if hasflag "x" { fileinto "internal"; }`, []Action{into("named")}},
		{`set "to" "bob"; if envelope :localpart "${nope}to" "bob" { fileinto "env"; }`, []Action{into("env")}},
	})
}

// TestVariablesReject checks the match variables in a reject reason: the test case
// above cannot, since reject rules out fileinto.
func TestVariablesReject(t *testing.T) {
	acts := runOn(t, `require ["variables", "reject"]; if header :matches "Subject" "[*] *" { reject "${1}: ${2}"; }`, crlf(listMsg), time.Now())
	if len(acts) != 1 || acts[0].Arg != "acme-users: [fwd] version 1.0 is out" {
		t.Errorf("actions %+v", acts)
	}
}

// TestVariableLimits checks the limits of RFC 5229 §6: values are cut on a character
// boundary, too many variables or too long a name fail to parse.
func TestVariableLimits(t *testing.T) {
	long := strings.Repeat("é", MaxVariableSize) // 2 octets each
	acts := runOn(t, `require ["variables", "fileinto"]; set "a" "`+long+`"; set :length "n" "${a}"; fileinto "${n}";`, crlf(listMsg), time.Now())
	if want := into(strings.Repeat("x", 0) + "2048"); len(acts) != 1 || acts[0].Arg != want.Arg {
		t.Errorf("a value of %d octets keeps %+v characters, want 2048", 2*MaxVariableSize, acts)
	}
	acts = runOn(t, `require ["variables", "fileinto"]; set "a" "`+strings.Repeat("x", 4000)+`"; fileinto "${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}";`, crlf(listMsg), time.Now())
	if len(acts) != 1 || len(acts[0].Arg) != maxExpansion {
		t.Errorf("an expansion of 76000 octets gives %d", len(acts[0].Arg))
	}
	var b strings.Builder
	b.WriteString(`require "variables";`)
	for i := 0; i <= MaxVariables; i++ {
		b.WriteString(`set "v` + strings.Repeat("x", i%20) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `" "";`)
	}
	if _, err := Parse([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than 128 variables") {
		t.Errorf("%d variables: %v", MaxVariables+1, err)
	}
}

func TestVariablesParseErrors(t *testing.T) {
	for _, c := range []struct{ script, want string }{
		{`set "a" "b";`, `set needs require "variables"`},
		{`require "variables"; set "a";`, "set takes a name and a value"},
		{`require "variables"; set "1" "b";`, "not a variable name one can set"},
		{`require "variables"; set "a.b" "c";`, "not a variable name one can set"},
		{`require "variables"; set "` + strings.Repeat("a", 33) + `" "c";`, "longer than 32"},
		{`require "variables"; set :lower :upper "a" "b";`, "cannot be used together"},
		{`require "variables"; set :frob "a" "b";`, "unexpected tag :frob"},
		{`require "variables"; set ["a"] "b";`, "two strings"},
		{`require ["variables", "fileinto"]; fileinto "${env.x}";`, "line 1:45: variable namespace in ${env.x}"},
		{`if string "a" "b" {}`, `string needs require "variables"`},
		{`require "variables"; if string "a" {}`, "string takes 2 string"},
		{`require "imap4flags"; addflag "v" "x";`, `needs require "variables"`},
		{`require ["imap4flags", "variables"]; addflag "1" "x";`, "not a variable name"},
	} {
		_, err := Parse([]byte(c.script))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want %q", c.script, err, c.want)
		}
	}
	// Without the extension, ${...} is text.
	acts := runOn(t, `require "fileinto"; fileinto "${x}";`, crlf(listMsg), time.Now())
	if len(acts) != 1 || acts[0].Arg != "${x}" {
		t.Errorf("without variables: %+v", acts)
	}
}

// TestVariablesVacation checks that vacation's string arguments expand (RFC 5229 §3),
// that the handle derives from the expanded ones (RFC 5230 §4.2), and that a :from
// expansion makes into no address is a run-time error (RFC 5230 §4.3).
func TestVariablesVacation(t *testing.T) {
	const req = `require ["vacation", "variables"]; if header :matches "Subject" "[*] *" { set "list" "${1}"; }` + "\n"
	run := func(script string) *Vacation {
		t.Helper()
		acts := runOn(t, req+script, crlf(listMsg), time.Now())
		if len(acts) != 2 || acts[0].Kind != VacationAction || acts[1].Kind != Keep { // and the implicit keep
			t.Fatalf("%s: actions %+v", script, acts)
		}
		return acts[0].Vacation
	}
	v := run(`vacation :subject "Re: ${list}" :from "${list}@example.org" :addresses ["me@${list}.org"] :handle "h-${list}" "away from ${list}";`)
	if v.Subject != "Re: acme-users" || v.From != "acme-users@example.org" || v.Reason != "away from acme-users" ||
		len(v.Addresses) != 1 || v.Addresses[0] != "me@acme-users.org" || v.Handle != "handle:h-acme-users" {
		t.Errorf("expanded vacation %+v", v)
	}
	a, b := run(`vacation "away from ${list}";`), run(`vacation "away from acme-users";`)
	if a.Reason != b.Reason || a.Handle != b.Handle {
		t.Errorf("handle of the expanded reason %q, of the same literal %q", a.Handle, b.Handle)
	}
	s, err := Parse([]byte(req + `vacation :from "${nothing}" "r";`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(&Message{Header: header(t, "Subject: x\r\n"), From: "ann@example.org", To: "bob@example.net"}); !errors.Is(err, ErrRun) {
		t.Errorf(":from expanding to nothing: %v, want ErrRun", err)
	}
}

package sieve

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"postern/pkg/mime"
)

const testMsg = "From: \"Ann\" <ann+lists@Example.org>\r\n" +
	"To: bob@example.net, carol@example.com\r\n" +
	"Subject: =?UTF-8?Q?caf=C3=A9?= [list] weekly\r\n" +
	"List-Id: <weekly.lists.example.org>\r\n" +
	"\r\n" +
	"body\r\n"

func run(t *testing.T, script string) []Action {
	t.Helper()
	s, err := Parse([]byte(script))
	if err != nil {
		t.Fatalf("Parse(%q): %v", script, err)
	}
	m, err := mime.Parse(strings.NewReader(testMsg), int64(len(testMsg)))
	if err != nil {
		t.Fatal(err)
	}
	acts, err := s.Run(&Message{Header: &m.Root.Header, Size: 2000, From: "bounce+x@lists.example.org", To: "bob+work@example.net"})
	if err != nil {
		t.Fatalf("Run(%q): %v", script, err)
	}
	return acts
}

func keep(flags ...string) Action { return Action{Kind: Keep, Flags: flags} }
func into(f string, flags ...string) Action {
	return Action{Kind: FileInto, Arg: f, Flags: flags}
}

func TestRun(t *testing.T) {
	const req = `require ["fileinto", "reject", "ereject", "envelope", "imap4flags", "copy", "subaddress"];` + "\n"
	for _, c := range []struct {
		script string
		want   []Action
	}{
		{``, []Action{keep()}},
		{`keep;`, []Action{keep()}},
		{`discard;`, nil},
		{`stop; discard;`, []Action{keep()}},
		{`if true { discard; }`, nil},
		{`if false { discard; }`, []Action{keep()}},
		{`if false { discard; } elsif true { fileinto "A"; } else { fileinto "B"; }`, []Action{into("A")}},
		{`if false { discard; } elsif false { fileinto "A"; } else { fileinto "B"; }`, []Action{into("B")}},
		{`if true { fileinto "A"; } elsif true { fileinto "B"; }`, []Action{into("A")}},
		{`fileinto "A"; fileinto "A";`, []Action{into("A")}},
		{`keep; fileinto "INBOX";`, []Action{keep()}},
		{`fileinto :copy "A";`, []Action{into("A"), keep()}},
		{`redirect "x@example.com";`, []Action{{Kind: Redirect, Arg: "x@example.com"}}},
		{`redirect :copy "x@example.com";`, []Action{{Kind: Redirect, Arg: "x@example.com"}, keep()}},
		{`reject text:
Go away.
..dot
.
;`, []Action{{Kind: Reject, Arg: "Go away.\n.dot\n"}}},
		{`ereject "no";`, []Action{{Kind: EReject, Arg: "no"}}},
		{`if header :contains "subject" "CAFÉ" { discard; }`, []Action{keep()}}, // i;ascii-casemap folds ASCII only
		{`if header :contains "subject" "café" { discard; }`, nil},              // decoded RFC 2047
		{`if header :contains "subject" "[LIST]" { discard; }`, nil},            // ascii-casemap
		{`if header :comparator "i;octet" :contains "subject" "[LIST]" { discard; }`, []Action{keep()}},
		{`if header :is "list-id" "<weekly.lists.example.org>" { discard; }`, nil},
		{`if header :matches "subject" "*week??" { discard; }`, nil},
		{`if header :matches "subject" "*week?" { discard; }`, []Action{keep()}},
		{`if header :matches "subject" "\\*" { discard; }`, []Action{keep()}},
		{`if address :domain "from" "example.org" { discard; }`, nil},
		{`if address :localpart "from" "ann+lists" { discard; }`, nil},
		{`if address :user "from" "ann" { discard; }`, nil},
		{`if address :detail "from" "lists" { discard; }`, nil},
		{`if address :detail "to" "" { discard; }`, []Action{keep()}}, // no detail: fails
		{`if address :is :all "to" "CAROL@example.com" { discard; }`, nil},
		{`if envelope :detail "to" "work" { discard; }`, nil},
		{`if envelope :domain "from" "lists.example.org" { discard; }`, nil},
		{`if exists ["list-id", "subject"] { discard; }`, nil},
		{`if exists ["list-id", "x-nope"] { discard; }`, []Action{keep()}},
		{`if size :over 1K { discard; }`, nil},
		{`if size :under 1K { discard; }`, []Action{keep()}},
		{`if allof (true, false) { discard; }`, []Action{keep()}},
		{`if anyof (false, true) { discard; }`, nil},
		{`if not false { discard; }`, nil},
		{`setflag "\\Seen"; addflag ["\\Flagged", "\\seen"];`, []Action{keep(`\Seen`, `\Flagged`)}},
		{`addflag "\\Seen \\Flagged"; removeflag "\\seen"; fileinto "A";`, []Action{into("A", `\Flagged`)}},
		{`addflag "\\Seen"; fileinto :flags "\\Answered" "A"; keep;`, []Action{into("A", `\Answered`), keep(`\Seen`)}},
		{`addflag "$x"; if hasflag :contains "$X" { fileinto "A"; }`, []Action{into("A", "$x")}},
		{`keep :flags "\\Deleted";`, []Action{keep(`\Deleted`)}},
	} {
		got := run(t, req+c.script)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s\n got  %+v\n want %+v", c.script, got, c.want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	m, _ := mime.Parse(strings.NewReader(testMsg), int64(len(testMsg)))
	for _, script := range []string{
		`require "reject"; reject "x"; keep;`,
		`require ["reject","fileinto"]; fileinto "A"; reject "x";`,
		`redirect "a@x"; redirect "b@x"; redirect "c@x"; redirect "d@x"; redirect "e@x";`,
	} {
		s, err := Parse([]byte(script))
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		if _, err = s.Run(&Message{Header: &m.Root.Header}); !errors.Is(err, ErrRun) {
			t.Errorf("%s: err %v, want ErrRun", script, err)
		}
	}
	var b strings.Builder
	b.WriteString(`require "fileinto";`)
	for i := 0; i <= MaxActions; i++ {
		b.WriteString(`fileinto "f` + strings.Repeat("x", i) + `";`)
	}
	s, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(&Message{Header: &m.Root.Header}); !errors.Is(err, ErrRun) {
		t.Errorf("%d fileintos: err %v, want ErrRun", MaxActions+1, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ script, want string }{
		{"keep", "line 1:5: expected ';' or '{' after keep"},
		{"keep;\n  fileinto \"x\";", "line 2:3: fileinto needs require \"fileinto\""},
		{"require \"x-unknown\";", "line 1:9: unsupported extension \"x-unknown\""},
		{"keep;\nrequire \"fileinto\";", "line 2:1: require must come before"},
		{"if true keep;", "line 1:1: if needs a block"},
		{"else { keep; }", "line 1:1: else without if"},
		{"if true { keep; ", "missing '}'"},
		{"}", "line 1:1: unexpected '}'"},
		{"frobnicate;", "line 1:1: unknown command frobnicate"},
		{"if frob { }", "line 1:4: unknown test frob"},
		{"if header :is \"a\" { }", "header takes 2 string"},
		{"if header :is :contains \"a\" \"b\" { }", "more than one match type"},
		{"if header :comparator \"i;unicode\" \"a\" \"b\" { }", "line 1:23: unsupported comparator"},
		{"if address :user \"from\" \"b\" { }", "needs require \"subaddress\""},
		{"if envelope \"from\" \"b\" { }", "needs require \"envelope\""},
		{"require \"envelope\"; if envelope \"x-foo\" \"b\" { }", "unsupported envelope part"},
		{"if size 10 { }", "size takes :over or :under"},
		{"if not (true, false) { }", "not needs a test"},
		{"keep :copy;", "keep takes no :copy"},
		{"fileinto :copy \"x\";", "needs require"},
		{"redirect \"nobody\";", "is not an address"},
		{"\"unterminated", "line 1:1: unterminated string"},
		{"/* open", "unterminated comment"},
		{"reject text:\nno end", "unterminated multi-line"},
		{"keep; @", "line 1:7: unexpected character"},
		{"if header :is [\"a\" \"b\"] \"c\" {}", "expected ',' or ']'"},
		{"if anyof (true false) {}", "line 1:11: true takes no test"},
		{"if anyof (true; false) {}", "line 1:15: expected ',' or ')'"},
		{strings.Repeat("if true {", MaxDepth+1), "nested too deeply"},
		{"if " + strings.Repeat("not ", MaxDepth+1) + "true {}", "nested too deeply"},
		{strings.Repeat(" ", MaxScriptSize+1), "larger than"},
		{"if size :over 99999999999999999999 {}", "number too large"},
	} {
		_, err := Parse([]byte(c.script))
		var se *Error
		if !errors.As(err, &se) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%.40q) = %v, want an *Error containing %q", c.script, err, c.want)
		}
	}
}

func TestLexer(t *testing.T) {
	s, err := Parse([]byte("# comment\r\nif size :over 2M /* c\n*/ { keep; }\n" +
		"require_x: ;"[:0] + "if size :under 1G { discard; }"))
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Commands[0].Tests[0].num; n != 2<<20 {
		t.Errorf("2M = %d", n)
	}
	if n := s.Commands[1].Tests[0].num; n != 1<<30 {
		t.Errorf("1G = %d", n)
	}
	s, err = Parse([]byte("require \"reject\"; reject \"a\\\"b\\\\c\";"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Commands[1].str; got != `a"b\c` {
		t.Errorf("quoted string = %q", got)
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		v, p string
		want bool
	}{
		{"abc", "a*c", true}, {"abc", "a?c", true}, {"ac", "a?c", false}, {"", "*", true},
		{"a*c", `a\*c`, true}, {"abc", `a\*c`, false}, {"café", "caf?", true},
		{strings.Repeat("a", 5000), strings.Repeat("*a", 50) + "b", false},
	} {
		if got := glob(c.v, c.p); got != c.want {
			t.Errorf("glob(%.20q, %.20q) = %v", c.v, c.p, got)
		}
	}
}

// ParseLimits bounds the size of the script and the actions and redirects of a run.
func TestLimits(t *testing.T) {
	m, _ := mime.Parse(strings.NewReader(testMsg), int64(len(testMsg)))
	l := Limits{ScriptSize: 100, Actions: 2, Redirects: 1}
	if _, err := ParseLimits([]byte(strings.Repeat(" ", 101)), l); err == nil || !strings.Contains(err.Error(), "larger than 100") {
		t.Errorf("101 octets: %v", err)
	}
	for script, ok := range map[string]bool{
		`redirect "a@x";`:                                               true,
		`redirect "a@x"; redirect "b@x";`:                               false,
		`require "fileinto"; fileinto "a"; fileinto "b";`:               true,
		`require "fileinto"; fileinto "a"; fileinto "b"; fileinto "c";`: false,
	} {
		s, err := ParseLimits([]byte(script), l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Run(&Message{Header: &m.Root.Header}); (err == nil) != ok {
			t.Errorf("%s: %v", script, err)
		}
	}
}

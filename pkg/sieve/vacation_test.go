package sieve

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"postern/pkg/mime"
)

func header(t *testing.T, h string) *mime.Header {
	t.Helper()
	msg := h + "\r\nbody\r\n"
	m, err := mime.Parse(strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	return &m.Root.Header
}

func vacationOf(t *testing.T, script string) *Vacation {
	t.Helper()
	s, err := Parse([]byte(script))
	if err != nil {
		t.Fatalf("Parse(%q): %v", script, err)
	}
	acts, err := s.Run(&Message{Header: header(t, "Subject: x\r\n"), From: "a@b.test", To: "bob@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	var v *Vacation
	keep := false
	for _, a := range acts {
		switch a.Kind {
		case VacationAction:
			v = a.Vacation
		case Keep:
			keep = true
		}
	}
	if v == nil {
		t.Fatalf("%q: no vacation action in %+v", script, acts)
	}
	if !keep && !strings.Contains(script, "discard") {
		// RFC 5230 §4.7: vacation leaves the implicit keep alone.
		t.Errorf("%q: the implicit keep was cancelled: %+v", script, acts)
	}
	return v
}

func TestVacationArguments(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		script string
		want   Vacation
	}{
		{`require "vacation"; vacation "away";`, Vacation{Period: 7 * day, Reason: "away"}},
		{`require "vacation"; vacation :days 0 "away";`, Vacation{Period: day, Reason: "away"}},
		{`require "vacation"; vacation :days 3000 "away";`, Vacation{Period: 365 * day, Reason: "away"}},
		{`require "vacation"; vacation :days 2 :subject "Out" :from "Bob <bob@example.test>" :addresses ["b@example.test"] :mime "Content-Type: text/plain` + "\n\nx" + `";`,
			Vacation{Period: 2 * day, Subject: "Out", From: "Bob <bob@example.test>", Addresses: []string{"b@example.test"}, MIME: true, Reason: "Content-Type: text/plain\n\nx"}},
		{`require "vacation-seconds"; vacation :seconds 3600 "away";`, Vacation{Period: time.Hour, Reason: "away"}},
		{`require "vacation-seconds"; vacation :seconds 0 "away"; discard;`, Vacation{Period: 0, Reason: "away"}},
		{`require "vacation"; vacation :handle "h" "away";`, Vacation{Period: 7 * day, Reason: "away", Handle: "handle:h"}},
	} {
		got := vacationOf(t, c.script)
		if c.want.Handle == "" {
			if !strings.HasPrefix(got.Handle, "sha256:") {
				t.Errorf("%q: handle %q", c.script, got.Handle)
			}
			c.want.Handle = got.Handle
		}
		if got.Period != c.want.Period || got.Subject != c.want.Subject || got.From != c.want.From || got.MIME != c.want.MIME ||
			got.Reason != c.want.Reason || got.Handle != c.want.Handle || strings.Join(got.Addresses, ",") != strings.Join(c.want.Addresses, ",") {
			t.Errorf("%q:\n got  %+v\n want %+v", c.script, *got, c.want)
		}
	}
	// RFC 5230 §4.2: the handle follows the reason, subject, from and mime, not :days.
	a := vacationOf(t, `require "vacation"; vacation :days 3 "away";`).Handle
	if b := vacationOf(t, `require "vacation"; vacation :days 9 :addresses "x@y.test" "away";`).Handle; a != b {
		t.Errorf("the handle changed with :days or :addresses: %s %s", a, b)
	}
	for _, other := range []string{`vacation "back soon";`, `vacation :subject "s" "away";`, `vacation :from "x@y.test" "away";`, `vacation :mime "away";`} {
		if b := vacationOf(t, `require "vacation"; `+other).Handle; a == b {
			t.Errorf("%s: same handle as another reason", other)
		}
	}
}

func TestVacationParseErrors(t *testing.T) {
	for _, c := range []struct{ script, want string }{
		{`vacation "x";`, `line 1:1: vacation needs require "vacation"`},
		{`require "vacation"; vacation;`, `vacation takes one reason string`},
		{`require "vacation"; vacation :days "x" "y";`, `tag :days needs an argument`},
		{`require "vacation"; vacation :seconds 5 "y";`, `:seconds needs require "vacation-seconds"`},
		{`require "vacation-seconds"; vacation :days 1 :seconds 5 "y";`, `not both`},
		{`require "vacation"; vacation :from "not an address" "y";`, `is not an address`},
		{`require "vacation"; vacation :addresses ["nobody"] "y";`, `is not an address`},
		{`require "vacation"; vacation :subject ["a", "b"] "y";`, `takes one string`},
		{`require "vacation"; vacation :bogus "y";`, `unexpected tag :bogus`},
		{`require "vacation"; vacation "y" { keep; }`, `takes no block`},
		{`require "vacation"; vacation ["a", "b"];`, `single string`},
	} {
		_, err := Parse([]byte(c.script))
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.script, err, c.want)
		}
	}
}

// RFC 5230 §4.7: a second vacation in one run is a run-time error.
func TestVacationTwice(t *testing.T) {
	s, err := Parse([]byte(`require "vacation"; vacation "a"; if true { vacation "b"; }`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(&Message{Header: header(t, "Subject: x\r\n"), From: "a@b.test"}); !errors.Is(err, ErrRun) {
		t.Fatalf("err %v, want ErrRun", err)
	}
}

func TestVacationExempt(t *testing.T) {
	v := &Vacation{Addresses: []string{"Bob.Extra@example.test"}}
	mine := func(a string) bool {
		return strings.EqualFold(a, "bob@example.test") || strings.EqualFold(a, "alias@example.test")
	}
	const personal = "From: ann@example.org\r\nTo: Bob <bob@example.test>\r\nSubject: hi\r\n"
	for _, c := range []struct {
		from, header, want string
	}{
		{"ann@example.org", personal, ""},
		{"ann@example.org", "To: x@example.org\r\nCc: \"B\" <ALIAS@example.test>\r\n", ""},
		{"ann@example.org", "To: undisclosed-recipients:;\r\nBcc: bob.extra@example.test\r\n", ""},
		{"ann@example.org", "Resent-To: bob@example.test\r\n", ""},
		{"ann@example.org", "To: group: bob@example.test;\r\n", ""},
		{"", personal, "null sender"},
		{"MAILER-DAEMON@example.org", personal, "automated process"},
		{"owner-list@example.org", personal, "automated process"},
		{"list-request@example.org", personal, "automated process"},
		{"LISTSERV@example.org", personal, "automated process"},
		{"majordomo@example.org", personal, "automated process"},
		{"ann@example.org", personal + "Auto-Submitted: auto-replied\r\n", "Auto-Submitted: auto-replied"},
		{"ann@example.org", personal + "Auto-Submitted: auto-generated; owner-email=x@y\r\n", "Auto-Submitted: auto-generated"},
		{"ann@example.org", personal + "Auto-Submitted: No\r\n", ""},
		{"ann@example.org", personal + "List-Id: <l.example.org>\r\n", "mailing list (List-Id)"},
		{"ann@example.org", personal + "List-Post: <mailto:l@example.org>\r\n", "mailing list (List-Post)"},
		{"ann@example.org", personal + "List-Unsubscribe: <mailto:l@example.org>\r\n", "mailing list (List-Unsubscribe)"},
		{"ann@example.org", personal + "Precedence: bulk\r\n", "Precedence: bulk"},
		{"ann@example.org", personal + "Precedence: JUNK\r\n", "Precedence: JUNK"},
		{"ann@example.org", personal + "Precedence: list\r\n", "Precedence: list"},
		{"ann@example.org", personal + "Precedence: first-class\r\n", ""},
		{"bob@example.test", personal, "sender is the user"},
		{"ann@example.org", "To: carol@example.test\r\n", "none of the user's addresses"},
		{"ann@example.org", "To: carol@example.test\r\nX-Original-To: bob@example.test\r\n", "none of the user's addresses"},
	} {
		got := v.Exempt(&Message{Header: header(t, c.header), From: c.from, To: "bob@example.test"}, mine)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("from %q, header %q: %q, want %q", c.from, c.header, got, c.want)
		}
	}
}

func TestVacationReply(t *testing.T) {
	orig := header(t, "From: Ann <ann@example.org>\r\nTo: bob@example.test\r\n"+
		"Subject: =?UTF-8?Q?caf=C3=A9?= plans\r\nMessage-ID: <m2@example.org>\r\nReferences: <m1@example.org>\r\n")
	rh := ReplyHeaders{From: "bob@example.test", To: "ann@example.org", Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), MessageID: "<r@example.test>"}
	got := string((&Vacation{Reason: "I am away.\nBack Monday."}).Reply(orig, rh))
	for _, want := range []string{
		"From: bob@example.test\r\n",
		"To: <ann@example.org>\r\n",
		"Subject: =?utf-8?q?Auto:_caf=C3=A9_plans?=\r\n",
		"In-Reply-To: <m2@example.org>\r\n",
		"References: <m1@example.org> <m2@example.org>\r\n",
		"Auto-Submitted: auto-replied (vacation)\r\n",
		"Message-ID: <r@example.test>\r\n",
		"Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n",
		"Content-Type: text/plain; charset=us-ascii\r\n",
		"\r\n\r\nI am away.\r\nBack Monday.\r\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("reply lacks %q:\n%s", want, got)
		}
	}
	got = string((&Vacation{Subject: "Out\r\nBcc: x@y", Reason: "Absent — à lundi"}).Reply(orig, rh))
	for _, want := range []string{"Subject: Out Bcc: x@y\r\n", "charset=utf-8", "quoted-printable", "Absent =E2=80=94 =C3=A0 lundi"} {
		if !strings.Contains(got, want) {
			t.Errorf("reply lacks %q:\n%s", want, got)
		}
	}
	got = string((&Vacation{MIME: true, Reason: "Content-Type: text/html\n\n<p>away</p>"}).Reply(orig, rh))
	if !strings.Contains(got, "MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n<p>away</p>\r\n") {
		t.Errorf(":mime reply:\n%s", got)
	}
	m, err := mime.Parse(strings.NewReader(got), int64(len(got)))
	if err != nil {
		t.Fatal(err)
	}
	if ct, _ := m.Root.Header.Get("Content-Type"); ct != "text/html" {
		t.Errorf("the :mime reply's Content-Type is %q", ct)
	}
}

func TestManagedVacation(t *testing.T) {
	own := "# my filters\r\nrequire [\"fileinto\"];\r\nif header :contains \"subject\" \"x\" { fileinto \"X\"; stop; }\r\n"
	v := &ManagedVacation{Subject: "Away", Message: "Back \"soon\"\n\\o/", Days: 3}
	with, err := SetManagedVacation([]byte(own), v)
	if err != nil {
		t.Fatal(err)
	}
	s := string(with)
	if !strings.HasPrefix(s, "# my filters\r\nrequire [\"fileinto\"];\r\n"+ManagedBegin) || !strings.HasSuffix(s, ManagedEnd+"\nif header :contains \"subject\" \"x\" { fileinto \"X\"; stop; }\r\n") {
		t.Errorf("the block is not between the requires and the filters:\n%s", s)
	}
	got, ok := GetManagedVacation(with)
	if !ok || got != (ManagedVacation{Subject: "Away", Message: "Back \"soon\"\n\\o/", Days: 3}) {
		t.Errorf("read back %+v %v", got, ok)
	}
	// The vacation runs before the user's stop.
	sc, err := Parse(with)
	if err != nil {
		t.Fatal(err)
	}
	acts, err := sc.Run(&Message{Header: header(t, "Subject: x\r\n"), From: "a@b.test"})
	if err != nil || len(acts) != 2 || acts[0].Kind != VacationAction || acts[1].Arg != "X" {
		t.Errorf("actions %+v %v", acts, err)
	}
	// Set again replaces, clear restores the user's script byte for byte.
	again, err := SetManagedVacation(with, &ManagedVacation{Message: "other", Days: 0})
	if err != nil || strings.Count(string(again), ManagedBegin) != 1 {
		t.Fatalf("set again: %v\n%s", err, again)
	}
	if got, _ := GetManagedVacation(again); got.Message != "other" || got.Days != MinVacationDays || got.Subject != "" {
		t.Errorf("read back %+v", got)
	}
	cleared, err := SetManagedVacation(again, nil)
	if err != nil || string(cleared) != own {
		t.Errorf("cleared: %v\n%q", err, cleared)
	}
	if _, ok := GetManagedVacation(cleared); ok {
		t.Error("a cleared script still has a reply")
	}
	// An empty script, and one whose command shares the line with require.
	for _, src := range []string{"", `require "fileinto"; fileinto "A";`} {
		out, err := SetManagedVacation([]byte(src), v)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if _, ok := GetManagedVacation(out); !ok {
			t.Errorf("%q: no reply in\n%s", src, out)
		}
	}
	if _, err := SetManagedVacation([]byte(`require "vacation"; if true { vacation "mine"; }`), v); !errors.Is(err, ErrOwnVacation) {
		t.Errorf("a script with its own vacation: %v", err)
	}
}

// A "${" typed on the account page reaches the reply as typed, also when the user's own
// script requires variables and so expands every string (RFC 5229 §3).
func TestManagedVacationVariables(t *testing.T) {
	own := "require [\"variables\"];\r\nset \"x\" \"1\";\r\n"
	v := &ManagedVacation{Subject: "Away ${x}", Message: "Costs ${x} and ${", Days: 2}
	with, err := SetManagedVacation([]byte(own), v)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := GetManagedVacation(with); !ok || got != *v {
		t.Errorf("read back %+v %v, want %+v", got, ok, *v)
	}
	sc, err := Parse(with)
	if err != nil {
		t.Fatalf("%v\n%s", err, with)
	}
	acts, err := sc.Run(&Message{Header: header(t, "Subject: x\r\n"), From: "a@b.test"})
	if err != nil || len(acts) == 0 || acts[0].Kind != VacationAction {
		t.Fatalf("actions %+v %v", acts, err)
	}
	if r := acts[0].Vacation; r.Subject != "Away ${x}" || r.Reason != "Costs ${x} and ${" {
		t.Errorf("reply subject %q, reason %q", r.Subject, r.Reason)
	}
	// Without variables nothing is escaped.
	plain, err := SetManagedVacation(nil, v)
	if err != nil || strings.Contains(string(plain), "postern_dollar") {
		t.Errorf("script without variables: %v\n%s", err, plain)
	}
}

// The reply's first and last days: a block that tests currentdate (RFC 5260), which
// answers only on the days given, in the zone of the time of delivery, and reads back.
func TestManagedVacationDates(t *testing.T) {
	own := "require \"fileinto\";\nfileinto \"X\";\n"
	zone := time.FixedZone("+0100", 3600)
	for _, c := range []struct {
		first, last string
		want        string // the test the block writes
		on, off     []time.Time
	}{
		{"2026-12-10", "2026-12-20", `if allof(currentdate :value "ge" "date" "2026-12-10", currentdate :value "le" "date" "2026-12-20") {`,
			[]time.Time{time.Date(2026, 12, 10, 0, 0, 0, 0, zone), time.Date(2026, 12, 20, 23, 59, 0, 0, zone)},
			[]time.Time{time.Date(2026, 12, 9, 23, 59, 0, 0, zone), time.Date(2026, 12, 21, 0, 0, 0, 0, zone), time.Date(2027, 1, 1, 0, 0, 0, 0, zone)}},
		{"2026-12-10", "", `if allof(currentdate :value "ge" "date" "2026-12-10") {`,
			[]time.Time{time.Date(2026, 12, 10, 0, 0, 0, 0, zone), time.Date(2030, 1, 1, 0, 0, 0, 0, zone)},
			[]time.Time{time.Date(2026, 12, 9, 23, 59, 0, 0, zone)}},
		{"", "2026-12-20", `if allof(currentdate :value "le" "date" "2026-12-20") {`,
			[]time.Time{time.Date(2020, 1, 1, 0, 0, 0, 0, zone), time.Date(2026, 12, 20, 23, 59, 0, 0, zone)},
			[]time.Time{time.Date(2026, 12, 21, 0, 0, 0, 0, zone)}},
		{"2026-12-10", "2026-12-10", `if allof(currentdate :value "ge" "date" "2026-12-10", currentdate :value "le" "date" "2026-12-10") {`,
			[]time.Time{time.Date(2026, 12, 10, 12, 0, 0, 0, zone)},
			[]time.Time{time.Date(2026, 12, 11, 0, 0, 0, 0, zone), time.Date(2026, 12, 9, 23, 0, 0, 0, zone)}},
	} {
		v := &ManagedVacation{Subject: "Away", Message: "Back later", Days: 7, First: c.first, Last: c.last}
		out, err := SetManagedVacation([]byte(own), v)
		if err != nil {
			t.Fatalf("%s..%s: %v", c.first, c.last, err)
		}
		if !strings.Contains(string(out), `require ["vacation", "date", "relational"];`) || !strings.Contains(string(out), c.want) {
			t.Errorf("%s..%s: the block lacks %s:\n%s", c.first, c.last, c.want, out)
		}
		if got, ok := GetManagedVacation(out); !ok || got != *v {
			t.Errorf("%s..%s: read back %+v %v", c.first, c.last, got, ok)
		}
		sc, err := Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, now := range append(c.on, c.off...) {
			acts, err := sc.Run(&Message{Header: header(t, "Subject: x\r\n"), From: "a@b.test", Now: now})
			if err != nil {
				t.Fatal(err)
			}
			replied := len(acts) > 0 && acts[0].Kind == VacationAction
			if want := slices.Contains(c.on, now); replied != want {
				t.Errorf("%s..%s at %v: replied %v, want %v (%+v)", c.first, c.last, now, replied, want, acts)
			}
		}
	}
	// Without dates, the block is as before: no date test.
	out, err := SetManagedVacation([]byte(own), &ManagedVacation{Message: "m", Days: 7})
	if err != nil || strings.Contains(string(out), "currentdate") || !strings.Contains(string(out), "require \"vacation\";\n") {
		t.Errorf("a reply without dates: %v\n%s", err, out)
	}
	for _, bad := range [][2]string{{"2026-12-20", "2026-12-10"}, {"10.12.2026", ""}, {"", "2026-2-3"}, {"2026-13-01", ""}, {`2026-12-10" { discard; } if true {`, ""}} {
		if err := CheckVacationDates(bad[0], bad[1]); !errors.Is(err, ErrVacationDates) {
			t.Errorf("%q..%q accepted: %v", bad[0], bad[1], err)
		}
		if _, err := SetManagedVacation([]byte(own), &ManagedVacation{Message: "m", Days: 7, First: bad[0], Last: bad[1]}); !errors.Is(err, ErrVacationDates) {
			t.Errorf("%q..%q written: %v", bad[0], bad[1], err)
		}
	}
}

package imapsort

import (
	"slices"
	"strings"
	"testing"

	nfkd "golang.org/x/text/unicode/norm"

	"postern/pkg/mime"
)

func TestBaseSubject(t *testing.T) {
	tests := []struct {
		in    string
		base  string
		reply bool
	}{
		{"test", "test", false},
		{"Re: test", "test", true},
		{"RE: Re: re:test", "test", true},
		{"Fw: test", "test", true},
		{"FWD: test", "test", true},
		{"Re [2]: test", "test", true},
		{"[PATCH] Re: [foo] test", "test", true},
		{"[foo] test", "test", false},
		{"[foo]", "[foo]", false},
		{"test (fwd)", "test", false},
		{"test (fwd) (fwd)  ", "test", false},
		{"[Fwd: Re: hello]", "hello", true},
		{"[fwd: [fwd: x] ]", "x", true},
		{"  lots \t of   space ", "lots of space", false},
		{"Reply to this", "reply to this", false},
		{"=?UTF-8?Q?Re:_R=C3=A9SUM=C3=89?=", "résumé", true},
		{"", "", false},
		{"Re:", "", true},
		{"[", "[", false},
	}
	for _, tt := range tests {
		base, reply := BaseSubject(tt.in)
		if base != Casemap(tt.base) || reply != tt.reply {
			t.Errorf("BaseSubject(%q) = %q, %v; want %q, %v", tt.in, base, reply, Casemap(tt.base), tt.reply)
		}
	}
}

func TestCasemap(t *testing.T) {
	// RFC 5051: titlecase, then NFKD; "ǆ" has a titlecase of its own, "ﬁ" has none (simple
	// mappings only) and decomposes after.
	for in, want := range map[string]string{"abc": "ABC", "Résumé": "RE\u0301SUME\u0301", "ǆ": "Dž", "ﬁx": "fiX", "[_]": "[_]"} {
		if got := Casemap(in); got != nfkdOf(want) {
			t.Errorf("Casemap(%q) = %q, want %q", in, got, nfkdOf(want))
		}
	}
}

func nfkdOf(s string) string { return nfkd.NFKD.String(s) }

func TestMessageIDs(t *testing.T) {
	got := MessageIDs(" <a@b> (comment <x>) <no-at> <c@d>\r\n\t<e f@g> <<h@i>")
	want := []string{"<a@b>", "<c@d>", "<h@i>"}
	if !slices.Equal(got, want) {
		t.Errorf("MessageIDs = %q, want %q", got, want)
	}
}

func TestNewKeys(t *testing.T) {
	subj := "Re: [list] Hello"
	mid := "<m2@x>"
	irt := "<m1@x> <m0@x>"
	env := &mime.Envelope{
		Subject:   &subj,
		MessageID: &mid,
		InReplyTo: &irt,
		From:      []mime.Address{{Name: "=?UTF-8?Q?Zo=C3=A9?=", Mailbox: "Zoe", Host: "example.test"}},
		To:        []mime.Address{{Mailbox: "Bob", Host: "Example.test"}, {Mailbox: "carl", Host: "x"}},
	}
	k := NewKeys(env, "")
	want := Keys{Subject: "HELLO", Reply: true, From: "ZOE", To: "BOB", DisplayFrom: "ZOE\u0301", DisplayTo: "BOB@EXAMPLE.TEST",
		MessageID: "<m2@x>", References: []string{"<m1@x>"}}
	if k.Subject != want.Subject || k.Reply != want.Reply || k.From != want.From || k.To != want.To || k.Cc != "" ||
		k.DisplayFrom != want.DisplayFrom || k.DisplayTo != want.DisplayTo || k.MessageID != want.MessageID || !slices.Equal(k.References, want.References) {
		t.Errorf("NewKeys = %+v\nwant %+v", *k, want)
	}
	// References wins over In-Reply-To.
	if k := NewKeys(env, "<r1@x> <r2@x>"); !slices.Equal(k.References, []string{"<r1@x>", "<r2@x>"}) {
		t.Errorf("References = %q", k.References)
	}
	b := k.AppendBinary([]byte("pre"))
	got, rest, ok := DecodeKeys(append(b[3:], "tail"...))
	if !ok || string(rest) != "tail" || got.Subject != k.Subject || got.DisplayFrom != k.DisplayFrom || !slices.Equal(got.References, k.References) || got.Reply != k.Reply {
		t.Errorf("DecodeKeys(AppendBinary) = %+v, %q, %v; want %+v", got, rest, ok, k)
	}
	for i := range len(b) - 3 {
		if _, _, ok := DecodeKeys(b[3 : 3+i]); ok {
			t.Errorf("DecodeKeys of %d of %d bytes succeeded", i, len(b)-3)
		}
	}
}

func msg(num uint32, sent int64, subject, id string, refs ...string) Message {
	base, reply := BaseSubject(subject)
	return Message{Num: num, Sent: sent, Arrival: 1000 - sent, Size: int64(100 - num),
		Keys: &Keys{Subject: base, Reply: reply, MessageID: id, References: refs, From: string(rune('a' + num%3))}}
}

func TestSort(t *testing.T) {
	msgs := []Message{
		msg(1, 30, "b", ""),
		msg(2, 10, "Re: a", ""),
		msg(3, 20, "a", ""),
		msg(4, 0, "c", ""), // no Date: its arrival (1000) counts
		msg(5, 20, "[x] A", ""),
	}
	tests := []struct {
		crit []Criterion
		want []uint32
	}{
		{[]Criterion{{Key: "DATE"}}, []uint32{2, 3, 5, 1, 4}},
		{[]Criterion{{Key: "DATE", Reverse: true}}, []uint32{4, 1, 3, 5, 2}},
		{[]Criterion{{Key: "SUBJECT"}}, []uint32{2, 3, 5, 1, 4}},
		{[]Criterion{{Key: "SUBJECT"}, {Key: "DATE", Reverse: true}}, []uint32{3, 5, 2, 1, 4}},
		{[]Criterion{{Key: "ARRIVAL"}}, []uint32{1, 3, 5, 2, 4}},
		{[]Criterion{{Key: "SIZE"}}, []uint32{5, 4, 3, 2, 1}},
		{[]Criterion{{Key: "FROM"}, {Key: "SIZE", Reverse: true}}, []uint32{3, 1, 4, 2, 5}},
		{nil, []uint32{1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		if got := Sort(msgs, tt.crit); !slices.Equal(got, tt.want) {
			t.Errorf("Sort %+v = %v, want %v", tt.crit, got, tt.want)
		}
	}
}

func threads(ns []*Node) string { return string(AppendThreads(nil, ns)) }

func TestOrderedSubject(t *testing.T) {
	msgs := []Message{
		msg(1, 50, "b", ""),
		msg(2, 10, "a", ""),
		msg(3, 20, "Re: a", ""),
		msg(4, 40, "b", ""),
		msg(5, 30, "c", ""),
		msg(6, 15, "Fwd: a", ""),
	}
	// a: 2 (10) then 6 (15), 3 (20); b: 4 (40), 1 (50); c: 5.
	if got, want := threads(Thread(msgs, OrderedSubject)), "(2 (6)(3))(5)(4 1)"; got != want {
		t.Errorf("ORDEREDSUBJECT = %s, want %s", got, want)
	}
}

func TestReferences(t *testing.T) {
	msgs := []Message{
		msg(1, 10, "hello", "<1@x>"),
		msg(2, 20, "Re: hello", "<2@x>", "<1@x>"),
		msg(3, 30, "Re: hello", "<3@x>", "<1@x>", "<2@x>"),
		msg(4, 25, "Re: hello", "<4@x>", "<1@x>"),
		// Replies to a message not in the set: a dummy with two children.
		msg(5, 40, "other", "<5@x>", "<gone@x>"),
		msg(6, 45, "Re: other", "<6@x>", "<gone@x>"),
		// A lone reply to a missing parent: the dummy goes, the message is a root.
		msg(7, 5, "Re: alone", "<7@x>", "<missing@x>"),
		// Same base subject, no references: grouped by subject under the
		// non-reply (step 5).
		msg(8, 60, "topic", "<8@x>"),
		msg(9, 70, "Re: topic", "<9@x>"),
		// Two messages that are not replies with the same subject: a dummy holds both.
		msg(10, 80, "same", "<10@x>"),
		msg(11, 90, "same", "<11@x>"),
		// Duplicate Message-ID: the second is a message of its own.
		msg(12, 100, "dup", "<1@x>"),
		// A reference loop is not followed: 13 went under 14 first, 14 stays its parent.
		msg(13, 110, "loop", "<13@x>", "<14@x>"),
		msg(14, 120, "zz loop", "<14@x>", "<13@x>"),
		// imaptest's group "thread": 16's References presume 15 → 17 → 16; 17 itself
		// says its parent is 16, which would be a loop: 17 leaves 15 and heads
		// its own thread with 16 below.
		msg(15, 130, "p", "<15@x>"),
		msg(16, 131, "q", "<16@x>", "<15@x>", "<17@x>"),
		msg(17, 129, "r", "<17@x>", "<16@x>"),
	}
	got := threads(Thread(msgs, References))
	want := "(7)(1 (2 3)(4))((5)(6))(8 9)((10)(11))(12)(14 13)(17 16)(15)"
	if got != want {
		t.Errorf("REFERENCES =\n %s\nwant\n %s", got, want)
	}
}

func FuzzBaseSubject(f *testing.F) {
	for _, s := range []string{"Re: [x] Fwd: y (fwd)", "[fwd: [fwd: [", "=?utf-8?b?UmU6IGE=?=", "re [a] [b] : c", "\t(fwd)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		base, _ := BaseSubject(s)
		if again, _ := BaseSubject(base); again != base && len(base) > 0 {
			// Extraction need not be idempotent on every input (a blob that was kept
			// because nothing followed it), but it must never grow the text.
			if len(again) > len(base) {
				t.Errorf("BaseSubject(%q) = %q, again %q", s, base, again)
			}
		}
		MessageIDs(s)
	})
}

func FuzzThread(f *testing.F) {
	f.Add([]byte{1, 2, 0, 3, 1, 2, 4, 4, 5, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Each byte pair: message id and the id it references (0 none).
		ids := []string{"", "<a@x>", "<b@x>", "<c@x>", "<d@x>", "<e@x>", "<f@x>", "<g@x>"}
		var msgs []Message
		for i := 0; i+1 < len(b) && len(msgs) < 50; i += 2 {
			k := &Keys{MessageID: ids[int(b[i])%len(ids)], Subject: ids[int(b[i+1])%3]}
			if r := ids[int(b[i+1])%len(ids)]; r != "" {
				k.References = []string{r}
			}
			msgs = append(msgs, Message{Num: uint32(len(msgs) + 1), Sent: int64(b[i]), Keys: k})
		}
		for _, alg := range []string{References, OrderedSubject} {
			seen := map[uint32]int{}
			var walk func(n *Node)
			walk = func(n *Node) {
				if n.Num != 0 {
					seen[n.Num]++
				}
				for _, c := range n.Children {
					walk(c)
				}
			}
			for _, n := range Thread(msgs, alg) {
				walk(n)
			}
			if len(seen) != len(msgs) {
				t.Fatalf("%s: %d of %d messages in threads", alg, len(seen), len(msgs))
			}
			for n, c := range seen {
				if c != 1 {
					t.Fatalf("%s: message %d appears %d times", alg, n, c)
				}
			}
		}
	})
}

// TestBaseSubjectLinear: a subject of many blobs costs linear time, not quadratic (it
// would take minutes otherwise).
func TestBaseSubjectLinear(t *testing.T) {
	s := strings.Repeat("[a]", 50000)
	if base, _ := BaseSubject(s + "x"); base != "X" {
		t.Errorf("base = %q", base)
	}
	if base, _ := BaseSubject(s); base != "[A]" {
		t.Errorf("base = %q", base)
	}
}

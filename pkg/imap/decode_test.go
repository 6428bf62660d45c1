package imap

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func decoder(s string) (*Decoder, *int) {
	conts := new(int)
	d := NewDecoder(bufio.NewReader(strings.NewReader(s)), func() error { *conts++; return nil })
	return d, conts
}

func TestReadCommand(t *testing.T) {
	tests := []struct {
		in   string
		want Command
	}{
		{"a1 CAPABILITY\r\n", Command{Tag: "a1", Name: "CAPABILITY"}},
		{"a1 noop\n", Command{Tag: "a1", Name: "NOOP"}},
		{"x LOGIN demo@example.test \"p\\\"w\"\r\n", Command{Tag: "x", Name: "LOGIN", User: "demo@example.test", Password: `p"w`}},
		{"x LOGIN {4}\r\nuser {2+}\r\npw\r\n", Command{Tag: "x", Name: "LOGIN", User: "user", Password: "pw"}},
		{"x AUTHENTICATE PLAIN AHVzZXIAcHc=\r\n", Command{Tag: "x", Name: "AUTHENTICATE", Mechanism: "PLAIN", InitialResponse: "AHVzZXIAcHc="}},
		{"x SELECT INBOX (CONDSTORE)\r\n", Command{Tag: "x", Name: "SELECT", Mailbox: "INBOX", CondStore: true}},
		{"x RENAME a \"b c\"\r\n", Command{Tag: "x", Name: "RENAME", Mailbox: "a", NewName: "b c"}},
		{"x UID EXPUNGE 1:3,5\r\n", Command{Tag: "x", Name: "EXPUNGE", UID: true, Set: SeqSet{{1, 3}, {5, 5}}}},
		{"x COPY 2:* Trash\r\n", Command{Tag: "x", Name: "COPY", Set: SeqSet{{2, 0}}, Mailbox: "Trash"}},
		{"x STATUS INBOX (MESSAGES UIDNEXT)\r\n", Command{Tag: "x", Name: "STATUS", Mailbox: "INBOX", StatusItems: []string{"MESSAGES", "UIDNEXT"}}},
		{"x LSUB \"\" *\r\n", Command{Tag: "x", Name: "LSUB", List: &ListRequest{Patterns: []string{"*"}}}},
		{"x LIST \"\" %\r\n", Command{Tag: "x", Name: "LIST", List: &ListRequest{Patterns: []string{"%"}}}},
		{"x LIST (SPECIAL-USE) \"\" (* INBOX) RETURN (STATUS (MESSAGES) SPECIAL-USE)\r\n", Command{Tag: "x", Name: "LIST", List: &ListRequest{
			Extended: true, Selection: []string{"SPECIAL-USE"}, Patterns: []string{"*", "INBOX"},
			Return: []string{"STATUS", "SPECIAL-USE"}, StatusItems: []string{"MESSAGES"}}}},
		{"x ENABLE IMAP4rev2 CONDSTORE\r\n", Command{Tag: "x", Name: "ENABLE", Capabilities: []string{"IMAP4REV2", "CONDSTORE"}}},
		{"x ID (\"name\" \"mutt\" \"version\" NIL)\r\n", Command{Tag: "x", Name: "ID", ID: [][2]string{{"name", "mutt"}, {"version", ""}}}},
		{"x ID NIL\r\n", Command{Tag: "x", Name: "ID"}},
		{"x CREATE Archive (USE (\\Archive))\r\n", Command{Tag: "x", Name: "CREATE", Mailbox: "Archive", SpecialUse: []string{`\Archive`}}},
		{"x UID SORT (REVERSE DATE subject) UTF-8 ALL\r\n", Command{Tag: "x", Name: "SORT", UID: true,
			Sort:   &SortRequest{Criteria: []SortCriterion{{Key: "DATE", Reverse: true}, {Key: "SUBJECT"}}},
			Search: &SearchRequest{Charset: "UTF-8", Key: &SearchKey{Op: "ALL"}}}},
		{"x SORT RETURN (MIN COUNT) (DISPLAYFROM) us-ascii UNSEEN FROM a\r\n", Command{Tag: "x", Name: "SORT",
			Sort: &SortRequest{Criteria: []SortCriterion{{Key: "DISPLAYFROM"}}},
			Search: &SearchRequest{Charset: "US-ASCII", ESearch: true, Return: []string{"MIN", "COUNT"},
				Key: &SearchKey{Op: "AND", Keys: []*SearchKey{{Op: "UNSEEN"}, {Op: "FROM", Str: "a"}}}}}},
		{"x SELECT INBOX (QRESYNC (67 90060115 41:211,214:541) CONDSTORE)\r\n", Command{Tag: "x", Name: "SELECT", Mailbox: "INBOX", CondStore: true,
			QResync: &QResync{UIDValidity: 67, ModSeq: 90060115, KnownUIDs: SeqSet{{41, 211}, {214, 541}}}}},
		{"x EXAMINE INBOX (QRESYNC (67 9 1:* (1:3,5 4:6,8)))\r\n", Command{Tag: "x", Name: "EXAMINE", Mailbox: "INBOX",
			QResync: &QResync{UIDValidity: 67, ModSeq: 9, KnownUIDs: SeqSet{{1, 0}}, KnownSeqs: SeqSet{{1, 3}, {5, 5}}, KnownSeqUIDs: SeqSet{{4, 6}, {8, 8}}}}},
		{"x SELECT INBOX (QRESYNC (67 9 (1 4)))\r\n", Command{Tag: "x", Name: "SELECT", Mailbox: "INBOX",
			QResync: &QResync{UIDValidity: 67, ModSeq: 9, KnownSeqs: SeqSet{{1, 1}}, KnownSeqUIDs: SeqSet{{4, 4}}}}},
		{"x SELECT INBOX ()\r\n", Command{Tag: "x", Name: "SELECT", Mailbox: "INBOX"}},
		{"x UID FETCH 1:* FLAGS (CHANGEDSINCE 5 VANISHED)\r\n", Command{Tag: "x", Name: "FETCH", UID: true, Set: SeqSet{{1, 0}},
			Fetch: &FetchRequest{Items: []FetchItem{{Name: "FLAGS"}}, ChangedSince: 5, Vanished: true}}},
		{"x UID SEARCH EMAILID M6d-a_Z THREADID T1\r\n", Command{Tag: "x", Name: "SEARCH", UID: true, Search: &SearchRequest{
			Key: &SearchKey{Op: "AND", Keys: []*SearchKey{{Op: "EMAILID", Str: "M6d-a_Z"}, {Op: "THREADID", Str: "T1"}}}}}},
		{"x FETCH 1 (EMAILID THREADID)\r\n", Command{Tag: "x", Name: "FETCH", Set: SeqSet{{1, 1}},
			Fetch: &FetchRequest{Items: []FetchItem{{Name: "EMAILID"}, {Name: "THREADID"}}}}},
		{"x SEARCH SAVEDATESUPPORTED SAVEDON 2-Feb-2021\r\n", Command{Tag: "x", Name: "SEARCH", Search: &SearchRequest{
			Key: &SearchKey{Op: "AND", Keys: []*SearchKey{{Op: "SAVEDATESUPPORTED"}, {Op: "SAVEDON", Date: time.Date(2021, 2, 2, 0, 0, 0, 0, time.UTC)}}}}}},
		{"x FETCH 1 SAVEDATE\r\n", Command{Tag: "x", Name: "FETCH", Set: SeqSet{{1, 1}}, Fetch: &FetchRequest{Items: []FetchItem{{Name: "SAVEDATE"}}}}},
		{"x NOTIFY NONE\r\n", Command{Tag: "x", Name: "NOTIFY", Notify: &NotifyRequest{None: true}}},
		{"x NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge)) (SUBTREE (A \"B c\") NONE) (MAILBOXES X (FlagChange))\r\n",
			Command{Tag: "x", Name: "NOTIFY", Notify: &NotifyRequest{Status: true, Groups: []NotifyGroup{
				{Filter: "SELECTED", Events: []string{"MessageNew", "MessageExpunge"}, FetchAtts: []FetchItem{{Name: "UID"}, {Name: "FLAGS"}}},
				{Filter: "SUBTREE", Mailboxes: []string{"A", "B c"}},
				{Filter: "MAILBOXES", Mailboxes: []string{"X"}, Events: []string{"FlagChange"}}}}}},
		{"x COMPRESS deflate\r\n", Command{Tag: "x", Name: "COMPRESS", Compress: "DEFLATE"}},
		{"x THREAD references UTF-8 1:3\r\n", Command{Tag: "x", Name: "THREAD", Thread: "REFERENCES",
			Search: &SearchRequest{Charset: "UTF-8", Key: &SearchKey{Op: "SEQSET", Set: SeqSet{{1, 3}}}}}},
	}
	for _, tt := range tests {
		d, _ := decoder(tt.in)
		got, err := d.ReadCommand()
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.in, *got, tt.want)
		}
	}
}

func TestSyncLiteralContinues(t *testing.T) {
	d, conts := decoder("x LOGIN {4}\r\nuser {2}\r\npw\r\n")
	if _, err := d.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if *conts != 2 {
		t.Errorf("%d continuation requests, want 2", *conts)
	}
}

func TestFetch(t *testing.T) {
	d, _ := decoder("x UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100> BINARY[1.2] BODY[1.MIME] BODY[] MODSEQ) (CHANGEDSINCE 12)\r\n")
	c, err := d.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	f := c.Fetch
	if !c.UID || f.ChangedSince != 12 || len(f.Items) != 6 {
		t.Fatalf("%+v", f)
	}
	names := []string{}
	for _, it := range f.Items {
		if it.Section != nil {
			names = append(names, string(it.Section.AppendName(nil)))
		} else {
			names = append(names, it.Name)
		}
	}
	want := []string{"FLAGS", "BODY[HEADER.FIELDS (FROM SUBJECT)]<0>", "BINARY[1.2]", "BODY[1.MIME]", "BODY[]", "MODSEQ"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("got %q, want %q", names, want)
	}
	if s := f.Items[1].Section; !s.Peek || !s.Partial || s.Count != 100 {
		t.Errorf("section %+v", s)
	}
	d, _ = decoder("x FETCH 1 ALL\r\n")
	if c, err = d.ReadCommand(); err != nil || len(c.Fetch.Items) != 4 {
		t.Errorf("ALL: %v %+v", err, c)
	}
}

func TestStore(t *testing.T) {
	d, _ := decoder("x UID STORE 1:5 (UNCHANGEDSINCE 7) +FLAGS.SILENT (\\Seen $Junk)\r\n")
	c, err := d.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	want := &StoreRequest{Mode: StoreAdd, Silent: true, Flags: []string{`\Seen`, "$Junk"}, UnchangedSince: 7, HasUnchangedSince: true}
	if !reflect.DeepEqual(c.Store, want) {
		t.Errorf("got %+v", c.Store)
	}
	d, _ = decoder("x STORE 1 -FLAGS \\Deleted \\Seen\r\n")
	if c, err = d.ReadCommand(); err != nil || c.Store.Mode != StoreRemove || len(c.Store.Flags) != 2 {
		t.Errorf("%v %+v", err, c)
	}
}

func TestSearch(t *testing.T) {
	d, _ := decoder("x UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM {5}\r\nj\xc3\xb6rg (SINCE 1-Feb-2024 NOT SEEN) HEADER X-Spam yes 1:4 UID 7:* LARGER 100 MODSEQ 5\r\n")
	c, err := d.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	s := c.Search
	if !s.ESearch || !reflect.DeepEqual(s.Return, []string{"MIN", "COUNT"}) || s.Charset != "UTF-8" {
		t.Fatalf("%+v", s)
	}
	k := s.Key
	if k.Op != "AND" || len(k.Keys) != 6 {
		t.Fatalf("key %+v", k)
	}
	or := k.Keys[0]
	if or.Op != "OR" || or.Keys[0].Str != "jörg" || or.Keys[1].Op != "AND" || !or.Keys[1].Keys[0].Date.Equal(time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("or %+v", or)
	}
	if k.Keys[1].Field != "X-Spam" || k.Keys[2].Op != "SEQSET" || k.Keys[3].Set[0] != (SeqRange{7, 0}) || k.Keys[4].Num != 100 || k.Keys[5].Num != 5 {
		t.Errorf("keys %+v %+v %+v", k.Keys[1], k.Keys[2], k.Keys[3])
	}
	d, _ = decoder("x SEARCH RECENT\r\n")
	if c, err = d.ReadCommand(); err != nil || c.Search.Key.Op != "RECENT" {
		t.Errorf("%v %+v", err, c)
	}
}

func TestAppend(t *testing.T) {
	d, conts := decoder("x APPEND Sent (\\Seen) \" 5-Mar-2024 10:11:12 +0100\" {11}\r\nhello world\r\ny NOOP\r\n")
	c, err := d.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	a := c.Append
	if c.Mailbox != "Sent" || a.Size != 11 || !a.Sync || a.Date.Day() != 5 || a.Flags[0] != `\Seen` {
		t.Fatalf("%+v", a)
	}
	r, err := d.AppendMessage()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != "hello world" || *conts != 1 {
		t.Errorf("message %q, %d continuations", b, *conts)
	}
	if err := d.EndAppend(); err != nil {
		t.Fatal(err)
	}
	if c, err = d.ReadCommand(); err != nil || c.Name != "NOOP" {
		t.Errorf("next: %v %+v", err, c)
	}

	// A refused non-synchronizing message is skipped.
	d, _ = decoder("x APPEND Nope {5+}\r\nhello\r\ny NOOP\r\n")
	if _, err = d.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if c, err = d.ReadCommand(); err != nil || c.Name != "NOOP" {
		t.Errorf("after skip: %v %+v", err, c)
	}
	// A refused synchronizing one was never sent.
	d, _ = decoder("x APPEND Nope {5}\r\ny NOOP\r\n")
	d.ReadCommand()
	if c, err = d.ReadCommand(); err != nil || c.Name != "NOOP" {
		t.Errorf("after sync skip: %v %+v", err, c)
	}

	// RFC 6855 §4: UTF8 (~{n}...), with the closing parenthesis after the message.
	d, _ = decoder("x APPEND INBOX UTF8 (~{4+}\r\nh\xc3\xa9!)\r\ny NOOP\r\n")
	if c, err = d.ReadCommand(); err != nil || !c.Append.UTF8 || !c.Append.Binary || c.Append.Size != 4 {
		t.Fatalf("APPEND UTF8: %v %+v", err, c)
	}
	r, _ = d.AppendMessage()
	if b, _ := io.ReadAll(r); string(b) != "h\xc3\xa9!" {
		t.Errorf("APPEND UTF8 message %q", b)
	}
	if err := d.EndAppend(); err != nil {
		t.Errorf("EndAppend after UTF8 (...): %v", err)
	}
	if c, err = d.ReadCommand(); err != nil || c.Name != "NOOP" {
		t.Errorf("after APPEND UTF8: %v %+v", err, c)
	}
	// Skipped, it is read to its end too.
	d, _ = decoder("x APPEND INBOX UTF8 (~{2+}\r\nab)\r\ny NOOP\r\n")
	d.ReadCommand()
	if c, err = d.ReadCommand(); err != nil || c.Name != "NOOP" {
		t.Errorf("after skipping APPEND UTF8: %v %+v", err, c)
	}
	for _, bad := range []string{"x APPEND INBOX UTF8 ({2+}\r\n", "x APPEND INBOX UTF9 (~{2+}\r\n", "x APPEND INBOX UTF8 ~{2+}\r\n"} {
		d, _ = decoder(bad + "ab)\r\n")
		if _, err := d.ReadCommand(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, in := range []string{
		"\r\n", "x\r\n", "a{1 NOOP\r\n", "x FOO\r\n", "x UID NOOP\r\n", "x SELECT\r\n", "x FETCH 0 FLAGS\r\n",
		"x FETCH 1 BODY[1.]\r\n", "x FETCH 1 BODY[MIME]\r\n", "x SEARCH FOO\r\n",
		"x LOGIN \"a\r\n", "x SEARCH BEFORE 40-Foo-2020\r\n", "x STORE 1 FLAGS\r\n",
		"x FETCH 99999999999 FLAGS\r\n", "x SEARCH " + strings.Repeat("(", 200) + "ALL" + strings.Repeat(")", 200) + "\r\n",
		"x SORT (DATE) ALL\r\n", "x SORT (REVERSE) UTF-8 ALL\r\n", "x SORT (NAME) UTF-8 ALL\r\n", "x SORT DATE UTF-8 ALL\r\n",
		"x SELECT INBOX (QRESYNC (0 1))\r\n", "x SELECT INBOX (QRESYNC (1))\r\n", "x SELECT INBOX (QRESYNC (1 2 $))\r\n",
		"x SELECT INBOX (QRESYNC (1 2 3 4))\r\n", "x SELECT INBOX (QRESYNC (1 2 (1)))\r\n", "x SELECT INBOX (FOO)\r\n",
		"x SEARCH EMAILID\r\n", "x SEARCH EMAILID a.b\r\n", "x SEARCH THREADID " + strings.Repeat("a", 256) + "\r\n",
		"x NOTIFY\r\n", "x NOTIFY SET\r\n", "x NOTIFY SET (FOO (MessageNew))\r\n", "x NOTIFY SET (PERSONAL)\r\n",
		"x NOTIFY SET (MAILBOXES (MessageNew))\r\n", "x NOTIFY GET\r\n",
		"x COMPRESS\r\n", "x COMPRESS DEFLATE X\r\n",
		"x SORT () UTF-8 ALL\r\n", "x THREAD REFERENCES ALL\r\n", "x THREAD\r\n", "x SORT RETURN (FOO) (DATE) UTF-8 ALL\r\n",
	} {
		d, _ := decoder(in + "y NOOP\r\n")
		_, err := d.ReadCommand()
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: got %v, want a ParseError", in, err)
			continue
		}
		if strings.HasPrefix(in, "x ") && pe.Tag != "x" {
			t.Errorf("%q: tag %q", in, pe.Tag)
		}
		if c, err := d.ReadCommand(); err != nil || c.Name != "NOOP" {
			t.Errorf("%q: the next command reads as %+v, %v", in, c, err)
		}
	}
	// Over-long lines and literals are refused.
	d, _ := decoder("x LOGIN " + strings.Repeat("a", 100) + " b\r\ny NOOP\r\n")
	d.MaxLine = 50
	if _, err := d.ReadCommand(); err == nil {
		t.Error("long line accepted")
	}
	if c, err := d.ReadCommand(); err != nil || c.Name != "NOOP" {
		t.Errorf("after a long line: %+v %v", c, err)
	}
	d, _ = decoder("x APPEND INBOX {100+}\r\n")
	d.MaxLiteral = 10
	_, err := d.ReadCommand()
	var pe *ParseError
	if !errors.As(err, &pe) || !pe.TooBig || !pe.Fatal {
		t.Errorf("big literal: %v", err)
	}
}

func TestUTF7(t *testing.T) {
	for _, tt := range []struct{ utf8, utf7 string }{
		{"INBOX", "INBOX"}, {"a&b", "a&-b"}, {"Entwürfe", "Entw&APw-rfe"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"}, {"😀", "&2D3eAA-"},
	} {
		if got := EncodeUTF7(tt.utf8); got != tt.utf7 {
			t.Errorf("Encode(%q) = %q, want %q", tt.utf8, got, tt.utf7)
		}
		if got, err := DecodeUTF7(tt.utf7); err != nil || got != tt.utf8 {
			t.Errorf("Decode(%q) = %q, %v", tt.utf7, got, err)
		}
	}
	for _, bad := range []string{"&", "&AGE", "&AGE-&AGE-", "&AGE?-", "\xc3\xa9", "&AEE-"} {
		if _, err := DecodeUTF7(bad); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}

func TestEncode(t *testing.T) {
	b := AppendAString(nil, "INBOX")
	b = append(b, ' ')
	b = AppendAString(b, "a b")
	b = append(b, ' ')
	b = AppendNString(b, "")
	b = append(b, ' ')
	b = AppendString(b, "caf\xc3\xa9")
	b = append(b, ' ')
	b = AppendAString(b, "nil")
	b = append(b, ' ')
	b = AppendQuoted(b, `a"\`)
	if got, want := string(b), "INBOX \"a b\" NIL {5}\r\ncafé \"nil\" \"a\\\"\\\\\""; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := string(AppendUIDSet(nil, []uint32{1, 2, 3, 5, 7, 8})); got != "1:3,5,7:8" {
		t.Errorf("uid set %q", got)
	}
	// Mailbox names: INBOX as INBOX, atoms as atoms (not NIL), 7-bit and UTF-8 names
	// quoted (RFC 9051 §4.3), the rest as literals.
	for name, want := range map[string]string{
		"inbox": "INBOX", "Sent": "Sent", "NIL": `"NIL"`, "a b": `"a b"`, `a"b`: `"a\"b"`,
		"Gr\xc3\xbc\xc3\x9fe": "\"Gr\xc3\xbc\xc3\x9fe\"", "a\xffb": "{3}\r\na\xffb", "a\nb": "{3}\r\na\nb",
	} {
		if got := string(AppendMailbox(nil, name)); got != want {
			t.Errorf("AppendMailbox(%q) = %q, want %q", name, got, want)
		}
	}
	s, err := ParseSeqSet("4:2,*")
	if err != nil || !s.Contains(3, 10) || !s.Contains(10, 10) || s.Contains(5, 10) || s.String() != "4:2,*" {
		t.Errorf("seqset %v %v", s, err)
	}
}

// FuzzReadCommand feeds arbitrary bytes to the command reader: it must never panic or
// loop, and each call either returns a command, a ParseError or the end of input.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"a1 CAPABILITY\r\n", "x LOGIN {4+}\r\nuser pw\r\n", "x UID FETCH 1:* (FLAGS BODY.PEEK[1.HEADER.FIELDS (A)]<0.5>)\r\n",
		"x SEARCH RETURN (ALL) CHARSET UTF-8 OR (FROM a) NOT TO {1}\r\nb\r\n", "x APPEND INBOX (\\Seen) {3}\r\nabc\r\n",
		"x LIST (SUBSCRIBED) \"\" (a* %) RETURN (STATUS (MESSAGES UNSEEN))\r\n", "x STORE 1,2:4 (UNCHANGEDSINCE 3) -FLAGS (\\Seen)\r\n",
		"x ID (\"a\" NIL)\r\n", "x APPEND INBOX ~{2+}\r\n\x00\x01\r\n", "x APPEND INBOX UTF8 (~{2+}\r\n\xc3\xa9)\r\n", "x NOTIFY SET STATUS (SELECTED (MessageNew (UID BODY.PEEK[HEADER]) MessageExpunge)) (PERSONAL NONE)\r\n", "x SELECT \"&AGE-\" (CONDSTORE)\r\n",
		"x SEARCH MODSEQ \"/flags/\\\\Seen\" all 4\r\n",
		"x UID SORT RETURN (ALL MAX) (REVERSE ARRIVAL CC) UTF-8 OR SEEN 1:*\r\n",
		"x THREAD ORDEREDSUBJECT US-ASCII SUBJECT {3}\r\nabc\r\n",
		"x SELECT INBOX (QRESYNC (67 90060115 41:211,214:541 (1:3 5:7)))\r\n", "x UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, _ := decoder(string(in))
		d.MaxLine = 1000
		d.MaxLiteral = 1000
		for i := 0; i < 100; i++ {
			c, err := d.ReadCommand()
			if err != nil {
				var pe *ParseError
				if errors.As(err, &pe) && !pe.Fatal {
					continue
				}
				return
			}
			if c.Append != nil {
				r, err := d.AppendMessage()
				if err != nil {
					return
				}
				io.Copy(io.Discard, r)
				d.EndAppend()
			}
			if c.Fetch != nil {
				for _, it := range c.Fetch.Items {
					if it.Section != nil {
						it.Section.AppendName(nil)
					}
				}
			}
		}
	})
}

func FuzzUTF7(f *testing.F) {
	for _, s := range []string{"INBOX", "Entw&APw-rfe", "&-", "&2D3eAA-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dec, err := DecodeUTF7(s)
		if err != nil {
			return
		}
		if enc := EncodeUTF7(dec); enc != s {
			// Round trips hold for canonical encodings; a decoded name must
			// at least encode and decode back to itself.
			if again, err := DecodeUTF7(enc); err != nil || again != dec {
				t.Errorf("%q → %q → %q → %q, %v", s, dec, enc, again, err)
			}
		}
	})
}

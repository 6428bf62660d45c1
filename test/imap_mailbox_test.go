package test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// listNames returns the mailbox names of a LIST, and the attributes of each.
func listNames(t *testing.T, c *imapclient.Client, ref, pattern string, opts *imap.ListOptions) map[string][]imap.MailboxAttr {
	t.Helper()
	list, err := c.List(ref, pattern, opts).Collect()
	if err != nil {
		t.Fatalf("LIST %q %q: %v", ref, pattern, err)
	}
	out := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		out[l.Mailbox] = l.Attrs
	}
	return out
}

// delimiter asks the hierarchy delimiter with LIST "" "" (RFC 9051 §6.3.9).
func delimiter(t *testing.T, c *imapclient.Client) string {
	t.Helper()
	list, err := c.List("", "", nil).Collect()
	if err != nil || len(list) != 1 {
		t.Fatalf(`LIST "" "": %v %v, want one response`, list, err)
	}
	if list[0].Delim == 0 {
		t.Fatalf(`LIST "" "" gives no hierarchy delimiter`)
	}
	return string(list[0].Delim)
}

func keys[M ~map[string]V, V any](m M) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestIMAPSpecialUse checks that a new account has the special-use mailboxes and that LIST
// marks them (RFC 6154 §2, RFC 5258 RETURN (SPECIAL-USE) and LIST (SPECIAL-USE)).
func TestIMAPSpecialUse(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	want := map[string]imap.MailboxAttr{"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts,
		"Junk": imap.MailboxAttrJunk, "Trash": imap.MailboxAttrTrash, "Archive": imap.MailboxAttrArchive}
	all := listNames(t, c, "", "*", &imap.ListOptions{ReturnSpecialUse: true})
	if _, ok := all["INBOX"]; !ok {
		t.Errorf("LIST * lacks INBOX: %v", keys(all))
	}
	for name, attr := range want {
		attrs, ok := all[name]
		if !ok {
			t.Errorf("LIST * lacks %s: %v", name, keys(all))
		} else if !slices.Contains(attrs, attr) {
			t.Errorf("LIST RETURN (SPECIAL-USE): %s has %v, want %s", name, attrs, attr)
		}
	}
	only := listNames(t, c, "", "*", &imap.ListOptions{SelectSpecialUse: true})
	if len(only) != len(want) {
		t.Errorf("LIST (SPECIAL-USE) \"\" *: %v, want exactly %d special-use mailboxes", keys(only), len(want))
	}
	// Plain LIST, the way Thunderbird and Apple Mail first ask: RFC 6154 §2 says the
	// server includes the special-use attributes in LIST responses.
	r := tg.rawLogin(t)
	u := r.OK(`LIST "" "*"`)
	for name, attr := range want {
		if !hasLine(u, `^\* LIST \([^)]*`+regexp.QuoteMeta(string(attr))+`[^)]*\) \S+ "?`+name+`"?$`) {
			t.Errorf("plain LIST: %s is not marked %s: %q", name, attr, u)
		}
	}
}

// TestIMAPCreateDeleteRename covers CREATE, DELETE and RENAME with hierarchies (RFC 9051
// §6.3.4–§6.3.6).
func TestIMAPCreateDeleteRename(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	d := delimiter(t, c)
	mustOK := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	mustNO := func(what string, err error) {
		t.Helper()
		if imapType(err) != imap.StatusResponseTypeNo {
			t.Errorf("%s: %v, want NO", what, err)
		}
	}
	mustOK("CREATE Projects", c.Create("Projects", nil).Wait())
	// §6.3.4: creating a name with superiors creates them as needed.
	mustOK("CREATE Projects/2024/Q1", c.Create("Projects"+d+"2024"+d+"Q1", nil).Wait())
	mustOK("CREATE Projects/2025", c.Create("Projects"+d+"2025", nil).Wait())
	// A trailing delimiter only says the name will have inferiors.
	mustOK("CREATE Later/", c.Create("Later"+d, nil).Wait())
	err := c.Create("Projects", nil).Wait()
	mustNO("CREATE of an existing mailbox", err)
	if imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("CREATE of an existing mailbox: %v, want the code ALREADYEXISTS (RFC 5530 §3)", err)
	}
	mustNO("CREATE INBOX", c.Create("INBOX", nil).Wait())
	mustNO("CREATE inbox", c.Create("inbox", nil).Wait()) // INBOX is case-insensitive

	all := listNames(t, c, "", "*", nil)
	for _, n := range []string{"Projects", "Projects" + d + "2024", "Projects" + d + "2024" + d + "Q1", "Projects" + d + "2025", "Later"} {
		if _, ok := all[n]; !ok {
			t.Errorf("LIST * lacks %q after CREATE: %v", n, keys(all))
		}
	}
	// % matches no delimiter, * matches all (§6.3.9).
	pct := listNames(t, c, "", "Projects"+d+"%", nil)
	if got := keys(pct); !slices.Equal(got, []string{"Projects" + d + "2024", "Projects" + d + "2025"}) {
		t.Errorf("LIST Projects/%%: %v", got)
	}
	if got := keys(listNames(t, c, "Projects"+d, "%", nil)); !slices.Equal(got, []string{"Projects" + d + "2024", "Projects" + d + "2025"}) {
		t.Errorf(`LIST "Projects/" "%%" (reference + pattern): %v`, got)
	}
	// RFC 3348 / RFC 9051 §7.3.1: \HasChildren and \HasNoChildren.
	if attrs := all["Projects"]; !slices.Contains(attrs, imap.MailboxAttrHasChildren) {
		t.Errorf("Projects has %v, want \\HasChildren", attrs)
	}
	if attrs := all["Projects"+d+"2025"]; !slices.Contains(attrs, imap.MailboxAttrHasNoChildren) {
		t.Errorf("Projects/2025 has %v, want \\HasNoChildren", attrs)
	}

	appendMsg(t, c, "Projects"+d+"2024"+d+"Q1", testMessage("In Q1", "q1\r\n"), nil)
	// §6.3.6: renaming moves the inferior names too.
	mustOK("RENAME Projects Work", c.Rename("Projects", "Work", nil).Wait())
	all = listNames(t, c, "", "*", nil)
	for _, n := range []string{"Work", "Work" + d + "2024", "Work" + d + "2024" + d + "Q1", "Work" + d + "2025"} {
		if _, ok := all[n]; !ok {
			t.Errorf("LIST * lacks %q after RENAME: %v", n, keys(all))
		}
	}
	for n := range all {
		if strings.HasPrefix(n, "Projects") {
			t.Errorf("LIST * still has %q after RENAME", n)
		}
	}
	st, err := c.Status("Work"+d+"2024"+d+"Q1", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil || *st.NumMessages != 1 {
		t.Errorf("STATUS of a renamed inferior: %+v %v, want MESSAGES 1", st, err)
	}
	mustNO("RENAME onto an existing mailbox", c.Rename("Later", "Work", nil).Wait())
	mustNO("RENAME of a missing mailbox", c.Rename("Nope", "Nope2", nil).Wait())

	// §6.3.6: renaming INBOX moves its messages to the new name and leaves INBOX empty.
	appendMsg(t, c, "INBOX", testMessage("One", "1\r\n"), nil)
	appendMsg(t, c, "INBOX", testMessage("Two", "2\r\n"), nil)
	mustOK("RENAME INBOX Old", c.Rename("INBOX", "Old Inbox", nil).Wait())
	for name, n := range map[string]uint32{"INBOX": 0, "Old Inbox": 2} {
		st, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil || st.NumMessages == nil || *st.NumMessages != n {
			t.Errorf("STATUS %s after RENAME INBOX: %+v %v, want MESSAGES %d", name, st, err, n)
		}
	}

	old, err := c.Status("Work"+d+"2024"+d+"Q1", &imap.StatusOptions{UIDNext: true, UIDValidity: true}).Wait()
	mustOK("STATUS Work/2024/Q1", err)
	mustOK("DELETE Work/2024/Q1", c.Delete("Work"+d+"2024"+d+"Q1").Wait())
	mustOK("DELETE Work/2025", c.Delete("Work"+d+"2025").Wait())
	mustOK("DELETE Work/2024", c.Delete("Work"+d+"2024").Wait())
	mustOK("DELETE Work", c.Delete("Work").Wait())
	mustNO("DELETE INBOX", c.Delete("INBOX").Wait()) // §6.3.5
	mustNO("DELETE of a missing mailbox", c.Delete("Work").Wait())
	all = listNames(t, c, "", "*", nil)
	for n := range all {
		if strings.HasPrefix(n, "Work") {
			t.Errorf("LIST * still has %q after DELETE", n)
		}
	}
	// A deleted name can be created again, empty, with a new UIDVALIDITY or UIDs above the
	// old (RFC 9051 §6.3.5).
	mustOK("CREATE Work/2024/Q1 again", c.Create("Work"+d+"2024"+d+"Q1", nil).Wait())
	again, err := c.Status("Work"+d+"2024"+d+"Q1", &imap.StatusOptions{NumMessages: true, UIDValidity: true}).Wait()
	mustOK("STATUS of the new Work/2024/Q1", err)
	if again.NumMessages == nil || *again.NumMessages != 0 {
		t.Errorf("the new Work/2024/Q1 holds %v messages, want 0", again.NumMessages)
	}
	if uid := appendMsg(t, c, "Work"+d+"2024"+d+"Q1", testMessage("In the new Q1", "q1\r\n"), nil); again.UIDValidity == old.UIDValidity && uid < old.UIDNext {
		t.Errorf("the new Work/2024/Q1 has the old UIDVALIDITY %d and gave UID %d, below the old UIDNEXT %d", old.UIDValidity, uid, old.UIDNext)
	}
}

// TestIMAPSubscribe covers SUBSCRIBE, UNSUBSCRIBE, LSUB (RFC 3501 §6.3.9, which IMAP4rev1
// clients such as mutt still send) and LIST (SUBSCRIBED) (RFC 5258).
func TestIMAPSubscribe(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	if err := c.Create("Lists", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("Lists").Wait(); err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	sub := listNames(t, c, "", "*", &imap.ListOptions{SelectSubscribed: true})
	if _, ok := sub["Lists"]; !ok {
		t.Errorf("LIST (SUBSCRIBED) lacks Lists: %v", keys(sub))
	}
	r := tg.rawLogin(t)
	u := r.OK(`LSUB "" "*"`)
	if !hasLine(u, `^\* LSUB \([^)]*\) \S+ "?Lists"?$`) {
		t.Errorf(`LSUB "" "*" lacks Lists: %q`, u)
	}
	if err := c.Unsubscribe("Lists").Wait(); err != nil {
		t.Fatalf("UNSUBSCRIBE: %v", err)
	}
	u = r.OK(`LSUB "" "*"`)
	if hasLine(u, `"?Lists"?$`) {
		t.Errorf("LSUB still has Lists after UNSUBSCRIBE: %q", u)
	}
	sub = listNames(t, c, "", "*", &imap.ListOptions{SelectSubscribed: true})
	if _, ok := sub["Lists"]; ok {
		t.Errorf("LIST (SUBSCRIBED) still has Lists after UNSUBSCRIBE")
	}
	// The subscription of a deleted mailbox is kept (RFC 9051 §6.3.7), shown \NonExistent.
	if err := c.Subscribe("Lists").Wait(); err != nil {
		t.Fatalf("SUBSCRIBE again: %v", err)
	}
	if err := c.Delete("Lists").Wait(); err != nil {
		t.Fatalf("DELETE Lists: %v", err)
	}
	sub = listNames(t, c, "", "*", &imap.ListOptions{SelectSubscribed: true})
	if attrs, ok := sub["Lists"]; !ok || !slices.Contains(attrs, imap.MailboxAttrNonExistent) {
		t.Errorf("LIST (SUBSCRIBED): a deleted subscribed mailbox is listed %v with %v, want it listed with \\NonExistent", ok, attrs)
	}
}

// TestIMAPNamespaceStatus covers NAMESPACE (RFC 2342), STATUS (RFC 9051 §6.3.11) and
// LIST-STATUS (RFC 5819).
func TestIMAPNamespaceStatus(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	d := delimiter(t, c)
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatalf("NAMESPACE: %v", err)
	}
	if len(ns.Personal) == 0 || string(ns.Personal[0].Delim) != d {
		t.Errorf("NAMESPACE personal %+v, want one with the delimiter %q", ns.Personal, d)
	}
	if len(ns.Other) != 0 || len(ns.Shared) != 0 {
		t.Errorf("NAMESPACE offers other users' or shared namespaces: %+v", ns)
	}

	// STATUS DELETED and SIZE are IMAP4rev2's (RFC 9051 §6.3.11).
	if _, err := c.Enable(imap.CapIMAP4rev2).Wait(); err != nil {
		t.Fatalf("ENABLE IMAP4rev2: %v", err)
	}
	appendMsg(t, c, "INBOX", testMessage("Seen one", "a\r\n"), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
	appendMsg(t, c, "INBOX", testMessage("Unseen one", "b\r\n"), nil)
	last := appendMsg(t, c, "INBOX", testMessage("Unseen two", "c\r\n"), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDeleted}})
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		NumUnseen: true, NumDeleted: true, Size: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	if st.NumMessages == nil || *st.NumMessages != 3 {
		t.Errorf("STATUS MESSAGES %v, want 3", st.NumMessages)
	}
	if st.NumUnseen == nil || *st.NumUnseen != 2 {
		t.Errorf("STATUS UNSEEN %v, want 2", st.NumUnseen)
	}
	if st.NumDeleted == nil || *st.NumDeleted != 1 {
		t.Errorf("STATUS DELETED %v, want 1", st.NumDeleted)
	}
	if st.UIDNext <= last || st.UIDValidity == 0 {
		t.Errorf("STATUS UIDNEXT %d UIDVALIDITY %d, want UIDNEXT above %d and a UIDVALIDITY", st.UIDNext, st.UIDValidity, last)
	}
	if st.Size == nil || *st.Size < 3*100 {
		t.Errorf("STATUS SIZE %v, want the size of the 3 messages", st.Size)
	}
	if _, err := c.Status("No such mailbox", &imap.StatusOptions{NumMessages: true}).Wait(); imapType(err) != imap.StatusResponseTypeNo {
		t.Errorf("STATUS of a missing mailbox: %v, want NO", err)
	}

	// LIST-STATUS: one STATUS response per listed mailbox.
	list, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true}}).Collect()
	if err != nil {
		t.Fatalf("LIST RETURN (STATUS): %v", err)
	}
	seen := map[string]bool{}
	for _, l := range list {
		if l.Status == nil {
			if !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) && !slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
				t.Errorf("LIST RETURN (STATUS): no STATUS for %s", l.Mailbox)
			}
			continue
		}
		seen[l.Mailbox] = true
		if l.Mailbox == "INBOX" && (l.Status.NumMessages == nil || *l.Status.NumMessages != 3 || l.Status.NumUnseen == nil || *l.Status.NumUnseen != 2) {
			t.Errorf("LIST RETURN (STATUS) INBOX: %+v, want MESSAGES 3 UNSEEN 2", l.Status)
		}
	}
	if !seen["INBOX"] || !seen["Sent"] {
		t.Errorf("LIST RETURN (STATUS) has STATUS for %v, want INBOX and Sent at least", seen)
	}
}

// mutf7 encodes a mailbox name in the modified UTF-7 of RFC 3501 §5.1.3.
func mutf7(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		raw := make([]byte, 0, 2*len(u))
		for _, x := range u {
			raw = append(raw, byte(x>>8), byte(x))
		}
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
		var bits, n uint
		b.WriteByte('&')
		for _, c := range raw {
			bits = bits<<8 | uint(c)
			n += 8
			for n >= 6 {
				n -= 6
				b.WriteByte(alphabet[(bits>>n)&63])
			}
		}
		if n > 0 {
			b.WriteByte(alphabet[(bits<<(6-n))&63])
		}
		b.WriteByte('-')
		run = nil
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	return b.String()
}

// TestIMAPMailboxNamesRev1Rev2 creates "Привет/日本" and sees it in modified UTF-7 from an
// IMAP4rev1 session and in UTF-8 from a session that enabled IMAP4rev2 (RFC 9051 §5.1,
// §6.3.1; RFC 3501 §5.1.3).
func TestIMAPMailboxNamesRev1Rev2(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	d := delimiter(t, c)
	c.Logout().Wait()
	utf8Name := "Привет" + d + "日本"
	utf7Name := mutf7("Привет") + d + mutf7("日本")
	if mutf7("Привет") != "&BB8EQAQ4BDIENQRC-" || mutf7("日本") != "&ZeVnLA-" {
		t.Fatalf("the test's modified UTF-7 encoder is wrong: %s %s", mutf7("Привет"), mutf7("日本"))
	}

	rev1 := tg.rawLogin(t)
	rev1.OK("CREATE " + imapQuote(utf7Name))
	u := rev1.OK(`LIST "" "*"`)
	if !hasLine(u, `^\* LIST \([^)]*\) \S+ "?`+regexp.QuoteMeta(utf7Name)+`"?$`) {
		t.Errorf("IMAP4rev1 LIST lacks %q: %q", utf7Name, u)
	}
	for _, l := range u {
		for _, r := range l {
			if r > 0x7e {
				t.Errorf("IMAP4rev1 LIST sends 8-bit data: %q", l)
				break
			}
		}
	}
	rev1.OK("SELECT " + imapQuote(utf7Name))
	rev1.OK("APPEND " + imapQuote(utf7Name) + " {" + fmt.Sprint(len(testMessage("x", "x\r\n"))) + "+}\r\n" + testMessage("x", "x\r\n"))
	// RFC 9051 §5.1 / RFC 3501 §5.1.3: a name that is not valid modified UTF-7 is refused
	// from a rev1 client.
	if _, st := rev1.Cmd(`CREATE "&Jjo"`); strings.HasPrefix(st, "OK") {
		t.Errorf(`IMAP4rev1 CREATE "&Jjo" (bad modified UTF-7): %q, want NO or BAD`, st)
	}

	rev2 := tg.rawLogin(t)
	rev2.OK("ENABLE IMAP4rev2")
	u = rev2.OK(`LIST "" "*"`)
	if !hasLine(u, `^\* LIST \([^)]*\) \S+ "?`+regexp.QuoteMeta(utf8Name)+`"?$`) {
		t.Errorf("IMAP4rev2 LIST lacks %q in UTF-8: %q", utf8Name, u)
	}
	if hasLine(u, regexp.QuoteMeta(utf7Name)) {
		t.Errorf("IMAP4rev2 LIST shows the modified UTF-7 name: %q", u)
	}
	u = rev2.OK("STATUS " + imapQuote(utf8Name) + " (MESSAGES)")
	if !hasLine(u, `MESSAGES 1\)$`) {
		t.Errorf("IMAP4rev2 STATUS %s: %q, want MESSAGES 1", utf8Name, u)
	}
	// "&" is an ordinary character in IMAP4rev2 names: "R&D" in rev2 is "R&-D" in rev1.
	rev2.OK(`CREATE "R&D Ünïcødé"`)
	u = rev1.OK(`LIST "" "R*"`)
	if want := mutf7("R&D Ünïcødé"); !hasLine(u, regexp.QuoteMeta(want)+`"?$`) {
		t.Errorf("IMAP4rev1 LIST of a name created in rev2: %q, want %q", u, want)
	}
	rev1.OK("DELETE " + imapQuote(mutf7("R&D Ünïcødé")))
	u = rev2.OK(`LIST "" "R*"`)
	if hasLine(u, `R&D`) {
		t.Errorf("IMAP4rev2 LIST still has the mailbox rev1 deleted: %q", u)
	}
}

// TestIMAPDefaultSubscriptions: a new account's special-use mailboxes are subscribed.
// Thunderbird shows only subscribed folders by default, and mutt and Apple Mail read LSUB:
// without subscriptions a fresh account shows no Sent, Drafts or Trash in them.
func TestIMAPDefaultSubscriptions(t *testing.T) {
	tg := newIMAPTarget(t)
	r := tg.rawLogin(t)
	u := r.OK(`LSUB "" "*"`)
	for _, name := range []string{"Sent", "Drafts", "Junk", "Trash", "Archive"} {
		if !hasLine(u, `^\* LSUB \([^)]*\) \S+ "?`+name+`"?$`) {
			t.Errorf("a new account's %s is not subscribed: LSUB gives %q", name, u)
		}
	}
}

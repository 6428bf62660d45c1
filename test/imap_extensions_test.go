package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestIMAPSearchRes covers SEARCHRES (RFC 5182): SEARCH RETURN (SAVE) and "$".
func TestIMAPSearchRes(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	for i, from := range []string{"alice", "bob", "alice", "carol"} {
		appendMsg(t, c, "INBOX", strings.Replace(testMessage(fmt.Sprintf("Res %d", i), "x\r\n"), "Alice Example <alice@other.test>", from+"@other.test", 1), nil)
	}
	r := tg.rawLogin(t)
	u := r.OK("CAPABILITY")
	if !hasLine(u, `\bSEARCHRES\b`) {
		if tg.in != nil {
			t.Fatalf("imapd does not advertise SEARCHRES:\n%s", strings.Join(u, "\n"))
		}
		t.Skip("the reference server has no SEARCHRES")
	}
	r.OK("SELECT INBOX")
	// §2.1: "$" starts empty.
	if u := r.OK("FETCH $ (UID)"); len(u) != 0 {
		t.Errorf("FETCH $ before any SAVE: %q, want nothing", u)
	}
	// §2.4: SAVE alone returns no ESEARCH response.
	if u := r.OK("SEARCH RETURN (SAVE) FROM alice"); hasLine(u, `ESEARCH|^\* SEARCH`) {
		t.Errorf("SEARCH RETURN (SAVE): %q, want no result response", u)
	}
	u = r.OK("FETCH $ (FLAGS)")
	if len(u) != 2 || !hasLine(u, `^\* 1 FETCH`) || !hasLine(u, `^\* 3 FETCH`) {
		t.Errorf("FETCH $ after SEARCH RETURN (SAVE) FROM alice: %q, want messages 1 and 3", u)
	}
	// SAVE with other options returns them and saves.
	u = r.OK("UID SEARCH RETURN (SAVE COUNT) FROM bob")
	if !hasLine(u, `(?i)^\* ESEARCH \(TAG "a\d+"\) UID COUNT 1$`) {
		t.Errorf("UID SEARCH RETURN (SAVE COUNT) FROM bob: %q", u)
	}
	u = r.OK("UID FETCH $ (FLAGS)")
	if len(u) != 1 || !hasLine(u, `^\* 2 FETCH`) {
		t.Errorf("UID FETCH $ after saving bob's message: %q, want message 2", u)
	}
	// "$" in a SEARCH.
	u = r.OK("SEARCH NOT $")
	if !hasLine(u, `^\* SEARCH 1 3 4$`) {
		t.Errorf("SEARCH NOT $: %q, want 1 3 4", u)
	}
}

// TestIMAPListExtended covers LIST-EXTENDED (RFC 5258): selection and return options,
// RECURSIVEMATCH with CHILDINFO, several patterns.
func TestIMAPListExtended(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	d := delimiter(t, c)
	for _, n := range []string{"Hobbies", "Hobbies" + d + "Chess", "Hobbies" + d + "Go"} {
		if err := c.Create(n, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", n, err)
		}
	}
	if err := c.Subscribe("Hobbies" + d + "Chess").Wait(); err != nil {
		t.Fatal(err)
	}
	r := tg.rawLogin(t)
	u := r.OK(`LIST "" "Hobbies*" RETURN (CHILDREN)`)
	if !hasLine(u, `^\* LIST \([^)]*\\HasChildren[^)]*\) \S+ "?Hobbies"?$`) || !hasLine(u, `^\* LIST \([^)]*\\HasNoChildren[^)]*\) \S+ "?Hobbies.Go"?$`) {
		t.Errorf(`LIST "" "Hobbies*" RETURN (CHILDREN): %q`, u)
	}
	// §3.5: RECURSIVEMATCH reports a parent whose child matches the selection.
	u = r.OK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`)
	if !hasLine(u, `^\* LIST \([^)]*\) \S+ "?Hobbies"? \("?CHILDINFO"? \("SUBSCRIBED"\)\)$`) {
		t.Errorf(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%%": %q, want Hobbies with CHILDINFO ("SUBSCRIBED")`, u)
	}
	u = r.OK(`LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)`)
	if !hasLine(u, `^\* LIST \([^)]*\\Subscribed[^)]*\) \S+ "?Hobbies.Chess"?$`) || hasLine(u, `Hobbies.Go`) {
		t.Errorf(`LIST (SUBSCRIBED) "" "*": %q, want Hobbies/Chess \Subscribed and not Hobbies/Go`, u)
	}
	u = r.OK(`LIST "" ("INBOX" "Hobbies` + d + `Go")`)
	if len(u) != 2 {
		t.Errorf(`LIST "" ("INBOX" "Hobbies/Go"): %q, want 2 mailboxes`, u)
	}
	u = r.OK(`LIST "" "*" RETURN (SUBSCRIBED)`)
	if !hasLine(u, `^\* LIST \([^)]*\\Subscribed[^)]*\) \S+ "?Hobbies.Chess"?$`) {
		t.Errorf(`LIST RETURN (SUBSCRIBED): %q, want \Subscribed on Hobbies/Chess`, u)
	}
	r.Expect("BAD", `LIST (RECURSIVEMATCH) "" "*"`) // §3: RECURSIVEMATCH alone is an error
}

// TestIMAPRev2Responses checks what changes once a client ENABLEs IMAP4rev2 (RFC 9051
// Appendix E): no RECENT response, no UNSEEN response code, no \Recent flag.
func TestIMAPRev2Responses(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	appendMsg(t, c, "INBOX", testMessage("Rev2 one", "x\r\n"), nil)
	appendMsg(t, c, "INBOX", testMessage("Rev2 two", "x\r\n"), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
	r := tg.rawLogin(t)
	r.OK("ENABLE IMAP4rev2")
	u := r.OK("SELECT INBOX")
	if hasLine(u, `RECENT$`) || hasLine(u, `\[UNSEEN \d+\]`) {
		t.Errorf("IMAP4rev2 SELECT: %q, want no RECENT and no [UNSEEN n]", u)
	}
	if !hasLine(u, `^\* 2 EXISTS$`) || !hasLine(u, `^\* LIST \(`) {
		t.Errorf("IMAP4rev2 SELECT: %q, want * 2 EXISTS and * LIST", u)
	}
	u = r.OK("FETCH 1:* FLAGS")
	if hasLine(u, `\\Recent`) {
		t.Errorf("IMAP4rev2 FETCH FLAGS: %q, want no \\Recent", u)
	}
	u = r.OK("STATUS INBOX (MESSAGES UNSEEN DELETED SIZE)")
	if !hasLine(u, `MESSAGES 2`) || !hasLine(u, `UNSEEN 1`) || !hasLine(u, `DELETED 0`) || !hasLine(u, `SIZE \d+`) {
		t.Errorf("IMAP4rev2 STATUS: %q", u)
	}
}

// TestIMAPAppendTooBig: a message above imapd.max_message_size (50 MiB by default) is
// refused before the client sends it (RFC 9051 §7.1 TOOBIG, RFC 7889).
func TestIMAPAppendTooBig(t *testing.T) {
	tg := newIMAPTarget(t)
	r := tg.rawLogin(t)
	tag := r.Tag()
	r.Send(tag + " APPEND INBOX {60000000}\r\n")
	l, err := r.Response()
	// NO (RFC 7889 §4) or BAD (as for a too-large literal, RFC 7888 §4), before the
	// client sends the literal.
	if err != nil || !(strings.HasPrefix(l, tag+" NO") || strings.HasPrefix(l, tag+" BAD")) {
		t.Fatalf("APPEND of a 60 MB message: %q %v, want NO or BAD before the literal", l, err)
	}
	if !strings.Contains(l, "[TOOBIG]") {
		t.Errorf("APPEND of a 60 MB message: %q, want the code TOOBIG", l)
	}
	r.Alive()
}

// TestIMAPDeliveryWhileSelected: mail that local delivers shows up in a selected session on
// NOOP, with a UID at or above the UIDNEXT SELECT gave and an INTERNALDATE of its arrival.
func TestIMAPDeliveryWhileSelected(t *testing.T) {
	needPostern(t)
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	appendMsg(t, tg.login(t), "INBOX", testMessage("Before", "x\r\n"), nil)
	r := tg.rawLogin(t)
	u := r.OK("SELECT INBOX")
	var uidnext int
	for _, l := range u {
		fmt.Sscanf(l, "* OK [UIDNEXT %d]", &uidnext)
	}
	if uidnext == 0 {
		t.Fatalf("SELECT INBOX gave no UIDNEXT: %q", u)
	}
	sent := time.Now()
	in.sendMail(t, "x@other.test", "demo@example.test", testMessage("While selected", "x\r\n"))
	in.WaitMessages("demo@example.test", 2, 10*time.Second)
	in.WaitFor("NOOP to report the delivered message (* 2 EXISTS)", 10*time.Second, func() bool {
		return hasLine(r.OK("NOOP"), `^\* 2 EXISTS$`)
	})
	u = r.OK("FETCH 2 (UID INTERNALDATE ENVELOPE)")
	m := regexp.MustCompile(`UID (\d+)`).FindStringSubmatch(strings.Join(u, " "))
	if m == nil {
		t.Fatalf("FETCH 2: %q", u)
	}
	var uid int
	fmt.Sscan(m[1], &uid)
	if uid < uidnext {
		t.Errorf("the delivered message has UID %d, below the UIDNEXT %d of SELECT", uid, uidnext)
	}
	d := regexp.MustCompile(`INTERNALDATE "([^"]+)"`).FindStringSubmatch(strings.Join(u, " "))
	if d == nil {
		t.Fatalf("FETCH 2: no INTERNALDATE: %q", u)
	}
	when, err := time.Parse("_2-Jan-2006 15:04:05 -0700", d[1])
	if err != nil || when.Sub(sent).Abs() > time.Minute {
		t.Errorf("INTERNALDATE %q of the delivered message, want its arrival (about %v)", d[1], sent.UTC().Format(time.RFC3339))
	}
	if !hasLine(u, `"While selected"`) {
		t.Errorf("FETCH 2 ENVELOPE: %q", u)
	}
}

package test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// threadMail is a message of a conversation: id is its Message-ID's local part, parents
// the ids it answers, oldest first (References, RFC 5322 §3.6.4), minute its Date.
func threadMail(subject, id string, minute int, parents ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Alice Example <alice@other.test>\r\nTo: Demo User <demo@example.test>\r\nSubject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: Mon, 02 Jan 2006 15:%02d:05 +0000\r\nMessage-ID: <%s@other.test>\r\n", minute, id)
	if len(parents) > 0 {
		refs := make([]string, len(parents))
		for i, p := range parents {
			refs[i] = "<" + p + "@other.test>"
		}
		fmt.Fprintf(&b, "In-Reply-To: %s\r\nReferences: %s\r\n", refs[len(refs)-1], strings.Join(refs, " "))
	}
	b.WriteString("\r\nBody of " + id + "\r\n")
	return b.String()
}

var (
	threadRowRe = regexp.MustCompile(`(?s)<tr class="thread[^"]*" data-thread="(\d+)".*?name="uid" value="([\d,]+)".*?</tr>`)
	threadMsgRe = regexp.MustCompile(`<tr class="threadmsg depth(\d)`)
)

// TestWebmailThreads: a conversation of replies (In-Reply-To, References) delivered over
// SMTP shows in the webmail as one thread (RFC 5256 REFERENCES, threaded by imapd) with
// its count and unread count beside a message of another conversation; the view stays
// threaded across requests, opens to show the replies by depth, follows new mail and
// a move to Trash, and goes back to the flat list.
func TestWebmailThreads(t *testing.T) {
	in := NewInstance(t, "")
	const demo = "demo@example.test"
	for _, m := range []string{
		threadMail("Plans for Friday", "p1", 1),
		threadMail("Lunch?", "l1", 2),
		threadMail("Re: Plans for Friday", "p2", 3, "p1"),
		threadMail("Re: Re: Plans for Friday", "p3", 4, "p1", "p2"),
	} {
		in.sendMail(t, "alice@other.test", demo, m)
	}
	in.WaitMessages(demo, 4, 15*time.Second)

	w := in.newWebClient(t)
	if code := w.login(demo, in.Password); code != http.StatusSeeOther {
		t.Fatalf("login: %d\n%s", code, tail(in.Log(), 30))
	}
	// The flat list first, warming the order cache with the four messages.
	if _, list := w.get("/mail?f=INBOX"); len(uidLink.FindAllString(list, -1)) != 4*2 || strings.Contains(list, `class="thread`) {
		t.Fatalf("the flat list:\n%s", list)
	}
	threads := func(path string) (string, [][]string) {
		t.Helper()
		resp, page := w.get(path)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d\n%s", path, resp.StatusCode, page)
		}
		return page, threadRowRe.FindAllStringSubmatch(page, -1)
	}
	page, rows := threads("/mail?f=INBOX&view=threads")
	// Newest activity first: Plans (p3 at 15:04), then Lunch (15:02).
	if len(rows) != 2 || strings.Count(rows[0][2], ",") != 2 || strings.Contains(rows[1][2], ",") ||
		!strings.Contains(rows[0][0], `<span class="count">3</span>`) || !strings.Contains(rows[0][0], "3 unread") ||
		!strings.Contains(rows[0][0], "Plans for Friday") || !strings.Contains(rows[1][0], "Lunch?") {
		t.Fatalf("the threads:\n%s", page)
	}
	plans, lunch := rows[0], rows[1]
	if strings.Contains(page, `class="threadmsg`) {
		t.Error("a thread is open before it is asked to be")
	}

	// The session keeps the threaded view; open= opens the conversation, replies indented.
	page, rows = threads("/mail?f=INBOX&open=" + plans[1])
	if len(rows) != 2 {
		t.Fatalf("the view is not threaded any more:\n%s", page)
	}
	var depths []string
	for _, m := range threadMsgRe.FindAllStringSubmatch(page, -1) {
		depths = append(depths, m[1])
	}
	if strings.Join(depths, " ") != "0 1 2" || !strings.Contains(page, "Re: Re: Plans for Friday") {
		t.Fatalf("the open thread shows depths %v:\n%s", depths, page)
	}

	// Marking the thread read marks its three messages.
	if resp, _ := w.post("/mail/act", url.Values{"csrf": {w.csrf(page)}, "f": {"INBOX"}, "op": {"read"}, "uid": {plans[2]}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("read: %d", resp.StatusCode)
	}
	page, rows = threads("/mail?f=INBOX")
	if len(rows) != 2 || strings.Contains(rows[0][0], "unread") || strings.Contains(rows[0][0], `class="thread unseen`) || !strings.Contains(rows[1][0], `class="thread unseen`) {
		t.Fatalf("after marking the thread read:\n%s", page)
	}

	// A new reply joins the thread (the cached order is not reused for a changed folder).
	in.sendMail(t, "alice@other.test", demo, threadMail("Re: Plans for Friday", "p4", 5, "p1", "p2"))
	in.WaitMessages(demo, 5, 15*time.Second)
	page, rows = threads("/mail?f=INBOX")
	if len(rows) != 2 || !strings.Contains(rows[0][0], `<span class="count">4</span>`) || !strings.Contains(rows[0][0], "1 unread") {
		t.Fatalf("after a new reply:\n%s", page)
	}

	// Lunch to Trash: one thread left.
	if resp, _ := w.post("/mail/act", url.Values{"csrf": {w.csrf(page)}, "f": {"INBOX"}, "op": {"delete"}, "uid": {lunch[2]}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if page, rows = threads("/mail?f=INBOX"); len(rows) != 1 || strings.Contains(page, "Lunch?") {
		t.Fatalf("after deleting a thread:\n%s", page)
	}

	// Back to the flat list: the four messages of the conversation.
	_, list := w.get("/mail?f=INBOX&view=list")
	if n := len(uidLink.FindAllString(list, -1)); n != 4*2 || strings.Contains(list, `class="thread`) || strings.Contains(list, "Lunch?") {
		t.Fatalf("the flat list after threads (%d links):\n%s", n, list)
	}
}

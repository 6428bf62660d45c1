package test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestWebmailVacationDates: the account page's out-of-office reply with a first day in
// the future answers nobody; moved to a range holding today, it answers. demo sets it,
// bob (a local user) writes before and after the change: his one reply answers his
// second message, so the first got none (a reply to it would have used up bob's once
// per period). The page shows the days back, refuses a last day before the first, and
// the script tests them with currentdate (RFC 5260).
func TestWebmailVacationDates(t *testing.T) {
	in := NewInstance(t, "")
	const demo, bob = "demo@example.test", "bob@example.test"
	bobPW := in.addUser(t, bob)
	w := in.newWebClient(t)
	if code := w.login(demo, in.Password); code != http.StatusSeeOther {
		t.Fatalf("login: %d\n%s", code, tail(in.Log(), 30))
	}
	// The days as the daemons, on this host, tell them (sieve: the local time zone).
	day := func(d int) string { return time.Now().AddDate(0, 0, d).Format(time.DateOnly) }
	set := func(first, last string) (*http.Response, string) {
		t.Helper()
		_, page := w.get("/account")
		return w.post("/account/vacation", url.Values{"csrf": {w.csrf(page)}, "op": {"set"}, "subject": {"Away"},
			"message": {"I am away."}, "days": {"7"}, "first": {first}, "last": {last}})
	}
	submit := func(subject string) {
		t.Helper()
		msg := strings.Replace(testMessage(subject, "hello\r\n"), "From: Alice Example <alice@other.test>", "From: <"+bob+">", 1)
		if err := submitTo(in.SubmissionAddr(), in.tlsConfig(), in.IP, bob, bobPW, bob, []string{demo}, msg); err != nil {
			t.Fatalf("submission from %s: %v", bob, err)
		}
	}

	if resp, body := set(day(3), day(1)); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Check the first and last days of the reply") {
		t.Fatalf("a last day before the first: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := set(day(2), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("setting the reply from a future day: %d\n%s\n%s", resp.StatusCode, body, tail(in.Log(), 30))
	}
	_, page := w.get("/account")
	if !strings.Contains(page, "once every 7 days each, from "+day(2)+".") || !strings.Contains(page, `name="first" value="`+day(2)+`"`) {
		t.Fatalf("the account page does not show the first day:\n%s", page)
	}
	if !strings.Contains(page, `id="vacationzone"`) {
		t.Error("the account page does not say in which time zone the days are")
	}
	script := in.Mailctl("", "sieve", "get", demo, "postern-vacation")
	if !strings.Contains(script, `require ["vacation", "date", "relational"];`) || !strings.Contains(script, `if allof(currentdate :value "ge" "date" "`+day(2)+`") {`) {
		t.Fatalf("the script:\n%s", script)
	}

	submit("before the first day")
	in.WaitMessages(demo, 1, 20*time.Second)

	if resp, body := set(day(-1), day(1)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("setting the reply around today: %d\n%s", resp.StatusCode, body)
	}
	_, page = w.get("/account")
	if !strings.Contains(page, "from "+day(-1)+", until "+day(1)+" included.") || !strings.Contains(page, `name="last" value="`+day(1)+`"`) {
		t.Fatalf("the account page does not show both days:\n%s", page)
	}
	submit("within the days")
	replies := in.waitReplies(t, bob, 1)
	if !bytes.Contains(replies[0], []byte("In-Reply-To: <within-the-days@other.test>")) {
		t.Errorf("bob's reply does not answer the message within the days:\n%s", replies[0])
	}
	in.WaitMessages(demo, 2, 20*time.Second)
	if n := len(repliesIn(in, bob)); n != 1 {
		t.Errorf("bob got %d replies, want 1", n)
	}
	if n := in.countLog(`vacation: reply queued`); n != 1 {
		t.Errorf("%d replies queued, want 1", n)
	}
}

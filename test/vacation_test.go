package test

import (
	"bytes"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// countLog counts the lines of the instance's log that match re.
func (in *Instance) countLog(re string) int {
	return len(regexp.MustCompile(re).FindAllStringIndex(in.Log(), -1))
}

// repliesIn returns the vacation replies among the messages of addr.
func repliesIn(in *Instance, addr string) [][]byte {
	var out [][]byte
	for _, m := range in.Messages(addr) {
		if bytes.Contains(m, []byte("Auto-Submitted: auto-replied")) {
			out = append(out, m)
		}
	}
	return out
}

// TestVacationFromTheWeb: demo, whose own Sieve filter files reports into a folder,
// turns an out-of-office reply on from the account page. bob, a local user, writes:
// he gets one reply (from the null sender, Auto-Submitted, In-Reply-To his message),
// and none for his second message; mail from a list, from <>, or marked
// Auto-Submitted gets none; demo's filter still files. Turned off on the page, the
// reply stops, and demo's script is what it was.
func TestVacationFromTheWeb(t *testing.T) {
	in := NewInstance(t, "")
	const demo, bob, carol = "demo@example.test", "bob@example.test", "carol@example.test"
	pw := map[string]string{bob: in.addUser(t, bob), carol: in.addUser(t, carol)}
	// Local users write over submission (the MX takes no mail from example.test
	// without authentication).
	submit := func(from, body string) {
		t.Helper()
		if err := submitTo(in.SubmissionAddr(), in.tlsConfig(), in.IP, from, pw[from], from, []string{demo}, body); err != nil {
			t.Fatalf("submission from %s: %v", from, err)
		}
	}
	own := "require \"fileinto\";\r\nif header :contains \"subject\" \"[report]\" { fileinto \"Reports\"; }\r\n"
	in.Mailctl(own, "sieve", "put", demo, "rules")
	in.Mailctl("", "sieve", "activate", demo, "rules")

	w := in.newWebClient(t)
	if code := w.login(demo, in.Password); code != http.StatusSeeOther {
		t.Fatalf("login: %d\n%s", code, tail(in.Log(), 30))
	}
	_, page := w.get("/account")
	if !strings.Contains(page, `id="vacationstate"><strong>Off.</strong>`) {
		t.Fatalf("the account page does not show the reply off:\n%s", page)
	}
	// Without the CSRF token, nothing changes.
	if resp, _ := w.post("/account/vacation", url.Values{"op": {"set"}, "message": {"x"}, "days": {"3"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a change without the CSRF token: %d", resp.StatusCode)
	}
	resp, body := w.post("/account/vacation", url.Values{"csrf": {w.csrf(page)}, "op": {"set"}, "subject": {"Out of office"},
		"message": {"I am away until Monday.\r\nAnn covers for me."}, "days": {"3"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("setting the reply: %d\n%s\n%s", resp.StatusCode, body, tail(in.Log(), 30))
	}
	_, page = w.get("/account")
	if !strings.Contains(page, "<strong>On:</strong> senders get your reply “Out of office”, once every 3 days each.") ||
		!strings.Contains(page, "I am away until Monday.") {
		t.Fatalf("the account page does not show the reply on:\n%s", page)
	}
	// sieved holds it, in the user's own active script, beside the user's filter.
	if out := in.Mailctl("", "sieve", "list", demo); out != "rules\tactive\n" {
		t.Errorf("scripts after the page set the reply: %q", out)
	}
	script := in.Mailctl("", "sieve", "get", demo, "rules")
	if !strings.Contains(script, "vacation :days 3") || !strings.Contains(script, `fileinto "Reports"`) {
		t.Errorf("the active script:\n%s", script)
	}

	// bob writes twice: one reply.
	msg := func(from, subject string, extra ...string) string {
		return strings.Replace(testMessage(subject, "hello\r\n", extra...), "From: Alice Example <alice@other.test>", "From: <"+from+">", 1)
	}
	submit(bob, msg(bob, "lunch?"))
	replies := in.waitReplies(t, bob, 1)
	r := replies[0]
	for _, want := range []string{"Return-Path: <>", "Delivered-To: " + bob, "From: " + demo, "To: <" + bob + ">", "Subject: Out of office",
		"In-Reply-To: <lunch?@other.test>", "Auto-Submitted: auto-replied", "I am away until Monday.\r\nAnn covers for me."} {
		if !bytes.Contains(r, []byte(want)) {
			t.Errorf("the reply lacks %q:\n%s", want, r)
		}
	}
	submit(bob, msg(bob, "[report] again"))
	// Mail from a list, from <>, and automatic mail: delivered, not answered.
	submit(carol, msg(carol, "list post", "List-Id: <team.example.test>"))
	in.sendMail(t, "", demo, testMessage("null sender", "hello\r\n"))
	submit(carol, msg(carol, "robot", "Auto-Submitted: auto-generated"))
	in.WaitFor("the four messages delivered and not answered", 20*time.Second, func() bool {
		return in.countLog(`vacation: not answered`) >= 4
	})
	log := in.Log()
	for _, why := range []string{`why="answered already within the period"`, `why="mailing list \(List-Id\)"`, `why="null sender"`, `why="Auto-Submitted: auto-generated"`} {
		if !regexp.MustCompile(`vacation: not answered.* ` + why).MatchString(log) {
			t.Errorf("no log line saying a message was not answered: %s\n%s", why, tail(log, 40))
		}
	}
	// carol writing personally gets her reply, which came after the others: bob still
	// has one, carol one.
	submit(carol, msg(carol, "personal"))
	in.waitReplies(t, carol, 1)
	if n := len(repliesIn(in, bob)); n != 1 {
		t.Errorf("bob got %d replies, want 1", n)
	}
	// demo's own filter still works under the reply.
	in.WaitFor("the report filed by demo's filter", 10*time.Second, func() bool {
		n, _ := filepath.Glob(filepath.Join(in.Maildir(demo), ".Reports", "new", "*"))
		c, _ := filepath.Glob(filepath.Join(in.Maildir(demo), ".Reports", "cur", "*"))
		return len(n)+len(c) == 1
	})

	// Off: the script is the user's own again, and nobody is answered.
	_, page = w.get("/account")
	resp, _ = w.post("/account/vacation", url.Values{"csrf": {w.csrf(page)}, "op": {"clear"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("clearing the reply: %d", resp.StatusCode)
	}
	_, page = w.get("/account")
	if !strings.Contains(page, `id="vacationstate"><strong>Off.</strong>`) {
		t.Errorf("the account page does not show the reply off")
	}
	if got := in.Mailctl("", "sieve", "get", demo, "rules"); got != own {
		t.Errorf("the script after the reply was cleared:\n%q\nwant\n%q", got, own)
	}
	before := len(in.Messages(demo))
	submit(carol, msg(carol, "anyone?"))
	in.WaitMessages(demo, before+1, 10*time.Second)
	if n := in.countLog(`vacation: reply queued`); n != 2 {
		t.Errorf("%d replies queued in all, want 2 (bob's and carol's)", n)
	}
	if n := in.countLog(`vacation: not answered`); n != 4 {
		t.Errorf("%d messages judged not to answer, want 4: after the reply is off, no judging", n)
	}
}

// waitReplies waits until addr holds n vacation replies, and returns them.
func (in *Instance) waitReplies(t *testing.T, addr string, n int) [][]byte {
	t.Helper()
	var got [][]byte
	in.WaitFor("vacation replies to "+addr, 20*time.Second, func() bool {
		got = repliesIn(in, addr)
		return len(got) >= n
	})
	return got
}

// TestVacationTwoInstances: bob@b.test's vacation answers alice@a.test once across
// the internet-like pair: the reply reaches alice's Maildir from the null sender,
// marked Auto-Submitted, DKIM-signed by b.test (A's spamd finds it passes DMARC, whose
// policy there is reject), and her second message gets none.
func TestVacationTwoInstances(t *testing.T) {
	p := newPair(t)
	A, B := p.A, p.B
	B.Mailctl("", "dkim", "generate", "b.test")
	p.Publish(B, "b.test")
	B.Mailctl("require \"vacation\";\nvacation :days 1 :subject \"Away\" \"Back next week.\";\n", "sieve", "put", "bob@b.test", "away")
	B.Mailctl("", "sieve", "activate", "bob@b.test", "away")

	first := simpleMessage("alice@a.test", "bob@b.test", "v1@a.test", "Are you there?")
	if err := p.Submit(t, A, "alice@a.test", "alice@a.test", []string{"bob@b.test"}, first); err != nil {
		t.Fatal(err)
	}
	replies := A.waitReplies(t, "alice@a.test", 1)
	r := replies[0]
	for _, want := range []string{"Return-Path: <>", "From: bob@b.test", "Subject: Away", "In-Reply-To: <v1@a.test>",
		"Auto-Submitted: auto-replied", "DKIM-Signature: ", "d=b.test", "dmarc=pass", "Back next week."} {
		if !bytes.Contains(r, []byte(want)) {
			t.Errorf("alice's reply lacks %q:\n%s", want, r)
		}
	}
	second := simpleMessage("alice@a.test", "bob@b.test", "v2@a.test", "Hello?")
	if err := p.Submit(t, A, "alice@a.test", "alice@a.test", []string{"bob@b.test"}, second); err != nil {
		t.Fatal(err)
	}
	B.WaitMessages("bob@b.test", 2, 20*time.Second)
	B.WaitFor("bob's second message not answered", 10*time.Second, func() bool {
		return B.countLog(`vacation: not answered.* why="answered already within the period"`) == 1
	})
	if n := B.countLog(`vacation: reply queued`); n != 1 {
		t.Errorf("B queued %d replies, want 1", n)
	}
}

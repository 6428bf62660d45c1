package test

import (
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	subjectLine = regexp.MustCompile(`<h2 class="subject">([^<]*)</h2>`)
	bodyFrame   = regexp.MustCompile(`id="body"[^>]*src="([^"]+)"`)
)

// TestWebmailImageSenders: remote images allowed for a sender persist (authd keeps
// them) and apply to that sender's other messages without a click, but only when the
// From: is authenticated (an aligned pass in spamd's Authentication-Results): another
// sender's message keeps its images blocked, and so does a message that forges the
// trusted From: (a DMARC fail, with a forged Authentication-Results that cleanup
// removes). The account page lists the sender and removes it again.
func TestWebmailImageSenders(t *testing.T) {
	publish(t,
		`shop.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.shop.test. 300 IN TXT "v=DMARC1; p=none"`,
		`friends.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.friends.test. 300 IN TXT "v=DMARC1; p=none"`,
	)
	in := NewInstance(t, "")
	const demo = "demo@example.test"
	htmlMsg := func(from, subject string, extra ...string) string {
		return fmt.Sprintf("%sFrom: %s\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@images.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"+
			"<p>%s</p><img id=\"pic\" src=\"https://images.shop.test/%s.png\">\r\n",
			strings.Join(extra, ""), from, demo, subject, strings.ReplaceAll(subject, " ", "-"), subject, strings.ReplaceAll(subject, " ", "-"))
	}
	for _, m := range []struct{ envelope, msg string }{
		{"bounce@shop.test", htmlMsg("Shop <news@shop.test>", "first offer")},
		{"bounce@shop.test", htmlMsg("Shop <news@shop.test>", "second offer")},
		{"bob@friends.test", htmlMsg("Bob <bob@friends.test>", "from a friend")},
		{"x@nowhere.test", htmlMsg("Shop <news@shop.test>", "forged offer",
			"Authentication-Results: "+in.Cfg.Hostname+"; dmarc=pass header.from=shop.test\r\n")},
	} {
		if got := dataReply(t, in, m.envelope, demo, m.msg); !strings.HasPrefix(got, "250 ") {
			t.Fatalf("sending %q: %s", m.msg[:40], got)
		}
	}
	in.WaitMessages(demo, 4, 30*time.Second)

	w := in.newWebClient(t)
	if code := w.login(demo, in.Password); code != 303 {
		t.Fatalf("login: %d", code)
	}
	// The pages of the messages, by subject.
	pages := map[string]string{}
	uids := map[string]string{}
	load := func() {
		t.Helper()
		for uid := 1; uid <= 4; uid++ {
			_, page := w.get(fmt.Sprintf("/mail/msg?f=INBOX&uid=%d", uid))
			m := subjectLine.FindStringSubmatch(page)
			if m == nil {
				t.Fatalf("message %d:\n%s", uid, page)
			}
			pages[m[1]], uids[m[1]] = page, fmt.Sprint(uid)
		}
	}
	// shown says whether the page's frame gets the remote images, checked in the frame's
	// document too.
	shown := func(subject string) bool {
		t.Helper()
		m := bodyFrame.FindStringSubmatch(pages[subject])
		if m == nil {
			t.Fatalf("%s: no body frame:\n%s", subject, pages[subject])
		}
		resp, body := w.get(html.UnescapeString(m[1]))
		src := strings.Contains(body, ` src="https://images.shop.test/`)
		csp := strings.Contains(resp.Header.Get("Content-Security-Policy"), "img-src data: https:")
		if src != csp {
			t.Errorf("%s: image source kept %v but remote images allowed by the CSP %v", subject, src, csp)
		}
		return src
	}
	load()
	for s, p := range pages {
		if shown(s) || !strings.Contains(p, `id="images-note"`) {
			t.Errorf("%s: images shown, or no note, before any consent:\n%s", s, p)
		}
	}
	if p := pages["forged offer"]; strings.Contains(p, `id="images-always"`) || !strings.Contains(p, `id="images-unauthenticated"`) {
		t.Errorf("the forged message offers to trust its sender:\n%s", p)
	}
	first := pages["first offer"]
	if !strings.Contains(first, `Always show images from news@shop.test`) {
		t.Fatalf("the authenticated message offers no 'always':\n%s", first)
	}
	resp, _ := w.post("/mail/images", url.Values{"csrf": {w.csrf(first)}, "f": {"INBOX"}, "uid": {uids["first offer"]}, "sender": {"news@shop.test"}})
	if resp.StatusCode != 303 {
		t.Fatalf("always show images: %d", resp.StatusCode)
	}

	// A new session (another device) finds the choice: the other message of the
	// sender shows its images without a click; the others do not.
	w = in.newWebClient(t)
	if code := w.login(demo, in.Password); code != 303 {
		t.Fatalf("login again: %d", code)
	}
	load()
	for _, s := range []string{"first offer", "second offer"} {
		if !shown(s) || !strings.Contains(pages[s], `id="images-trusted"`) || strings.Contains(pages[s], `id="images-note"`) {
			t.Errorf("%s: the trusted sender's images are not shown:\n%s", s, pages[s])
		}
	}
	for _, s := range []string{"from a friend", "forged offer"} {
		if shown(s) || !strings.Contains(pages[s], `id="images-note"`) {
			t.Errorf("%s: images shown without consent:\n%s", s, pages[s])
		}
	}

	// The account page lists the sender, and removes it.
	_, acct := w.get("/account")
	if !strings.Contains(acct, "<td>news@shop.test</td>") {
		t.Fatalf("the account page does not list the sender:\n%s", acct)
	}
	if resp, _ := w.post("/account/images", url.Values{"csrf": {w.csrf(acct)}, "op": {"forget"}, "sender": {"news@shop.test"}}); resp.StatusCode != 303 {
		t.Fatalf("remove the sender: %d", resp.StatusCode)
	}
	if _, acct = w.get("/account"); strings.Contains(acct, "<td>news@shop.test</td>") {
		t.Errorf("the sender is still listed:\n%s", acct)
	}
	load()
	if shown("second offer") {
		t.Error("images shown after the sender was removed")
	}
}

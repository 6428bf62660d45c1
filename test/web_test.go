package test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The webmail's end-to-end tests: a browser's requests (Go's HTTP client with a cookie
// jar) over HTTPS to httpd, which reads and sends the mail through the instance's own
// imapd and smtpd.

// HTTPSAddr is the address of httpd's https listener.
func (in *Instance) HTTPSAddr() string {
	return net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+443))
}

// webClient is a browser session on the instance's webmail.
type webClient struct {
	t    *testing.T
	in   *Instance
	base string
	c    *http.Client
}

// newWebClient waits for httpd and returns a client that trusts the instance's
// certificate and keeps cookies, and does not follow redirects (the tests look at them).
func (in *Instance) newWebClient(t *testing.T) *webClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	tc := in.tlsConfig()
	w := &webClient{t: t, in: in, base: "https://" + in.HTTPSAddr(), c: &http.Client{
		Jar:       jar,
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tc},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
	in.WaitFor("httpd to answer over TLS", 20*time.Second, func() bool {
		c, err := tls.Dial("tcp", in.HTTPSAddr(), tc)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return w
}

// do sends a request and returns the response with its body read.
func (w *webClient) do(req *http.Request) (*http.Response, string) {
	w.t.Helper()
	resp, err := w.c.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (w *webClient) get(path string) (*http.Response, string) {
	w.t.Helper()
	req, _ := http.NewRequest("GET", w.base+path, nil)
	return w.do(req)
}

func (w *webClient) post(path string, form url.Values) (*http.Response, string) {
	w.t.Helper()
	req, _ := http.NewRequest("POST", w.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return w.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the token of the forms of a page.
func (w *webClient) csrf(page string) string {
	w.t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		w.t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// login logs in through the form and returns the HTTP status of the answer to the POST.
func (w *webClient) login(user, password string) int {
	w.t.Helper()
	_, page := w.get("/login")
	resp, _ := w.post("/login", url.Values{"csrf": {w.csrf(page)}, "user": {user}, "password": {password}})
	return resp.StatusCode
}

var uidLink = regexp.MustCompile(`/mail/msg\?f=INBOX&(?:amp;)?uid=(\d+)`)

// TestWebmail: a user logs in over HTTPS, lists INBOX, reads an HTML message delivered
// over SMTP (its script removed) and downloads its attachment, sends a message with an
// attachment that arrives in another account (and a copy in Sent), moves the first
// message to Junk (and spamd learns it, through imapd), and logs out; a POST without
// the CSRF token changes nothing.
func TestWebmail(t *testing.T) {
	in := NewInstance(t, "")
	const demo = "demo@example.test"
	in.addUser(t, "bob@example.test")
	attachment := "attached bytes \x00\x01 for the test"
	msg := testMessage("Web hello", "--BOUNDARY\r\n"+
		"Content-Type: text/html; charset=utf-8\r\n\r\n"+
		"<p onclick=\"window.pwned=1\">Hello <b>web</b></p><script>window.pwned=1</script><img src=\"https://tracker.example/x.png\">\r\n"+
		"--BOUNDARY\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		base64.StdEncoding.EncodeToString([]byte(attachment))+"\r\n"+
		"--BOUNDARY--\r\n",
		"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="BOUNDARY"`)
	in.sendMail(t, "alice@other.test", demo, msg)
	in.WaitMessages(demo, 1, 10*time.Second)

	w := in.newWebClient(t)
	if code := w.login(demo, "wrong password"); code != http.StatusUnauthorized {
		t.Errorf("a wrong password: %d", code)
	}
	if code := w.login(demo, in.Password); code != http.StatusSeeOther {
		t.Fatalf("login: %d\n%s", code, tail(in.Log(), 30))
	}
	resp, list := w.get("/mail?f=INBOX")
	if resp.StatusCode != 200 || !strings.Contains(list, "Web hello") || !strings.Contains(list, "Junk") {
		t.Fatalf("INBOX: %d\n%s", resp.StatusCode, list)
	}
	m := uidLink.FindStringSubmatch(list)
	if m == nil {
		t.Fatalf("no message link in the list:\n%s", list)
	}
	uid := m[1]

	_, page := w.get("/mail/msg?f=INBOX&uid=" + uid)
	if !strings.Contains(page, "data.bin") || !strings.Contains(page, "Alice Example") {
		t.Errorf("message page lacks the attachment or the sender:\n%s", page)
	}
	resp, body := w.get("/mail/body?f=INBOX&uid=" + uid)
	if !strings.Contains(body, "Hello <b>web</b>") || strings.Contains(body, "<script") || strings.Contains(body, "onclick") || strings.Contains(body, "pwned") {
		t.Errorf("the body is not the sanitized HTML:\n%s", body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "img-src data:;") {
		t.Errorf("body CSP %q", csp)
	}
	resp, data := w.get("/mail/part?f=INBOX&uid=" + uid + "&part=2")
	if data != attachment || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("attachment: %q, %q", data, resp.Header.Get("Content-Disposition"))
	}

	// A state change without the CSRF token is refused, and changes nothing.
	if resp, _ := w.post("/mail/act", url.Values{"f": {"INBOX"}, "op": {"junk"}, "uid": {uid}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an action without the CSRF token: %d", resp.StatusCode)
	}

	// Send a message with an attachment to bob.
	_, compose := w.get("/mail/compose?mode=reply&f=INBOX&uid=" + uid)
	if !strings.Contains(compose, "Re: Web hello") || !strings.Contains(compose, "alice@other.test") {
		t.Errorf("the reply form is not filled in:\n%s", compose)
	}
	var mb bytes.Buffer
	mw := multipart.NewWriter(&mb)
	for k, v := range map[string]string{"csrf": w.csrf(compose), "from": demo, "to": "Bob <bob@example.test>",
		"subject": "From the web", "body": "Sent from webmail.\nSecond line.", "action": "send"} {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("attach", "report.txt")
	fw.Write([]byte("the report's contents"))
	mw.Close()
	req, _ := http.NewRequest("POST", w.base+"/mail/send", &mb)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if resp, b := w.do(req); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("send: %d\n%s\n%s", resp.StatusCode, b, tail(in.Log(), 30))
	}
	got := in.WaitMessages("bob@example.test", 1, 15*time.Second)
	if s := string(got[0]); !strings.Contains(s, "Subject: From the web") || !strings.Contains(s, "report.txt") ||
		!strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("the report's contents"))) || !strings.Contains(s, "Sent from webmail.") {
		t.Errorf("bob's message:\n%s", s)
	}
	_, sent := w.get("/mail?f=Sent")
	if !strings.Contains(sent, "From the web") {
		t.Errorf("no copy in Sent:\n%s", sent)
	}

	// Search through imapd's SEARCH.
	if _, found := w.get("/mail?f=INBOX&q=" + url.QueryEscape("Web hello")); !strings.Contains(found, `uid=`+uid) {
		t.Errorf("search did not find the message:\n%s", found)
	}
	if _, none := w.get("/mail?f=INBOX&q=nosuchwordanywhere"); strings.Contains(none, "Web hello") || !strings.Contains(none, "No messages.") {
		t.Errorf("search for a missing word:\n%s", none)
	}

	// A draft is saved to Drafts and resumed from there.
	_, compose = w.get("/mail/compose")
	if resp, b := w.post("/mail/send", url.Values{"csrf": {w.csrf(compose)}, "from": {demo}, "to": {"bob@example.test"},
		"subject": {"Unfinished thoughts"}, "body": {"to be continued"}, "action": {"save"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save draft: %d\n%s", resp.StatusCode, b)
	}
	_, drafts := w.get("/mail?f=Drafts")
	dm := regexp.MustCompile(`compose\?mode=draft&(?:amp;)?f=Drafts&(?:amp;)?uid=(\d+)`).FindStringSubmatch(drafts)
	if dm == nil || !strings.Contains(drafts, "Unfinished thoughts") {
		t.Fatalf("no draft in Drafts:\n%s", drafts)
	}
	if _, resumed := w.get("/mail/compose?mode=draft&f=Drafts&uid=" + dm[1]); !strings.Contains(resumed, "to be continued") || !strings.Contains(resumed, `value="Unfinished thoughts"`) {
		t.Errorf("the draft is not resumed:\n%s", resumed)
	}

	// Flag.
	_, list = w.get("/mail?f=INBOX")
	if resp, _ := w.post("/mail/act", url.Values{"csrf": {w.csrf(list)}, "f": {"INBOX"}, "op": {"flag"}, "uid": {uid}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("flag: %d", resp.StatusCode)
	}
	if _, list = w.get("/mail?f=INBOX"); !strings.Contains(list, `class=" flagged"`) {
		t.Errorf("the flag is not shown:\n%s", list)
	}

	// Junk: a move through imapd, which spamd learns from.
	if resp, _ := w.post("/mail/act", url.Values{"csrf": {w.csrf(list)}, "f": {"INBOX"}, "op": {"junk"}, "uid": {uid}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("junk: %d", resp.StatusCode)
	}
	in.WaitFor("the message in Junk", 10*time.Second, func() bool { return len(junk(in, demo)) == 1 })
	learned := regexp.MustCompile(`(?m)^demo@example\.test\s+1\s+0\s`)
	in.WaitFor("spamd to learn the message moved to Junk", 10*time.Second, func() bool {
		return learned.MatchString(in.Mailctl("", "spam", "status"))
	})
	_, jl := w.get("/mail?f=Junk")
	if !strings.Contains(jl, "Web hello") || !strings.Contains(jl, `value="notjunk"`) {
		t.Errorf("the Junk folder in webmail:\n%s", jl)
	}

	// Logout ends the session.
	resp, _ = w.post("/logout", url.Values{"csrf": {w.csrf(jl)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	if resp, _ := w.get("/mail"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("after logout: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if log := in.Log(); strings.Contains(log, in.Password) {
		t.Error("the password is in the log")
	}
}

// TestWebRedirect: the http listener sends every request to https.
func TestWebRedirect(t *testing.T) {
	in := NewInstance(t, "")
	in.newWebClient(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("http://" + net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+80)) + "/mail?f=INBOX")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "https://" + in.HTTPSAddr() + "/mail?f=INBOX"
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Errorf("%d %q; want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

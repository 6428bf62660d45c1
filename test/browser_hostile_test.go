package test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// remoteServer stands for the rest of the internet in the hostile-mail tests: an HTTP
// server on loopback that counts the requests it gets, by path. Under /img/ it answers
// a 1×1 PNG, the image a message is allowed to load once the user consents.
type remoteServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

// onePixelPNG is a 1×1 transparent PNG.
var onePixelPNG, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")

func newRemoteServer(t *testing.T) *remoteServer {
	r := &remoteServer{hits: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits[req.URL.Path]++
		r.mu.Unlock()
		if strings.HasPrefix(req.URL.Path, "/img/") {
			w.Header().Set("Content-Type", "image/png")
			w.Write(onePixelPNG)
			return
		}
		// What a tracker or an attacker's page would answer: something that runs.
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<script>top.pwned=1</script>`)
	}))
	t.Cleanup(r.Close)
	return r
}

// paths lists the paths requested so far, with their counts.
func (r *remoteServer) paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for p, n := range r.hits {
		out = append(out, fmt.Sprintf("%s (%d)", p, n))
	}
	sort.Strings(out)
	return out
}

// login logs the browser in to the webmail at web through its form and waits for the
// message list.
func (b *browser) login(web, user, password string) {
	b.t.Helper()
	b.navigate(web + "/login")
	b.waitFor("the login form", `document.getElementById("login")`)
	b.eval(fmt.Sprintf(`document.querySelector("input[name=user]").value = %q;
		document.querySelector("input[name=password]").value = %q;
		document.getElementById("login").submit(); true`, user, password))
	b.waitFor("the message list", `location.pathname === "/mail" && document.getElementById("messages")`)
}

// str evaluates an expression whose value is a string.
func (b *browser) str(expr string) string {
	b.t.Helper()
	var s string
	json.Unmarshal([]byte(b.eval(expr)), &s)
	return s
}

// TestWebmailBrowserHostileCorpus: each of the hostile HTML mails of testdata/hostile
// (scripts, event handlers, javascript: and data: URLs, SVG, CSS url() and expressions,
// <base>, forms, meta refresh, frames, objects, srcset, @import, mXSS, broken markup,
// encoded URLs...) is delivered over SMTP and opened in headless Chromium, in the
// message page and its body by itself. No payload runs (top.pwned, which they all
// set, stays unset, and the title is not theirs) and the loopback "remote" server they
// point at is never asked for anything. Then, for one message, the user allows remote
// images: its image loads, and nothing else does.
func TestWebmailBrowserHostileCorpus(t *testing.T) {
	b := newBrowser(t)
	remote := newRemoteServer(t)
	_, rport, _ := net.SplitHostPort(remote.Listener.Addr().String())
	in := NewInstance(t, "")
	const demo = "demo@example.test"

	files, err := filepath.Glob("testdata/hostile/*.html")
	if err != nil || len(files) < 50 {
		t.Fatalf("the hostile corpus has %d mails (%v), want at least 50", len(files), err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		body := strings.ReplaceAll(string(data), "REMOTE", remote.URL)
		body = strings.ReplaceAll(body, "RPORT", rport)
		body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
		name := strings.TrimSuffix(filepath.Base(f), ".html")
		in.sendMail(t, "alice@other.test", demo, testMessage("Hostile "+name, body,
			"MIME-Version: 1.0", "Content-Type: text/html; charset=utf-8"))
	}
	consent := `<p>Consent</p><img id="pic" src="` + remote.URL + `/img/pic.png" width="10" height="10">` +
		`<div style="background:url(` + remote.URL + `/hit/consent-bg.png)">bg</div>` +
		`<script src="` + remote.URL + `/hit/consent.js"></script><iframe src="` + remote.URL + `/hit/consent-frame"></iframe>` +
		`<link rel="stylesheet" href="` + remote.URL + `/hit/consent.css"><video poster="` + remote.URL + `/hit/consent-poster.png"></video>`
	in.sendMail(t, "alice@other.test", demo, testMessage("Consent images", consent,
		"MIME-Version: 1.0", "Content-Type: text/html; charset=utf-8"))
	n := len(files) + 1
	in.WaitMessages(demo, n, 60*time.Second)
	web := "https://" + in.HTTPSAddr()
	in.newWebClient(t) // waits for httpd
	b.login(web, demo, in.Password)

	seen := map[string]bool{}
	consentUID := 0
	for uid := 1; uid <= n; uid++ {
		b.navigate(fmt.Sprintf("%s/mail/msg?f=INBOX&uid=%d", web, uid))
		b.waitFor("the message page", `document.getElementById("body")`)
		subject := b.str(`document.querySelector("h2.subject").textContent`)
		if subject == "Consent images" {
			consentUID = uid
			continue
		}
		seen[subject] = true
		// The page's load event comes after its frame's: the payloads had their chance.
		if got := b.eval(`typeof window.pwned`); got != `"undefined"` {
			t.Errorf("%s: a payload ran in the message page: window.pwned is %s", subject, got)
		}
		if title := b.str(`document.title`); title == "pwned" {
			t.Errorf("%s: a payload set the message page's title", subject)
		}
		// The body by itself, without the frame's sandbox: the sanitizer and the
		// body's Content-Security-Policy alone.
		src := b.str(`document.getElementById("body").src`)
		b.navigate(src)
		b.waitFor(subject+"'s body", `document.body && document.body.textContent.includes("hostile")`)
		if got := b.eval(`typeof window.pwned`); got != `"undefined"` {
			t.Errorf("%s: a payload ran in the message body: window.pwned is %s", subject, got)
		}
		if title := b.str(`document.title`); title == "pwned" {
			t.Errorf("%s: a payload set the message body's title", subject)
		}
		if hits := remote.paths(); len(hits) > 0 {
			t.Errorf("%s: the remote server was asked, without consent, for %v", subject, hits)
			remote.mu.Lock()
			clear(remote.hits)
			remote.mu.Unlock()
		}
	}
	if len(seen) != len(files) {
		t.Errorf("opened %d of the %d hostile mails", len(seen), len(files))
	}
	if consentUID == 0 {
		t.Fatal("the consent message was not found")
	}

	// Without consent its image is not fetched either; with it, only the image is.
	b.navigate(fmt.Sprintf("%s/mail/msg?f=INBOX&uid=%d", web, consentUID))
	if hits := remote.paths(); len(hits) > 0 {
		t.Errorf("remote resources fetched before consent: %v", hits)
	}
	b.eval(`document.querySelector("#images-note a").click(); true`)
	b.waitFor("the message with its images", `location.search.includes("images=1") && document.readyState === "complete"`)
	src := b.str(`document.getElementById("body").src`)
	b.navigate(src)
	b.waitFor("the remote image", `document.getElementById("pic") && document.getElementById("pic").complete && document.getElementById("pic").naturalWidth === 1`)
	remote.mu.Lock()
	for p, c := range remote.hits {
		if p != "/img/pic.png" {
			t.Errorf("with images allowed, the message also fetched %s (%d times)", p, c)
		}
	}
	if remote.hits["/img/pic.png"] == 0 {
		t.Error("the allowed image was not fetched from the remote server")
	}
	remote.mu.Unlock()
	if got := b.eval(`typeof window.pwned`); got != `"undefined"` {
		t.Errorf("with images allowed, a payload ran: window.pwned is %s", got)
	}
}

package main

import (
	"net/http"
	"strings"
	"testing"
)

// htmlMessage is an HTML message with a remote image and an inline one (cid:).
const htmlMessage = "From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: Pictures\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
	`<p>Hello <img src="https://tracker.example/p.png"> <img src="cid:logo@example.org"></p>` + "\r\n" +
	"--b\r\nContent-Type: image/png\r\nContent-ID: <logo@example.org>\r\nContent-Transfer-Encoding: base64\r\n\r\nUE5HREFUQQ==\r\n--b--\r\n"

// TestOpenMessageFetchesOnce opens messages as a browser does (the page, then the body of
// its frame) and counts the FETCHes of their bodies at imapd: one per message, whether
// the page needs the body (an HTML body, for its remote images) or not (plain text), and
// none for the frame shown again with the images.
func TestOpenMessageFetchesOnce(t *testing.T) {
	s, _ := newTestServer(t)
	f := newFakeIMAP(t, s)
	f.add(t, htmlMessage)
	f.add(t, "From: bob@example.org\r\nSubject: Plain\r\n\r\nJust text.\r\n")
	c := login(t, s)

	get := func(target string) string {
		t.Helper()
		w := do(s, "GET", target, nil, c)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
		}
		return w.Body.String()
	}
	page := get("/mail/msg?f=INBOX&uid=1")
	if !strings.Contains(page, `id="images-once"`) {
		t.Fatal("the message page does not offer to show the remote images")
	}
	body := get("/mail/body?f=INBOX&uid=1")
	if !strings.Contains(body, `data-remote-src="https://tracker.example/p.png"`) || !strings.Contains(body, `src="data:image/png;base64,UE5HREFUQQ=="`) {
		t.Fatalf("the body lacks its blocked remote image or its inline one:\n%s", body)
	}
	if n := f.fetches(); n != 1 {
		t.Fatalf("opening an HTML message fetched its body %d times, want 1", n)
	}
	shown := get("/mail/body?f=INBOX&uid=1&images=1")
	if !strings.Contains(shown, `src="https://tracker.example/p.png"`) || !strings.Contains(shown, `src="data:image/png;base64,UE5HREFUQQ=="`) {
		t.Fatalf("the body with images allowed lacks them:\n%s", shown)
	}
	if n := f.fetches(); n != 1 {
		t.Fatalf("showing the images fetched the body again (%d fetches)", n)
	}

	get("/mail/msg?f=INBOX&uid=2")
	if body := get("/mail/body?f=INBOX&uid=2"); !strings.Contains(body, "Just text.") {
		t.Fatalf("the plain body is missing:\n%s", body)
	}
	if n := f.fetches(); n != 2 {
		t.Fatalf("opening a plain text message fetched its body %d times, want 1", n-1)
	}
}

package test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestWebmailDraftAttachments: a draft saved with attachments keeps them when resumed:
// the compose page lists them, and the message sent from it carries them (but the one
// whose remove box was ticked), byte for byte in the recipient's Maildir, streamed by
// httpd from imapd. The draft is gone from Drafts afterwards.
func TestWebmailDraftAttachments(t *testing.T) {
	in := NewInstance(t, "")
	const demo = "demo@example.test"
	in.addUser(t, "bob@example.test")
	w := in.newWebClient(t)
	if code := w.login(demo, in.Password); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	// Every octet value, and more than one IMAP literal chunk.
	keep := make([]byte, 300<<10)
	for i := range keep {
		keep[i] = byte(i * 7 % 256)
	}
	dropped := []byte("this one is removed before sending")
	post := func(fields map[string][]string, files map[string][]byte) (*http.Response, string) {
		t.Helper()
		var mb bytes.Buffer
		mw := multipart.NewWriter(&mb)
		for k, vs := range fields {
			for _, v := range vs {
				mw.WriteField(k, v)
			}
		}
		for name, data := range files {
			fw, _ := mw.CreateFormFile("attach", name)
			fw.Write(data)
		}
		mw.Close()
		req, _ := http.NewRequest("POST", w.base+"/mail/send", &mb)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		return w.do(req)
	}
	_, compose := w.get("/mail/compose")
	if resp, b := post(map[string][]string{"csrf": {w.csrf(compose)}, "from": {demo}, "to": {"bob@example.test"},
		"subject": {"Draft with files"}, "body": {"see the files"}, "action": {"save"}},
		map[string][]byte{"data.bin": keep, "old.txt": dropped}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save draft: %d\n%s", resp.StatusCode, b)
	}
	_, drafts := w.get("/mail?f=Drafts")
	dm := regexp.MustCompile(`compose\?mode=draft&(?:amp;)?f=Drafts&(?:amp;)?uid=(\d+)`).FindStringSubmatch(drafts)
	if dm == nil {
		t.Fatalf("no draft in Drafts:\n%s", drafts)
	}
	_, resumed := w.get("/mail/compose?mode=draft&f=Drafts&uid=" + dm[1])
	drops := map[string]string{}
	for _, m := range regexp.MustCompile(`<div>([^<]+) <small>[^<]*</small> <label class="inline"><input type="checkbox" name="drop" value="([0-9.]+)">`).FindAllStringSubmatch(resumed, -1) {
		drops[m[1]] = m[2]
	}
	if drops["data.bin"] == "" || drops["old.txt"] == "" || !strings.Contains(resumed, "see the files") {
		t.Fatalf("the resumed draft does not list its attachments %v:\n%s", drops, resumed)
	}
	if resp, b := post(map[string][]string{"csrf": {w.csrf(resumed)}, "from": {demo}, "to": {"bob@example.test"},
		"subject": {"Draft with files"}, "body": {"see the files"}, "action": {"send"}, "draft": {dm[1]}, "drop": {drops["old.txt"]}},
		map[string][]byte{"new.txt": []byte("added at sending")}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("send the draft: %d\n%s\n%s", resp.StatusCode, b, tail(in.Log(), 20))
	}
	got := in.WaitMessages("bob@example.test", 1, 20*time.Second)
	atts := attachments(t, got[0])
	if !bytes.Equal(atts["data.bin"], keep) {
		t.Errorf("data.bin arrived with %d octets, not the %d of the draft (or different ones)", len(atts["data.bin"]), len(keep))
	}
	if string(atts["new.txt"]) != "added at sending" {
		t.Errorf("new.txt: %q", atts["new.txt"])
	}
	if _, ok := atts["old.txt"]; ok || len(atts) != 2 {
		t.Errorf("attachments %v: want data.bin and new.txt only", keys(atts))
	}
	if _, drafts = w.get("/mail?f=Drafts"); strings.Contains(drafts, "Draft with files") {
		t.Errorf("the sent draft is still in Drafts:\n%s", drafts)
	}
}

// attachments returns the attachments of a MIME message, decoded, by file name.
func attachments(t *testing.T, raw []byte) map[string][]byte {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		t.Fatalf("not a multipart message (%v):\n%s", err, raw)
	}
	out := map[string][]byte{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable itself
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			r = base64.NewDecoder(base64.StdEncoding, p)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("part %s: %v", p.FileName(), err)
		}
		if p.FileName() != "" {
			out[p.FileName()] = data
		}
	}
}

// TestWebmailDraftInlineImages: a draft written by another client, its HTML text
// showing an image of its own (multipart/related, a cid: URL, RFC 2387 and 2392),
// resumed in the webmail and sent: the image keeps its place in the text (a marker in
// the form), and the message bob receives has it with the same Content-ID and bytes
// in a multipart/related beside an HTML text whose cid: URL names it; the draft's
// attachment is kept too.
func TestWebmailDraftInlineImages(t *testing.T) {
	in := NewInstance(t, "")
	const demo, bob, cid = "demo@example.test", "bob@example.test", "logo.part1@client.test"
	in.addUser(t, bob)
	logo := make([]byte, 5000) // every octet value
	for i := range logo {
		logo[i] = byte(i * 13 % 256)
	}
	draft := "From: <" + demo + ">\r\nTo: <" + bob + ">\r\nSubject: Draft with a logo\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=mixed\r\n\r\n" +
		"--mixed\r\nContent-Type: multipart/related; boundary=rel; type=\"text/html\"\r\n\r\n" +
		"--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		"<html><body><p>Our new logo:</p><p><img alt=\"logo\" src=\"cid:" + cid + "\" width=\"40\"></p><p>What do you think?</p></body></html>\r\n" +
		"--rel\r\nContent-Type: image/png; name=logo.png\r\nContent-Disposition: inline; filename=logo.png\r\nContent-ID: <" + cid + ">\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + lines(base64.StdEncoding.EncodeToString(logo), 76) + "--rel--\r\n" +
		"--mixed\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\nthe notes\r\n--mixed--\r\n"
	c := imapTargetOf(t, in).login(t)
	uid := appendMsg(t, c, "Drafts", draft, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft, imap.FlagSeen}})
	c.Close()

	w := in.newWebClient(t)
	if code := w.login(demo, in.Password); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	_, resumed := w.get(fmt.Sprintf("/mail/compose?mode=draft&f=Drafts&uid=%d", uid))
	bm := regexp.MustCompile(`(?s)<textarea name="body"[^>]*>(.*?)</textarea>`).FindStringSubmatch(resumed)
	if bm == nil || !strings.Contains(html.UnescapeString(bm[1]), "Our new logo:\n[image cid:"+cid+"]") || !strings.Contains(resumed, `id="keptinline"`) ||
		!strings.Contains(resumed, "logo.png") || !strings.Contains(resumed, "notes.txt") {
		t.Fatalf("the resumed draft does not show its image and attachment:\n%s", resumed)
	}
	text := strings.Replace(html.UnescapeString(bm[1]), "What do you think?", "What do you think? Bob, say yes.", 1)
	resp, b := w.post("/mail/send", url.Values{"csrf": {w.csrf(resumed)}, "from": {demo}, "to": {bob}, "subject": {"Draft with a logo"},
		"body": {text}, "action": {"send"}, "draft": {fmt.Sprint(uid)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("send the draft: %d\n%s\n%s", resp.StatusCode, b, tail(in.Log(), 20))
	}
	got := in.WaitMessages(bob, 1, 20*time.Second)
	parts := mimeParts(t, got[0])
	var image, htmlPart *sentPart
	for i, p := range parts {
		switch {
		case p.header.Get("Content-Id") == "<"+cid+">":
			image = &parts[i]
		case p.typ == "text/html":
			htmlPart = &parts[i]
		}
	}
	if image == nil || !bytes.Equal(image.body, logo) || image.parent != "multipart/related" || image.typ != "image/png" {
		t.Fatalf("the received message does not have the image (Content-ID <%s>, %d octets) in a multipart/related: %+v\n%s", cid, len(logo), image, got[0])
	}
	if htmlPart == nil || !strings.Contains(string(htmlPart.body), `<img src="cid:`+cid+`"`) || !strings.Contains(string(htmlPart.body), "Bob, say yes.") ||
		strings.Index(string(htmlPart.body), "Our new logo:") > strings.Index(string(htmlPart.body), "cid:") {
		t.Errorf("the HTML text does not show the image where the draft had it:\n%s", got[0])
	}
	if atts := attachments(t, got[0]); string(atts["notes.txt"]) != "the notes\r\n" && string(atts["notes.txt"]) != "the notes" {
		t.Errorf("the draft's attachment: %q", atts["notes.txt"])
	}
}

// lines breaks s into lines of n characters, each ended by CRLF.
func lines(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	return b.String() + s + "\r\n"
}

// sentPart is a leaf of a MIME message: its type, header, decoded body, and the type of
// the multipart holding it.
type sentPart struct {
	typ, parent string
	header      textproto.MIMEHeader
	body        []byte
}

// mimeParts returns the leaves of a MIME message, depth first.
func mimeParts(t *testing.T, raw []byte) []sentPart {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out []sentPart
	var walk func(h textproto.MIMEHeader, body io.Reader, parent string)
	walk = func(h textproto.MIMEHeader, body io.Reader, parent string) {
		typ, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil {
			typ = "text/plain"
		}
		if strings.HasPrefix(typ, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatalf("reading a part of a %s: %v", typ, err)
				}
				walk(p.Header, p, typ)
			}
		}
		var r io.Reader = body
		switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, body)
		case "quoted-printable":
			r = quotedprintable.NewReader(body)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("decoding a %s part: %v", typ, err)
		}
		out = append(out, sentPart{typ: typ, parent: parent, header: h, body: data})
	}
	walk(textproto.MIMEHeader(m.Header), m.Body, "")
	return out
}

package test

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"
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

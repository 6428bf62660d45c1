package test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// evalAsync evaluates a JavaScript expression whose value is a promise, and returns
// the value it resolves to as JSON.
func (b *browser) evalAsync(expr string) string {
	b.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	json.Unmarshal(b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}), &r)
	if r.ExceptionDetails != nil {
		b.t.Fatalf("%s: %s", expr, r.ExceptionDetails.Text)
	}
	return string(r.Result.Value)
}

// setFiles puts files into the file input the selector names, as a user choosing
// them would (DOM.setFileInputFiles).
func (b *browser) setFiles(selector string, paths ...string) {
	b.t.Helper()
	var r struct {
		Result struct {
			ObjectID string `json:"objectId"`
		} `json:"result"`
	}
	json.Unmarshal(b.call("Runtime.evaluate", map[string]any{"expression": fmt.Sprintf("document.querySelector(%q)", selector)}), &r)
	if r.Result.ObjectID == "" {
		b.t.Fatalf("no %s in the page", selector)
	}
	b.call("DOM.setFileInputFiles", map[string]any{"files": paths, "objectId": r.Result.ObjectID})
}

// TestWebmailBrowserFlows: in headless Chromium a user opens a message delivered over
// SMTP and its attachment (the bytes the browser gets are the ones sent), replies to
// another user with a file chosen in the file input (the reply arrives in bob's Maildir
// with its text, its In-Reply-To and the attachment intact), searches, saves a draft
// that shows up in Drafts, and moves a message to Junk.
func TestWebmailBrowserFlows(t *testing.T) {
	b := newBrowser(t)
	in := NewInstance(t, "")
	const demo, bob = "demo@example.test", "bob@example.test"
	in.addUser(t, bob)
	original := []byte("quarterly figures \x00\x01\x02\xff end")
	in.sendMail(t, "alice@other.test", demo, testMessage("Quarterly report", "--B\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\nThe figures are attached.\r\n--B\r\n"+
		"Content-Type: application/octet-stream; name=\"figures.bin\"\r\n"+
		"Content-Disposition: attachment; filename=\"figures.bin\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n"+base64.StdEncoding.EncodeToString(original)+"\r\n--B--\r\n",
		"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="B"`))
	in.sendMail(t, "alice@other.test", demo, testMessage("Plain note", "A zebra crossed the road."))
	in.WaitMessages(demo, 2, 15*time.Second)
	web := "https://" + in.HTTPSAddr()
	in.newWebClient(t) // waits for httpd
	b.login(web, demo, in.Password)
	b.waitFor("both messages in the list", `document.getElementById("messages").textContent.includes("Quarterly report") && document.getElementById("messages").textContent.includes("Plain note")`)

	// Open the message, then its attachment.
	b.eval(`Array.from(document.querySelectorAll("#messages a")).find(a => a.textContent.includes("Quarterly report")).click(); true`)
	b.waitFor("the message page", `location.pathname === "/mail/msg" && document.querySelector(".attachments a")`)
	if name := b.str(`document.querySelector(".attachments a").textContent`); name != "figures.bin" {
		t.Errorf("the attachment is listed as %q", name)
	}
	var got string
	json.Unmarshal([]byte(b.evalAsync(`fetch(document.querySelector(".attachments a").href).then(r => r.arrayBuffer()).then(buf => btoa(String.fromCharCode(...new Uint8Array(buf))))`)), &got)
	if dec, _ := base64.StdEncoding.DecodeString(got); !bytes.Equal(dec, original) {
		t.Errorf("the browser got the attachment as %q, want %q", dec, original)
	}

	// Reply, to bob, with a file chosen in the browser.
	upload := []byte("a reply's attachment \x00\xfe\xff\n")
	path := filepath.Join(t.TempDir(), "answer.bin")
	if err := os.WriteFile(path, upload, 0o644); err != nil {
		t.Fatal(err)
	}
	b.eval(`document.getElementById("reply").click(); true`)
	b.waitFor("the reply form", `location.pathname === "/mail/compose" && document.getElementById("composeform")`)
	if subj := b.str(`document.querySelector("input[name=subject]").value`); subj != "Re: Quarterly report" {
		t.Errorf("the reply's subject is %q", subj)
	}
	b.eval(fmt.Sprintf(`document.getElementById("to").value = %q;
		document.querySelector("textarea[name=body]").value = "Thanks, figures attached back.\n" + document.querySelector("textarea[name=body]").value; true`, bob))
	b.setFiles(`input[type=file][name=attach]`, path)
	if n := b.eval(`document.querySelector("input[type=file]").files.length`); n != "1" {
		t.Fatalf("the file input holds %s files", n)
	}
	b.eval(`document.getElementById("send").click(); true`)
	b.waitFor("the page after sending", `location.pathname !== "/mail/compose" && document.readyState === "complete"`)

	reply := in.WaitMessages(bob, 1, 15*time.Second)[0]
	m, err := mail.ReadMessage(bytes.NewReader(reply))
	if err != nil {
		t.Fatalf("bob's message: %v\n%s", err, reply)
	}
	if s := m.Header.Get("Subject"); s != "Re: Quarterly report" {
		t.Errorf("bob's message has the subject %q", s)
	}
	if irt := m.Header.Get("In-Reply-To"); irt != "<quarterly-report@other.test>" {
		t.Errorf("bob's message has In-Reply-To %q", irt)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("bob's message is %q (%v)\n%s", mt, err, reply)
	}
	var text string
	var attached []byte
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("bob's message: %v", err)
		}
		data, _ := io.ReadAll(p) // quoted-printable is decoded by the reader
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			data, _ = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(data)), ""))
		}
		if p.FileName() == "answer.bin" {
			attached = data
		} else if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			text = string(data)
		}
	}
	if !bytes.Equal(attached, upload) {
		t.Errorf("the uploaded attachment arrived as %q, want %q", attached, upload)
	}
	if !strings.Contains(text, "Thanks, figures attached back.") {
		t.Errorf("the reply's text is %q", text)
	}

	// Search from the search box.
	b.navigate(web + "/mail?f=INBOX")
	b.eval(`document.getElementById("q").value = "zebra"; document.getElementById("q").form.submit(); true`)
	b.waitFor("the search results", `location.search.includes("q=zebra") && document.readyState === "complete" && document.getElementById("messages")`)
	if list := b.str(`document.getElementById("messages").textContent`); !strings.Contains(list, "Plain note") || strings.Contains(list, "Quarterly report") {
		t.Errorf("searching for zebra lists:\n%s", list)
	}

	// A draft, saved from the compose page, shows up in Drafts.
	b.eval(`document.getElementById("compose").click(); true`)
	b.waitFor("the compose form", `location.pathname === "/mail/compose" && document.getElementById("composeform")`)
	b.eval(`document.querySelector("input[name=subject]").value = "Half-written in Chromium";
		document.querySelector("textarea[name=body]").value = "more later"; document.getElementById("save").click(); true`)
	b.waitFor("the page after saving", `location.pathname !== "/mail/compose" || document.querySelector("input[name=draft]")`)
	b.navigate(web + "/mail?f=Drafts")
	b.waitFor("the draft in Drafts", `document.getElementById("messages") && document.getElementById("messages").textContent.includes("Half-written in Chromium")`)

	// Move the note to Junk from its page.
	b.navigate(web + "/mail?f=INBOX")
	b.eval(`Array.from(document.querySelectorAll("#messages a")).find(a => a.textContent.includes("Plain note")).click(); true`)
	b.waitFor("the note's page", `location.pathname === "/mail/msg" && document.getElementById("junk")`)
	b.eval(`document.getElementById("junk").click(); true`)
	b.waitFor("the page after Junk", `location.pathname !== "/mail/msg" && document.readyState === "complete"`)
	b.navigate(web + "/mail?f=Junk")
	b.waitFor("the note in Junk", `document.getElementById("messages") && document.getElementById("messages").textContent.includes("Plain note")`)
	b.navigate(web + "/mail?f=INBOX")
	b.waitFor("INBOX", `document.getElementById("messages")`)
	if list := b.str(`document.getElementById("messages").textContent`); strings.Contains(list, "Plain note") || !strings.Contains(list, "Quarterly report") {
		t.Errorf("INBOX after moving the note to Junk:\n%s", list)
	}
}

package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

// TestBuildMessageImages: the images kept from a resumed draft's text go with the text
// in a multipart/related (RFC 2387) whose HTML shows each by its Content-ID where its
// marker is, or after the text when its marker was taken out.
func TestBuildMessageImages(t *testing.T) {
	if got := htmlToText(markImages(`<p>Logo:</p><p><IMG alt="l" src="cid:logo%40x.test" width=3></p><p>end &amp; more</p>`)); got != "Logo:\n[image cid:logo@x.test]\nend & more" {
		t.Errorf("the draft's text in the form: %q", got)
	}
	img := func(id, data string) keptPart {
		return keptPart{Name: id + ".png", Type: "image/png", ID: id, write: func(w io.Writer) error { _, err := io.WriteString(w, data); return err }}
	}
	d := composeData{Selected: "alice@example.test", Subject: "Logo", Body: "Logo:\n[image cid:logo@x.test]\n<end>"}
	msg, err := buildMessage("mail.example.test", d, nil, nil, nil, false, nil, nil, []keptPart{img("logo@x.test", "PNG1"), img("gone@x.test", "PNG2")})
	if err != nil {
		t.Fatal(err)
	}
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if typ, params, _ := e.Header.ContentType(); typ != "multipart/related" || params["type"] != "multipart/alternative" {
		t.Fatalf("the message is %s %v, want multipart/related; type=multipart/alternative:\n%s", typ, params, msg)
	}
	var types []string
	var htmlText string
	images := map[string]string{}
	e.Walk(func(path []int, p *message.Entity, err error) error {
		typ, _, _ := p.Header.ContentType()
		types = append(types, typ)
		if strings.HasPrefix(typ, "multipart/") {
			return nil
		}
		b, _ := io.ReadAll(p.Body)
		switch {
		case typ == "text/html":
			htmlText = string(b)
		case strings.HasPrefix(typ, "image/"):
			images[p.Header.Get("Content-Id")] = string(b)
		}
		return nil
	})
	if strings.Join(types, " ") != "multipart/related multipart/alternative text/plain text/html image/png image/png" {
		t.Errorf("parts %v", types)
	}
	if images["<logo@x.test>"] != "PNG1" || images["<gone@x.test>"] != "PNG2" {
		t.Errorf("images %q", images)
	}
	logo, gone, end := strings.Index(htmlText, `<img src="cid:logo@x.test"`), strings.Index(htmlText, `<img src="cid:gone@x.test"`), strings.Index(htmlText, "&lt;end&gt;")
	if logo < 0 || gone < 0 || !(logo < end && end < gone) || strings.Contains(htmlText, "[image cid:logo") {
		t.Errorf("the HTML does not show the images in place:\n%s", htmlText)
	}
}

package sieve

import (
	"strings"
	"testing"
	"time"
)

const mimeMsg = "From: ann@example.org\n" +
	"Subject: plans\n" +
	"MIME-Version: 1.0\n" +
	"Content-Type: multipart/mixed; boundary=b1\n" +
	"\n" +
	"prologue\n" +
	"--b1\n" +
	"Content-Type: text/plain; charset=iso-8859-1\n" +
	"Content-Transfer-Encoding: quoted-printable\n" +
	"\n" +
	"The missile is r=E9ady.\n" +
	"--b1\n" +
	"Content-Type: text/html\n" +
	"\n" +
	"<html><style>p {color: red}</style><p>Meet at the <b>coordinates</b> &amp; wait</p></html>\n" +
	"--b1\n" +
	"Content-Type: audio/mp3\n" +
	"Content-Transfer-Encoding: base64\n" +
	"\n" +
	"SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjU4\n" +
	"--b1\n" +
	"Content-Type: message/rfc822\n" +
	"\n" +
	"Subject: inner secret\n" +
	"\n" +
	"inner body MAKE MONEY FAST\n" +
	"--b1--\n" +
	"epilogue\n"

// TestBody runs the examples of RFC 5173 and the three transforms.
func TestBody(t *testing.T) {
	const req = `require ["body", "fileinto", "variables", "relational", "comparator-i;ascii-numeric"];` + "\n"
	yes := []Action{into("yes")}
	no := []Action{keep()}
	checkCases(t, req, crlf(mimeMsg), time.Now(), []extCase{
		// RFC 5173 §7.
		{`if body :content "text" :contains ["missile", "coordinates"] { fileinto "yes"; }`, yes},
		{`if body :content "audio/mp3" :contains "" { fileinto "yes"; }`, yes},
		{`if body :raw :contains "MAKE MONEY FAST" { fileinto "yes"; }`, yes},
		// :raw is not decoded; :content is (quoted-printable, then Latin-1 to UTF-8).
		{`if body :raw :contains "r=E9ady" { fileinto "yes"; }`, yes},
		{`if body :raw :contains "rédy" { fileinto "yes"; }`, no},
		{`if body :content "text/plain" :contains "RÉADY" { fileinto "yes"; }`, no}, // casemap folds ASCII only
		{`if body :content "text/plain" :contains "réady" { fileinto "yes"; }`, yes},
		{`if body :content "text/plain" :contains "coordinates" { fileinto "yes"; }`, no},
		{`if body :content "audio" :contains "ID3" { fileinto "yes"; }`, yes}, // base64 decoded
		{`if body :content ["image", "text/"] :contains "" { fileinto "yes"; }`, no},
		{`if body :content "/plain" :contains "" { fileinto "yes"; }`, no},
		{`if body :content "text/plain/x" :contains "" { fileinto "yes"; }`, no},
		{`if body :content "" :contains "missile" { fileinto "yes"; }`, yes},
		{`if body :content "message/rfc822" :contains "inner secret" { fileinto "yes"; }`, yes}, // the enclosed header
		{`if body :content "text" :contains "prologue" { fileinto "yes"; }`, no},
		// §5.2: a multipart type tests the prologue and the epilogue only.
		{`if body :content "multipart" :contains "prologue" { fileinto "yes"; }`, yes},
		{`if body :content "multipart/mixed" :contains "epilogue" { fileinto "yes"; }`, yes},
		{`if body :content "multipart" :contains ["missile", "Content-Type"] { fileinto "yes"; }`, no},
		// :text (the default): text parts, HTML without its markup.
		{`if body :contains "coordinates & wait" { fileinto "yes"; }`, yes},
		{`if body :text :contains "<b>" { fileinto "yes"; }`, no},
		{`if body :text :contains "color" { fileinto "yes"; }`, no},
		{`if body :text :contains "MONEY" { fileinto "yes"; }`, yes}, // the enclosed message's text part
		{`if body :text :contains "ID3" { fileinto "yes"; }`, no},
		{`if body :matches "*missile*" { fileinto "yes"; }`, yes},
		{`if body :count "eq" :comparator "i;ascii-numeric" "3" { fileinto "yes"; }`, yes},
		// The body test leaves the match variables alone.
		{`if header :matches "subject" "p*" {} if body :matches "The *" {} fileinto "${1}";`, []Action{into("lans")}},
	})
}

// TestBodyLimit reads no more than MaxBodySize octets of a body.
func TestBodyLimit(t *testing.T) {
	msg := "Subject: big\r\n\r\n" + strings.Repeat("x", MaxBodySize) + "needle\r\n"
	acts := runOn(t, `require ["body", "fileinto"]; if body :raw :contains "needle" { fileinto "found"; } if body :raw :contains "xxx" { fileinto "start"; }`, msg, time.Now())
	if len(acts) != 1 || acts[0].Arg != "start" {
		t.Errorf("actions %+v, want only the start of the body read", acts)
	}
}

func TestBodyParseErrors(t *testing.T) {
	for _, c := range []struct{ script, want string }{
		{`if body "x" {}`, `needs require "body"`},
		{`require "body"; if body :raw :text "x" {}`, "one of :raw, :content and :text"},
		{`require "body"; if body :content "x" {}`, "body takes 1 string"},
		{`require "body"; if body :content :contains "x" {}`, "needs an argument"},
		{`require "body"; if body :index 1 "x" {}`, "body takes no :index"},
	} {
		_, err := Parse([]byte(c.script))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want %q", c.script, err, c.want)
		}
	}
}

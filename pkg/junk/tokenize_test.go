package junk

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func tokenize(t testing.TB, msg string) Tokens {
	t.Helper()
	toks, err := Tokenize(strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// The tokenizer reads through the MIME structure: decoded base64 and quoted-printable,
// charsets converted, HTML reduced to text and link domains, header fields prefixed,
// attachments by type and extension.
func TestTokenizeMIME(t *testing.T) {
	msg := "From: =?iso-8859-1?q?Andr=E9?= <andre@mail.shop.example>\r\n" +
		"To: a@example.test, b@example.test\r\n" +
		"Subject: =?utf-8?b?R3LDvMOfZSBhdXMgV2llbg==?=\r\n" +
		"Received: from relay.spammer.example (relay.spammer.example [192.0.2.77])\r\n\tby mx.example.test with ESMTP\r\n" +
		"X-Mailer: Bulk Sender 3.1\r\n" +
		"List-Id: Discussion of things <things.lists.example>\r\n" +
		"X-Spam-Status: Yes, score=99\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n" +
		"--b2\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"SGVsbG8gd29ybGR3aWRlIG1vbmV5bWFrZXJz\r\n" + // "Hello worldwide moneymakers"
		"--b2\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"<html><style>.hidden{}</style><body>Caf=E9 V<!-- x -->iagra &amp; fri=\r\nends" +
		"<a href=3D\"https://www.click.bad.example/offer?x=3D1\">here</a><img src=3D'http://198.51.100.9/p.gif'>" +
		"<script>var notatoken;</script></body></html>\r\n" +
		"--b2--\r\n" +
		"--b1\r\nContent-Type: application/pdf; name=\"invoice.PDF\"\r\nContent-Disposition: attachment\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n" +
		"--b1--\r\n"
	toks := tokenize(t, msg)
	for _, want := range []string{
		"from:addr:andre@mail.shop.example", "from:domain:mail.shop.example", "from:domain:shop.example",
		"from:name:andré", "to:count:2", "subject:grüße", "subject:wien",
		"received:relay.spammer.example", "received:spammer.example", "received:ip:192.0.2",
		"x-mailer:bulk sender 3.1", "header:mime-version", "header:list-id",
		"content-type:multipart/alternative", "content-type:text/html", "charset:iso-8859-1", "encoding:base64",
		"hello", "worldwide", "moneymakers", // base64 decoded
		"café", "viagra", "friends", // QP decoded, charset converted, comment joined, soft break joined
		"url:www.click.bad.example", "url:click.bad.example", "url:bad.example", "proto:https", "url:path:offer", "url:path:gif",
		"url:ip", "url:198.51.100", "html:img", "html:a", "html:script",
		"attachment:application/pdf", "attachment:ext:.pdf",
	} {
		if !slices.Contains(toks, want) {
			t.Errorf("no token %q in %q", want, toks)
		}
	}
	for _, bad := range []string{"notatoken", ".hidden{}", "header:x-spam-status", "x-spam-status:yes", "list-id:discussion", "list-id:things", "jvberi0xljqk", "v"} {
		if slices.Contains(toks, bad) {
			t.Errorf("unexpected token %q", bad)
		}
	}
}

// Hostile messages cost bounded work and give bounded tokens.
func TestTokenizeBounds(t *testing.T) {
	var huge strings.Builder
	for i := 0; i < 20000; i++ {
		huge.WriteString("X-H: w" + strings.Repeat("a", i%50) + "\r\n")
	}
	huge.WriteString("\r\nbody\r\n")
	var parts strings.Builder
	parts.WriteString("Content-Type: multipart/mixed; boundary=z\r\n\r\n")
	for i := 0; i < 5000; i++ {
		parts.WriteString("--z\r\nContent-Type: text/plain\r\n\r\nword" + strings.Repeat("x", i%13) + "\r\n")
	}
	parts.WriteString("--z--\r\n")
	words := make([]string, 100000)
	for i := range words {
		words[i] = "w" + strings.Repeat(string(rune('a'+i%26)), 1+i%9) + string(rune('a'+i/26%26))
	}
	for name, msg := range map[string]string{
		"huge header":   huge.String(),
		"many parts":    parts.String(),
		"one long line": "Subject: x\r\n\r\n" + strings.Repeat("a", 4<<20),
		"many words":    "Subject: x\r\n\r\n" + strings.Join(words, " "),
		"long token":    "Subject: " + strings.Repeat("ä", 5000) + "\r\nX-Mailer: " + strings.Repeat("m", 5000) + "\r\n\r\n",
		"html chaos":    "Content-Type: text/html\r\n\r\n" + strings.Repeat("<a href=\"http://", 50000),
	} {
		toks := tokenize(t, msg)
		if len(toks) == 0 || len(toks) > MaxTokens {
			t.Errorf("%s: %d tokens", name, len(toks))
		}
		for _, tok := range toks {
			if len(tok) > MaxTokenLen {
				t.Errorf("%s: token of %d octets", name, len(tok))
				break
			}
		}
	}
	// A long word becomes a skip token.
	if toks := tokenize(t, "\r\nsupercalifragilisticexpialidocious\r\n"); !slices.Contains(toks, "skip:s 30") {
		t.Errorf("long word: %q", toks)
	}
}

func FuzzTokenize(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "mime", "testdata", "*.eml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "\r\n", "Subject: x\r\n\r\nbody",
		"Content-Type: text/html\r\n\r\n<a href=\"http://x.example:80/a/b?c\">x</a><!-- <script>",
		"Content-Type: text/html\r\n\r\n<script>never closed <style",
		"From: <@a,@b:c@d>, \"x\" <>\r\nReceived: from [::1] by [1.2.3.4]\r\n\r\n",
		"Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: base64\r\n\r\n8NLJ18XU\r\n",
		"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nx\r\n--a--",
		"\r\nuser@@host.. http:// www. mailto: ://",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		toks, err := Tokenize(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) > MaxTokens {
			t.Fatalf("%d tokens", len(toks))
		}
		seen := map[string]bool{}
		for _, tok := range toks {
			if tok == "" || len(tok) > MaxTokenLen || seen[tok] {
				t.Fatalf("bad or repeated token %q", tok)
			}
			seen[tok] = true
		}
		// Tokenizing is deterministic: the digest of a message must not change.
		again, _ := Tokenize(bytes.NewReader(b), int64(len(b)))
		if !slices.Equal(toks, again) {
			t.Fatal("two tokenizations differ")
		}
	})
}

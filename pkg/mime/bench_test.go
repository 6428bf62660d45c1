package mime

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The benchmarks run over a corpus of typical messages: plain UTF-8 text, a newsletter in
// multipart/alternative with quoted-printable ISO-8859-1 text and HTML, a message with a
// base64 attachment, and a forwarded message/rfc822, each with a realistic header.
//
//	go test -run '^$' -bench . -benchmem ./pkg/mime/
//
// Setting MIME_CORPUS=dir writes the corpus as a Maildir into dir (cur/), so that the
// same messages can be searched by another IMAP server (see bench/imap).

var words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his from at
which but have an they you were her she there been one all we their has would when if so no will more
about can out up them some could what into than then other these two may first its time only new
meeting report budget project schedule review customer invoice delivery quarter release server mail`)

func sentence(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.Intn(len(words))])
	}
	return b.String()
}

func paragraph(r *rand.Rand, size int) string {
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(sentence(r, 8+r.Intn(6)))
		b.WriteString(".\r\n")
	}
	return b.String()
}

func header(r *rand.Rand, i int, subject string) string {
	return fmt.Sprintf("Return-Path: <sender%d@example.org>\r\n"+
		"Delivered-To: user@example.com\r\n"+
		"Received: from mx%d.example.org (mx%d.example.org [192.0.2.%d])\r\n\tby mail.example.com (Postern) with ESMTPS id 4F2A1%d\r\n\tfor <user@example.com>; Mon, 2 Mar 2026 10:00:00 +0000\r\n"+
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1;\r\n\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\tb=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZVoG4ZHRNiYzR\r\n"+
		"From: Sender %d <sender%d@example.org>\r\n"+
		"To: User <user@example.com>\r\n"+
		"Subject: %s\r\n"+
		"Date: Mon, 2 Mar 2026 10:%02d:00 +0100\r\n"+
		"Message-ID: <%d.%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\n", i, i, i, i%250, i, i, i, subject, i%60, i, r.Int())
}

// corpusMessage returns message i of the corpus.
func corpusMessage(i int) []byte {
	r := rand.New(rand.NewSource(int64(i)))
	var b strings.Builder
	switch i % 4 {
	case 0:
		b.WriteString(header(r, i, sentence(r, 5)))
		b.WriteString("Content-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(paragraph(r, 3000))
		b.WriteString("Grüße aus Köln\r\n")
	case 1:
		b.WriteString(header(r, i, "=?ISO-8859-1?Q?Offres_de_la_semaine_=E0_saisir?="))
		b.WriteString("Content-Type: multipart/alternative; boundary=\"----=_Part_1_2\"\r\n\r\n------=_Part_1_2\r\n" +
			"Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		var qp bytes.Buffer
		w := quotedprintable.NewWriter(&qp)
		text := paragraph(r, 3000) + "cr\xe8me br\xfbl\xe9e\r\n"
		w.Write([]byte(text))
		w.Close()
		b.WriteString(qp.String())
		b.WriteString("\r\n------=_Part_1_2\r\nContent-Type: text/html; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		qp.Reset()
		w = quotedprintable.NewWriter(&qp)
		w.Write([]byte("<html><body><p>" + strings.ReplaceAll(text, "\r\n", "</p>\r\n<p>") + "</p></body></html>"))
		w.Close()
		b.WriteString(qp.String())
		b.WriteString("\r\n------=_Part_1_2--\r\n")
	case 2:
		b.WriteString(header(r, i, "Report "+sentence(r, 3)))
		b.WriteString("Content-Type: multipart/mixed; boundary=frontier\r\n\r\n--frontier\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
		b.WriteString(paragraph(r, 1500))
		b.WriteString("\r\n--frontier\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		bin := make([]byte, 30000)
		r.Read(bin)
		enc := base64.StdEncoding.EncodeToString(bin)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n--frontier--\r\n")
	case 3:
		b.WriteString(header(r, i, "Fwd: "+sentence(r, 4)))
		b.WriteString("Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee below.\r\n" +
			"--outer\r\nContent-Type: message/rfc822\r\n\r\n")
		b.WriteString(header(r, i+1, sentence(r, 4)))
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
		b.WriteString(paragraph(r, 2000))
		b.WriteString("\r\n--outer--\r\n")
	}
	return []byte(b.String())
}

func corpus(n int) ([][]byte, int64) {
	msgs := make([][]byte, n)
	var total int64
	for i := range msgs {
		msgs[i] = corpusMessage(i)
		total += int64(len(msgs[i]))
	}
	return msgs, total
}

// TestWriteCorpus writes the benchmark corpus as a Maildir when MIME_CORPUS is set
// (MIME_CORPUS_N messages, 10000 by default).
func TestWriteCorpus(t *testing.T) {
	dir := os.Getenv("MIME_CORPUS")
	if dir == "" {
		t.Skip("MIME_CORPUS not set")
	}
	n := 10000
	fmt.Sscan(os.Getenv("MIME_CORPUS_N"), &n)
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		name := filepath.Join(dir, "cur", fmt.Sprintf("%d.M%dP1.bench:2,S", 1700000000+i, i))
		if err := os.WriteFile(name, corpusMessage(i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	msgs, total := corpus(64)
	b.SetBytes(total / int64(len(msgs)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := msgs[i%len(msgs)]
		if _, err := Parse(bytes.NewReader(m), int64(len(m))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearchText is SEARCH TEXT of one message: parse, then search header and
// decoded body for a string that is not there (the whole message is read).
func BenchmarkSearchText(b *testing.B) {
	msgs, total := corpus(64)
	for _, needle := range []string{"no such phrase", "zürich"} {
		b.Run(strings.ReplaceAll(needle, " ", "_"), func(b *testing.B) {
			mt := NewMatcher(needle)
			b.SetBytes(total / int64(len(msgs)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				raw := msgs[i%len(msgs)]
				m, err := Parse(bytes.NewReader(raw), int64(len(raw)))
				if err != nil {
					b.Fatal(err)
				}
				if ok, err := m.Contains(mt, true); ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
	// As imapd does it: open the Maildir file, parse, search, close.
	b.Run("files", func(b *testing.B) {
		dir := b.TempDir()
		names := make([]string, len(msgs))
		for i, m := range msgs {
			names[i] = filepath.Join(dir, fmt.Sprint(i))
			if err := os.WriteFile(names[i], m, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		mt := NewMatcher("no such phrase")
		b.SetBytes(total / int64(len(msgs)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			f, err := os.Open(names[i%len(names)])
			if err != nil {
				b.Fatal(err)
			}
			st, _ := f.Stat()
			m, err := Parse(f, st.Size())
			if err != nil {
				b.Fatal(err)
			}
			if ok, err := m.Contains(mt, true); ok || err != nil {
				b.Fatal(ok, err)
			}
			f.Close()
		}
	})
	// From text extracted once (what a server can cache in its index).
	b.Run("cached", func(b *testing.B) {
		texts := make([]*Text, len(msgs))
		for i, raw := range msgs {
			m, _ := Parse(bytes.NewReader(raw), int64(len(raw)))
			texts[i], _ = m.ExtractText(0)
		}
		mt := NewMatcher("no such phrase")
		b.SetBytes(total / int64(len(msgs)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if texts[i%len(texts)].Contains(mt, true) {
				b.Fatal("found")
			}
		}
	})
}

func BenchmarkExtractText(b *testing.B) {
	msgs, total := corpus(64)
	b.SetBytes(total / int64(len(msgs)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		raw := msgs[i%len(msgs)]
		m, _ := Parse(bytes.NewReader(raw), int64(len(raw)))
		if _, err := m.ExtractText(0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearchCorpus is SEARCH TEXT over every message of the Maildir in MIME_CORPUS
// (written by TestWriteCorpus), one op per pass over the whole mailbox, the way imapd
// searches without a cache: open, parse, search, close. Compare with another server's
// SEARCH TEXT on the same Maildir.
func BenchmarkSearchCorpus(b *testing.B) {
	dir := os.Getenv("MIME_CORPUS")
	if dir == "" {
		b.Skip("MIME_CORPUS not set")
	}
	names, err := filepath.Glob(filepath.Join(dir, "cur", "*"))
	if err != nil || len(names) == 0 {
		b.Skip("no messages in MIME_CORPUS/cur")
	}
	for _, needle := range []string{"no such phrase", "crème brûlée"} {
		b.Run(strings.ReplaceAll(needle, " ", "_"), func(b *testing.B) {
			mt := NewMatcher(needle)
			for b.Loop() {
				found := 0
				for _, name := range names {
					f, err := os.Open(name)
					if err != nil {
						b.Fatal(err)
					}
					st, err := f.Stat()
					if err != nil {
						b.Fatal(err)
					}
					m, err := Parse(f, st.Size())
					if err != nil {
						b.Fatal(err)
					}
					ok, err := m.Contains(mt, true)
					if err != nil {
						b.Fatal(err)
					}
					if ok {
						found++
					}
					f.Close()
				}
				b.ReportMetric(float64(found), "matches")
			}
			b.ReportMetric(float64(len(names)), "messages")
		})
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"postern/pkg/config"
)

func testConfig(t testing.TB) *config.Config {
	dir := t.TempDir()
	conf := filepath.Join(dir, "postern.toml")
	toml := "hostname = \"mx.example.test\"\nspool_dir = \"" + dir + "/spool\"\ndata_dir = \"" + dir + "/data\"\n[smtpd]\nmax_message_size = \"1K\"\nmax_recipients = 2\n"
	if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// codes returns the reply codes of an SMTP dialogue's output, the last line of each
// reply only.
func codes(out string) []string {
	var c []string
	for _, m := range regexp.MustCompile(`(?m)^(\d{3}) `).FindAllStringSubmatch(out, -1) {
		c = append(c, m[1])
	}
	return c
}

// The dialogue of sendmail -bs, without a running Postern: every command gets its
// RFC 5321 reply, and a message that cleanup cannot take gets 451 after its data, which
// is read to its end so that the commands after it are answered in step.
func TestSMTPDialogue(t *testing.T) {
	cfg := testConfig(t)
	in := strings.Join([]string{
		"MAIL FROM:<a@example.test>", // 503: no EHLO
		"EHLO client",
		"RCPT TO:<b@example.test>",              // 503: no MAIL
		"DATA",                                  // 503
		"MAIL FROM:<a@example.test> SIZE=99999", // 552
		"MAIL FROM:<a@example.test> BODY=8BITMIME",
		"MAIL FROM:<x@example.test>", // 503 nested
		"RCPT TO:<not an address>",   // 501
		"RCPT TO:<b@example.test>",
		"RCPT TO:<c@example.test>",
		"RCPT TO:<d@example.test>", // 452: two recipients at most
		"DATA",                     // 354 then 451: cleanup is not there
		"Subject: x",
		"",
		"..a dot-stuffed line",
		"QUIT is text here",
		".",
		"NOOP",
		"VRFY b",
		"RSET",
		"FROB",
		"HELO",
		"QUIT",
		"NOOP after QUIT",
	}, "\r\n") + "\r\n"
	var out bytes.Buffer
	if status := serveSMTP(cfg, &options{}, strings.NewReader(in), &out); status != exOK {
		t.Errorf("exit %d", status)
	}
	want := []string{"220", "503", "250", "503", "503", "552", "250", "503", "501", "250", "250", "452", "354", "451", "250", "252", "250", "502", "501", "221"}
	if got := codes(out.String()); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("replies %v\nwant    %v\n%s", got, want, out.String())
	}
	if !strings.Contains(out.String(), "250-8BITMIME\r\n") || !strings.Contains(out.String(), "250 ENHANCEDSTATUSCODES\r\n") {
		t.Errorf("EHLO reply:\n%s", out.String())
	}

	// A message over max_message_size gets 552 at its end, and the session goes on.
	out.Reset()
	big := "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" + strings.Repeat("x", 2000) + "\r\n.\r\nQUIT\r\n"
	serveSMTP(cfg, &options{}, strings.NewReader(big), &out)
	if got := strings.Join(codes(out.String()), " "); got != "220 250 250 250 354 552 221" {
		t.Errorf("too large: %s\n%s", got, out.String())
	}

	// Too many errors end the session with 421.
	out.Reset()
	if status := serveSMTP(cfg, &options{}, strings.NewReader(strings.Repeat("FROB\r\n", 20)), &out); status != exOK || !strings.Contains(out.String(), "421 4.7.0") {
		t.Errorf("errors: exit %d\n%s", status, out.String())
	}
}

// Whatever comes on standard input, the session answers and ends.
func FuzzSMTPDialogue(f *testing.F) {
	f.Add("EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n")
	f.Add("HELO\nMAIL FROM:<>  BODY=BINARYMIME\nRCPT TO:<@a,@b:c@d.test> NOTIFY=NEVER\n")
	f.Add("EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n\r\n.\n.\r.\r\n")
	cfg := testConfig(f)
	f.Fuzz(func(t *testing.T, in string) {
		var out bytes.Buffer
		serveSMTP(cfg, &options{}, strings.NewReader(in), &out)
		if !strings.HasPrefix(out.String(), "220 ") {
			t.Fatalf("no greeting: %q", out.String())
		}
	})
}

package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want options
	}{
		// cron (Debian's cron: sendmail -FCronDaemon -i -B8BITMIME -oem USER)
		{[]string{"sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"},
			options{fullName: "CronDaemon", ignoreDots: true, bodyType: "8BITMIME", recipients: []string{"root"}}},
		// PHP's mail() (sendmail_path "sendmail -t -i")
		{[]string{"/usr/sbin/sendmail", "-t", "-i"}, options{extract: true, ignoreDots: true}},
		{[]string{"sendmail", "-ti", "-f", "me@example.test", "-odb", "--", "-x@example.test"},
			options{extract: true, ignoreDots: true, sender: "me@example.test", senderSet: true, recipients: []string{"-x@example.test"}}},
		{[]string{"sendmail", "-oi", "-r<>", "-C", "/srv/p.toml", "-N", "failure,delay", "-R", "hdrs", "-V", "env-1", "a@b.test"},
			options{ignoreDots: true, sender: "<>", senderSet: true, config: "/srv/p.toml", notify: "FAILURE,DELAY", ret: "HDRS", envID: "env-1", recipients: []string{"a@b.test"}}},
		{[]string{"mailq"}, options{mode: modeMailq}},
		{[]string{"sendmail", "-bp"}, options{mode: modeMailq}},
		{[]string{"/usr/bin/newaliases"}, options{mode: modeNewaliases}},
		{[]string{"sendmail", "-bi"}, options{mode: modeNewaliases}},
		{[]string{"sendmail", "-I"}, options{mode: modeNewaliases}},
		{[]string{"sendmail", "-q"}, options{mode: modeFlush}},
		{[]string{"sendmail", "-bs"}, options{mode: modeSMTP}},
		{[]string{"sendmail", "-q30m"}, options{mode: modeFlush}},
		{[]string{"sendmail", "-Am", "-G", "-U", "-h", "10", "-O", "x=y", "-om", "-v", "a"}, options{verbose: true, recipients: []string{"a"}}},
	} {
		got, err := parseArgs(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.args, *got, tc.want)
		}
	}
	for _, args := range [][]string{
		{"sendmail", "-f"}, {"sendmail", "-Z"}, {"sendmail", "-bd"},
		{"sendmail", "-B", "9BIT"}, {"sendmail", "-N", "never,success"}, {"sendmail", "-R", "all"},
		{"sendmail", "-V", "has space"}, {"sendmail", "-qRexample.test"},
	} {
		if _, err := parseArgs(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func readAll(t *testing.T, in string, ignoreDots bool) string {
	t.Helper()
	b, err := io.ReadAll(newReader(strings.NewReader(in), ignoreDots))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Line endings become CRLF; a lone dot ends the input unless -i.
func TestReader(t *testing.T) {
	for _, tc := range []struct {
		in         string
		ignoreDots bool
		want       string
	}{
		{"a\nb\n", false, "a\r\nb\r\n"},
		{"a\r\nb", false, "a\r\nb\r\n"},
		{"a\n.\nb\n", false, "a\r\n"},
		{"a\r\n.\r\nb\n", false, "a\r\n"},
		{"a\n.\nb\n", true, "a\r\n.\r\nb\r\n"},
		{"a\n..\n.b\n", false, "a\r\n..\r\n.b\r\n"}, // no dot-stuffing on standard input
		{"", false, ""},
	} {
		if got := readAll(t, tc.in, tc.ignoreDots); got != tc.want {
			t.Errorf("%q (-i %v): %q, want %q", tc.in, tc.ignoreDots, got, tc.want)
		}
	}
}

// -t takes the recipients of To:, Cc: and Bcc: (or of the Resent- fields of a resent
// message), and the Bcc: fields do not go out.
func TestExtract(t *testing.T) {
	for _, tc := range []struct {
		in, rest string
		want     []string
	}{
		{"To: A <a@x.test>, b@x.test\nCc: c@x.test\nBcc: Hidden <d@x.test>,\n e@x.test\nSubject: s\n\nbody\n",
			"To: A <a@x.test>, b@x.test\r\nCc: c@x.test\r\nSubject: s\r\n\r\nbody\r\n",
			[]string{"a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test"}},
		{"To: undisclosed-recipients:;\nbcc: root\n\nx\n", "To: undisclosed-recipients:;\r\n\r\nx\r\n", []string{"root"}},
		{"To: friends: f@x.test, g@x.test;\n\n", "To: friends: f@x.test, g@x.test;\r\n\r\n", []string{"f@x.test", "g@x.test"}},
		{"To: a@x.test\nResent-To: r@x.test\nResent-Bcc: s@x.test\n\n", "To: a@x.test\r\nResent-To: r@x.test\r\n\r\n", []string{"r@x.test", "s@x.test"}},
		// No empty line: the body starts at the first line that is no field.
		{"To: a@x.test\nthis is body\n", "To: a@x.test\r\nthis is body\r\n", []string{"a@x.test"}},
		{"To: =?utf-8?q?J=C3=B6rg?= <j@x.test>\n\n", "To: =?utf-8?q?J=C3=B6rg?= <j@x.test>\r\n\r\n", []string{"j@x.test"}},
	} {
		r := newReader(strings.NewReader(tc.in), true)
		h, err := readHeader(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := h.extract()
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: recipients %q, want %q", tc.in, got, tc.want)
		}
		var out bytes.Buffer
		h.WriteTo(&out)
		io.Copy(&out, r)
		if out.String() != tc.rest {
			t.Errorf("%q: message %q, want %q", tc.in, out.String(), tc.rest)
		}
	}
	h, _ := readHeader(newReader(strings.NewReader("To: <broken\n\n"), true))
	if _, err := h.extract(); err == nil {
		t.Error("a To: field that does not parse was accepted")
	}
}

// The exit statuses callers act on: EX_TEMPFAIL when Postern is down (cron and PHP try
// again or report), EX_USAGE for a wrong command line, EX_CONFIG without configuration.
func TestExitStatus(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "postern.toml")
	toml := "hostname = \"mx.example.test\"\nspool_dir = \"" + dir + "/spool\"\ndata_dir = \"" + dir + "/data\"\n"
	if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(string) string { return "" }
	for _, tc := range []struct {
		args  []string
		stdin string
		want  int
	}{
		{[]string{"sendmail", "-C", conf, "a@example.test"}, "Subject: x\n\nhi\n", exTempFail},
		{[]string{"sendmail", "-C", dir, "a@example.test"}, "Subject: x\n\nhi\n", exTempFail}, // -C DIR
		{[]string{"sendmail", "-C", conf, "-t"}, "Subject: no recipients\n\nhi\n", exUsage},
		{[]string{"sendmail", "-C", conf}, "Subject: x\n\nhi\n", exUsage},
		{[]string{"sendmail", "-Z"}, "", exUsage},
		{[]string{"sendmail", "-C", filepath.Join(dir, "none.toml"), "a@example.test"}, "x\n", exConfig},
		{[]string{"mailq", "-C", conf}, "", exUnavailable},
		{[]string{"newaliases"}, "", exOK},
	} {
		var out, errb bytes.Buffer
		if got := run(tc.args, strings.NewReader(tc.stdin), &out, &errb, env); got != tc.want {
			t.Errorf("%q: exit %d, want %d (%s%s)", tc.args, got, tc.want, out.String(), errb.String())
		}
	}
	// $POSTERN_CONFIG is read when -C is not given.
	var errb bytes.Buffer
	got := run([]string{"sendmail", "a@example.test"}, strings.NewReader("x\n"), io.Discard, &errb,
		func(k string) string { return map[string]string{"POSTERN_CONFIG": conf}[k] })
	if got != exTempFail || !strings.Contains(errb.String(), filepath.Join(dir, "spool", "public", "cleanup")) {
		t.Errorf("with $POSTERN_CONFIG: exit %d, %s", got, errb.String())
	}
}

// The header section comes from whoever wrote the message (a web form's fields end up in
// PHP's headers): readHeader and extract must take anything without a panic, and keep
// every octet but the Bcc fields.
func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		"To: a@x.test\nBcc: b@x.test\n\nbody\n",
		"To: g: a@x.test;\r\nResent-Bcc: x\r\n\r\n",
		"To: \"q\\\" <x>\" <a@x.test>\n continued\n\n",
		": no name\n\n",
		"To: =?utf-8?b?AAAA?= <a@x.test>\n.\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := newReader(strings.NewReader(in), true)
		h, err := readHeader(r)
		if err != nil {
			t.Fatal(err)
		}
		h.extract()
		var out bytes.Buffer
		h.WriteTo(&out)
		io.Copy(&out, r)
		if out.Len() > 2*len(in)+2 {
			t.Fatalf("output of %d octets for %d in", out.Len(), len(in))
		}
	})
}

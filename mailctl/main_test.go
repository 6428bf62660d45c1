package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testApp is an app whose input, output, environment and executable are the test's. It
// never acts as root, even when the tests run as root (CI): the root-only paths of init
// (creating system users) are for the end-to-end tests.
type testApp struct {
	*app
	out, err *bytes.Buffer
	env      map[string]string
}

func newTestApp(t *testing.T, stdin string) *testApp {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "bin", "mailctl")
	os.MkdirAll(filepath.Dir(exe), 0o755)
	os.WriteFile(exe, nil, 0o755)
	ta := &testApp{out: &bytes.Buffer{}, err: &bytes.Buffer{}, env: map[string]string{}}
	ta.app = &app{
		stdin:      strings.NewReader(stdin),
		stdout:     ta.out,
		stderr:     ta.err,
		getenv:     func(k string) string { return ta.env[k] },
		root:       false,
		executable: func() (string, error) { return exe, nil },
		terminal:   nil,
	}
	return ta
}

// run runs mailctl with args and returns the exit status.
func (ta *testApp) run(args ...string) int {
	ta.out.Reset()
	ta.err.Reset()
	return ta.app.run(args)
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"help", "queue", "list"}, {"queue", "list", "--help"}, {"help", "user"}, {"user", "--help"},
		{"init", "--help"}, {"-c", "x.toml", "user", "add", "-h"},
	} {
		ta := newTestApp(t, "")
		if code := ta.run(args...); code != 0 {
			t.Errorf("mailctl %v: exit %d, stderr %s", args, code, ta.err)
		}
		if !strings.Contains(ta.out.String(), "usage: mailctl") {
			t.Errorf("mailctl %v: no usage on stdout:\n%s", args, ta.out)
		}
	}
	ta := newTestApp(t, "")
	ta.run("--help")
	for _, c := range commands {
		if !strings.Contains(ta.out.String(), c.name) {
			t.Errorf("mailctl --help does not list %q", c.name)
		}
	}
	ta.run("help", "user", "add")
	for _, want := range []string{"--password-stdin", "--quota", "never taken from the command line"} {
		if !strings.Contains(ta.out.String(), want) {
			t.Errorf("help user add lacks %q:\n%s", want, ta.out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"queue"}, "which one?"},
		{[]string{"queue", "frob"}, `unknown command "frob"`},
		{[]string{"help", "frob"}, "unknown command"},
		{[]string{"status", "extra"}, "takes no arguments"},
		{[]string{"user", "add"}, "missing arguments"},
		{[]string{"alias", "add", "a@example.test"}, "missing arguments"},
		{[]string{"queue", "hold"}, "missing arguments"},
		{[]string{"init", "--bogus"}, "flag provided but not defined"},
		{[]string{"init", "--dev"}, "needs -c FILE"},
		{[]string{"-c", "/nonexistent/x.toml", "init", "--dev", "--listen", "nowhere"}, "not an IP address"},
		{[]string{"-c", "/nonexistent/x.toml", "init", "--dev", "--port-base", "65000"}, "too large"},
		{[]string{"user", "add", "a@example.test", "--quota", "lots"}, "bad size"},
		{[]string{"-c"}, "flag needs an argument"},
	} {
		ta := newTestApp(t, "")
		code := ta.run(tc.args...)
		if code != exitUsage {
			t.Errorf("mailctl %v: exit %d, want %d", tc.args, code, exitUsage)
		}
		if !strings.Contains(ta.err.String(), tc.want) || !strings.Contains(ta.err.String(), "usage: mailctl") {
			t.Errorf("mailctl %v: stderr lacks %q or the usage:\n%s", tc.args, tc.want, ta.err)
		}
		if ta.out.Len() > 0 {
			t.Errorf("mailctl %v wrote to stdout:\n%s", tc.args, ta.out)
		}
	}
}

// A password typed on the command line is refused before anything happens, and is not
// repeated in the error (it would end up in logs and scrollback).
func TestPasswordNeverFromArgv(t *testing.T) {
	for _, args := range [][]string{
		{"user", "add", "eve@example.test", "hunter2"},
		{"user", "add", "eve@example.test", "--password-stdin", "hunter2"},
		{"user", "passwd", "eve@example.test", "hunter2"},
		{"user", "add", "--password", "hunter2", "eve@example.test"},
	} {
		ta := newTestApp(t, "")
		if code := ta.run(args...); code != exitUsage {
			t.Errorf("mailctl %v: exit %d, want %d", args, code, exitUsage)
		}
		if strings.Contains(ta.err.String()+ta.out.String(), "hunter2") {
			t.Errorf("mailctl %v repeats the password:\n%s", args, ta.err)
		}
	}
	// No flag of any command takes a password.
	for _, c := range commands {
		ta := newTestApp(t, "")
		ta.run("help", c.name)
		for _, l := range strings.Split(ta.out.String(), "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "-") && strings.Contains(l, "password") && !strings.HasPrefix(l, "--password-stdin") {
				t.Errorf("%s has a password flag: %s", c.name, l)
			}
		}
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "postern.toml")
	os.WriteFile(path, []byte("hostname = \"mx.example.test\"\n"), 0o644)
	ta := newTestApp(t, "")
	ta.env["POSTERN_CONFIG"] = path
	if code := ta.run("config", "check"); code != 0 {
		t.Fatalf("exit %d: %s", code, ta.err)
	}
	if got := ta.out.String(); got != path+": ok\n" {
		t.Errorf("config check printed %q", got)
	}
	// -c after the subcommand works as well, and wins over the environment.
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("hostname = \"mx.example.test\"\n\n[smtpd]\nmax_recipients = 0\n"), 0o644)
	if code := ta.run("config", "check", "-c", bad); code != exitFail {
		t.Fatalf("bad config: exit %d", code)
	}
	if !strings.Contains(ta.err.String(), bad+":4:") || !strings.Contains(ta.err.String(), "max_recipients") {
		t.Errorf("config check error does not name file:line: %s", ta.err)
	}
	if code := ta.run("-c", filepath.Join(dir, "missing.toml"), "config", "check"); code != exitFail {
		t.Errorf("missing config: exit %d", code)
	}
}

func TestParseInterspersed(t *testing.T) {
	ta := newTestApp(t, "")
	cmd, _ := lookup([]string{"user", "add"})
	for _, args := range [][]string{
		{"--password-stdin", "a@example.test"},
		{"a@example.test", "--password-stdin"},
		{"--quota", "1G", "a@example.test", "--password-stdin"},
		{"--password-stdin", "--", "a@example.test"},
	} {
		var got []string
		var gotOpts *options
		c := *cmd
		c.run = func(a *app, o *options, args []string) error { got, gotOpts = args, o; return nil }
		if err := ta.execute(&c, args); err != nil {
			t.Errorf("%v: %v", args, err)
			continue
		}
		if len(got) != 1 || got[0] != "a@example.test" || !gotOpts.passwordStdin {
			t.Errorf("%v: args %q, password-stdin %v", args, got, gotOpts.passwordStdin)
		}
	}
}

func TestCheckAddress(t *testing.T) {
	for in, want := range map[string]string{
		"demo@Example.Test":   "demo@example.test",
		"<demo@example.test>": "demo@example.test",
		"Demo@example.test.":  "Demo@example.test",
	} {
		got, err := checkAddress(in, false)
		if err != nil || got != want {
			t.Errorf("checkAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got, err := checkAddress("@example.test", true); err != nil || got != "@example.test" {
		t.Errorf("catch-all: %q, %v", got, err)
	}
	for _, bad := range []string{"", "demo", "@example.test", "demo@", "a b@example.test", "demo@nodot", "demo@exa/mple.test"} {
		if _, err := checkAddress(bad, false); err == nil {
			t.Errorf("checkAddress(%q) accepted", bad)
		}
	}
}

func TestQuota(t *testing.T) {
	for in, want := range map[string]int64{"1G": 1 << 30, "500M": 500 << 20, "0": 0, "unlimited": 0, "1048576": 1 << 20} {
		got, err := parseQuota(in)
		if err != nil || got != want {
			t.Errorf("parseQuota(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "lots", "1T"} {
		if _, err := parseQuota(bad); err == nil {
			t.Errorf("parseQuota(%q) accepted", bad)
		}
	}
	for q, want := range map[int64]string{0: "unlimited", 1 << 30: "1G", 1536 << 20: "1536M", 1000: "1000"} {
		if got := formatQuota(q); got != want {
			t.Errorf("formatQuota(%d) = %q, want %q", q, got, want)
		}
	}
}

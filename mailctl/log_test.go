package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/pkg/queue"
)

// mailctl log reads the journal through journalctl, and follows a bounce's queue ID.
// journalctl here is a script that answers as the real one would for those matches.
func TestLogFromJournal(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "postern.toml")
	os.WriteFile(cfg, []byte("hostname = \"mail.example.test\"\n[log]\ntarget = \"journal\"\n"), 0o644)
	argsFile := filepath.Join(dir, "args")
	script := `#!/bin/sh
echo "$@" >> ` + argsFile + `
case "$*" in
*POSTERN_QUEUE_ID=CCCC*)
	echo '{"__REALTIME_TIMESTAMP":"1700000000000000","SYSLOG_IDENTIFIER":"postern/cleanup","_PID":"11","MESSAGE":"queued daemon=cleanup id=CCCC","POSTERN_QUEUE_ID":"CCCC"}'
	echo '{"__REALTIME_TIMESTAMP":"1700000001000000","SYSLOG_IDENTIFIER":"postern/qmgr","_PID":"12","MESSAGE":"bounce daemon=qmgr id=AAAA dsn_id=CCCC","POSTERN_QUEUE_ID":"AAAA","POSTERN_DSN_ID":"CCCC"}'
	echo '{"__REALTIME_TIMESTAMP":"1700000002000000","SYSLOG_IDENTIFIER":"postern/local","_PID":"13","MESSAGE":[98,105,110,255],"POSTERN_QUEUE_ID":"CCCC"}'
	;;
*POSTERN_QUEUE_ID=AAAA*)
	echo '{"__REALTIME_TIMESTAMP":"1700000001000000","SYSLOG_IDENTIFIER":"postern/qmgr","_PID":"12","MESSAGE":"bounce daemon=qmgr id=AAAA dsn_id=CCCC","POSTERN_QUEUE_ID":"AAAA","POSTERN_DSN_ID":"CCCC"}'
	;;
esac
`
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	id := queue.NewID()
	ta := newTestApp(t, "")
	os.WriteFile(filepath.Join(dir, "journalctl"), []byte(strings.ReplaceAll(script, "AAAA", id)), 0o755)
	if code := ta.run("-c", cfg, "log", id); code != 0 {
		t.Fatalf("mailctl log: exit %d: %s", code, ta.err)
	}
	want := "2023-11-14T22:13:20.000000Z postern/cleanup[11]: queued daemon=cleanup id=CCCC\n" +
		"2023-11-14T22:13:21.000000Z postern/qmgr[12]: bounce daemon=qmgr id=" + id + " dsn_id=CCCC\n" +
		"2023-11-14T22:13:22.000000Z postern/local[13]: \"bin\\xff\"\n"
	if ta.out.String() != want {
		t.Errorf("output\n%s\nwant\n%s", ta.out, want)
	}
	calls, _ := os.ReadFile(argsFile)
	lines := strings.Split(strings.TrimSpace(string(calls)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "-o json") || !strings.HasSuffix(lines[1], "POSTERN_QUEUE_ID="+id+" POSTERN_QUEUE_ID=CCCC") {
		t.Errorf("journalctl called as:\n%s", calls)
	}

	if code := ta.run("-c", cfg, "log", "not-an-id"); code == 0 || !strings.Contains(ta.err.String(), "not a queue ID") {
		t.Errorf("bad ID: exit %d, %s", code, ta.err)
	}
}

// Without a journal or a log file, mailctl log says where to look.
func TestLogFromFile(t *testing.T) {
	dir := t.TempDir()
	id := queue.NewID()
	logPath := filepath.Join(dir, "postern.log")
	os.WriteFile(logPath, []byte(
		"time=2026-01-01T00:00:00Z level=INFO msg=queued daemon=cleanup id="+id+"\n"+
			"time=2026-01-01T00:00:01Z level=INFO msg=queued daemon=cleanup id=OTHER\n"), 0o644)
	cfg := filepath.Join(dir, "postern.toml")
	os.WriteFile(cfg, []byte("hostname = \"mail.example.test\"\n[log]\ntarget = \"file\"\nfile = \"postern.log\"\n"), 0o644)
	ta := newTestApp(t, "")
	if code := ta.run("-c", cfg, "log", strings.ToLower(id)); code != 0 || ta.out.String() != "time=2026-01-01T00:00:00Z level=INFO msg=queued daemon=cleanup id="+id+"\n" {
		t.Errorf("exit %d, out %q, err %s", code, ta.out, ta.err)
	}
	os.WriteFile(cfg, []byte("hostname = \"mail.example.test\"\n[log]\ntarget = \"stderr\"\n"), 0o644)
	if code := ta.run("-c", cfg, "log", id); code == 0 || !strings.Contains(ta.err.String(), "--file") {
		t.Errorf("target stderr: exit %d, %s", code, ta.err)
	}
	if code := ta.run("-c", cfg, "log", "--file", logPath, id); code != 0 || !strings.Contains(ta.out.String(), id) {
		t.Errorf("--file: exit %d, %s", code, ta.err)
	}
	other := queue.NewID()
	if code := ta.run("-c", cfg, "log", "--file", logPath, other); code == 0 || !strings.Contains(ta.err.String(), "no log line about "+other) {
		t.Errorf("unknown ID: exit %d, %s", code, ta.err)
	}
}

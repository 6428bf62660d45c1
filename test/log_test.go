package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mailctl log ID prints the lines of every daemon about one message, from the log file
// master gives the daemons ([log] target = "file"), and none about another message.
func TestMailctlLog(t *testing.T) {
	in := NewInstance(t, "")
	logFile := filepath.Join(in.Dir, "log", "postern.log")
	in.SetConfig("log", "file", strconv.Quote(logFile))
	in.SetConfig("log", "target", `"file"`)
	in.Stop()
	in.Start()

	first := send(t, in, "alice@client.test", "demo@example.test", "<log-1@client.test>")
	second := send(t, in, "carol@client.test", "demo@example.test", "<log-2@client.test>")
	in.WaitMessages("demo@example.test", 2, 20*time.Second)
	// The lines of local and qmgr come after the delivery; wait for the last, qmgr's.
	in.WaitFor("qmgr's removed lines", 20*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "msg=removed daemon=qmgr") && strings.Count(string(b), "msg=removed") >= 2
	})
	b, _ := os.ReadFile(logFile)
	if !strings.Contains(string(b), "daemon=master") {
		t.Errorf("master's own lines are not in the log file:\n%s", b)
	}

	out := in.Mailctl("", "log", first)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, want := range []string{
		"msg=queued daemon=smtpd", "msg=queued daemon=cleanup", "msg=delivery daemon=qmgr",
		"msg=delivered daemon=local", "msg=removed daemon=qmgr",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("mailctl log %s has no line %q:\n%s", first, want, out)
		}
	}
	for _, l := range lines {
		if !strings.Contains(l, " id="+first) || strings.Contains(l, second) {
			t.Errorf("mailctl log %s printed a line about something else: %s", first, l)
		}
	}
	if out := in.Mailctl("", "log", second); !strings.Contains(out, "from=<carol@client.test>") || strings.Contains(out, first) {
		t.Errorf("mailctl log %s:\n%s", second, out)
	}
	// The same lines from a saved copy of the log, named on the command line.
	if out2 := in.Mailctl("", "log", "--file", logFile, strings.ToLower(first)); out2 != out {
		t.Errorf("mailctl log --file differs:\n%s\nfrom\n%s", out2, out)
	}
}

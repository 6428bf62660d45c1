package logtrace

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// A log as the daemons write it, through slog's handlers: two messages, one of which
// bounced (its DSN's cleanup line comes before qmgr's line that names it).
func sampleLog(json bool) string {
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if json {
		h = slog.NewJSONHandler(&buf, nil)
	}
	log := slog.New(h)
	smtpd := log.With("daemon", "smtpd", "pid", 10)
	cleanup := log.With("daemon", "cleanup", "pid", 11)
	qmgr := log.With("daemon", "qmgr", "pid", 12)
	smtpd.Info("connect", "client", "127.0.0.1")
	cleanup.Info("queued", "id", "AAAA", "from", "<a@example.test>")
	smtpd.Info("queued", "id", "AAAA", "from", "<a@example.test>", "client", "127.0.0.1")
	cleanup.Info("queued", "id", "BBBB", "from", "<b@example.test>")
	qmgr.Info("delivery", "id", "BBBB", "to", "<x@example.test>", "reason", `550 "no" id=AAAA`)
	qmgr.Info("delivery", "id", "AAAA", "to", "<nobody@example.test>", "status", "bounced", "reason", "no such user\nhere")
	cleanup.Info("queued", "id", "CCCC", "from", "<>")
	qmgr.Info("bounce", "id", "AAAA", "dsn_id", "CCCC", "to", "<a@example.test>")
	qmgr.Info("delivery", "id", "CCCC", "to", "<a@example.test>", "status", "sent")
	qmgr.Info("removed", "id", "AAAA")
	buf.WriteString("panic: something\n\ngoroutine 1 [running]:\n")
	return buf.String()
}

func opener(s string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

func TestTrace(t *testing.T) {
	for _, json := range []bool{false, true} {
		lines, err := Trace(opener(sampleLog(json)), "AAAA")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range lines {
			a := Attrs(l)
			got = append(got, a["daemon"]+" "+a["msg"]+" "+a["id"])
		}
		want := []string{
			"cleanup queued AAAA", "smtpd queued AAAA", "qmgr delivery AAAA",
			"cleanup queued CCCC", "qmgr bounce AAAA", "qmgr delivery CCCC", "qmgr removed AAAA",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("json %v: lines\n%s\nwant\n%s", json, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if lines, _ := Trace(opener(sampleLog(json)), "ZZZZ"); len(lines) != 0 {
			t.Errorf("lines for an unknown ID: %q", lines)
		}
	}
}

func TestAttrs(t *testing.T) {
	a := Attrs(`time=2026-01-01T00:00:00Z level=INFO msg="a b" id=AB12 reason="550 \"x\" y=z" "odd key"=v empty=`)
	for k, v := range map[string]string{"msg": "a b", "id": "AB12", "reason": `550 "x" y=z`, "odd key": "v", "empty": ""} {
		if a[k] != v {
			t.Errorf("%s = %q, want %q", k, a[k], v)
		}
	}
	for _, s := range []string{"", "panic: x", `msg="unterminated`, "=v", `{"id": 5}`, "{bad json"} {
		if a := Attrs(s); a["id"] != "" {
			t.Errorf("Attrs(%q) found id %q", s, a["id"])
		}
	}
}

func FuzzAttrs(f *testing.F) {
	for _, l := range strings.Split(sampleLog(false)+sampleLog(true), "\n") {
		f.Add(l)
	}
	f.Add(`k="\"" k2="\\" k3=`)
	f.Fuzz(func(t *testing.T, line string) {
		a := Attrs(line)
		// What slog writes, it reads back.
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})).Info("m", "id", line)
		if got := Attrs(buf.String())["id"]; got != line {
			t.Errorf("id %q read back as %q (from %q, %d attrs)", line, got, buf.String(), len(a))
		}
	})
}

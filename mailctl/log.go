package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"postern/pkg/config"
	"postern/pkg/daemon"
	"postern/pkg/journal"
	"postern/pkg/logtrace"
	"postern/pkg/queue"
)

// runLog prints the log lines about one message (mailctl log ID).
func runLog(a *app, o *options, args []string) error {
	ids, err := queueIDs(args)
	if err != nil {
		return err
	}
	id := ids[0]
	path := o.logFile
	fromJournal := false
	if path == "" {
		cfg, err := a.loadConfig()
		if err != nil {
			return err
		}
		switch cfg.Log.Target {
		case config.LogFile:
			path = cfg.Log.File
		case config.LogJournal:
			fromJournal = true
		case config.LogAuto:
			if _, err := os.Stat(journal.SocketPath); err != nil {
				return errors.New("the daemons log to master's standard error ([log] target auto, and no systemd journal here): give the file it went to with --file, or set [log] target = \"file\" in " + cfg.Path)
			}
			fromJournal = true
		default:
			return fmt.Errorf("the daemons log to master's standard error ([log] target %q): give the file it went to with --file, or set [log] target = \"file\" in %s", cfg.Log.Target, cfg.Path)
		}
	}
	var lines []string
	if fromJournal {
		lines, err = journalTrace(id)
	} else {
		lines, err = logtrace.Trace(func() (io.ReadCloser, error) { return os.Open(path) }, id)
	}
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		where := path
		if fromJournal {
			where = "the journal"
		}
		return fmt.Errorf("no log line about %s in %s", id, where)
	}
	for _, l := range lines {
		fmt.Fprintln(a.stdout, l)
	}
	return nil
}

// journalEntry is what mailctl reads of journalctl -o json's entries. MESSAGE is a
// string, or an array of bytes when it is not valid UTF-8.
type journalEntry struct {
	Realtime   string          `json:"__REALTIME_TIMESTAMP"`
	Identifier string          `json:"SYSLOG_IDENTIFIER"`
	PID        string          `json:"_PID"`
	Message    json.RawMessage `json:"MESSAGE"`
	DSNID      json.RawMessage `json:"POSTERN_DSN_ID"`
}

// journalTrace reads the journal's entries about id and the notifications queued about
// it, and returns them as lines: time, identifier[pid], message.
func journalTrace(id string) ([]string, error) {
	want := []string{id}
	seen := map[string]bool{id: true}
	for {
		// Several matches of one field are alternatives (journalctl(1)). A message
		// arrives at its queue ID's time: nothing about it comes earlier.
		args := []string{"-o", "json", "--no-pager", "--since", "@" + strconv.FormatInt(queue.IDTime(id).Add(-time.Minute).Unix(), 10)}
		for _, w := range want {
			args = append(args, daemon.JournalQueueID+"="+w)
		}
		cmd := exec.Command("journalctl", args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("reading the journal (journalctl %s): %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		var lines []string
		grew := false
		for _, raw := range bytes.Split(out, []byte("\n")) {
			if len(bytes.TrimSpace(raw)) == 0 {
				continue
			}
			var e journalEntry
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, fmt.Errorf("reading the journal: an entry is not JSON: %w", err)
			}
			lines = append(lines, e.line())
			var dsn string
			if json.Unmarshal(e.DSNID, &dsn) == nil && dsn != "" && !seen[dsn] {
				seen[dsn], grew = true, true
				want = append(want, dsn)
			}
		}
		if !grew {
			return lines, nil
		}
	}
}

// line formats an entry as journalctl's short-iso output does.
func (e journalEntry) line() string {
	when := e.Realtime
	if us, err := strconv.ParseInt(e.Realtime, 10, 64); err == nil {
		when = time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	var msg string
	if json.Unmarshal(e.Message, &msg) != nil {
		var b []byte
		var ints []int
		if json.Unmarshal(e.Message, &ints) == nil {
			for _, c := range ints {
				b = append(b, byte(c))
			}
		}
		msg = strconv.Quote(string(b))
	}
	return fmt.Sprintf("%s %s[%s]: %s", when, e.Identifier, e.PID, msg)
}

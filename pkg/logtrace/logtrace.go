// Package logtrace finds the log lines about a message, as `grep ID` over Postfix's
// maillog does, in what Postern's daemons write (log/slog's text or JSON lines, [log]
// format): every line whose queue ID attribute ("id") names the message, and the lines
// of the notifications queued about it (a bounce, a delay warning), whose queue IDs the
// message's own lines name ("dsn_id").
package logtrace

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Attribute keys: the queue ID a line is about, and the queue ID of a notification
// queued about it; pkg/daemon's QueueIDKey and DSNIDKey, with which the daemons
// write them, are these.
const (
	IDKey    = "id"
	DSNIDKey = "dsn_id"
)

// MaxLine is the longest line looked at; longer ones are skipped.
const MaxLine = 1 << 20

// Attrs returns the top-level attributes of a log line: a JSON object's string members,
// or a text line's key=value pairs (values quoted as Go strings when they hold spaces,
// quotes or other special characters, as slog's text handler writes them). A line that
// is neither, such as a Go panic's, has none.
func Attrs(line string) map[string]string {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "{") {
		var obj map[string]any
		if json.Unmarshal([]byte(line), &obj) != nil {
			return nil
		}
		out := map[string]string{}
		for k, v := range obj {
			if s, ok := v.(string); ok {
				out[k] = s
			}
		}
		return out
	}
	out := map[string]string{}
	for line != "" {
		key, rest, ok := token(line, true)
		if !ok || !strings.HasPrefix(rest, "=") {
			return out
		}
		value, rest, ok := token(rest[1:], false)
		if !ok {
			return out
		}
		out[key] = value
		line = strings.TrimLeft(rest, " ")
	}
	return out
}

// token reads a key (up to "=") or a value (up to a space) from the start of s, quoted
// or not, and returns it with the rest of s.
func token(s string, key bool) (string, string, bool) {
	if strings.HasPrefix(s, `"`) {
		// The closing quote is the first one not escaped by a backslash.
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				v, err := strconv.Unquote(s[:i+1])
				return v, s[i+1:], err == nil
			}
		}
		return "", "", false
	}
	stop := " "
	if key {
		stop = "= "
	}
	i := strings.IndexAny(s, stop)
	if i < 0 {
		i = len(s)
	}
	if key && i == 0 {
		return "", "", false
	}
	return s[:i], s[i:], true
}

// Trace returns the lines of the log that open opens (it may be called more than once,
// for the log is read again when a notification's queue ID turns up) about the messages
// ids and the notifications queued about them, in the log's order.
func Trace(open func() (io.ReadCloser, error), ids ...string) ([]string, error) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for {
		var lines []string
		grew := false
		err := scan(open, func(line string) {
			if !mentions(line, want) {
				return // most lines: not worth parsing
			}
			attrs := Attrs(line)
			if !want[attrs[IDKey]] {
				return
			}
			lines = append(lines, line)
			if d := attrs[DSNIDKey]; d != "" && !want[d] {
				want[d], grew = true, true
			}
		})
		if err != nil || !grew {
			return lines, err
		}
		// A notification's own lines (cleanup queued it before qmgr named it) may come
		// before the line that names it: read again with its ID.
	}
}

// mentions tells whether line holds one of the queue IDs wanted anywhere: a line about
// one of them does, for slog writes a queue ID as it is (letters and digits).
func mentions(line string, want map[string]bool) bool {
	for id := range want {
		if strings.Contains(line, id) {
			return true
		}
	}
	return false
}

func scan(open func() (io.ReadCloser, error), f func(string)) error {
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 && len(line) <= MaxLine {
			f(strings.TrimRight(line, "\r\n"))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the log: %w", err)
		}
	}
}

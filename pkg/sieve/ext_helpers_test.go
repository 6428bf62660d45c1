package sieve

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"postern/pkg/mime"
)

// runOn parses script and runs it on the message msg (CRLF lines) delivered at now.
func runOn(t *testing.T, script, msg string, now time.Time) []Action {
	t.Helper()
	s, err := Parse([]byte(script))
	if err != nil {
		t.Fatalf("Parse(%q): %v", script, err)
	}
	m, err := mime.Parse(strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	acts, err := s.Run(&Message{Header: &m.Root.Header, MIME: m, Size: int64(len(msg)), From: "ann@example.org", To: "bob@example.net", Now: now})
	if err != nil {
		t.Fatalf("Run(%q): %v", script, err)
	}
	return acts
}

type extCase struct {
	script string
	want   []Action
}

// checkCases runs each case's script, after req, on msg.
func checkCases(t *testing.T, req, msg string, now time.Time, cases []extCase) {
	t.Helper()
	for _, c := range cases {
		got := runOn(t, req+c.script, msg, now)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s\n got  %+v\n want %+v", c.script, got, c.want)
		}
	}
}

// TestSeedScripts checks that the fuzz seeds in testdata parse, so that the fuzzer
// starts from scripts that reach the interpreter, and runs them on a MIME message.
func TestSeedScripts(t *testing.T) {
	seeds, _ := filepath.Glob("testdata/*.sieve")
	if len(seeds) < 3 {
		t.Fatalf("seeds %v", seeds)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(p) == "vacation.sieve" {
			// The vacation seed takes a second vacation, a run-time error (RFC 5230
			// §4.7) the fuzzer is to reach: it only has to parse.
			if _, err := Parse(b); err != nil {
				t.Errorf("Parse(%s): %v", p, err)
			}
			continue
		}
		runOn(t, string(b), crlf(mimeMsg), time.Now())
	}
}

package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	var b backoff
	var got []time.Duration
	for range 9 {
		d, why := b.delay(healthyAfter / 2)
		if !strings.Contains(why, "backing off") {
			t.Errorf("reason %q for a daemon failing at start", why)
		}
		got = append(got, d)
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000}
	for len(got) < len(want) {
		d, _ := b.delay(0)
		got = append(got, d)
	}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v milliseconds", got, want)
		}
	}
	// A daemon that had started and was serving (killed, or crashed on some input) is
	// started again at once, however often that happens: its socket must be served.
	for range 3 {
		if d, why := b.delay(healthyAfter); d != 0 || !strings.Contains(why, "at once") {
			t.Errorf("after a run of %v: %v (%s), want 0", healthyAfter, d, why)
		}
	}
	// and a failure at start after that starts over.
	if d, _ := b.delay(0); d != minBackoff {
		t.Errorf("first quick failure after a healthy run: %v, want %v", d, minBackoff)
	}
	if d, _ := b.delay(0); d != 2*minBackoff {
		t.Errorf("second quick failure: %v, want %v", d, 2*minBackoff)
	}
	// A daemon that cannot start at all (uptime 0) never restarts in a tight loop: after
	// the first few tries, once a minute.
	var c backoff
	total := time.Duration(0)
	for range 15 {
		d, _ := c.delay(0)
		total += d
	}
	if total < 5*time.Minute {
		t.Errorf("fifteen failed starts within %v", total)
	}
}

func TestExitReason(t *testing.T) {
	for _, tc := range []struct {
		script, want string
	}{
		{"exit 0", "exit 0"},
		{"exit 2", "exit 2"},
		{"kill -9 $$", "signal SIGKILL"},
		{"kill -TERM $$", "signal SIGTERM"},
	} {
		cmd := exec.Command("/bin/sh", "-c", tc.script)
		cmd.Run()
		if got := exitReason(cmd.ProcessState); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.script, got, tc.want)
		}
	}
	if got := exitReason(nil); got != "unknown" {
		t.Errorf("nil state: %q", got)
	}
}

func TestCheckProgram(t *testing.T) {
	if err := checkProgram("/bin/sh"); err != nil {
		t.Errorf("/bin/sh: %v", err)
	}
	if err := checkProgram("/nonexistent/smtpd"); err == nil {
		t.Error("a missing program passed")
	}
	if err := checkProgram("/etc/passwd"); err == nil {
		t.Error("a file that is not executable passed")
	}
	if err := checkProgram("/"); err == nil {
		t.Error("a directory passed")
	}
}

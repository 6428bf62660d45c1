package main

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"postern/pkg/config"
)

// TestSystemdNotify runs master as systemd runs a Type=notify service with WatchdogSec=:
// NOTIFY_SOCKET names an abstract datagram socket (the @ form), WATCHDOG_USEC is set.
// READY=1 comes once every daemon runs and its sockets answer, WATCHDOG=1 after it,
// RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a SIGHUP, STOPPING=1 at SIGTERM.
func TestSystemdNotify(t *testing.T) {
	in := newInstance(t)
	name := fmt.Sprintf("@postern-notify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "\x00" + name[1:], Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	// next returns the next message that is not WATCHDOG=1, and counts those skipped.
	watchdogs := 0
	next := func(what string) string {
		t.Helper()
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed while waiting for %s", what)
				}
				if m == "WATCHDOG=1" {
					watchdogs++
					continue
				}
				return m
			case <-time.After(30 * time.Second):
				t.Fatalf("no %s on the notify socket\n%s", what, in.log())
			}
		}
	}
	in.env = []string{"NOTIFY_SOCKET=" + name, "WATCHDOG_USEC=200000"}
	smtp, submission := freePort(t), freePort(t)
	in.writeConfig(smtp, submission, nil)
	in.start()

	ready := next("READY=1")
	if watchdogs > 0 {
		t.Errorf("WATCHDOG=1 before READY=1")
	}
	if !strings.HasPrefix(ready, "READY=1\n") || !strings.Contains(ready, "\nMAINPID="+strconv.Itoa(in.cmd.Process.Pid)) {
		t.Fatalf("first notification %q, want READY=1 with MAINPID=%d", ready, in.cmd.Process.Pid)
	}
	// At READY=1 every daemon has been started and its sockets are bound: smtpd answers
	// on its port, cleanup on its socket, without waiting for master.
	st, err := in.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range st.Daemons {
		if d.State != "running" || d.PID == 0 {
			t.Errorf("at READY=1, %s is %s", d.Name, d.State)
		}
	}
	if got, err := greeting("tcp", fmt.Sprintf("127.0.0.1:%d", smtp)); !strings.HasPrefix(got, "smtpd smtp ") {
		t.Errorf("smtp after READY=1: %q %v", got, err)
	}
	if got, err := greeting("unix", in.spool("private/cleanup")); !strings.HasPrefix(got, "cleanup private/cleanup ") {
		t.Errorf("private/cleanup after READY=1: %q %v", got, err)
	}
	// The watchdog: master answers its own status request, and says so.
	for watchdogs == 0 {
		select {
		case m := <-msgs:
			if m != "WATCHDOG=1" {
				t.Fatalf("unexpected notification %q while waiting for WATCHDOG=1", m)
			}
			watchdogs++
		case <-time.After(30 * time.Second):
			t.Fatalf("no WATCHDOG=1 with WATCHDOG_USEC set\n%s", in.log())
		}
	}

	in.cmd.Process.Signal(syscall.SIGHUP)
	if m := next("RELOADING=1"); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=\d+$`).MatchString(m) {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1 and MONOTONIC_USEC", m)
	}
	if m := next("READY=1 after the reload"); !strings.HasPrefix(m, "READY=1") {
		t.Fatalf("after the reload: %q, want READY=1", m)
	}

	in.cmd.Process.Signal(syscall.SIGTERM)
	if m := next("STOPPING=1"); m != "STOPPING=1" {
		t.Fatalf("after SIGTERM: %q, want STOPPING=1", m)
	}
	select {
	case <-in.done:
	case <-time.After(30 * time.Second):
		t.Fatal("master did not stop")
	}
}

// The watchdog's check fails when nothing answers on master's control socket: master
// then sends no WATCHDOG=1, and systemd restarts it.
func TestSelfCheckFails(t *testing.T) {
	m := &Master{cfg: &config.Config{SpoolDir: t.TempDir()}}
	if err := m.selfCheck(t.Context(), time.Second); err == nil {
		t.Fatal("selfCheck succeeded without a control socket")
	}
}

func TestTakeWatchdog(t *testing.T) {
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"30000000", "", 30 * time.Second},
		{"30000000", strconv.Itoa(os.Getpid()), 30 * time.Second},
		{"30000000", "1", 0}, // meant for another process
		{"x", "", 0},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		if got := takeWatchdog(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
		if os.Getenv("WATCHDOG_USEC") != "" {
			t.Error("WATCHDOG_USEC left in the environment")
		}
	}
}

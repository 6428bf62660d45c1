package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadPasswordLine(t *testing.T) {
	for in, want := range map[string]string{
		"secret\n":                              "secret",
		"secret\r\n":                            "secret",
		"secret":                                "secret",
		"with spaces  \nsecond\n":               "with spaces  ",
		strings.Repeat("x", maxPassword) + "\n": strings.Repeat("x", maxPassword),
	} {
		got, err := readPasswordLine(strings.NewReader(in))
		if err != nil || got != want {
			t.Errorf("readPasswordLine(%.20q) = %.20q, %v; want %.20q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\n", "\r\n", strings.Repeat("x", maxPassword+1), strings.Repeat("x", maxPassword+1) + "\n", strings.Repeat("x", 1<<20)} {
		if got, err := readPasswordLine(strings.NewReader(in)); err == nil {
			t.Errorf("readPasswordLine(%.20q) = %.20q, want an error", in, got)
		}
	}
}

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Skipf("ptsname: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Skipf("opening the pty: %v", err)
	}
	t.Cleanup(func() { slave.Close(); master.Close() })
	return master, slave
}

// typist answers each prompt written to standard error by typing the next line on the
// terminal.
type typist struct {
	master *os.File
	lines  []string
	seen   strings.Builder
}

func (ty *typist) Write(p []byte) (int, error) {
	ty.seen.Write(p)
	if strings.HasSuffix(string(p), ": ") && len(ty.lines) > 0 {
		ty.master.WriteString(ty.lines[0] + "\n")
		ty.lines = ty.lines[1:]
	}
	return len(p), nil
}

func TestPasswordPromptWithoutEcho(t *testing.T) {
	master, slave := openPTY(t)
	ta := newTestApp(t, "")
	ty := &typist{master: master, lines: []string{"hunter2", "hunter2"}}
	ta.terminal, ta.stderr = slave, ty
	got, err := ta.readPassword(false, "bob@example.test")
	if err != nil || got != "hunter2" {
		t.Fatalf("readPassword = %q, %v", got, err)
	}
	if !strings.Contains(ty.seen.String(), "New password for bob@example.test: ") || !strings.Contains(ty.seen.String(), "Again: ") {
		t.Errorf("prompts: %q", ty.seen.String())
	}
	// The terminal echoes again, and it never echoed the password: what the terminal
	// showed, up to a marker written now, holds no "hunter2".
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&unix.ECHO == 0 {
		t.Error("the terminal was left without echo")
	}
	slave.WriteString("END-OF-TEST\n")
	shown := ""
	r := bufio.NewReader(master)
	for !strings.Contains(shown, "END-OF-TEST") {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		shown += line
	}
	if strings.Contains(shown, "hunter2") {
		t.Errorf("the terminal echoed the password: %q", shown)
	}

	// Two different answers are refused.
	ty.lines = []string{"one", "two"}
	if _, err := ta.readPassword(false, "bob@example.test"); err == nil || !strings.Contains(err.Error(), "differ") {
		t.Errorf("different passwords: %v", err)
	}
}

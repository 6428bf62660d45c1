// Package test holds the end-to-end tests: each starts the real master with the real
// daemons from a development instance in a temporary directory, listening on loopback,
// and speaks to it with real clients.
package test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"postern/pkg/config"
)

// binDir holds the programs built for this test run.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("end-to-end tests skipped with -short")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "postern-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The daemons run as other users when the tests run as root: they must be able to
	// reach their programs.
	os.Chmod(dir, 0o755)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	args := []string{"build", "-o", dir + "/"}
	// Every top-level folder with a main.go is a program: master, the daemons, mailctl.
	mains, _ := filepath.Glob(filepath.Join(root, "*", "main.go"))
	for _, p := range mains {
		args = append(args, "./"+filepath.Base(filepath.Dir(p)))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the daemons:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Instance is a running development instance.
type Instance struct {
	t        *testing.T
	Dir      string
	Config   string
	Cfg      *config.Config
	IP       string
	PortBase int
	Password string // demo@example.test's
	LogPath  string
	// MasterPath is the master to run, bin/'s when empty (install_test.go runs an
	// installed one); Cred the user to run it as, the test's own when nil.
	MasterPath string
	Cred       *syscall.Credential

	master *exec.Cmd
	done   chan error
}

var portCounter atomic.Int32

// nextPortBase picks a port base whose listeners (base+25 ... base+995, sieve at base+4190, metrics at
// base+9154) are free; the highest base, 55000, keeps base+9154 below 65536.
func nextPortBase() int {
	n := int(portCounter.Add(1))
	return 20000 + 1000*((os.Getpid()+n*7+rand.IntN(3))%36)
}

// NewInstance creates a development instance with `mailctl init --dev` and starts master.
func NewInstance(t *testing.T, ip string) *Instance {
	t.Helper()
	if ip == "" {
		ip = "127.0.0.1"
	}
	dir, err := os.MkdirTemp("", "postern-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() {
		if !t.Failed() || os.Getenv("POSTERN_KEEP") == "" {
			os.RemoveAll(dir)
		} else {
			t.Logf("instance kept in %s", dir)
		}
	})
	in := &Instance{t: t, Dir: dir, Config: filepath.Join(dir, "postern.toml"), IP: ip}
	for attempt := 0; ; attempt++ {
		in.PortBase = nextPortBase()
		if portsFree(ip, in.PortBase) || attempt > 20 {
			break
		}
	}
	out := in.Mailctl("", "init", "--dev", "--listen", ip, "--port-base", strconv.Itoa(in.PortBase))
	m := regexp.MustCompile(`(?i)password:?\s+(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no password in the output of init:\n%s", out)
	}
	in.Password = m[1]
	// remote asks the tests' DNS server on loopback, never the host's resolvers.
	in.SetConfig("remote", "resolvers", `["`+testResolver(t)+`"]`)
	in.Cfg, err = config.Load(in.Config)
	if err != nil {
		t.Fatal(err)
	}
	in.LogPath = filepath.Join(dir, "master.log")
	in.Start()
	t.Cleanup(in.Stop)
	return in
}

func portsFree(ip string, base int) bool {
	for _, off := range []int{25, 80, 110, 143, 443, 465, 587, 993, 995, 4190, 9154} {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(base+off)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// SMTPAddr is the address of the MX listener.
func (in *Instance) SMTPAddr() string {
	return net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+25))
}

// Start starts master and waits until smtpd greets.
func (in *Instance) Start() {
	in.t.Helper()
	logf, err := os.OpenFile(in.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		in.t.Fatal(err)
	}
	masterPath := in.MasterPath
	if masterPath == "" {
		masterPath = filepath.Join(binDir, "master")
	}
	cmd := exec.Command(masterPath, "-c", in.Config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: in.Cred}
	if err := cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	logf.Close()
	in.master = cmd
	in.done = make(chan error, 1)
	go func() { in.done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// smtpd a child of master too: a greeting alone may come from another program on
		// the port, when master could not bind it (master binds every socket before it
		// starts any daemon).
		if greets(in.SMTPAddr()) && in.DaemonPIDs()["smtpd"] != 0 {
			return
		}
		select {
		case err := <-in.done:
			in.master = nil
			in.t.Fatalf("master exited at start: %v\n%s", err, in.Log())
		default:
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("smtpd did not greet on %s within 20s\n%s", in.SMTPAddr(), in.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "220")
}

// Stop stops master with SIGTERM and waits for it.
func (in *Instance) Stop() {
	if in.master == nil {
		return
	}
	in.master.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(60 * time.Second):
		in.t.Errorf("master did not stop within 60s of SIGTERM")
		syscall.Kill(-in.master.Process.Pid, syscall.SIGKILL)
		<-in.done
	}
	in.master = nil
}

// Kill9 kills master and every daemon with SIGKILL, the way a crash or power loss ends a
// process tree. (Master puts its children in its own process group.)
func (in *Instance) Kill9() {
	if in.master == nil {
		return
	}
	pids := in.DaemonPIDs()
	syscall.Kill(in.master.Process.Pid, syscall.SIGKILL)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	<-in.done
	in.master = nil
	// Wait for the daemons to be gone so their ports are free.
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// DaemonPIDs returns the pids of the daemons master started, by name.
func (in *Instance) DaemonPIDs() map[string]int {
	out := map[string]int{}
	if in.master == nil {
		return out
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Field 4 of /proc/PID/stat is the parent pid; the command may hold spaces.
		rest := stat[bytes.LastIndexByte(stat, ')')+2:]
		f := strings.Fields(string(rest))
		if len(f) < 2 || f[1] != strconv.Itoa(in.master.Process.Pid) {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		out[filepath.Base(exe)] = pid
	}
	return out
}

// Log returns what master and the daemons logged.
func (in *Instance) Log() string {
	b, _ := os.ReadFile(in.LogPath)
	return string(b)
}

// Mailctl runs bin/mailctl -c <config> args..., with stdin, and returns its output. It
// fails the test if mailctl fails.
func (in *Instance) Mailctl(stdin string, args ...string) string {
	in.t.Helper()
	out, err := in.MailctlErr(stdin, args...)
	if err != nil {
		in.t.Fatalf("mailctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// MailctlErr is Mailctl that returns the error instead of failing.
func (in *Instance) MailctlErr(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "mailctl"), append([]string{"-c", in.Config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Maildir returns the Maildir of an account of the instance.
func (in *Instance) Maildir(addr string) string {
	local, domain, _ := strings.Cut(addr, "@")
	return filepath.Join(in.Cfg.MailDir(), domain, local)
}

// Messages returns the contents of the files in a Maildir's new/ and cur/.
func (in *Instance) Messages(addr string) [][]byte {
	var out [][]byte
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(in.Maildir(addr), sub)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil {
				out = append(out, b)
			}
		}
	}
	return out
}

// WaitMessages waits until the account's Maildir holds at least n messages.
func (in *Instance) WaitMessages(addr string, n int, timeout time.Duration) [][]byte {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := in.Messages(addr)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("%s has %d messages after %v, want %d\n%s", addr, len(msgs), timeout, n, tail(in.Log(), 60))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// need skips the test, or fails it in CI, when a Debian tool is missing.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing: .ci/run must install the Debian package %s", tool, pkg)
	}
	t.Skipf("%s not installed (apt-get install %s); skipping", tool, pkg)
	return ""
}

// SetConfig sets key = value (value as TOML) in [section] of the instance's config file,
// replacing the key if the section has it already.
func (in *Instance) SetConfig(section, key, value string) {
	in.t.Helper()
	b, err := os.ReadFile(in.Config)
	if err != nil {
		in.t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var out []string
	current, done := "", false
	keyRe := regexp.MustCompile(`^\s*` + regexp.QuoteMeta(key) + `\s*=`)
	for _, l := range lines {
		if m := regexp.MustCompile(`^\s*\[([^\]]+)\]`).FindStringSubmatch(l); m != nil {
			current = strings.TrimSpace(m[1])
			out = append(out, l)
			if current == section && !done {
				out = append(out, key+" = "+value)
				done = true
			}
			continue
		}
		if current == section && keyRe.MatchString(l) {
			continue
		}
		out = append(out, l)
	}
	if !done {
		out = append(out, "", "["+section+"]", key+" = "+value)
	}
	if err := os.WriteFile(in.Config, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		in.t.Fatal(err)
	}
	if _, err := config.Load(in.Config); err != nil {
		in.t.Fatalf("SetConfig made a bad config: %v", err)
	}
}

// Reload sends SIGHUP to master.
func (in *Instance) Reload() {
	in.master.Process.Signal(syscall.SIGHUP)
}

// WaitFor polls cond until it holds or the timeout passes.
func (in *Instance) WaitFor(what string, timeout time.Duration, cond func() bool) {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			in.t.Fatalf("timed out after %v waiting for %s\n%s", timeout, what, tail(in.Log(), 80))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

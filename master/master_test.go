package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/ipc"
)

// The integration tests build master and testdata/fakedaemon, which stands in for every
// daemon, and run master on a temporary instance. When the tests run as root, master runs
// as nobody: that is the "without root" mode of every development instance, and it
// needs no system users.

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaries builds master and the fake daemon once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs master; skipped with -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "postern-master-bin-")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(dir, 0o755)
		buildDir = dir
		out, err := exec.Command("go", "build", "-o", dir+"/", ".", "./testdata/fakedaemon").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// runAs is the credential master runs with in the tests: nobody when the tests run as
// root, else the test's own user.
func runAs(t *testing.T) *syscall.Credential {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("running as root and there is no user nobody")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

// report is what testdata/fakedaemon writes.
type report struct {
	Name      string   `json:"name"`
	PID       int      `json:"pid"`
	PPID      int      `json:"ppid"`
	UID       int      `json:"uid"`
	ListenPID string   `json:"listen_pid"`
	Listeners []string `json:"listeners"`
	Args      []string `json:"args"`
	User      string   `json:"user"`
	GID       int      `json:"gid"`
	Groups    []int    `json:"groups"`
}

// instance is a master running on a temporary instance of fake daemons.
type instance struct {
	t       *testing.T
	bin     string
	dir     string
	config  string
	reports string
	logPath string
	imap    int // imapd's port, fixed for the instance so that a reload keeps it
	https   int // httpd's, likewise
	sieve   int // sieved's, likewise
	cred    *syscall.Credential
	env     []string // added to master's environment
	cmd     *exec.Cmd
	done    chan error
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newInstance(t *testing.T) *instance {
	t.Helper()
	bin := binaries(t)
	dir, err := os.MkdirTemp("", "postern-master-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	in := &instance{t: t, bin: bin, dir: dir, config: filepath.Join(dir, "postern.toml"),
		reports: filepath.Join(dir, "reports"), logPath: filepath.Join(dir, "master.log"),
		imap: freePort(t), https: freePort(t), sieve: freePort(t), cred: runAs(t)}
	os.Mkdir(in.reports, 0o755)
	if in.cred != nil {
		os.Chown(dir, int(in.cred.Uid), int(in.cred.Gid))
		os.Chown(in.reports, int(in.cred.Uid), int(in.cred.Gid))
	}
	return in
}

// allDaemons names every daemon master knows, in start order.
func allDaemons() []string {
	var names []string
	for _, d := range config.Daemons {
		names = append(names, d.Name)
	}
	return names
}

// except returns names without the ones given, in the same order.
func except(names []string, drop ...string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

// writeConfig writes the instance's postern.toml: every daemon is the fake daemon, smtpd
// listens on the given ports. extra adds lines to the [services.NAME] tables; the key
// "NAME.command" replaces the program and "NAME.args" adds arguments.
func (in *instance) writeConfig(smtp, submission int, extra map[string]string) {
	in.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "hostname = \"mx.test\"\nspool_dir = \"spool\"\ndata_dir = \"data\"\nbin_dir = %q\n", in.bin)
	b.WriteString("[smtpd]\nshutdown_grace = \"0s\"\n")
	for _, name := range allDaemons() {
		args := fmt.Sprintf(`"-name", %q, "-report", %q`, name, in.reports)
		if a, ok := extra[name+".args"]; ok {
			args += ", " + a
		}
		command := filepath.Join(in.bin, "fakedaemon")
		if c, ok := extra[name+".command"]; ok {
			command = c
		}
		fmt.Fprintf(&b, "[services.%s]\ncommand = %q\nargs = [%s]\n", name, command, args)
		if name == "smtpd" {
			fmt.Fprintf(&b, "listen = { smtp = \"127.0.0.1:%d\", submission = \"127.0.0.1:%d\" }\n", smtp, submission)
		} else if name == "imapd" {
			// Not its default, the real port 143: an enabled daemon with
			// listeners needs at least one.
			fmt.Fprintf(&b, "listen = { imap = \"127.0.0.1:%d\" }\n", in.imap)
		} else if name == "httpd" {
			fmt.Fprintf(&b, "listen = { https = \"127.0.0.1:%d\" }\n", in.https)
		} else if name == "sieved" {
			fmt.Fprintf(&b, "listen = { sieve = \"127.0.0.1:%d\" }\n", in.sieve)
		}
		b.WriteString(extra[name])
	}
	if err := os.WriteFile(in.config, []byte(b.String()), 0o644); err != nil {
		in.t.Fatal(err)
	}
}

func (in *instance) command(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(in.bin, "master"), append([]string{"-c", in.config}, args...)...)
	if in.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: in.cred}
	}
	if in.env != nil {
		cmd.Env = append(os.Environ(), in.env...)
	}
	return cmd
}

func (in *instance) start() {
	in.t.Helper()
	logf, err := os.OpenFile(in.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		in.t.Fatal(err)
	}
	defer logf.Close()
	in.cmd = in.command()
	in.cmd.Stdout, in.cmd.Stderr = logf, logf
	if err := in.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.done = make(chan error, 1)
	go func() { in.done <- in.cmd.Wait() }()
	in.t.Cleanup(func() {
		if in.cmd.ProcessState == nil {
			in.cmd.Process.Kill()
			<-in.done
		}
	})
}

func (in *instance) log() string {
	b, _ := os.ReadFile(in.logPath)
	return string(b)
}

func (in *instance) spool(rel string) string { return filepath.Join(in.dir, "spool", rel) }

func (in *instance) status() (control.MasterStatusResult, error) {
	var res control.MasterStatusResult
	cl := ipc.NewClient(in.spool("control/master"))
	cl.Timeout = 5 * time.Second
	defer cl.Close()
	_, err := cl.Call(context.Background(), control.MasterStatus, nil, &res)
	return res, err
}

func (in *instance) report(name string) (report, error) {
	var r report
	b, err := os.ReadFile(filepath.Join(in.reports, name+".json"))
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}

// waitFor polls cond for up to 20 seconds (the machine may be busy).
func (in *instance) waitFor(what string, cond func() bool) {
	in.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			in.t.Fatalf("timed out waiting for %s\n%s", what, in.log())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// running waits until the named daemons run and have reported, and returns their
// reports; the pid master reports must be the pid that reported.
func (in *instance) running(names ...string) map[string]report {
	in.t.Helper()
	out := map[string]report{}
	in.waitFor(fmt.Sprintf("%v to run", names), func() bool {
		st, err := in.status()
		if err != nil {
			return false
		}
		for _, n := range names {
			i := slices.IndexFunc(st.Daemons, func(d control.DaemonStatus) bool { return d.Name == n })
			if i < 0 || st.Daemons[i].State != "running" {
				return false
			}
			r, err := in.report(n)
			if err != nil || r.PID != st.Daemons[i].PID {
				return false
			}
			out[n] = r
		}
		return true
	})
	return out
}

func (in *instance) daemonStatus(name string) control.DaemonStatus {
	in.t.Helper()
	st, err := in.status()
	if err != nil {
		// A goroutine dump says where master hangs.
		in.cmd.Process.Signal(syscall.SIGQUIT)
		<-in.done
		in.t.Fatalf("status: %v\nmaster's log:\n%s", err, in.log())
	}
	for _, d := range st.Daemons {
		if d.Name == name {
			return d
		}
	}
	in.t.Fatalf("no %s in the status", name)
	return control.DaemonStatus{}
}

// greeting connects to a socket and returns the line the fake daemon sends.
func greeting(network, addr string) (string, error) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie waiting for its new parent to reap it is dead too.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func TestMaster(t *testing.T) {
	in := newInstance(t)
	smtp, submission := freePort(t), freePort(t)
	// qmgr ignores SIGTERM, to prove that stopping is bounded.
	ignoreTerm := map[string]string{"qmgr.args": `"-ignore-term"`}
	in.writeConfig(smtp, submission, ignoreTerm)
	in.start()
	all := allDaemons()
	reports := in.running(all...)
	masterPID := in.cmd.Process.Pid

	// Every daemon got its sockets under their names, with LISTEN_PID its own pid, as
	// a direct child of master (the exec shim keeps the pid).
	wantListeners := map[string][]string{}
	for _, d := range config.Daemons {
		var names []string
		for _, c := range d.Control {
			names = append(names, "control/"+c)
		}
		for _, p := range d.Private {
			names = append(names, "private/"+p)
		}
		for _, p := range d.Public {
			names = append(names, "public/"+p)
		}
		slices.Sort(names)
		wantListeners[d.Name] = names
	}
	wantListeners["smtpd"] = []string{"smtp", "submission"}
	wantListeners["imapd"] = []string{"imap"}
	wantListeners["httpd"] = []string{"https"}
	wantListeners["sieved"] = []string{"control/sieved", "sieve"}
	for name, r := range reports {
		if !slices.Equal(r.Listeners, wantListeners[name]) {
			t.Errorf("%s got listeners %v, want %v", name, r.Listeners, wantListeners[name])
		}
		// A daemon without sockets gets no LISTEN_PID.
		if (len(r.Listeners) > 0 && r.ListenPID != strconv.Itoa(r.PID)) || r.PPID != masterPID {
			t.Errorf("%s: pid %d, LISTEN_PID %s, parent %d (master %d)", name, r.PID, r.ListenPID, r.PPID, masterPID)
		}
		if len(r.Args) < 3 || r.Args[0] != filepath.Join(in.bin, "fakedaemon") || r.Args[1] != "-c" || r.Args[2] != in.config {
			t.Errorf("%s: argv %q", name, r.Args)
		}
		if in.cred != nil && r.UID != int(in.cred.Uid) {
			t.Errorf("%s runs as uid %d", name, r.UID)
		}
	}
	// ... and the sockets accept.
	for name, socks := range wantListeners {
		for _, s := range socks {
			network, addr := "unix", in.spool(s)
			switch s {
			case "smtp":
				network, addr = "tcp", fmt.Sprintf("127.0.0.1:%d", smtp)
			case "submission":
				network, addr = "tcp", fmt.Sprintf("127.0.0.1:%d", submission)
			case "imap":
				network, addr = "tcp", fmt.Sprintf("127.0.0.1:%d", in.imap)
			case "https":
				network, addr = "tcp", fmt.Sprintf("127.0.0.1:%d", in.https)
			case "sieve":
				network, addr = "tcp", fmt.Sprintf("127.0.0.1:%d", in.sieve)
			}
			want := fmt.Sprintf("%s %s %d", name, s, reports[name].PID)
			if got, err := greeting(network, addr); got != want {
				t.Errorf("%s: got %q, %v; want %q", addr, got, err, want)
			}
		}
	}
	// The layout and master's files.
	for rel, mode := range map[string]os.FileMode{"private": 0o750, "control": 0o750, "incoming": 0o700, "../data/mail": 0o700, "private/cleanup": 0o660, "control/master": 0o660, "public": 0o755, "public/cleanup": 0o666} {
		if fi, err := os.Stat(in.spool(rel)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %v", rel, fi.Mode(), err, mode)
		}
	}
	if b, _ := os.ReadFile(in.spool("master.pid")); strings.TrimSpace(string(b)) != strconv.Itoa(masterPID) {
		t.Errorf("master.pid holds %q, want %d", b, masterPID)
	}
	st, err := in.status()
	if err != nil || st.PID != masterPID || st.Config != in.config || len(st.Daemons) != len(all) {
		t.Errorf("status: %+v, %v", st, err)
	}

	// A second master on the same spool refuses to start.
	out, err := in.command().CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another master (pid "+strconv.Itoa(masterPID)+")") {
		t.Errorf("second master: %v\n%s", err, out)
	}

	// kill -9 of a daemon: master says why and starts it again (at once if it had run a
	// second, else after 100 ms); the socket stayed bound meanwhile.
	old := reports["cleanup"].PID
	syscall.Kill(old, syscall.SIGKILL)
	in.waitFor("cleanup to restart", func() bool {
		r, err := in.report("cleanup")
		return err == nil && r.PID != old && in.daemonStatus("cleanup").PID == r.PID
	})
	cs := in.daemonStatus("cleanup")
	if cs.Restarts != 1 || !strings.Contains(cs.LastExit, "signal SIGKILL") {
		t.Errorf("cleanup status after kill -9: %+v", cs)
	}
	exitLine := regexp.MustCompile(`msg="daemon exited".* name=cleanup pid=` + strconv.Itoa(old) + ` status="signal SIGKILL" uptime=\S+ restart_in=(0s restart="ran 1s or longer: restarting at once"|100ms restart="failing at start \(ran under 1s\): backing off")`)
	if !exitLine.MatchString(in.log()) {
		t.Errorf("no exit line for cleanup in the log:\n%s", in.log())
	}
	if got, _ := greeting("unix", in.spool("private/cleanup")); got != fmt.Sprintf("cleanup private/cleanup %d", cs.PID) {
		t.Errorf("the restarted cleanup answers %q", got)
	}
	reports["cleanup"] = report{PID: cs.PID}

	// A configuration that does not parse changes nothing, and the log names the line.
	good, _ := os.ReadFile(in.config)
	os.WriteFile(in.config, append(slices.Clone(good), "\n[queue]\nmin_backoff = 5\n"...), 0o644)
	in.cmd.Process.Signal(syscall.SIGHUP)
	in.waitFor("the failed reload", func() bool { return strings.Contains(in.log(), "reload failed") })
	if !regexp.MustCompile(`reload failed.*postern\.toml:\d+: `).MatchString(in.log()) {
		t.Errorf("the reload error does not name the line:\n%s", in.log())
	}
	for _, name := range all {
		if pid := in.daemonStatus(name).PID; pid != reports[name].PID {
			t.Errorf("%s restarted by a failed reload (pid %d, was %d)", name, pid, reports[name].PID)
		}
	}

	// SIGHUP with a new submission port and local disabled: smtpd restarts on the new
	// port, local stops and its socket goes away, the others keep running.
	moved := freePort(t)
	in.writeConfig(smtp, moved, map[string]string{"qmgr.args": `"-ignore-term"`, "local": "enable = false\n"})
	in.cmd.Process.Signal(syscall.SIGHUP)
	in.waitFor("smtpd to restart", func() bool {
		return in.daemonStatus("smtpd").PID != reports["smtpd"].PID && in.daemonStatus("local").State == "disabled"
	})
	r := in.running("smtpd")["smtpd"]
	if got, _ := greeting("tcp", fmt.Sprintf("127.0.0.1:%d", moved)); got != fmt.Sprintf("smtpd submission %d", r.PID) {
		t.Errorf("new submission port answers %q", got)
	}
	if got, _ := greeting("tcp", fmt.Sprintf("127.0.0.1:%d", smtp)); got != fmt.Sprintf("smtpd smtp %d", r.PID) {
		t.Errorf("smtp port answers %q", got)
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", submission), time.Second); err == nil {
		t.Errorf("the old submission port still accepts")
	}
	if _, err := os.Lstat(in.spool("private/local")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("private/local after local was disabled: %v", err)
	}
	if alive(reports["local"].PID) {
		t.Errorf("local (pid %d) still runs", reports["local"].PID)
	}
	for _, name := range []string{"authd", "qmgr", "cleanup"} {
		if pid := in.daemonStatus(name).PID; pid != reports[name].PID {
			t.Errorf("%s restarted by a reload that did not concern it", name)
		}
	}
	if !regexp.MustCompile(`msg="configuration reloaded".* restarted=\[smtpd\] started=\[\] stopped=\[local\]`).MatchString(in.log()) {
		t.Errorf("no reload summary in the log:\n%s", in.log())
	}
	reports["smtpd"] = r

	// A reload through the control socket, with nothing changed.
	cl := ipc.NewClient(in.spool("control/master"))
	if _, err := cl.Call(context.Background(), control.MasterReload, nil, nil); err != nil {
		t.Errorf("reload over the control socket: %v", err)
	}
	cl.Close()
	if !strings.Contains(in.log(), "nothing to restart") {
		t.Errorf("the reload without changes did not say so:\n%s", in.log())
	}
	// smtpd, which reloads its certificates on SIGHUP, got it passed on; the others not.
	in.waitFor("smtpd to get SIGHUP", func() bool {
		_, err := os.Stat(filepath.Join(in.reports, fmt.Sprintf("smtpd.%d.hup", reports["smtpd"].PID)))
		return err == nil
	})
	for _, name := range []string{"authd", "qmgr", "cleanup"} {
		if _, err := os.Stat(filepath.Join(in.reports, fmt.Sprintf("%s.%d.hup", name, reports[name].PID))); err == nil {
			t.Errorf("%s got SIGHUP", name)
		}
	}

	// SIGTERM: smtpd first; qmgr ignores SIGTERM and is killed at shutdown_grace (0s) + 5s;
	// authd, not yet signalled then, still gets SIGTERM and its last second; master
	// exits 0 and removes master.pid.
	begin := time.Now()
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("master exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("master did not stop within 20s of SIGTERM\n%s", in.log())
	}
	took := time.Since(begin)
	if took > shutdownSlack+lastChance+3*time.Second {
		t.Errorf("stopping took %v\n%s", took, in.log())
	}
	log := in.log()
	if !regexp.MustCompile(`did not stop in time, killing it.* name=qmgr`).MatchString(log) {
		t.Errorf("qmgr was not killed:\n%s", log)
	}
	for _, name := range []string{"smtpd", "cleanup", "authd"} {
		marker := filepath.Join(in.reports, fmt.Sprintf("%s.%d.term", name, reports[name].PID))
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("%s did not get SIGTERM: %v", name, err)
		}
	}
	stopping := log[max(0, strings.Index(log, "msg=stopping")):]
	if i, j := strings.Index(stopping, "daemon stopped\" daemon=master name=smtpd"), strings.Index(stopping, "daemon stopped\" daemon=master name=cleanup"); i < 0 || j < i {
		t.Errorf("smtpd was not stopped before cleanup:\n%s", log)
	}
	for name, r := range reports {
		if alive(r.PID) {
			t.Errorf("%s (pid %d) survived master", name, r.PID)
		}
	}
	if _, err := os.Stat(in.spool("master.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("master.pid after stop: %v", err)
	}
	if os.Getenv("MASTER_TEST_LOG") != "" {
		t.Log(log)
	}
}

// TestChildrenDieWithMaster kills master with SIGKILL: its children must not outlive it
// (they would keep the ports), and a new master starts at once on the same spool.
func TestChildrenDieWithMaster(t *testing.T) {
	in := newInstance(t)
	in.writeConfig(freePort(t), freePort(t), nil)
	in.start()
	reports := in.running(allDaemons()...)
	in.cmd.Process.Kill()
	<-in.done
	// The survivors are named with their state, should one outlive master.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var left []string
		for name, r := range reports {
			if alive(r.PID) {
				stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.PID))
				wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", r.PID))
				left = append(left, fmt.Sprintf("%s: %s wchan=%s", name, stat, wchan))
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemons outlived master:\n%s\n%s", strings.Join(left, "\n"), in.log())
		}
		time.Sleep(25 * time.Millisecond)
	}
	in.start()
	again := in.running(allDaemons()...)
	if again["smtpd"].PID == reports["smtpd"].PID {
		t.Error("smtpd was not started again")
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	<-in.done
}

func TestCheckFlag(t *testing.T) {
	in := newInstance(t)
	in.writeConfig(2525, 2587, nil)
	out, err := in.command("-n").CombinedOutput()
	if err != nil {
		t.Fatalf("master -n: %v\n%s", err, out)
	}
	for _, want := range []string{"smtpd", "smtp=127.0.0.1:2525", "private/auth control/authd", "ok"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("master -n output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(in.spool("")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("master -n created the spool: %v", err)
	}
	in.writeConfig(2525, 2587, map[string]string{"local.command": "/nonexistent/local"})
	out, err = in.command("-n").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "/nonexistent/local") {
		t.Errorf("master -n with a missing program: %v\n%s", err, out)
	}
}

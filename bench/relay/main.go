// Command relay measures outbound delivery: how many messages per second go from
// submission on one Postern instance to the Maildir of an account on another, through
// the first one's remote daemon, MX lookup and SMTP.
//
//	go run ./bench/relay [-n 2000] [-size 4096] [-sessions 10] [-bin bin] [-keep]
//
// It creates two development instances in temporary directories: A (a.test) on
// 127.0.0.2 and B (b.test) on 127.0.0.3, on unprivileged ports, with a fake DNS server
// on 127.0.0.1 that publishes their MX records, and A's remote sending to B's port.
// Then SESSIONS clients submit N messages of SIZE bytes to A (port 587, STARTTLS, AUTH
// PLAIN as alice@a.test, several messages per session) for bob@b.test, and it prints
// the submission rate, the end-to-end rate (until N files are in bob's Maildir new/),
// and how many SMTP connections A's remote opened for them. The programs come from
// -bin (make build).
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"postern/pkg/resolver/resolvertest"
)

func main() {
	n := flag.Int("n", 2000, "messages")
	size := flag.Int("size", 4096, "message size in bytes")
	sessions := flag.Int("sessions", 10, "parallel submission sessions")
	bin := flag.String("bin", "bin", "directory of the Postern programs")
	keep := flag.Bool("keep", false, "keep the instances' directories")
	drain := flag.Bool("drain", false, "then measure remote alone: queue n more messages with remote stopped, start it, time the drain")
	flag.Parse()
	if err := run(*n, *size, *sessions, *bin, *keep, *drain); err != nil {
		fmt.Fprintln(os.Stderr, "bench/relay:", err)
		os.Exit(1)
	}
}

type instance struct {
	dir, config, ip string
	base            int
	master          *exec.Cmd
}

func run(n, size, sessions int, bin string, keep, drain bool) error {
	bin, _ = filepath.Abs(bin)
	dns, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		return err
	}
	defer dns.Close()
	// Real resolvers hand out TTLs, and remote keeps answers for them.
	dns.KeepTTLs(true)
	a := &instance{ip: "127.0.0.2", base: 32000}
	b := &instance{ip: "127.0.0.3", base: 33000}
	for _, d := range []struct {
		in     *instance
		domain string
	}{{a, "a.test"}, {b, "b.test"}} {
		dns.Add(d.domain+". 300 IN MX 10 mx."+d.domain+".", "mx."+d.domain+". 300 IN A "+d.in.ip)
	}
	for _, in := range []*instance{a, b} {
		if err := in.create(bin, dns.Addr, b.base+25, n); err != nil {
			return err
		}
		defer in.stop(keep)
	}
	for _, in := range []*instance{a, b} {
		if err := in.start(bin); err != nil {
			return err
		}
	}
	const pass = "bench-password-1"
	for _, c := range [][]string{
		{"domain", "add", "a.test"}, {"user", "add", "alice@a.test", "--password-stdin"},
	} {
		if err := a.mailctl(bin, pass+"\n", c...); err != nil {
			return err
		}
	}
	for _, c := range [][]string{
		{"domain", "add", "b.test"}, {"user", "add", "bob@b.test", "--password-stdin"},
	} {
		if err := b.mailctl(bin, pass+"\n", c...); err != nil {
			return err
		}
	}
	maildir := filepath.Join(b.dir, "data", "mail", "b.test", "bob", "new")

	body := message(size)
	fmt.Printf("bench/relay: %d messages of %d bytes, %d sessions: submission on %s:%d -> remote -> MX %s:%d -> Maildir\n",
		n, len(body), sessions, a.ip, a.base+587, b.ip, b.base+25)
	submitAll := func() error {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, sessions)
		for range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := submit(net.JoinHostPort(a.ip, strconv.Itoa(a.base+587)), pass, body, &next, int64(n)); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}
	waitFor := func(what string, cond func() bool) error {
		deadline := time.Now().Add(10 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				return fmt.Errorf("still waiting for %s after 10 minutes", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}
	start := time.Now()
	if err := submitAll(); err != nil {
		return err
	}
	submitted := time.Since(start)
	if err := waitFor("the messages in B's Maildir", func() bool { return count(maildir) >= n }); err != nil {
		return err
	}
	delivered := time.Since(start)
	logA, _ := os.ReadFile(filepath.Join(a.dir, "master.log"))
	conns := len(regexp.MustCompile(`msg=connected daemon=remote`).FindAll(logA, -1))
	fmt.Printf("submitted: %d messages in %.2fs = %.0f msg/s\n", n, submitted.Seconds(), float64(n)/submitted.Seconds())
	fmt.Printf("delivered: %d messages in B's Maildir in %.2fs = %.0f msg/s (end to end)\n", n, delivered.Seconds(), float64(n)/delivered.Seconds())
	fmt.Printf("A's remote opened %d SMTP connections to B\n", conns)
	if !drain {
		return nil
	}

	// remote alone: the queue fills while remote is stopped, then drains.
	if err := a.setRemote(false); err != nil {
		return err
	}
	if err := submitAll(); err != nil {
		return err
	}
	deferred := filepath.Join(a.dir, "spool", "deferred")
	if err := waitFor("the messages in A's deferred queue", func() bool { return count(deferred) >= n }); err != nil {
		return err
	}
	if err := a.setRemote(true); err != nil {
		return err
	}
	start = time.Now()
	if err := a.mailctl(bin, "", "queue", "flush"); err != nil {
		return err
	}
	if err := waitFor("the queued messages in B's Maildir", func() bool { return count(maildir) >= 2*n }); err != nil {
		return err
	}
	drained := time.Since(start)
	fmt.Printf("drain: %d queued messages from A's queue to B's Maildir in %.2fs = %.0f msg/s (remote alone)\n", n, drained.Seconds(), float64(n)/drained.Seconds())
	return nil
}

// setRemote enables or disables [services.remote] and has master apply it, then waits
// until the remote daemon runs, or no longer does.
func (in *instance) setRemote(on bool) error {
	conf, err := os.ReadFile(in.config)
	if err != nil {
		return err
	}
	from, to := "[services.remote]\nenable = true", "[services.remote]\nenable = false"
	if on {
		from, to = to, from
	}
	if !bytes.Contains(conf, []byte(from)) {
		return fmt.Errorf("%s has no %q", in.config, from)
	}
	if err := os.WriteFile(in.config, bytes.Replace(conf, []byte(from), []byte(to), 1), 0o644); err != nil {
		return err
	}
	in.master.Process.Signal(syscall.SIGHUP)
	for range 200 {
		running := in.running("remote")
		if running == on {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("remote did not %s within 10s", map[bool]string{true: "start", false: "stop"}[on])
}

// running says whether master runs the named daemon: a child of master whose program
// has that name.
func (in *instance) running(name string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		rest := stat[bytes.LastIndexByte(stat, ')')+2:]
		f := strings.Fields(string(rest))
		if len(f) < 2 || f[1] != strconv.Itoa(in.master.Process.Pid) {
			continue
		}
		if exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); filepath.Base(exe) == name {
			return true
		}
	}
	return false
}

// message is a message of size bytes (for sizes above its header), in CRLF lines.
func message(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: <alice@a.test>\r\nTo: <bob@b.test>\r\nSubject: bench/relay\r\n\r\n")
	line := strings.Repeat("x", 76) + "\r\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	if rest := size - b.Len(); rest > 2 {
		b.WriteString(strings.Repeat("y", rest-2) + "\r\n")
	}
	return b.Bytes()
}

// submit sends messages over one session until next reaches n.
func submit(addr, pass string, body []byte, next *atomic.Int64, n int64) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	if err := c.Auth(smtp.PlainAuth("", "alice@a.test", pass, host)); err != nil {
		return err
	}
	for next.Add(1) <= n {
		if err := c.Mail("alice@a.test"); err != nil {
			return err
		}
		if err := c.Rcpt("bob@b.test"); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		w.Write(body)
		if err := w.Close(); err != nil {
			return err
		}
	}
	return c.Quit()
}

func count(dir string) int {
	entries, _ := os.ReadDir(dir)
	return len(entries)
}

// create makes a development instance: its own hostname, the fake DNS as resolver,
// mail out to port remotePort, and submission limits out of the way.
func (in *instance) create(bin, dnsAddr string, remotePort, n int) error {
	dir, err := os.MkdirTemp("", "postern-bench-relay-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755)
	in.dir, in.config = dir, filepath.Join(dir, "postern.toml")
	if err := in.mailctl(bin, "", "init", "--dev", "--listen", in.ip, "--port-base", strconv.Itoa(in.base)); err != nil {
		return err
	}
	conf, err := os.ReadFile(in.config)
	if err != nil {
		return err
	}
	host := "mx.a.test"
	if in.ip == "127.0.0.3" {
		host = "mx.b.test"
	}
	conf = regexp.MustCompile(`(?m)^hostname = .*$`).ReplaceAll(conf, []byte(`hostname = "`+host+`"`))
	conf = setKeys(conf, "remote", fmt.Sprintf("resolvers = [%q]\nport = %d\nbind_address = %q\n", dnsAddr, remotePort, in.ip))
	conf = setKeys(conf, "submission", fmt.Sprintf("max_messages_per_hour = %d\nmax_recipients_per_hour = %d\n", 2*n, 2*n))
	return os.WriteFile(in.config, conf, 0o644)
}

// setKeys puts lines at the top of [section], adding the section when the file has none.
// The generated file only shows defaults in comments, so no key is set twice.
func setKeys(conf []byte, section, lines string) []byte {
	header := []byte("\n[" + section + "]\n")
	if i := bytes.Index(conf, header); i >= 0 {
		at := i + len(header)
		return append(conf[:at:at], append([]byte(lines), conf[at:]...)...)
	}
	return append(conf, append(header, lines...)...)
}

func (in *instance) start(bin string) error {
	logf, err := os.Create(filepath.Join(in.dir, "master.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "master"), "-c", in.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	in.master = cmd
	addr := net.JoinHostPort(in.ip, strconv.Itoa(in.base+25))
	for range 200 {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "220") {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not greet within 10s; see %s/master.log", addr, in.dir)
}

func (in *instance) stop(keep bool) {
	if in.master != nil {
		in.master.Process.Signal(syscall.SIGTERM)
		in.master.Wait()
	}
	if keep {
		fmt.Println("instance kept in", in.dir)
		return
	}
	os.RemoveAll(in.dir)
}

func (in *instance) mailctl(bin, stdin string, args ...string) error {
	cmd := exec.Command(filepath.Join(bin, "mailctl"), append([]string{"-c", in.config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mailctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

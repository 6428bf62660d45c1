package test

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSieveConnect uploads scripts with Debian's sieve-connect (STARTTLS, PLAIN): a
// broken one is refused with its line and column, a good one is stored and activated.
func TestSieveConnect(t *testing.T) {
	bin := need(t, "sieve-connect", "sieve-connect")
	in := NewInstance(t, "")
	host, port, _ := net.SplitHostPort(in.Cfg.Service("sieved").Listen["sieve"])
	in.WaitFor("sieved", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", net.JoinHostPort(host, port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	dir := t.TempDir()
	run := func(script string, args ...string) (string, error) {
		p := filepath.Join(dir, "s.sieve")
		os.WriteFile(p, []byte(script), 0o644)
		pr, pw, _ := os.Pipe()
		pw.WriteString(in.Password + "\n")
		pw.Close()
		cmd := exec.Command(bin, append([]string{"--server", host, "--port", port, "--user", "demo@example.test",
			"--passwordfd", "3", "--notlsverify", "--localsieve", p}, args...)...)
		cmd.ExtraFiles = []*os.File{pr}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		done := make(chan error, 1)
		go func() { done <- cmd.Run() }()
		select {
		case err := <-done:
			return out.String(), err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("sieve-connect hangs:\n%s", out.String())
		}
		return "", nil
	}
	out, err := run("require \"fileinto\";\nif true {\n  fileinto \"X\"\n}\n", "--remotesieve", "broken", "--upload")
	if err == nil || !strings.Contains(out, "line 4:1") {
		t.Errorf("sieve-connect --upload of a broken script: %v\n%s", err, out)
	}
	if out, err := run("keep;\n", "--remotesieve", "good", "--upload"); err != nil {
		t.Fatalf("sieve-connect --upload: %v\n%s", err, out)
	}
	if out, err := run("", "--remotesieve", "good", "--activate"); err != nil {
		t.Fatalf("sieve-connect --activate: %v\n%s", err, out)
	}
	if out := in.Mailctl("", "sieve", "list", "demo@example.test"); out != "good\tactive\n" {
		t.Errorf("after sieve-connect: mailctl sieve list says %q", out)
	}
}

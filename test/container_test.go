package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestContainerImage builds the image of conf/container/Dockerfile with `make image`
// (podman) and checks its configuration: volumes, ports, health check, no shell. Where
// podman can run containers here, it then runs Postern in one the way README.md says:
// mailctl init into the volumes, master as the container's command on the host's
// network, a domain and an account made with podman exec, a message over SMTP into the
// Maildir on the data volume, the health check, and podman stop.
//
// .ci/run installs podman and runc: running containers needs cgroups and rlimits that
// sandboxes may refuse (on the machine this was written on, crun refuses its hybrid
// cgroups and podman's default RLIMIT_NOFILE; runc with lower limits works), so the
// test tries podman's default runtime, then lower limits, then runc. A missing podman
// fails the test in CI and skips it elsewhere; a podman that builds the image but runs
// no container in any of those ways fails it in CI (where runc works) and, elsewhere,
// stops it after the checks of the image, saying why.
func TestContainerImage(t *testing.T) {
	podman := need(t, "podman", "podman")
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Dir(filepath.Dir(file))
	work := t.TempDir()
	image := fmt.Sprintf("localhost/postern-test-%d", os.Getpid())
	out, err := exec.Command("make", "-C", src, "--no-print-directory", "image", "IMAGE="+image, "IMAGE_CTX="+filepath.Join(work, "ctx")).CombinedOutput()
	if err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", image+":latest").Run() })

	inspect := func(format string) string {
		t.Helper()
		out, err := exec.Command(podman, "image", "inspect", "--format", format, image+":latest").CombinedOutput()
		if err != nil {
			t.Fatalf("podman image inspect: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for format, want := range map[string][]string{
		"{{json .Config.Volumes}}":      {`"/etc/postern"`, `"/var/spool/postern"`, `"/var/lib/postern"`},
		"{{json .Config.ExposedPorts}}": {`"25/tcp"`, `"465/tcp"`, `"587/tcp"`, `"143/tcp"`, `"993/tcp"`, `"443/tcp"`, `"80/tcp"`, `"995/tcp"`, `"110/tcp"`, `"4190/tcp"`},
		"{{json .Config.Healthcheck}}":  {`"CMD","/usr/sbin/mailctl","-c","/etc/postern/postern.toml","status"`},
		"{{json .Config.Cmd}}":          {`["/usr/lib/postern/master","-c","/etc/postern/postern.toml"]`},
	} {
		got := inspect(format)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("image %s = %s, lacks %s", format, got, w)
			}
		}
	}
	// FROM scratch: the layout of make install and nothing else (no shell, no libc).
	ctx := filepath.Join(work, "ctx", "rootfs")
	for _, p := range []string{"usr/lib/postern/master", "usr/lib/postern/smtpd", "usr/sbin/mailctl", "usr/sbin/sendmail"} {
		if _, err := os.Stat(filepath.Join(ctx, p)); err != nil {
			t.Errorf("the image context lacks %s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(ctx, "bin/sh")); err == nil {
		t.Error("the image has a shell")
	}

	// Can podman run a container here at all? The first way that works is used.
	var runArgs []string
	var failures []string
	ways := [][]string{nil, {"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}}
	if _, err := exec.LookPath("runc"); err == nil {
		ways = append(ways, []string{"--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"})
	}
	for _, w := range ways {
		args := append(append([]string{"run", "--rm"}, w...), image+":latest", "/usr/sbin/mailctl", "--version")
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(podman, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil && strings.HasPrefix(stdout.String(), "mailctl ") {
			runArgs = w
			break
		}
		failures = append(failures, fmt.Sprintf("podman %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes())))
	}
	if runArgs == nil && os.Getenv("CI") == "true" {
		t.Fatalf("the image builds, but podman runs no container of it (.ci/run installs runc, which runs them where crun cannot):\n%s", strings.Join(failures, "\n"))
	}
	if runArgs == nil && len(failures) > 0 {
		t.Skipf("the image builds, but podman cannot run containers on this machine:\n%s", strings.Join(failures, "\n"))
	}
	t.Logf("podman runs containers with %q", runArgs)

	vol := map[string]string{"etc": "/etc/postern", "spool": "/var/spool/postern", "data": "/var/lib/postern"}
	var mounts []string
	for host, in := range vol {
		dir := filepath.Join(work, host)
		os.Mkdir(dir, 0o755)
		mounts = append(mounts, "-v", dir+":"+in)
	}
	base := 0
	for attempt := 0; ; attempt++ {
		base = nextPortBase()
		if portsFree("127.0.0.1", base) || attempt > 20 {
			break
		}
	}
	podmanRun := func(args ...string) string {
		t.Helper()
		all := append(append(append([]string{"run"}, runArgs...), mounts...), args...)
		out, err := exec.Command(podman, all...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(all, " "), err, out)
		}
		return string(out)
	}
	out2 := podmanRun("--rm", image+":latest", "/usr/sbin/mailctl", "init", "--hostname", "mail.example.test",
		"--listen", "127.0.0.1", "--port-base", strconv.Itoa(base))
	if !strings.Contains(out2, "Created the Postern instance") {
		t.Fatalf("mailctl init in the container:\n%s", out2)
	}
	// No DNS query leaves the machine: remote asks the tests' server.
	conf := &Instance{t: t, Config: filepath.Join(work, "etc", "postern.toml")}
	conf.SetConfig("remote", "resolvers", `["`+testResolver(t)+`"]`)

	name := fmt.Sprintf("postern-test-%d", os.Getpid())
	podmanRun("-d", "--name", name, "--network", "host", image+":latest")
	t.Cleanup(func() { exec.Command(podman, "rm", "-f", name).Run() })
	in := &Instance{t: t, IP: "127.0.0.1", PortBase: base}
	deadline := time.Now().Add(60 * time.Second)
	for !greets(in.SMTPAddr()) {
		if time.Now().After(deadline) {
			logs, _ := exec.Command(podman, "logs", name).CombinedOutput()
			t.Fatalf("smtpd in the container did not greet on %s\n%s", in.SMTPAddr(), logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	exec1 := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(podman, append([]string{"exec", "-i", name}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("podman exec %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	exec1("", "/usr/sbin/mailctl", "domain", "add", "example.test")
	exec1("a-Long-enough-passw0rd\n", "/usr/sbin/mailctl", "user", "add", "demo@example.test", "--password-stdin")
	send(t, in, "someone@other.test", "demo@example.test", "<container@test>")
	newDir := filepath.Join(work, "data", "mail", "example.test", "demo", "new")
	deadline = time.Now().Add(30 * time.Second)
	for {
		entries, _ := os.ReadDir(newDir)
		if len(entries) == 1 {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command(podman, "logs", name).CombinedOutput()
			t.Fatalf("no message in %s\n%s", newDir, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The daemons run as their users inside the container, as on a host.
	if ps := exec1("", "/usr/sbin/mailctl", "status"); !strings.Contains(ps, "vmail") || !strings.Contains(ps, "postern") {
		t.Errorf("mailctl status in the container:\n%s", ps)
	}
	if out, err := exec.Command(podman, "healthcheck", "run", name).CombinedOutput(); err != nil {
		t.Errorf("podman healthcheck run: %v\n%s", err, out)
	}
	if out, err := exec.Command(podman, "stop", "-t", "45", name).CombinedOutput(); err != nil {
		t.Errorf("podman stop: %v\n%s", err, out)
	}
	logs, _ := exec.Command(podman, "logs", name).CombinedOutput()
	if !bytes.Contains(logs, []byte("master stopped")) {
		t.Errorf("master did not stop cleanly:\n%s", logs)
	}
}

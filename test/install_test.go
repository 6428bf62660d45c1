package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"postern/pkg/config"
	"postern/pkg/resolver/resolvertest"
)

// TestDebianPackage builds the package with `make deb`, checks what it holds, installs it
// into a scratch root (dpkg --root, its maintainer scripts run against that root: the
// system users and directories appear there, nothing changes on this machine), checks
// the systemd unit, and runs a development instance from the installed programs:
// mailctl init --dev, master, a message through the installed sendmail into a Maildir,
// mailq. It runs as nobody when the tests run as root, as a user who installed the
// package would. Without root the package is unpacked with dpkg-deb -x instead, for
// systemd-tmpfiles cannot give directories to vmail then.
func TestDebianPackage(t *testing.T) {
	need(t, "make", "make")
	need(t, "dpkg-deb", "dpkg")
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Dir(filepath.Dir(file))
	work := t.TempDir()
	// nobody must reach the installed programs.
	os.Chmod(filepath.Dir(work), 0o755)
	os.Chmod(work, 0o755)

	// The programs this test run built (TestMain), packed with gzip: building and xz
	// take minutes on a busy machine, and `make deb` alone shows the stripped build.
	out, err := exec.Command("make", "-C", src, "--no-print-directory", "deb", "DEBDIR="+work, "BIN="+binDir, "DEB_COMPRESS=gzip").CombinedOutput()
	if err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(work, "postern_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v\n%s", debs, out)
	}
	deb := debs[0]

	info, err := exec.Command("dpkg-deb", "-I", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -I: %v\n%s", err, info)
	}
	for _, re := range []string{
		`(?m)^ Package: postern$`, `(?m)^ Version: \d`, `(?m)^ Architecture: \S+$`,
		`(?m)^ Provides: mail-transport-agent$`, `(?m)^ Conflicts: mail-transport-agent$`,
		`(?m)^ Installed-Size: \d+$`, `(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*\s+postinst\s`,
		`(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*\s+prerm\s`, `(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*\s+postrm\s`,
	} {
		if !regexp.MustCompile(re).Match(info) {
			t.Errorf("dpkg-deb -I does not match %s:\n%s", re, info)
		}
	}
	contents, err := exec.Command("dpkg-deb", "-c", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v\n%s", err, contents)
	}
	want := []string{
		"-rwxr-xr-x root/root .* ./usr/sbin/mailctl$",
		"-rwxr-xr-x root/root .* ./usr/sbin/sendmail$",
		"./usr/bin/mailq -> ../sbin/sendmail$",
		"./usr/bin/newaliases -> ../sbin/sendmail$",
		"./usr/lib/sendmail -> ../sbin/sendmail$",
		"./usr/lib/systemd/system/postern.service$",
		"./usr/lib/systemd/system/postern-cert-renew.service$",
		"./usr/lib/systemd/system/postern-cert-renew.timer$",
		"./usr/lib/sysusers.d/postern.conf$",
		"./usr/lib/tmpfiles.d/postern.conf$",
		"./usr/share/man/man1/sendmail.1.gz$",
		"./usr/share/man/man1/mailq.1.gz -> sendmail.1.gz$",
		"./usr/share/man/man5/postern.toml.5.gz$",
		"./usr/share/man/man7/postern.7.gz$",
		"./etc/postern/$", "./var/spool/postern/$", "./var/lib/postern/$",
	}
	for _, d := range config.Daemons {
		want = append(want, "-rwxr-xr-x root/root .* ./usr/lib/postern/"+d.Name+"$")
	}
	want = append(want, "./usr/lib/postern/master$", "./usr/share/man/man8/master.8.gz$", "./usr/share/man/man8/mailctl.8.gz$")
	for _, re := range want {
		if !regexp.MustCompile("(?m)" + re).Match(contents) {
			t.Errorf("the package lacks %s:\n%s", re, contents)
		}
	}
	// No configuration is shipped: mailctl init writes it, with this host's name.
	if bytes.Contains(contents, []byte("./etc/postern/postern.toml")) {
		t.Error("the package ships /etc/postern/postern.toml, which would stop mailctl init")
	}

	root := filepath.Join(work, "root")
	asRoot := os.Geteuid() == 0
	if asRoot {
		for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
			os.MkdirAll(filepath.Join(root, d), 0o755)
		}
		os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644)
		dpkg := func(args ...string) {
			t.Helper()
			cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--log=/dev/null"}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		dpkg("-i", deb)
		st, _ := exec.Command("dpkg", "--root="+root, "-s", "postern").CombinedOutput()
		if !bytes.Contains(st, []byte("Status: install ok installed")) {
			t.Fatalf("dpkg -s postern in the scratch root:\n%s", st)
		}
		if _, err := exec.LookPath("systemd-sysusers"); err == nil {
			// postinst ran systemd-sysusers and systemd-tmpfiles on the scratch root.
			passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
			group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
			for _, u := range []string{"postern", "vmail", "postern-spam", "postern-web"} {
				if !regexp.MustCompile(`(?m)^` + u + `:x:\d+:\d+:.*:/nonexistent:/usr/sbin/nologin$`).Match(passwd) {
					t.Errorf("no user %s in the scratch root's passwd:\n%s", u, passwd)
				}
			}
			if !regexp.MustCompile(`(?m)^postern:x:\d+:postern-spam,postern-web,vmail$`).Match(group) ||
				!regexp.MustCompile(`(?m)^postern-admin:x:\d+:postern-web$`).Match(group) {
				t.Errorf("groups postern and postern-admin are not as mailctl init makes them:\n%s", group)
			}
			vmail := regexp.MustCompile(`(?m)^vmail:x:(\d+):`).FindSubmatch(passwd)
			fi, err := os.Stat(filepath.Join(root, "var/lib/postern/mail"))
			if err != nil || vmail == nil || fi.Mode().Perm() != 0o700 || strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)) != string(vmail[1]) {
				t.Errorf("var/lib/postern/mail: %v %v, want vmail's, 0700", fi, err)
			}
		}
	} else {
		if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
		}
	}
	os.Chmod(root, 0o755)

	// The unit, with its programs at their places in the scratch root: systemd finds
	// nothing to say about it.
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/postern.service"))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(work, "unit")
		os.Mkdir(dir, 0o755)
		unit = bytes.ReplaceAll(unit, []byte("=/usr/"), []byte("="+root+"/usr/"))
		os.WriteFile(filepath.Join(dir, "postern.service"), unit, 0o644)
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(dir, "postern.service")).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify postern.service: %v\n%s", err, out)
		}
	}

	// A development instance made and run by the installed programs.
	inst := filepath.Join(work, "inst")
	os.Mkdir(inst, 0o755)
	var cred *syscall.Credential
	if asRoot {
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		os.Chown(inst, nobody, nobody)
	}
	run := func(stdin string, prog string, args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(root, prog), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	in := &Instance{t: t, Dir: inst, Config: filepath.Join(inst, "postern.toml"), IP: "127.0.0.1",
		MasterPath: filepath.Join(root, "usr/lib/postern/master"), Cred: cred, LogPath: filepath.Join(inst, "master.log")}
	for attempt := 0; ; attempt++ {
		in.PortBase = nextPortBase()
		if portsFree(in.IP, in.PortBase) || attempt > 20 {
			break
		}
	}
	if out, err := run("", "usr/sbin/mailctl", "-c", in.Config, "init", "--dev", "--port-base", strconv.Itoa(in.PortBase)); err != nil {
		t.Fatalf("the installed mailctl init --dev: %v\n%s", err, out)
	}
	in.SetConfig("remote", "resolvers", `["`+testResolver(t)+`"]`)
	if in.Cfg, err = config.Load(in.Config); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "usr/lib/postern"); in.Cfg.BinDir != want {
		t.Fatalf("init --dev of the installed mailctl set bin_dir %s, want %s", in.Cfg.BinDir, want)
	}
	in.Start()
	t.Cleanup(in.Stop)
	if out, err := run("Subject: from the installed sendmail\n\nhello\n", "usr/sbin/sendmail", "-C", in.Config, "-i", "demo@example.test"); err != nil {
		t.Fatalf("the installed sendmail: %v\n%s", err, out)
	}
	in.WaitFor("the message in demo's Maildir", 20*time.Second, func() bool {
		return messageWith(t, in.Messages("demo@example.test"), "from the installed sendmail") != nil
	})
	if out, err := run("", "usr/bin/mailq", "-C", in.Config); err != nil || !strings.Contains(out, "Mail queue is empty") {
		t.Errorf("the installed mailq: %v\n%s", err, out)
	}
	if out, err := run("", "usr/sbin/mailctl", "-c", in.Config, "status"); err != nil || !strings.Contains(out, "smtpd") {
		t.Errorf("the installed mailctl status: %v\n%s", err, out)
	}

	// The steps of postern(7)'s "Running it on a VPS" after the install, with the
	// installed mailctl: a domain, an account, aliases, two DKIM keys, the DNS records
	// (published on a DNS server of the test's) and the DNS check that they are right.
	for _, step := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"domain", "add", "example.org"}},
		{"a long and fine passphrase\n", []string{"user", "add", "alice@example.org", "--password-stdin"}},
		{"", []string{"user", "admin", "alice@example.org"}},
		{"", []string{"alias", "add", "postmaster@example.org", "alice@example.org"}},
		{"", []string{"alias", "add", "abuse@example.org", "alice@example.org"}},
		{"", []string{"dkim", "generate", "example.org"}},
		{"", []string{"dkim", "generate", "example.org", "--algorithm", "rsa"}},
	} {
		if out, err := run(step.stdin, "usr/sbin/mailctl", append([]string{"-c", in.Config}, step.args...)...); err != nil {
			t.Fatalf("the installed mailctl %s: %v\n%s", strings.Join(step.args, " "), err, out)
		}
	}
	zone, err := run("", "usr/sbin/mailctl", "-c", in.Config, "dns", "records", "example.org")
	if err != nil {
		t.Fatalf("the installed mailctl dns records: %v\n%s", err, zone)
	}
	dnsServer, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer dnsServer.Close()
	zp := dns.NewZoneParser(strings.NewReader(zone), "", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		// Not MTA-STS, whose policy is fetched from port 443, where a development
		// instance serves nothing: left out, it is "missing", which the check allows.
		if strings.Contains(rr.Header().Name, "mta-sts.") {
			continue
		}
		if err := dnsServer.Add(rr.String()); err != nil {
			t.Fatalf("publishing %s: %v", rr, err)
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("mailctl dns records printed what is not a zone: %v\n%s", err, zone)
	}
	dnsServer.Add(in.Cfg.Hostname+". 300 IN A 127.0.0.1", "1.0.0.127.in-addr.arpa. 300 IN PTR "+in.Cfg.Hostname+".")
	in.SetConfig("remote", "resolvers", `["`+dnsServer.Addr+`"]`)
	check, err := run("", "usr/sbin/mailctl", "-c", in.Config, "dns", "check", "example.org")
	for _, want := range []string{"MX", "A/AAAA", "PTR", "SPF", "DKIM", "DMARC", "SRV", "autoconfig"} {
		if !regexp.MustCompile(`(?m)^\s*ok\b.*` + want).MatchString(check) {
			t.Errorf("mailctl dns check example.org: %s not ok:\n%s", want, check)
		}
	}
	if err != nil {
		t.Errorf("mailctl dns check example.org of the published records: %v\n%s", err, check)
	}
	in.Stop()

	if asRoot {
		// Purge takes the configuration and the spool, and keeps the mail.
		os.WriteFile(filepath.Join(root, "etc/postern/postern.toml"), []byte("# made by init\n"), 0o644)
		os.WriteFile(filepath.Join(root, "var/lib/postern/users.db"), nil, 0o600)
		cmd := exec.Command("dpkg", "--root="+root, "--force-script-chrootless", "--log=/dev/null", "--purge", "postern")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dpkg --purge: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(root, "etc/postern")); !os.IsNotExist(err) {
			t.Errorf("etc/postern after purge: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "var/lib/postern/users.db")); err != nil {
			t.Errorf("purge removed the accounts: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/sbin/sendmail")); !os.IsNotExist(err) {
			t.Errorf("usr/sbin/sendmail after purge: %v", err)
		}
	}
}

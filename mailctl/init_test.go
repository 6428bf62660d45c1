package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"postern/pkg/config"
	"postern/pkg/pwstrength"
	"postern/pkg/userdb"
)

var update = flag.Bool("update", false, "rewrite ../conf/postern.toml from the template")

func TestInitDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "inst")
	path := filepath.Join(dir, "postern.toml")
	ta := newTestApp(t, "")
	if code := ta.run("-c", path, "init", "--dev", "--listen", "127.0.0.2", "--port-base", "20000"); code != 0 {
		t.Fatalf("init --dev: exit %d\n%s", code, ta.err)
	}
	out := ta.out.String()
	m := regexp.MustCompile(`(?i)password:?\s+(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no password in the output:\n%s", out)
	}
	password := m[1]
	// authd would take the generated password (init writes users.db itself).
	if err := (pwstrength.Policy{MinLength: config.Default().Authd.PasswordMinLength, MinScore: config.Default().Authd.PasswordMinScore}).Check(password, "demo@example.test"); err != nil {
		t.Errorf("the demo password: %v", err)
	}
	for _, want := range []string{path, "demo@example.test", "swaks --server 127.0.0.2:20025 --to demo@example.test",
		filepath.Join(filepath.Dir(mustExe(t, ta)), "master") + " -c " + path, "127.0.0.2:20143", "https://127.0.0.2:20443/",
		"pop3         127.0.0.2:20110", "pop3s        127.0.0.2:20995", "POP3 port 20995 (TLS) or 20110 (STLS)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("the config init wrote does not load: %v", err)
	}
	if cfg.Hostname != "mail.example.test" || cfg.SpoolDir != filepath.Join(dir, "spool") || cfg.DataDir != filepath.Join(dir, "data") {
		t.Errorf("config: hostname %s spool %s data %s", cfg.Hostname, cfg.SpoolDir, cfg.DataDir)
	}
	if want := filepath.Dir(mustExe(t, ta)); cfg.BinDir != want {
		t.Errorf("bin_dir %s, want %s", cfg.BinDir, want)
	}
	if got, want := cfg.Service("smtpd").Listen, map[string]string{"smtp": "127.0.0.2:20025", "submission": "127.0.0.2:20587", "submissions": "127.0.0.2:20465"}; !reflect.DeepEqual(got, want) {
		t.Errorf("smtpd listens on %v, want %v", got, want)
	}
	for _, d := range config.Daemons {
		if s := cfg.Service(d.Name); s == nil || !s.Enable {
			t.Errorf("service %s is not enabled", d.Name)
		}
	}
	if got, want := cfg.Service("imapd").Listen, map[string]string{"imap": "127.0.0.2:20143", "imaps": "127.0.0.2:20993", "pop3": "127.0.0.2:20110", "pop3s": "127.0.0.2:20995"}; !reflect.DeepEqual(got, want) {
		t.Errorf("imapd listens on %v, want %v", got, want)
	}
	if got, want := cfg.Service("metricsd").Listen, map[string]string{"metrics": "127.0.0.2:29154"}; !reflect.DeepEqual(got, want) {
		t.Errorf("metricsd listens on %v, want %v", got, want)
	}
	if !strings.Contains(ta.out.String(), "http://127.0.0.2:29154/metrics") {
		t.Errorf("init does not print the metrics endpoint:\n%s", ta.out.String())
	}
	raw, _ := os.ReadFile(path)
	// The relative paths keep the instance movable.
	for _, want := range []string{`spool_dir = "spool"`, `data_dir = "data"`, `cert = "tls/cert.pem"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("config lacks %s", want)
		}
	}

	modes := map[string]os.FileMode{
		dir:           0o755,
		path:          0o644,
		cfg.SpoolDir:  0o755,
		cfg.DataDir:   0o755,
		cfg.MailDir(): 0o700,
		cfg.TLS.Key:   0o600,
		cfg.TLS.Cert:  0o644,
		cfg.UsersDB(): 0o600,
		// The SRS secrets (pkg/srs), readable by group postern.
		cfg.SRSKeyFile(): 0o640,
		filepath.Join(cfg.MailDir(), "example.test", "demo"): 0o700,
	}
	for p, want := range modes {
		fi, err := os.Stat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", p, got, want)
		}
	}

	// The certificate: P-256, 10 years, for the host name, localhost and the IP.
	pair, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cert.DNSNames, []string{"mail.example.test", "localhost"}) || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.2")) {
		t.Errorf("certificate names %v %v", cert.DNSNames, cert.IPAddresses)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA || cert.NotAfter.Before(time.Now().Add(9*365*24*time.Hour)) || cert.IsCA {
		t.Errorf("certificate: %v, until %v, CA %v", cert.PublicKeyAlgorithm, cert.NotAfter, cert.IsCA)
	}
	if err := cert.VerifyHostname("mail.example.test"); err != nil {
		t.Error(err)
	}

	// users.db: the domain, the account with the printed password, the aliases.
	db, err := userdb.Open(cfg.UsersDB())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, _ := db.HasDomain("example.test"); !ok {
		t.Error("users.db lacks example.test")
	}
	if ok, canon, err := db.VerifyPassword("demo@example.test", password); !ok || err != nil || canon != "demo@example.test" {
		t.Errorf("the printed password does not open demo@example.test: %v %q %v", ok, canon, err)
	}
	if u, err := db.User("demo@example.test"); err != nil || !u.Admin {
		t.Errorf("demo@example.test is not an administrator: %+v, %v", u, err)
	}
	for _, al := range []string{"postmaster@example.test", "abuse@example.test"} {
		a, err := db.Alias(al)
		if err != nil || !reflect.DeepEqual(a.Targets, []string{"demo@example.test"}) {
			t.Errorf("alias %s: %+v, %v", al, a, err)
		}
	}
	db.Close()

	md := filepath.Join(cfg.MailDir(), "example.test", "demo")
	for _, sub := range []string{"cur", "new", "tmp", ".Sent/cur", ".Drafts/new", ".Junk/tmp", ".Trash/cur", ".Archive/cur", ".Sent/maildirfolder"} {
		if _, err := os.Stat(filepath.Join(md, sub)); err != nil {
			t.Errorf("Maildir: %v", err)
		}
	}

	// init never overwrites an instance.
	before, _ := os.ReadFile(path)
	if code := ta.run("-c", path, "init", "--dev"); code != exitFail || !strings.Contains(ta.err.String(), "exists already") {
		t.Errorf("second init: exit %d, stderr %s", code, ta.err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("second init changed the config")
	}
}

func mustExe(t *testing.T, ta *testApp) string {
	exe, err := ta.executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestInitDevIPv6AndDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "postern.toml")
	os.Chmod(filepath.Dir(path), 0o700)
	ta := newTestApp(t, "")
	ta.env["POSTERN_CONFIG"] = path
	if code := ta.run("init", "--dev", "--listen", "::1"); code != 0 {
		t.Fatalf("exit %d: %s", code, ta.err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Service("smtpd").Listen["smtp"]; got != "[::1]:10025" {
		t.Errorf("smtp listens on %s", got)
	}
	// The directory existed (mode 0700): without root, init leaves its mode alone.
	if fi, _ := os.Stat(filepath.Dir(path)); fi.Mode().Perm() != 0o700 {
		t.Errorf("init changed the mode of an existing directory to %04o", fi.Mode().Perm())
	}
	// Without the users.db of the earlier init, the config already being there stops it.
	if code := ta.run("init", "--dev"); code != exitFail {
		t.Errorf("second init: exit %d", code)
	}
}

func TestInitNeedsRoot(t *testing.T) {
	dir := t.TempDir()
	ta := newTestApp(t, "")
	if code := ta.run("-c", filepath.Join(dir, "a", "postern.toml"), "init", "--dev", "--port-base", "0"); code != exitFail ||
		!strings.Contains(ta.err.String(), "25, 587, 465, 143, 993, 110 and 995") {
		t.Errorf("--port-base 0 without root: exit %d, %s", code, ta.err)
	}
	if code := ta.run("-c", filepath.Join(dir, "b", "postern.toml"), "init"); code != exitFail || !strings.Contains(ta.err.String(), "root") {
		t.Errorf("system init without root: exit %d, %s", code, ta.err)
	}
	// Nothing was created.
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed init left %v", entries)
	}
}

// systemValues are the values conf/postern.toml is rendered with.
func systemValues() configValues {
	def := config.Default()
	v := configValues{
		Hostname: "mail.example.com", SpoolDir: def.SpoolDir, DataDir: def.DataDir, BinDir: def.BinDir,
		Cert: def.TLS.Cert, Key: def.TLS.Key,
	}
	v.listeners("0.0.0.0", 0)
	return v
}

// conf/postern.toml is what init writes for a system instance; go test -update
// regenerates it after the template changed.
func TestConfFileMatchesTemplate(t *testing.T) {
	want, err := renderConfig(systemValues())
	if err != nil {
		t.Fatal(err)
	}
	const conf = "../conf/postern.toml"
	if *update {
		if err := os.WriteFile(conf, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from mailctl/postern.toml.tmpl: run go test ./mailctl -run TestConfFileMatchesTemplate -update", conf)
	}
	cfg, err := config.Parse("/etc/postern/postern.toml", got)
	if err != nil {
		t.Fatal(err)
	}
	def := config.Default()
	def.Hostname = "mail.example.com"
	def.Path, def.Dir = cfg.Path, cfg.Dir
	// The file names metricsd's listener, which the defaults leave out: a port opens
	// only where the configuration names it.
	if got, want := cfg.Service("metricsd").Listen["metrics"], "127.0.0.1:9154"; got != want {
		t.Errorf("conf/postern.toml: metricsd listens on %q, want %q", got, want)
	}
	cfg.Service("metricsd").Listen = nil
	normalize(cfg)
	normalize(def)
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("conf/postern.toml differs from config.Default():\n got %+v\nwant %+v", cfg, def)
	}
}

// Every "# key = value" line of the file shows the real default: uncommenting them all
// changes nothing. Every key of the configuration is documented.
func TestConfigDocumentsDefaults(t *testing.T) {
	for _, v := range []configValues{systemValues(), devValues()} {
		data, err := renderConfig(v)
		if err != nil {
			t.Fatal(err)
		}
		commented := regexp.MustCompile(`(?m)^# ([a-z_]+ = .*)$`)
		uncommented := commented.ReplaceAll(data, []byte("$1"))
		if n := len(commented.FindAll(data, -1)); n < 15 {
			t.Fatalf("only %d commented defaults", n)
		}
		dir := t.TempDir()
		a, err := config.Parse(filepath.Join(dir, "postern.toml"), data)
		if err != nil {
			t.Fatal(err)
		}
		b, err := config.Parse(filepath.Join(dir, "postern.toml"), uncommented)
		if err != nil {
			t.Fatalf("the commented defaults do not parse: %v\n%s", err, uncommented)
		}
		normalize(a)
		normalize(b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("a commented default is not the default:\n got %+v\nwant %+v", b, a)
		}
		// Every key of every table appears in the file.
		for _, key := range []string{"hostname", "spool_dir", "data_dir", "bin_dir", "admin_group", "level", "format", "cert", "key",
			"max_message_size", "max_recipients", "max_connections", "max_connections_per_ip", "max_line_length", "max_errors",
			"timeout", "data_timeout", "shutdown_grace", "min_backoff", "max_backoff", "delay_warning", "max_lifetime",
			"scan_interval", "local_concurrency", "default_quota", "enable", "user", "listen", "command", "args",
			"client_failures", "network_failures", "account_client_failures", "account_failures", "failure_window",
			"block_time", "max_block_time", "remember_logins"} {
			if !regexp.MustCompile(`(?m)^[# ]*` + key + ` = `).Match(uncommented) {
				t.Errorf("the config does not document %s", key)
			}
		}
	}
}

// normalize makes empty listener maps nil, so that configurations compare equal whether
// a service's listeners came from the file or from the defaults.
func normalize(c *config.Config) {
	for _, s := range c.Services {
		if len(s.Listen) == 0 {
			s.Listen = nil
		}
	}
}

func devValues() configValues {
	v := configValues{Dev: true, Hostname: devHostname, SpoolDir: "spool", DataDir: "data", BinDir: "/opt/postern/bin", Cert: "tls/cert.pem", Key: "tls/key.pem"}
	v.listeners("127.0.0.1", 10000)
	return v
}

func TestSelfSigned(t *testing.T) {
	certPEM, keyPEM, err := selfSigned([]string{"mx.example.test", "localhost", "192.0.2.1", "::1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.DNSNames) != 2 || len(cert.IPAddresses) != 2 || cert.Subject.CommonName != "mx.example.test" {
		t.Errorf("names: %v %v %s", cert.DNSNames, cert.IPAddresses, cert.Subject.CommonName)
	}
	if cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("ext key usage %v", cert.ExtKeyUsage)
	}
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		p, err := randomPassword(16)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 16 || seen[p] || strings.Trim(p, passwordAlphabet) != "" {
			t.Fatalf("bad password %q", p)
		}
		seen[p] = true
	}
}

func TestFQDN(t *testing.T) {
	hosts := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n# 127.0.1.1 vps.old.example vps\n127.0.1.1\tMail.Example.org vps mail\n10.0.0.1 short other\n"), 0o644)
	for host, want := range map[string]string{
		"vps":             "mail.example.org",
		"mail":            "mail.example.org",
		"other":           "other", // its canonical name has no dot either
		"unknown":         "unknown",
		"mx.example.test": "mx.example.test",
	} {
		if got := fqdn(host, hosts); got != want {
			t.Errorf("fqdn(%q) = %q, want %q", host, got, want)
		}
	}
	if got := fqdn("vps", filepath.Join(t.TempDir(), "none")); got != "vps" {
		t.Errorf("without a hosts file: %q", got)
	}
}

// An installed mailctl (/usr/sbin) makes development instances that run the daemons of
// /usr/lib/postern; one in bin/ of a build, those beside it.
func TestDevBinDir(t *testing.T) {
	root := t.TempDir()
	sbin, lib := filepath.Join(root, "usr", "sbin"), filepath.Join(root, "usr", "lib", "postern")
	os.MkdirAll(sbin, 0o755)
	os.MkdirAll(lib, 0o755)
	if got := devBinDir(sbin); got != sbin {
		t.Errorf("no master anywhere: %s, want %s", got, sbin)
	}
	os.WriteFile(filepath.Join(lib, "master"), nil, 0o755)
	if got := devBinDir(sbin); got != lib {
		t.Errorf("master in ../lib/postern: %s, want %s", got, lib)
	}
	os.WriteFile(filepath.Join(sbin, "master"), nil, 0o755)
	if got := devBinDir(sbin); got != sbin {
		t.Errorf("master beside mailctl: %s, want %s", got, sbin)
	}
}

func TestInitHostname(t *testing.T) {
	dir := t.TempDir()
	ta := newTestApp(t, "")
	path := filepath.Join(dir, "a", "postern.toml")
	if code := ta.run("-c", path, "init", "--dev", "--hostname", "MX.Example.ORG"); code != 0 {
		t.Fatalf("init --hostname: exit %d\n%s", code, ta.err)
	}
	if cfg, err := config.Load(path); err != nil || cfg.Hostname != "mx.example.org" {
		t.Errorf("hostname %q, %v; want mx.example.org", cfg.Hostname, err)
	}
	if code := ta.run("-c", filepath.Join(dir, "b", "postern.toml"), "init", "--dev", "--hostname", "bad name"); code != exitUsage {
		t.Errorf("a bad --hostname: exit %d, want %d", code, exitUsage)
	}
}

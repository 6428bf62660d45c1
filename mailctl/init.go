package main

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"postern/pkg/config"
	"postern/pkg/maildir"
	"postern/pkg/smtp"
	"postern/pkg/srs"
	"postern/pkg/userdb"
)

// configTemplate is the postern.toml that init writes: every key, commented. The file
// conf/postern.toml is this template rendered for a system instance (a test keeps the
// two the same).
//
//go:embed postern.toml.tmpl
var configTemplate string

var configTmpl = template.Must(template.New("postern.toml").Parse(configTemplate))

// configValues fill in the template.
type configValues struct {
	Dev                           bool
	ListenIP                      string
	Hostname                      string
	SpoolDir, DataDir, BinDir     string
	Cert, Key                     string
	SMTP, Submission, Submissions string
	IMAP, IMAPS, HTTPS, HTTP      string
	POP3, POP3S, Sieve            string
	// Metrics is metricsd's Prometheus listener.
	Metrics string
}

// renderConfig returns the contents of postern.toml for v.
func renderConfig(v configValues) ([]byte, error) {
	var b bytes.Buffer
	if err := configTmpl.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("rendering postern.toml: %w", err)
	}
	return b.Bytes(), nil
}

// metricsPort is the offset of metricsd's listener from the port base: 9154, the port
// the Prometheus exporters' registry gives to Postfix exporters.
const metricsPort = 9154

// listeners fills in the listen addresses of v: ip at base+25, base+587 ...; base 0
// means the real ports. The metrics listener of a system instance (base 0) is on
// loopback whatever ip is (it has no authentication, and Prometheus scrapes it from the
// host or through a tunnel): on ip itself when that is a loopback address, so that two
// instances on 127.0.0.2 and 127.0.0.3 do not share it, else on 127.0.0.1.
func (v *configValues) listeners(ip string, base int) {
	at := func(port int) string { return net.JoinHostPort(ip, strconv.Itoa(base+port)) }
	v.ListenIP = ip
	v.SMTP, v.Submission, v.Submissions = at(25), at(587), at(465)
	v.IMAP, v.IMAPS, v.HTTPS, v.HTTP = at(143), at(993), at(443), at(80)
	v.POP3, v.POP3S, v.Sieve = at(110), at(995), at(4190)
	v.Metrics = at(metricsPort)
	if a := net.ParseIP(ip); base == 0 && (a == nil || !a.IsLoopback()) {
		v.Metrics = net.JoinHostPort("127.0.0.1", strconv.Itoa(metricsPort))
	}
}

// The development instance's domain and account.
const (
	devHostname = "mail.example.test"
	devDomain   = "example.test"
	devUser     = "demo@example.test"
)

// devAliases are the role addresses every domain should have: RFC 5321 §4.5.1 requires
// postmaster, RFC 2142 §4 asks for abuse.
var devAliases = []string{"postmaster@example.test", "abuse@example.test"}

func runInit(a *app, o *options, args []string) error {
	if o.dev && !a.configSet {
		return usagef("init --dev needs -c FILE: the instance is created in FILE's directory (for example: mailctl -c run/postern.toml init --dev)")
	}
	if !o.dev && !a.root {
		return errors.New("init without --dev sets up the system instance and must run as root (for a development instance: mailctl -c DIR/postern.toml init --dev)")
	}
	ip := o.listen
	if ip == "" {
		ip = "0.0.0.0"
		if o.dev {
			ip = "127.0.0.1"
		}
	}
	if net.ParseIP(ip) == nil {
		return usagef("--listen %q is not an IP address", ip)
	}
	base := o.portBase
	if base < 0 {
		base = 0
		if o.dev {
			base = 10000
		}
	}
	if base+metricsPort > 65535 {
		return usagef("--port-base %d is too large: the highest port, N+%d (metrics), must stay below 65536", base, metricsPort)
	}
	if base < 1024 && !a.root {
		if base == 0 {
			return errors.New("--port-base 0 means the real ports 25, 587, 465, 143, 993, 110 and 995, and only root may listen on those: run init as root or choose a port base such as 10000")
		}
		return fmt.Errorf("--port-base %d gives ports below 1024 (%d), on which only root may listen: choose a port base such as 10000", base, base+25)
	}

	path, err := filepath.Abs(a.configPath)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists already: init does not overwrite a configuration (check it with mailctl config check, or remove it first)", path)
	}
	dir := filepath.Dir(path)
	if o.dev {
		if _, err := os.Lstat(filepath.Join(dir, "data", "users.db")); err == nil {
			return fmt.Errorf("%s exists already: init does not overwrite an instance's accounts", filepath.Join(dir, "data", "users.db"))
		}
	}

	v := configValues{Dev: o.dev}
	v.listeners(ip, base)
	if o.dev {
		exe, err := a.executable()
		if err != nil {
			return fmt.Errorf("finding the directory of mailctl for bin_dir: %w", err)
		}
		if exe, err = filepath.EvalSymlinks(exe); err != nil {
			return fmt.Errorf("finding the directory of mailctl for bin_dir: %w", err)
		}
		v.Hostname, v.SpoolDir, v.DataDir, v.BinDir = devHostname, "spool", "data", devBinDir(filepath.Dir(exe))
		v.Cert, v.Key = "tls/cert.pem", "tls/key.pem"
	} else {
		def := config.Default()
		v.Hostname, v.SpoolDir, v.DataDir, v.BinDir = fqdn(def.Hostname, "/etc/hosts"), def.SpoolDir, def.DataDir, def.BinDir
		v.Cert, v.Key = filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem")
	}
	if o.hostname != "" {
		h, err := smtp.ParseDomain(o.hostname, false)
		if err != nil || strings.HasPrefix(h, "[") {
			return usagef("--hostname %q is not a host name", o.hostname)
		}
		v.Hostname = h
	}
	data, err := renderConfig(v)
	if err != nil {
		return err
	}
	// Validate before anything is written, with the path the file will have.
	cfg, err := config.Parse(path, data)
	if err != nil {
		return fmt.Errorf("the configuration init would write is not valid (a bug): %w", err)
	}

	// As root, the daemons' users come first: everything below is given to them.
	if a.root {
		if err := a.ensureSystemUsers(cfg); err != nil {
			return fmt.Errorf("creating the system users: %w", err)
		}
	}
	created, err := mkdirAll(dir, 0o755)
	if err != nil {
		return err
	}
	if a.root || created {
		// The unprivileged daemons must reach the instance's files.
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
	}
	certNote, err := a.initTLS(cfg, ip)
	if err != nil {
		return err
	}
	for _, d := range []string{cfg.SpoolDir, cfg.DataDir} {
		if _, err := mkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	if _, err := mkdirAll(cfg.MailDir(), 0o700); err != nil {
		return err
	}
	// The secret of the Sender Rewriting Scheme (pkg/srs), for forwarded mail.
	if _, err := srs.EnsureKeyFile(cfg.SRSKeyFile(), -1, -1); err != nil {
		return err
	}

	var password string
	if o.dev {
		if password, err = createDevAccounts(cfg); err != nil {
			return err
		}
	} else if err := createEmptyUsersDB(cfg); err != nil {
		return err
	}
	if a.root {
		if err := a.chownInstance(cfg); err != nil {
			return err
		}
	}
	// The configuration comes last: until it exists, init may simply be run again.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	if _, err := f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}

	var warnings []string
	if a.root {
		for _, p := range untraversable(dir) {
			warnings = append(warnings, fmt.Sprintf("%s is not searchable by other users: the daemons, which run as their own users, cannot reach %s (chmod o+x it, or put the instance elsewhere)", p, dir))
		}
	}
	if !o.dev && !strings.Contains(cfg.Hostname, ".") {
		warnings = append(warnings, fmt.Sprintf("the host name %q is not fully qualified: other mail servers will not accept it in the greeting; set hostname in %s (or run init with --hostname mail.example.org)", cfg.Hostname, path))
	}
	if o.dev {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, "master")); err != nil {
			warnings = append(warnings, fmt.Sprintf("there is no master program in %s, the directory of this mailctl: build the daemons there (make build) or set bin_dir in %s", cfg.BinDir, path))
		}
		a.devSummary(cfg, v, base, password, certNote, warnings)
	} else {
		a.systemSummary(cfg, certNote, warnings)
	}
	return nil
}

// devBinDir is the bin_dir of a development instance made by the mailctl in dir: dir
// itself (bin/ of a build, with every program), or, when master is not there but in
// ../lib/postern, that directory (an installed mailctl in /usr/sbin).
func devBinDir(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "master")); err != nil {
		lib := filepath.Join(filepath.Dir(dir), "lib", "postern")
		if _, err := os.Stat(filepath.Join(lib, "master")); err == nil {
			return lib
		}
	}
	return dir
}

// fqdn returns the fully qualified name of host as hostname --fqdn finds it on a Debian
// system: host itself when it has a dot, else the canonical name (the first) of the line
// of the hosts file that names it, when that one has a dot, else host.
func fqdn(host, hostsFile string) string {
	if strings.Contains(host, ".") {
		return host
	}
	b, err := os.ReadFile(hostsFile)
	if err != nil {
		return host
	}
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 2 || !slices.Contains(f[2:], host) && f[1] != host {
			continue
		}
		if strings.Contains(f[1], ".") {
			return strings.ToLower(f[1])
		}
	}
	return host
}

// mkdirAll makes dir and its parents with mode perm and reports whether dir was made.
func mkdirAll(dir string, perm os.FileMode) (bool, error) {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return false, fmt.Errorf("%s exists and is not a directory", dir)
		}
		return false, nil
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return false, fmt.Errorf("creating %s: %w", dir, err)
	}
	return true, os.Chmod(dir, perm) // whatever the umask took away
}

// initTLS makes a self-signed certificate unless the configured one exists, and, as
// root, lets group postern read the key. It returns a note for the summary.
func (a *app) initTLS(cfg *config.Config, ip string) (string, error) {
	note := "self-signed, made now"
	if _, err := os.Stat(cfg.TLS.Cert); err == nil {
		if _, err := os.Stat(cfg.TLS.Key); err == nil {
			note = "existing, kept"
		}
	}
	if note != "existing, kept" {
		names := []string{cfg.Hostname, "localhost"}
		if addr := net.ParseIP(ip); addr != nil && !addr.IsUnspecified() {
			names = append(names, ip)
		} else {
			names = append(names, "127.0.0.1", "::1")
		}
		if err := writeSelfSigned(cfg.TLS.Cert, cfg.TLS.Key, names); err != nil {
			return "", err
		}
	}
	if a.root {
		// smtpd (user postern) must read the key: root:postern 0640.
		gid, err := groupID(sharedGroup)
		if err != nil {
			return "", err
		}
		if err := os.Chown(cfg.TLS.Key, 0, gid); err != nil {
			return "", fmt.Errorf("giving the TLS key to group %s: %w", sharedGroup, err)
		}
		if err := os.Chmod(cfg.TLS.Key, 0o640); err != nil {
			return "", err
		}
	}
	return note, nil
}

// createDevAccounts creates users.db offline — authd does not run yet, so this is the
// one moment when another process may open authd's database — with the domain
// example.test, the account demo@example.test and its role aliases, and the account's
// Maildir. It returns the generated password.
func createDevAccounts(cfg *config.Config) (string, error) {
	password, err := randomPassword(16)
	if err != nil {
		return "", err
	}
	db, err := userdb.Open(cfg.UsersDB())
	if err != nil {
		return "", fmt.Errorf("creating users.db: %w", err)
	}
	defer db.Close()
	if _, err := db.AddDomain(devDomain); err != nil {
		return "", fmt.Errorf("adding domain %s: %w", devDomain, err)
	}
	if _, err := db.AddUser(devUser, password, int64(cfg.Local.DefaultQuota)); err != nil {
		return "", fmt.Errorf("adding account %s: %w", devUser, err)
	}
	// The demo account opens the web admin panel too.
	if err := db.SetAdmin(devUser, true); err != nil {
		return "", fmt.Errorf("making %s an administrator: %w", devUser, err)
	}
	for _, al := range devAliases {
		if _, err := db.AddAlias(al, []string{devUser}); err != nil {
			return "", fmt.Errorf("adding alias %s: %w", al, err)
		}
	}
	if err := db.Close(); err != nil {
		return "", fmt.Errorf("closing users.db: %w", err)
	}
	md, err := userdb.Maildir(cfg.MailDir(), devUser)
	if err != nil {
		return "", err
	}
	if err := maildir.Create(md, maildir.DefaultFolders); err != nil {
		return "", fmt.Errorf("creating the Maildir of %s: %w", devUser, err)
	}
	return password, nil
}

// createEmptyUsersDB creates users.db without domains, or keeps the one there is.
func createEmptyUsersDB(cfg *config.Config) error {
	db, err := userdb.Open(cfg.UsersDB())
	if err != nil {
		return fmt.Errorf("creating users.db: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("closing users.db: %w", err)
	}
	return nil
}

// chownInstance gives, as root, users.db to postern (0600) and the Maildirs to vmail
// (directories 0700); the data and spool directories stay root's, mode 0755.
func (a *app) chownInstance(cfg *config.Config) error {
	uid, gid, err := ids(cfg.Service("authd").User)
	if err != nil {
		return err
	}
	if err := os.Chown(cfg.UsersDB(), uid, gid); err != nil {
		return fmt.Errorf("giving users.db to %s: %w", cfg.Service("authd").User, err)
	}
	if err := os.Chmod(cfg.UsersDB(), 0o600); err != nil {
		return err
	}
	// Group postern (authd's), which qmgr shares, reads the SRS secrets.
	if err := os.Chown(cfg.SRSKeyFile(), 0, gid); err != nil {
		return fmt.Errorf("giving the SRS secrets to group %d: %w", gid, err)
	}
	vuid, vgid, err := ids(cfg.Service("local").User)
	if err != nil {
		return err
	}
	if err := chownTree(cfg.MailDir(), vuid, vgid, 0o700); err != nil {
		return fmt.Errorf("giving the Maildirs to %s: %w", cfg.Service("local").User, err)
	}
	return nil
}

// passwordAlphabet leaves out characters that are easily confused (0 O o, 1 l I).
const passwordAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// randomPassword returns n characters from passwordAlphabet chosen by crypto/rand
// (about 5.8 bits each).
func randomPassword(n int) (string, error) {
	b := make([]byte, n)
	for i := range b {
		var r [1]byte
		for {
			if _, err := rand.Read(r[:]); err != nil {
				return "", fmt.Errorf("generating a password: %w", err)
			}
			// Reject the top of the range so every character is equally likely.
			if int(r[0]) < 256-256%len(passwordAlphabet) {
				break
			}
		}
		b[i] = passwordAlphabet[int(r[0])%len(passwordAlphabet)]
	}
	return string(b), nil
}

func (a *app) devSummary(cfg *config.Config, v configValues, base int, password, certNote string, warnings []string) {
	w := a.stdout
	host := v.ListenIP
	port := func(off int) int {
		if base == 0 {
			return off
		}
		return base + off
	}
	master := filepath.Join(cfg.BinDir, "master")
	fmt.Fprintf(w, `Created a development instance in %s
  config       %s
  spool        %s
  data         %s (users.db, mail/)
  certificate  %s (%s)

Demo account (postmaster@ and abuse@example.test are aliases of it):
  address:     %s
  password:    %s

Listeners:
  smtp         %s   (MX, STARTTLS)
  submission   %s   (STARTTLS, then AUTH)
  submissions  %s   (implicit TLS, AUTH)
  imap         %s   (IMAP, STARTTLS)
  imaps        %s   (IMAP, implicit TLS)
  pop3         %s   (POP3, STLS)
  pop3s        %s   (POP3, implicit TLS)
  https        %s   (webmail: https://%s/)
  http         %s   (redirects to https)
  sieve        %s   (ManageSieve, STARTTLS)
  metrics      http://%s/metrics   (Prometheus)

Start it:
  %s -c %s

Send a test message:
  swaks --server %s --to %s

Administer it:
  %s -c %s status

Mail client settings: server %s, user %s, the password above;
  IMAP port %d (TLS) or %d (STARTTLS), POP3 port %d (TLS) or %d (STLS),
  SMTP port %d (TLS) or %d (STARTTLS).
  The certificate is self-signed: the client will ask you to accept it.
`,
		cfg.Dir, cfg.Path, cfg.SpoolDir, cfg.DataDir, cfg.TLS.Cert, certNote,
		devUser, password,
		v.SMTP, v.Submission, v.Submissions, v.IMAP, v.IMAPS, v.POP3, v.POP3S, v.HTTPS, v.HTTPS, v.HTTP, v.Sieve, v.Metrics,
		master, cfg.Path,
		v.SMTP, devUser,
		filepath.Join(cfg.BinDir, "mailctl"), cfg.Path,
		host, devUser, port(993), port(143), port(995), port(110), port(465), port(587))
	writeWarnings(a, warnings)
}

func (a *app) systemSummary(cfg *config.Config, certNote string, warnings []string) {
	fmt.Fprintf(a.stdout, `Created the Postern instance:
  config       %s (hostname %s: check it)
  spool        %s
  data         %s (users.db, mail/)
  certificate  %s (%s)

Next steps:
  1. Check the configuration:     mailctl config check
  2. Start Postern:               systemctl enable --now postern
  3. Add your domain and a user:  mailctl domain add example.com
                                  mailctl user add you@example.com
                                  mailctl alias add postmaster@example.com you@example.com
  4. Publish DNS records (MX, A, SPF); an example zone is in conf/example.zone.
  5. Replace the self-signed certificate with one from a CA for %s.
  Members of group %s may run mailctl without root: usermod -aG %s NAME

Webmail: https://%s/ (the address of [services.httpd] listen.https).
`, cfg.Path, cfg.Hostname, cfg.SpoolDir, cfg.DataDir, cfg.TLS.Cert, certNote, cfg.Hostname, cfg.AdminGroup, cfg.AdminGroup, cfg.Hostname)
	writeWarnings(a, warnings)
}

func writeWarnings(a *app, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(a.stderr, "mailctl init: warning: %s\n", w)
	}
}

package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAndRelativePaths(t *testing.T) {
	c, err := Parse("/srv/inst/postern.toml", []byte(`
hostname = "mx.example.test"
spool_dir = "spool"

[smtpd]
max_message_size = "10M"
timeout = "30s"

[services.smtpd]
listen = { smtp = "127.0.0.1:2525" }
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.SpoolDir != "/srv/inst/spool" || c.DataDir != "/var/lib/postern" {
		t.Errorf("paths: %q %q", c.SpoolDir, c.DataDir)
	}
	if c.SMTPD.MaxMessageSize != 10<<20 || c.SMTPD.Timeout.D() != 30*time.Second || c.SMTPD.MaxRecipients != 100 {
		t.Errorf("smtpd: %+v", c.SMTPD)
	}
	s := c.Service("smtpd")
	if len(s.Listen) != 1 || s.Listen["smtp"] != "127.0.0.1:2525" || s.User != "postern" || !s.Enable {
		t.Errorf("service: %+v", s)
	}
	if c.Service("local") == nil || c.Service("local").User != "vmail" {
		t.Errorf("local service missing its defaults")
	}
	if got := c.PrivateSocket("cleanup"); got != filepath.Join("/srv/inst/spool", "private", "cleanup") {
		t.Errorf("private socket %q", got)
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"hostname = \"x\"\nbogus = 1\n", "postern.toml:2: unknown key \"bogus\""},
		{"[smtpd]\n\nmax_recipients = \"many\"\n", "postern.toml:3:"},
		{"[smtpd]\nmax_recipients = 0\n", "postern.toml:2: smtpd.max_recipients: must be greater than zero"},
		{"[smtpd]\ntimeout = \"soon\"\n", "postern.toml:2:"},
		{"[services.smtpd]\nlisten = { smtp = \"nohost\" }\n", "postern.toml:2: services.smtpd.listen.smtp"},
		{"[services.smtpd]\nlisten = { pop3 = \"1.2.3.4:110\" }\n", "has no listener \"pop3\""},
		{"[services.frobd]\nenable = true\n", "postern.toml:1: services.frobd: no such daemon"},
		{"[log]\nlevel = \"loud\"\n", "postern.toml:2: log.level"},
		{"[log]\ntarget = \"syslog\"\n", "postern.toml:2: log.target"},
		{"[log]\ntarget = \"file\"\n", "postern.toml:2: log.target: is file, but log.file names none"},
		{"hostname = \n", "postern.toml:1:"},
		{"[services.imapd]\nuser = \"vmail\"\n", "postern.toml:1: services.imapd.listen: imapd is enabled but has no listener"},
		{"[queue]\nmin_backoff = \"99h\"\n", "postern.toml:1: queue.max_backoff: must not be less"},
		{"hostname = \"\"\n", "postern.toml:1: hostname"},
	} {
		_, err := Parse("/x/postern.toml", []byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want it to contain %q", tc.file, err, tc.want)
		}
	}
}

func TestErrorWithoutALine(t *testing.T) {
	// A bad value that is not in the file (a default gone wrong) must not be blamed
	// on line 0.
	c := Default()
	c.Path = "/x/postern.toml"
	c.Queue.MaxBackoff = 0
	err := c.validate([]byte("hostname = \"mx.example.test\"\n"))
	want := "/x/postern.toml: queue.max_backoff (not set in the file): must not be less than queue.min_backoff"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[any]Size{int64(5): 5, "1K": 1024, "2M": 2 << 20, "1G": 1 << 30, "3MB": 3 << 20, "10": 10} {
		var s Size
		if err := s.UnmarshalTOML(in); err != nil || s != want {
			t.Errorf("%v: %v %v", in, s, err)
		}
	}
	var s Size
	if s.UnmarshalTOML("lots") == nil || s.UnmarshalTOML(int64(-1)) == nil {
		t.Error("bad sizes accepted")
	}
}

// TestSpamd checks the [spamd] table: defaults, values, and the errors that name the
// line of a bad value.
func TestSpamd(t *testing.T) {
	c, err := Parse("/srv/postern.toml", []byte(`
[spamd]
junk_score = 4.5
on_failure = "tempfail"
trusted_relays = ["192.0.2.7", "2001:db8::/32"]
`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Spamd
	if s.JunkScore != 4.5 || s.RejectScore != 15 || s.OnFailure != "tempfail" || !s.Enable || s.GTUBE != 1000 || len(s.TrustedRelays) != 2 {
		t.Errorf("spamd: %+v", s)
	}
	if c.Service("spamd") == nil || c.Service("spamd").User != "postern-spam" || c.SpamDir() != "/var/lib/postern/spam" {
		t.Errorf("spamd service %+v, dir %s", c.Service("spamd"), c.SpamDir())
	}
	if c.Hostname == "" || c.AuthservID() != c.Hostname {
		t.Errorf("authserv-id %q without authserv_id, want the hostname %q", c.AuthservID(), c.Hostname)
	}
	c.Spamd.AuthservID = "mx.example.test"
	if c.AuthservID() != "mx.example.test" {
		t.Errorf("authserv-id %q, want authserv_id's mx.example.test", c.AuthservID())
	}
	for _, n := range []string{"192.0.2.7", "10.0.0.0/8", "::1"} {
		if _, err := ParseNet(n); err != nil {
			t.Errorf("ParseNet(%q): %v", n, err)
		}
	}
	for bad, want := range map[string]string{
		"[spamd]\non_failure = \"drop\"\n":         ":2: spamd.on_failure",
		"[spamd]\ntrusted_relays = [\"x\"]\n":      ":2: spamd.trusted_relays",
		"[spamd]\njunk_score = 20.0\n":             "spamd.reject_score",
		"[spamd]\ndmarc_reject = \"quarantine\"\n": ":2: spamd.dmarc_reject",
		"[spamd]\ntimeout = \"1ms\"\n":             ":2: spamd.timeout",
		"[spamd]\nlocal_policy = \"maybe\"\n":      ":2: spamd.local_policy",
	} {
		if _, err := Parse("/srv/postern.toml", []byte(bad)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", bad, err, want)
		}
	}
}

// TestSieve checks the [sieve] limits: defaults, values, and the errors that name the
// line of a bad value.
func TestSieve(t *testing.T) {
	c, err := Parse("/srv/postern.toml", []byte("[sieve]\nmax_script_size = \"128K\"\nmax_redirects = 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Sieve; s.MaxScriptSize != 128<<10 || s.MaxScripts != 32 || s.MaxActions != 32 || s.MaxRedirects != 0 {
		t.Errorf("sieve: %+v", s)
	}
	for _, tc := range []struct{ file, want string }{
		{"[sieve]\nmax_script_size = \"2M\"\n", "postern.toml:2: sieve.max_script_size: must be 1K to 1M"},
		{"[sieve]\nmax_script_size = 10\n", "postern.toml:2: sieve.max_script_size"},
		{"[sieve]\nmax_scripts = 0\n", "postern.toml:2: sieve.max_scripts: must be 1 to 1000"},
		{"[sieve]\n\nmax_actions = -1\n", "postern.toml:3: sieve.max_actions"},
		{"[sieve]\nmax_actions = 3\nmax_redirects = 4\n", "postern.toml:3: sieve.max_redirects: must be 0 to sieve.max_actions (3)"},
		{"[sieve]\nmax_redirects = -1\n", "postern.toml:2: sieve.max_redirects"},
		{"[sieve]\nmax_vacations = 1\n", "unknown key"},
	} {
		_, err := Parse("/x/postern.toml", []byte(tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want it to contain %q", tc.file, err, tc.want)
		}
	}
}

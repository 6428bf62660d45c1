// Package config reads postern.toml, the one configuration file of a Postern instance.
//
// Every key has a default (see Default); a key that Postern does not know, or a value of
// the wrong type, is an error that names the file and line. Relative paths in the file are
// taken relative to the directory that holds it, so a development instance is one
// self-contained folder. The keys are documented in postern.toml(5).
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"postern/pkg/sieve"
)

// DefaultPath is where the system instance keeps its configuration.
const DefaultPath = "/etc/postern/postern.toml"

// Config is a parsed postern.toml.
type Config struct {
	// Path is the file the configuration was read from; Dir is its directory.
	Path string `toml:"-"`
	Dir  string `toml:"-"`

	// Hostname is the name this host gives in its SMTP greeting, EHLO and Received headers.
	Hostname string `toml:"hostname"`
	// SpoolDir holds the queue (incoming, active, deferred, hold, corrupt) and the sockets.
	SpoolDir string `toml:"spool_dir"`
	// DataDir holds users.db, the Maildirs and the spam database.
	DataDir string `toml:"data_dir"`
	// BinDir is where master finds the daemon programs.
	BinDir string `toml:"bin_dir"`
	// AdminGroup names the group whose members may use the control sockets (mailctl).
	AdminGroup string `toml:"admin_group"`

	Log      Log                 `toml:"log"`
	Authd    Authd               `toml:"authd"`
	TLS      TLS                 `toml:"tls"`
	SMTPD    SMTPD               `toml:"smtpd"`
	Queue    Queue               `toml:"queue"`
	Local    Local               `toml:"local"`
	Sieve    Sieve               `toml:"sieve"`
	IMAPD    IMAPD               `toml:"imapd"`
	Remote   Remote              `toml:"remote"`
	Spamd    Spamd               `toml:"spamd"`
	HTTPD    HTTPD               `toml:"httpd"`
	SRS      SRS                 `toml:"srs"`
	Services map[string]*Service `toml:"services"`

	// Submission is the policy of mail from authenticated users (ports 587 and 465).
	Submission Submission `toml:"submission"`
}

// Authd holds the limits of authd's failed-login throttling (see authd(8)). Failures
// add up per client address, per network (/24 or /64), per account and client, and per
// account; a key that reaches its limit within FailureWindow is refused for BlockTime,
// doubling up to MaxBlockTime. The account limit never applies to a client that logged in
// to the account successfully within RememberLogins.
type Authd struct {
	ClientFailures        int      `toml:"client_failures"`
	NetworkFailures       int      `toml:"network_failures"`
	AccountClientFailures int      `toml:"account_client_failures"`
	AccountFailures       int      `toml:"account_failures"`
	FailureWindow         Duration `toml:"failure_window"`
	BlockTime             Duration `toml:"block_time"`
	MaxBlockTime          Duration `toml:"max_block_time"`
	RememberLogins        Duration `toml:"remember_logins"`
	// PasswordMinLength and PasswordMinScore are the minimum of a password an account
	// is given (pkg/pwstrength): characters, and the guessability score 0 to 4 (0
	// checks the length only).
	PasswordMinLength int `toml:"password_min_length"`
	PasswordMinScore  int `toml:"password_min_score"`
}

// Log says how daemons log.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text (logfmt) or json, on standard error and in File.
	Format string `toml:"format"`
	// Target is where the lines go: stderr (master's standard error, which the daemons
	// share), journal (systemd's journal, in its native protocol, each attribute a
	// field), file (File, which master opens and gives the daemons as their standard
	// error) or auto: the journal when standard error is the journal's (JOURNAL_STREAM,
	// under systemd), standard error otherwise.
	Target string `toml:"target"`
	// File is the log file of target "file".
	File string `toml:"file"`
}

// Log targets.
const (
	LogAuto    = "auto"
	LogStderr  = "stderr"
	LogJournal = "journal"
	LogFile    = "file"
)

// TLS names the certificate and key served by smtpd and imapd.
type TLS struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// Certificates are more certificate/key pairs, chosen by the name the client asks
	// for (SNI); Cert/Key is served when none matches. See pkg/tlsconf.
	Certificates []CertPair `toml:"certificates"`
}

// CertPair is a certificate chain and its private key, in PEM files.
type CertPair struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// Submission holds the policy of message submission (RFC 6409) by authenticated users.
type Submission struct {
	// MaxMessagesPerHour and MaxRecipientsPerHour limit each account; 0 is no limit.
	MaxMessagesPerHour   int `toml:"max_messages_per_hour"`
	MaxRecipientsPerHour int `toml:"max_recipients_per_hour"`
	// HideClient leaves the client's address and HELO name out of the Received header
	// of authenticated submissions (privacy).
	HideClient bool `toml:"hide_client"`
}

// SMTPD holds the limits and policy of the SMTP server.
type SMTPD struct {
	MaxMessageSize      Size     `toml:"max_message_size"`
	MaxRecipients       int      `toml:"max_recipients"`
	MaxConnections      int      `toml:"max_connections"`
	MaxConnectionsPerIP int      `toml:"max_connections_per_ip"`
	MaxLineLength       int      `toml:"max_line_length"`
	MaxErrors           int      `toml:"max_errors"`
	Timeout             Duration `toml:"timeout"`
	DataTimeout         Duration `toml:"data_timeout"`
	// ShutdownGrace is how long a stopping smtpd lets transactions in flight finish.
	ShutdownGrace Duration `toml:"shutdown_grace"`
	// MaxConnectionsPerNet caps the sessions at once from one /24 (IPv4) or /64 (IPv6).
	MaxConnectionsPerNet int `toml:"max_connections_per_net"`
	// ConnectionRate, MessageRate and RecipientRate cap what one client (an IPv4
	// address or an IPv6 /64) may do per minute: new connections, messages (MAIL) and
	// recipients (RCPT); 0: no cap.
	ConnectionRate int `toml:"connection_rate"`
	MessageRate    int `toml:"message_rate"`
	RecipientRate  int `toml:"recipient_rate"`
	// MaxUnknownRecipients ends a session after that many unknown recipients (a
	// dictionary attack); 0: no limit.
	MaxUnknownRecipients int `toml:"max_unknown_recipients"`
	// ExemptNetworks are the client networks (CIDR) that the per-client limits, the
	// greeting delay and the early-talker test leave alone.
	ExemptNetworks []string `toml:"exempt_networks"`
	// GreetDelay is how long smtpd waits before its greeting on port 25; a client that
	// talks meanwhile is dropped. 0 sends the greeting at once.
	GreetDelay Duration `toml:"greet_delay"`
	// StressThreshold is the share of max_connections (percent) from which smtpd is
	// under stress and waits StressTimeout instead of Timeout for a command.
	StressThreshold int      `toml:"stress_threshold"`
	StressTimeout   Duration `toml:"stress_timeout"`
}

// Exempt parses ExemptNetworks: CIDR prefixes, or single addresses.
func (s SMTPD) Exempt() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range s.ExemptNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return nil, fmt.Errorf("%q is neither a network (CIDR) nor an address", n)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Queue holds the retry schedule and the delivery concurrency of qmgr.
type Queue struct {
	MinBackoff   Duration `toml:"min_backoff"`
	MaxBackoff   Duration `toml:"max_backoff"`
	DelayWarning Duration `toml:"delay_warning"`
	MaxLifetime  Duration `toml:"max_lifetime"`
	// ScanInterval is how often qmgr looks into deferred/ for messages due again.
	ScanInterval Duration `toml:"scan_interval"`
	// LocalConcurrency is how many local deliveries run at once.
	LocalConcurrency int `toml:"local_concurrency"`
	// RemoteConcurrency is how many messages are handed to remote at once.
	RemoteConcurrency int `toml:"remote_concurrency"`
	// MailqUsers says what mailq shows a local user who is not an administrator (root
	// and the admin group see the whole queue): MailqOwn, MailqAll or MailqAdmin.
	MailqUsers string `toml:"mailq_users"`
}

// Values of queue.mailq_users.
const (
	// MailqOwn shows a user the messages they submitted with sendmail.
	MailqOwn = "own"
	// MailqAll shows everyone the whole queue, as Postfix's default does.
	MailqAll = "all"
	// MailqAdmin shows the queue to administrators only.
	MailqAdmin = "admin"
)

// Local holds the mailbox policy of local delivery.
type Local struct {
	// DefaultQuota applies to accounts created without an explicit quota; 0 is unlimited.
	DefaultQuota Size `toml:"default_quota"`
}

// Sieve holds the limits of the users' Sieve scripts (RFC 5228): sieved refuses
// scripts and script sets beyond them and announces MaxRedirects (RFC 5804 §1.7);
// local stops a run that takes more actions or redirects, and keeps the message.
type Sieve struct {
	// MaxScriptSize bounds one script.
	MaxScriptSize Size `toml:"max_script_size"`
	// MaxScripts bounds the scripts of one account.
	MaxScripts int `toml:"max_scripts"`
	// MaxActions bounds the actions one run takes (fileinto, keep, redirect ...).
	MaxActions int `toml:"max_actions"`
	// MaxRedirects bounds the redirects one run takes; 0 allows none.
	MaxRedirects int `toml:"max_redirects"`
}

// Limits returns the limits of pkg/sieve that the table sets.
func (s Sieve) Limits() sieve.Limits {
	return sieve.Limits{ScriptSize: int(s.MaxScriptSize), Actions: s.MaxActions, Redirects: s.MaxRedirects}
}

// SRS holds the Sender Rewriting Scheme (pkg/srs) of forwarded mail: the envelope
// sender of a message this host forwards to another domain (an alias, a Sieve redirect)
// becomes an address of Domain, so that it passes SPF at the receiver, and a bounce to
// such an address goes back to the original sender.
type SRS struct {
	// Enable rewrites the senders of forwarded mail and accepts bounces to SRS
	// addresses; false forwards with the original sender.
	Enable bool `toml:"enable"`
	// Domain is the domain of the rewritten addresses: one of this host's domains,
	// whose SPF record names this host; empty means MyDomain.
	Domain string `toml:"domain"`
	// KeyFile holds the secrets (one a line, the first signs); empty means
	// <data_dir>/srs.key, which mailctl init and master make when it is missing.
	KeyFile string `toml:"key_file"`
	// MaxAge is how long a rewritten address accepts bounces.
	MaxAge Duration `toml:"max_age"`
}

// SRSDomain is the domain of SRS addresses: [srs] domain, else MyDomain.
func (c *Config) SRSDomain() string {
	if c.SRS.Domain != "" {
		return strings.ToLower(strings.TrimSuffix(c.SRS.Domain, "."))
	}
	return c.MyDomain()
}

// SRSKeyFile is the file of the SRS secrets: [srs] key_file, else <data_dir>/srs.key.
func (c *Config) SRSKeyFile() string {
	if c.SRS.KeyFile != "" {
		return c.SRS.KeyFile
	}
	return filepath.Join(c.DataDir, "srs.key")
}

// Remote holds the settings of the outbound SMTP client, the remote daemon.
type Remote struct {
	// Resolvers are the DNS servers asked for MX and address records, as "ip" or
	// "ip:port"; empty means the nameservers of /etc/resolv.conf.
	Resolvers []string `toml:"resolvers"`
	// Port is the TCP port of the servers mail goes to: 25, the SMTP port; another
	// value only for tests.
	Port int `toml:"port"`
	// Helo is the name given in EHLO; empty means Hostname.
	Helo string `toml:"helo"`
	// DANE makes TLSA records that the resolver validated with DNSSEC binding (RFC 7672):
	// the server must then present a matching certificate over TLS.
	DANE bool `toml:"dane"`
	// MTASTS applies the MTA-STS policies that domains publish (RFC 8461).
	MTASTS bool `toml:"mta_sts"`
	// BindAddress is the local IP address connections are made from; empty lets the
	// kernel choose. It matters to SPF on a host with several addresses.
	BindAddress string `toml:"bind_address"`
	// ConnectTimeout bounds the TCP connection and the wait for the greeting;
	// CommandTimeout each other command; DataTimeout the message and the reply to it.
	ConnectTimeout Duration `toml:"connect_timeout"`
	CommandTimeout Duration `toml:"command_timeout"`
	DataTimeout    Duration `toml:"data_timeout"`
	// DestinationConcurrency is the most connections at once to one destination domain.
	DestinationConcurrency int `toml:"destination_concurrency"`
	// ConnectionCacheTime is how long an idle connection is kept for the next message to
	// the same destination; 0 closes every connection after its message.
	ConnectionCacheTime Duration `toml:"connection_cache_time"`
}

// Spamd holds the policy of inbound mail checks (spamd(8)): the weight of each signal,
// the thresholds, and what cleanup does when spamd does not answer in time.
type Spamd struct {
	// Enable makes cleanup ask spamd about every message that did not come from an
	// authenticated user.
	Enable bool `toml:"enable"`
	// Timeout bounds cleanup's wait for a verdict; OnFailure says what happens to a
	// message without one: "accept" (queued without a verdict) or "tempfail" (451).
	Timeout   Duration `toml:"timeout"`
	OnFailure string   `toml:"on_failure"`
	// AuthservID names this host in Authentication-Results (RFC 8601 §2.5); empty
	// means Hostname.
	AuthservID string `toml:"authserv_id"`
	// JunkScore and RejectScore are the thresholds: a message scoring at least
	// JunkScore goes into Junk, at least RejectScore is refused at DATA.
	JunkScore   float64 `toml:"junk_score"`
	RejectScore float64 `toml:"reject_score"`
	// The weights of the signals, added to the score when they fire.
	SPFFail        float64 `toml:"spf_fail"`
	SPFSoftfail    float64 `toml:"spf_softfail"`
	SPFPass        float64 `toml:"spf_pass"`
	DKIMPass       float64 `toml:"dkim_pass"`
	DKIMFail       float64 `toml:"dkim_fail"`
	DMARCFail      float64 `toml:"dmarc_fail"`
	DMARCPass      float64 `toml:"dmarc_pass"`
	GTUBE          float64 `toml:"gtube"`
	ClassifierSpam float64 `toml:"classifier_spam"`
	// RejectSPFFail refuses mail whose MAIL FROM fails SPF (550 5.7.23, RFC 7372)
	// whatever its score.
	RejectSPFFail bool `toml:"reject_spf_fail"`
	// DMARCReject is what a DMARC failure under p=reject gets: "reject" (550 5.7.1)
	// or "junk".
	DMARCReject string `toml:"dmarc_reject"`
	// TrustedRelays are client IPs and CIDRs whose mail is not checked: backup MX,
	// internal hosts that relay for a local domain.
	TrustedRelays []string `toml:"trusted_relays"`
	// LocalPolicy is the DMARC policy applied to mail claiming one of our own domains
	// when the domain publishes none: "reject", "quarantine" or "none".
	LocalPolicy string `toml:"local_policy"`

	// DNSBL and DNSWL are the DNS lists spamd asks about the client's address (RFC
	// 5782): a blocklist listing adds its weight or refuses the message, an allowlist
	// listing lowers the score. See dnslist.go.
	DNSBL []DNSBL `toml:"dnsbl"`
	DNSWL []DNSWL `toml:"dnswl"`
	// ClassifierMinSpam and ClassifierMinHam are the spam and ham messages the
	// classifier must have learned (global and recipient's corpora together) before
	// its opinion counts.
	ClassifierMinSpam int `toml:"classifier_min_spam"`
	ClassifierMinHam  int `toml:"classifier_min_ham"`
	// DMARC aggregate reports and greylisting: see spamd_reports.go.
	DMARCReports
	Greylist
}

// IMAPD holds the limits of the IMAP server.
type IMAPD struct {
	// MaxConnections bounds the IMAP connections at once; MaxConnectionsPerIP those from
	// one address (loopback is exempt: webmail connects from there).
	MaxConnections      int `toml:"max_connections"`
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxLineLength bounds a command line with its small literals, in bytes.
	MaxLineLength int `toml:"max_line_length"`
	// MaxMessageSize bounds a message stored with APPEND.
	MaxMessageSize Size `toml:"max_message_size"`
	// LoginTimeout is how long a connection may stay unauthenticated.
	LoginTimeout Duration `toml:"login_timeout"`
	// IdleTimeout is the autologout timer of an authenticated session (RFC 9051 §5.4
	// asks for at least 30 minutes).
	IdleTimeout Duration `toml:"idle_timeout"`
}

// HTTPD holds the settings of the web server (httpd(8)): how long a webmail session
// lasts. authd gives each web login a token that lives as long as its session, so both
// daemons read these keys.
type HTTPD struct {
	// IdleTimeout ends a session that made no request for that long.
	IdleTimeout Duration `toml:"idle_timeout"`
	// SessionLifetime ends every session that long after its login, however busy.
	SessionLifetime Duration `toml:"session_lifetime"`
	// MaxUpload bounds a request body: a message composed in the browser with its
	// attachments.
	MaxUpload Size `toml:"max_upload"`
}

// Service is one entry of the [services] table, the part Postfix's master.cf plays.
type Service struct {
	// Enable says whether master runs the daemon.
	Enable bool `toml:"enable"`
	// User is the system user the daemon runs as when master is root.
	User string `toml:"user"`
	// Listen maps a listener name (smtp, submission, imap ...) to host:port.
	Listen map[string]string `toml:"listen"`
	// Command overrides the program; by default it is BinDir/<service name>.
	Command string `toml:"command"`
	// Args are extra arguments for the program.
	Args []string `toml:"args"`
	// Procs caps the threads that run the daemon's Go code at once (GOMAXPROCS); 0 means
	// one per CPU. Daemons that mostly wait for the disk and for each other spend less CPU
	// with 1: their threads stop waking each other up to hand work over.
	Procs int `toml:"procs"`
}

// Daemon describes what Postern knows about one of its daemons: the sockets master makes
// for it and the user it runs as by default.
type Daemon struct {
	Name string
	// User is the default system user.
	User string
	// Private are socket names under <spool>/private.
	Private []string
	// Control are socket names under <spool>/control, for administration.
	Control []string
	// Public are socket names under <spool>/public, open to every local user: cleanup's
	// takes the messages of sendmail(1), as Postfix's public/pickup does.
	Public []string
	// Listeners are the inet listener names the daemon understands.
	Listeners []string
	// ReloadsOnHUP says the daemon re-reads its certificates on SIGHUP: when a reload of
	// master leaves its configuration unchanged, master passes SIGHUP on to it (other
	// daemons would die of it).
	ReloadsOnHUP bool
	// Procs is the default of [services.NAME] procs.
	Procs int
	// ListenOptional says the daemon has work without a listener: metricsd collects
	// the figures even when no listener serves them.
	ListenOptional bool
}

// Daemons lists the daemons master can run, in start order.
var Daemons = []Daemon{
	// metricsd first: the others report to it from their start.
	{Name: "metricsd", User: "postern", Private: []string{"metrics"}, Listeners: []string{"metrics"}, Procs: 1, ListenOptional: true},
	{Name: "authd", User: "postern", Private: []string{"auth"}, Control: []string{"authd"}, Procs: 1},
	{Name: "local", User: "vmail", Private: []string{"local"}, Control: []string{"local"}, Procs: 1},
	{Name: "remote", User: "postern", Private: []string{"remote"}},
	{Name: "qmgr", User: "postern", Private: []string{"qmgr"}, Control: []string{"qmgr"}, Public: []string{"qmgr"}, Procs: 1},
	{Name: "spamd", User: "postern-spam", Private: []string{"spamd"}, Control: []string{"spamd"}, Procs: 1},
	{Name: "cleanup", User: "postern", Private: []string{"cleanup"}, Public: []string{"cleanup"}, Procs: 1},
	{Name: "smtpd", User: "postern", Listeners: []string{"smtp", "submission", "submissions"}, ReloadsOnHUP: true},
	{Name: "imapd", User: "vmail", Listeners: []string{"imap", "imaps", "pop3", "pop3s"}, ReloadsOnHUP: true},
	{Name: "httpd", User: "postern-web", Listeners: []string{"https", "http"}, ReloadsOnHUP: true},
	{Name: "sieved", User: "vmail", Listeners: []string{"sieve"}, Control: []string{"sieved"}, ReloadsOnHUP: true},
}

// LookupDaemon returns the description of the named daemon.
func LookupDaemon(name string) (Daemon, bool) {
	for _, d := range Daemons {
		if d.Name == name {
			return d, true
		}
	}
	return Daemon{}, false
}

// Default returns the configuration used for every key the file does not set.
func Default() *Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	c := &Config{
		Hostname:   host,
		SpoolDir:   "/var/spool/postern",
		DataDir:    "/var/lib/postern",
		BinDir:     "/usr/lib/postern",
		AdminGroup: "postern-admin",
		Log:        Log{Level: "info", Format: "text", Target: LogAuto},
		Authd: Authd{
			ClientFailures:        10,
			NetworkFailures:       50,
			AccountClientFailures: 5,
			AccountFailures:       100,
			FailureWindow:         Duration(15 * time.Minute),
			BlockTime:             Duration(time.Minute),
			MaxBlockTime:          Duration(time.Hour),
			RememberLogins:        Duration(30 * 24 * time.Hour),
			PasswordMinLength:     10,
			PasswordMinScore:      3,
		},
		TLS: TLS{Cert: "/etc/postern/tls/cert.pem", Key: "/etc/postern/tls/key.pem"},
		SMTPD: SMTPD{
			MaxMessageSize:       50 << 20,
			MaxRecipients:        100,
			MaxConnections:       1000,
			MaxConnectionsPerIP:  20,
			MaxLineLength:        65536,
			MaxErrors:            10,
			Timeout:              Duration(5 * time.Minute),
			DataTimeout:          Duration(10 * time.Minute),
			ShutdownGrace:        Duration(30 * time.Second),
			MaxConnectionsPerNet: 50,
			ConnectionRate:       60,
			MessageRate:          60,
			RecipientRate:        300,
			MaxUnknownRecipients: 5,
			ExemptNetworks:       []string{"127.0.0.0/8", "::1/128"},
			GreetDelay:           Duration(time.Second),
			StressThreshold:      80,
			StressTimeout:        Duration(10 * time.Second),
		},
		Queue: Queue{
			MinBackoff:        Duration(5 * time.Minute),
			MaxBackoff:        Duration(time.Hour),
			DelayWarning:      Duration(4 * time.Hour),
			MaxLifetime:       Duration(5 * 24 * time.Hour),
			ScanInterval:      Duration(time.Minute),
			MailqUsers:        MailqOwn,
			LocalConcurrency:  20,
			RemoteConcurrency: 50,
		},
		Sieve: Sieve{MaxScriptSize: sieve.MaxScriptSize, MaxScripts: 32, MaxActions: sieve.MaxActions, MaxRedirects: sieve.MaxRedirects},
		Remote: Remote{
			Port:                   25,
			DANE:                   true,
			MTASTS:                 true,
			ConnectTimeout:         Duration(30 * time.Second),
			CommandTimeout:         Duration(5 * time.Minute),
			DataTimeout:            Duration(10 * time.Minute),
			DestinationConcurrency: 20,
			ConnectionCacheTime:    Duration(10 * time.Second),
		},
		Spamd: Spamd{
			Enable:         true,
			Timeout:        Duration(10 * time.Second),
			OnFailure:      "accept",
			JunkScore:      5,
			RejectScore:    15,
			SPFFail:        3,
			SPFSoftfail:    1,
			SPFPass:        -0.5,
			DKIMPass:       -1,
			DKIMFail:       1,
			DMARCFail:      4,
			DMARCPass:      -1,
			GTUBE:          1000,
			ClassifierSpam: 8.5,
			RejectSPFFail:  true,
			DMARCReject:    "reject",
			LocalPolicy:    "reject",
			DMARCReports:   DMARCReports{ReportInterval: Duration(24 * time.Hour)},
			Greylist: Greylist{
				GreylistDelay:     Duration(5 * time.Minute),
				GreylistWindow:    Duration(4 * time.Hour),
				GreylistAutoAllow: 5,
				GreylistMaxAge:    Duration(35 * 24 * time.Hour),
			},

			ClassifierMinSpam: 50,
			ClassifierMinHam:  50,
		},
		Submission: Submission{MaxMessagesPerHour: 200, MaxRecipientsPerHour: 1000},
		SRS:        SRS{Enable: true, MaxAge: Duration(21 * 24 * time.Hour)},
		IMAPD: IMAPD{
			MaxConnections:      20000,
			MaxConnectionsPerIP: 50,
			MaxLineLength:       65536,
			MaxMessageSize:      50 << 20,
			LoginTimeout:        Duration(time.Minute),
			IdleTimeout:         Duration(30 * time.Minute),
		},
		HTTPD: HTTPD{
			IdleTimeout:     Duration(30 * time.Minute),
			SessionLifetime: Duration(12 * time.Hour),
			MaxUpload:       25 << 20,
		},
		Services: map[string]*Service{},
	}
	for _, d := range Daemons {
		c.Services[d.Name] = &Service{Enable: true, User: d.User, Listen: map[string]string{}, Procs: d.Procs}
	}
	c.Services["smtpd"].Listen = map[string]string{"smtp": "0.0.0.0:25", "submission": "0.0.0.0:587", "submissions": "0.0.0.0:465"}
	c.Services["imapd"].Listen = map[string]string{"imap": "0.0.0.0:143", "imaps": "0.0.0.0:993", "pop3": "0.0.0.0:110", "pop3s": "0.0.0.0:995"}
	c.Services["httpd"].Listen = map[string]string{"https": "0.0.0.0:443", "http": "0.0.0.0:80"}
	c.Services["sieved"].Listen = map[string]string{"sieve": "0.0.0.0:4190"}
	return c
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data as the contents of the file at path.
func Parse(path string, data []byte) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c := Default()
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return nil, positionError(abs, err)
	}
	// A service named in the file is decoded afresh (its listeners are only those the
	// file gives); the keys it leaves out take their defaults here.
	for name, s := range c.Services {
		d, known := LookupDaemon(name)
		if !known || !md.IsDefined("services", name) {
			continue
		}
		if !md.IsDefined("services", name, "enable") {
			s.Enable = true
		}
		if !md.IsDefined("services", name, "user") {
			s.User = d.User
		}
		if !md.IsDefined("services", name, "procs") {
			s.Procs = d.Procs
		}
	}
	if und := md.Undecoded(); len(und) > 0 {
		key := und[0]
		return nil, fmt.Errorf("%s:%d: unknown key %q", abs, keyLine(data, key), key.String())
	}
	c.Path = abs
	c.Dir = filepath.Dir(abs)
	paths := []*string{&c.SpoolDir, &c.DataDir, &c.BinDir, &c.TLS.Cert, &c.TLS.Key, &c.SRS.KeyFile, &c.Log.File}
	for i := range c.TLS.Certificates {
		paths = append(paths, &c.TLS.Certificates[i].Cert, &c.TLS.Certificates[i].Key)
	}
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(c.Dir, *p)
		}
	}
	if err := c.validate(data); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) validate(data []byte) error {
	bad := func(key, format string, args ...any) error {
		k := toml.Key(strings.Split(key, "."))
		msg := fmt.Sprintf(format, args...)
		line := keyLine(data, k)
		for t := len(k) - 1; line == 0 && t > 0; t-- {
			line = keyLine(data, k[:t]) // the table the key belongs in
		}
		if line == 0 {
			// Neither the key nor its table is in the file: the default is at fault,
			// which a line number of 0 would only hide.
			return fmt.Errorf("%s: %s (not set in the file): %s", c.Path, key, msg)
		}
		return fmt.Errorf("%s:%d: %s: %s", c.Path, line, key, msg)
	}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t\r\n") {
		return bad("hostname", "must be a host name")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "must be text or json, not %q", c.Log.Format)
	}
	switch c.Queue.MailqUsers {
	case MailqOwn, MailqAll, MailqAdmin:
	default:
		return bad("queue.mailq_users", "must be own, all or admin, not %q", c.Queue.MailqUsers)
	}
	switch c.Log.Target {
	case LogAuto, LogStderr, LogJournal:
	case LogFile:
		if c.Log.File == "" {
			return bad("log.target", "is file, but log.file names none")
		}
	default:
		return bad("log.target", "must be auto, stderr, journal or file, not %q", c.Log.Target)
	}
	positive := map[string]int{
		"smtpd.max_recipients":           c.SMTPD.MaxRecipients,
		"smtpd.max_connections":          c.SMTPD.MaxConnections,
		"smtpd.max_connections_per_ip":   c.SMTPD.MaxConnectionsPerIP,
		"smtpd.max_line_length":          c.SMTPD.MaxLineLength,
		"smtpd.max_errors":               c.SMTPD.MaxErrors,
		"smtpd.max_connections_per_net":  c.SMTPD.MaxConnectionsPerNet,
		"smtpd.stress_timeout (seconds)": int(c.SMTPD.StressTimeout.D().Seconds()),
		"queue.local_concurrency":        c.Queue.LocalConcurrency,
		"queue.remote_concurrency":       c.Queue.RemoteConcurrency,
		"smtpd.max_message_size":         int(min(c.SMTPD.MaxMessageSize, 1<<30)),
		"smtpd.timeout (seconds)":        int(time.Duration(c.SMTPD.Timeout).Seconds()),
		"smtpd.data_timeout (seconds)":   int(time.Duration(c.SMTPD.DataTimeout).Seconds()),
		"queue.min_backoff (seconds)":    int(time.Duration(c.Queue.MinBackoff).Seconds()),
		"queue.max_lifetime (seconds)":   int(time.Duration(c.Queue.MaxLifetime).Seconds()),
		"queue.scan_interval (seconds)":  int(time.Duration(c.Queue.ScanInterval).Seconds()),
		"imapd.max_connections":          c.IMAPD.MaxConnections,
		"imapd.max_connections_per_ip":   c.IMAPD.MaxConnectionsPerIP,
		"imapd.max_line_length":          c.IMAPD.MaxLineLength,
		"imapd.max_message_size":         int(min(c.IMAPD.MaxMessageSize, 1<<30)),
		"imapd.login_timeout (seconds)":  int(c.IMAPD.LoginTimeout.D().Seconds()),
		"imapd.idle_timeout (seconds)":   int(c.IMAPD.IdleTimeout.D().Seconds()),
		"authd.client_failures":          c.Authd.ClientFailures,
		"authd.network_failures":         c.Authd.NetworkFailures,
		"authd.account_client_failures":  c.Authd.AccountClientFailures,
		"authd.account_failures":         c.Authd.AccountFailures,
		"authd.failure_window (seconds)": int(c.Authd.FailureWindow.D().Seconds()),
		"authd.block_time (seconds)":     int(c.Authd.BlockTime.D().Seconds()),
		"httpd.idle_timeout (seconds)":   int(c.HTTPD.IdleTimeout.D().Seconds()),
		"httpd.max_upload":               int(min(c.HTTPD.MaxUpload, 1<<30)),
	}
	for key, v := range map[string]int{
		"smtpd.connection_rate":        c.SMTPD.ConnectionRate,
		"smtpd.message_rate":           c.SMTPD.MessageRate,
		"smtpd.recipient_rate":         c.SMTPD.RecipientRate,
		"smtpd.max_unknown_recipients": c.SMTPD.MaxUnknownRecipients,
		"smtpd.greet_delay":            int(c.SMTPD.GreetDelay),
	} {
		if v < 0 {
			return bad(key, "must not be negative (0 turns it off)")
		}
	}
	if t := c.SMTPD.StressThreshold; t <= 0 || t > 100 {
		return bad("smtpd.stress_threshold", "must be a percentage of max_connections, 1 to 100")
	}
	if _, err := c.SMTPD.Exempt(); err != nil {
		return bad("smtpd.exempt_networks", "%v", err)
	}
	keys := make([]string, 0, len(positive))
	for k := range positive {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if positive[k] <= 0 {
			return bad(strings.Fields(k)[0], "must be greater than zero")
		}
	}
	for key, v := range map[string]time.Duration{
		"remote.connect_timeout": c.Remote.ConnectTimeout.D(),
		"remote.command_timeout": c.Remote.CommandTimeout.D(),
		"remote.data_timeout":    c.Remote.DataTimeout.D(),
	} {
		if v < time.Second {
			return bad(key, "must be at least 1s")
		}
	}
	if c.Remote.DestinationConcurrency <= 0 {
		return bad("remote.destination_concurrency", "must be greater than zero")
	}
	if c.Remote.Port <= 0 || c.Remote.Port > 65535 {
		return bad("remote.port", "must be a TCP port (1-65535), not %d", c.Remote.Port)
	}
	if c.Remote.ConnectionCacheTime < 0 {
		return bad("remote.connection_cache_time", "must not be negative")
	}
	if strings.ContainsAny(c.Remote.Helo, " \t\r\n<>[]") {
		return bad("remote.helo", "must be a host name")
	}
	if c.Remote.BindAddress != "" && net.ParseIP(c.Remote.BindAddress) == nil {
		return bad("remote.bind_address", "%q is not an IP address", c.Remote.BindAddress)
	}
	if len(c.Remote.Resolvers) == 0 {
		c.Remote.Resolvers = nil // "resolvers = []" is the default, as when absent
	}
	for _, r := range c.Remote.Resolvers {
		host := r
		if h, port, err := net.SplitHostPort(r); err == nil {
			if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
				return bad("remote.resolvers", "bad port in %q", r)
			}
			host = h
		}
		if net.ParseIP(host) == nil {
			return bad("remote.resolvers", "%q is not an IP address (or ip:port)", r)
		}
	}
	if c.Submission.MaxMessagesPerHour < 0 {
		return bad("submission.max_messages_per_hour", "must not be negative (0 means no limit)")
	}
	if c.Submission.MaxRecipientsPerHour < 0 {
		return bad("submission.max_recipients_per_hour", "must not be negative (0 means no limit)")
	}
	for i, p := range c.TLS.Certificates {
		if p.Cert == "" || p.Key == "" {
			return bad("tls.certificates", "entry %d needs both cert and key", i+1)
		}
	}
	if c.Authd.MaxBlockTime < c.Authd.BlockTime {
		return bad("authd.max_block_time", "must not be less than authd.block_time")
	}
	if c.HTTPD.SessionLifetime < c.HTTPD.IdleTimeout {
		return bad("httpd.session_lifetime", "must not be less than httpd.idle_timeout")
	}
	if c.Authd.RememberLogins < 0 {
		return bad("authd.remember_logins", "must not be negative (0 remembers no client)")
	}
	if c.Authd.PasswordMinLength < 1 || c.Authd.PasswordMinLength > 1024 {
		return bad("authd.password_min_length", "must be 1 to 1024 characters")
	}
	if c.Authd.PasswordMinScore < 0 || c.Authd.PasswordMinScore > 4 {
		return bad("authd.password_min_score", "must be 0 to 4")
	}
	if err := c.validateSpamd(bad); err != nil {
		return err
	}
	if a := c.SRS.MaxAge.D(); a < 24*time.Hour || a > 1023*24*time.Hour {
		// The timestamp counts days, modulo 1024 (pkg/srs).
		return bad("srs.max_age", "must be between 1 and 1023 days")
	}
	if strings.ContainsAny(c.SRS.Domain, " \t\r\n=+@<>") {
		return bad("srs.domain", "must be a domain name")
	}
	if c.Queue.MaxBackoff < c.Queue.MinBackoff {
		return bad("queue.max_backoff", "must not be less than queue.min_backoff")
	}
	if err := c.validateSieve(bad); err != nil {
		return err
	}
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := c.Services[name]
		d, ok := LookupDaemon(name)
		if !ok {
			return bad("services."+name, "no such daemon (known: %s)", daemonNames())
		}
		if s.User == "" {
			return bad("services."+name+".user", "must name a system user")
		}
		if s.Procs < 0 {
			return bad("services."+name+".procs", "must be 0 (one per CPU) or more")
		}
		if s.Enable && len(d.Listeners) > 0 && len(s.Listen) == 0 && !d.ListenOptional {
			// Without a listener the daemon would have nothing to serve and master
			// would restart it for ever.
			return bad("services."+name+".listen", "%s is enabled but has no listener; set listen = { %s = \"host:port\" } or enable = false",
				name, d.Listeners[0])
		}
		lnames := make([]string, 0, len(s.Listen))
		for l := range s.Listen {
			lnames = append(lnames, l)
		}
		sort.Strings(lnames)
		for _, l := range lnames {
			key := "services." + name + ".listen." + l
			if !contains(d.Listeners, l) {
				return bad(key, "%s has no listener %q (it has: %s)", name, l, strings.Join(d.Listeners, ", "))
			}
			if _, port, err := net.SplitHostPort(s.Listen[l]); err != nil {
				return bad(key, "must be host:port: %v", err)
			} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
				return bad(key, "bad port %q", port)
			}
		}
	}
	return nil
}

func (c *Config) validateSpamd(bad func(key, format string, args ...any) error) error {
	s := &c.Spamd
	if s.Timeout.D() < 100*time.Millisecond {
		return bad("spamd.timeout", "must be at least 100ms")
	}
	switch s.OnFailure {
	case "accept", "tempfail":
	default:
		return bad("spamd.on_failure", "must be accept or tempfail, not %q", s.OnFailure)
	}
	switch s.DMARCReject {
	case "reject", "junk":
	default:
		return bad("spamd.dmarc_reject", "must be reject or junk, not %q", s.DMARCReject)
	}
	switch s.LocalPolicy {
	case "reject", "quarantine", "none":
	default:
		return bad("spamd.local_policy", "must be reject, quarantine or none, not %q", s.LocalPolicy)
	}
	if s.RejectScore < s.JunkScore {
		return bad("spamd.reject_score", "must not be less than spamd.junk_score")
	}
	if strings.ContainsAny(s.AuthservID, " \t\r\n;()") {
		return bad("spamd.authserv_id", "must be a host name")
	}
	if len(s.TrustedRelays) == 0 {
		s.TrustedRelays = nil // "trusted_relays = []" is the default, as when absent
	}
	for _, r := range s.TrustedRelays {
		if _, err := ParseNet(r); err != nil {
			return bad("spamd.trusted_relays", "%v", err)
		}
	}
	if s.ClassifierMinSpam < 1 {
		return bad("spamd.classifier_min_spam", "must be at least 1")
	}
	if s.ClassifierMinHam < 1 {
		return bad("spamd.classifier_min_ham", "must be at least 1")
	}
	if err := c.validateReports(bad); err != nil {
		return err
	}
	if err := c.validateGreylist(bad); err != nil {
		return err
	}
	return s.validateDNSLists(bad)
}

// ParseNet parses an IP address or a CIDR ("192.0.2.7", "2001:db8::/32") into a
// network; an address is a network of one.
func ParseNet(s string) (*net.IPNet, error) {
	if _, n, err := net.ParseCIDR(s); err == nil {
		return n, nil
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, fmt.Errorf("%q is neither an IP address nor a CIDR", s)
	}
	bits := 128
	if ip4 := ip.To4(); ip4 != nil {
		ip, bits = ip4, 32
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
}

// AuthservID is the authserv-id of this host's Authentication-Results fields (RFC 8601
// §2.5): spamd writes it, and cleanup removes incoming fields that claim it, so both take
// it from here. It is [spamd] authserv_id, else Hostname.
func (c *Config) AuthservID() string {
	if c.Spamd.AuthservID != "" {
		return c.Spamd.AuthservID
	}
	return c.Hostname
}

// SpamDir is spamd's directory, its database and nothing else.
func (c *Config) SpamDir() string { return filepath.Join(c.DataDir, "spam") }

// Service returns the [services] entry of the named daemon, or nil if it is not configured.
func (c *Config) Service(name string) *Service { return c.Services[name] }

// Program returns the path of the named daemon's program.
func (c *Config) Program(name string) string {
	if s := c.Services[name]; s != nil && s.Command != "" {
		if filepath.IsAbs(s.Command) {
			return s.Command
		}
		return filepath.Join(c.Dir, s.Command)
	}
	return filepath.Join(c.BinDir, name)
}

// PrivateSocket is the path of a daemon-to-daemon socket, such as "cleanup".
func (c *Config) PrivateSocket(name string) string {
	return filepath.Join(c.SpoolDir, "private", name)
}

// ControlSocket is the path of an administration socket, such as "authd".
func (c *Config) ControlSocket(name string) string {
	return filepath.Join(c.SpoolDir, "control", name)
}

// PublicSocket is the path of a socket every local user may use, such as "cleanup"
// (sendmail's).
func (c *Config) PublicSocket(name string) string {
	return filepath.Join(c.SpoolDir, "public", name)
}

// UsersDB is the path of authd's database.
func (c *Config) UsersDB() string { return filepath.Join(c.DataDir, "users.db") }

// ListenPort is the port of a daemon's listener (such as "smtpd", "submissions") as the
// configuration gives it, or def when the daemon or the listener is not configured.
func (c *Config) ListenPort(service, listener string, def int) int {
	if s := c.Service(service); s != nil {
		if _, p, err := net.SplitHostPort(s.Listen[listener]); err == nil {
			if n, err := strconv.Atoi(p); err == nil {
				return n
			}
		}
	}
	return def
}

// QmgrDir is qmgr's own directory in the spool: its state database, qmgr.db (delivery
// statistics, audit log of queue administration).
func (c *Config) QmgrDir() string { return filepath.Join(c.SpoolDir, "qmgr") }

// MailDir is the root under which every account's Maildir lives.
func (c *Config) MailDir() string { return filepath.Join(c.DataDir, "mail") }

// LocalDir is local's own directory: vacation.db, the memory of the vacation replies
// sent (whom each account answered, until when not again), which only local opens.
func (c *Config) LocalDir() string { return filepath.Join(c.DataDir, "local") }

// SieveDir is where sieved keeps the users' Sieve scripts, one directory per account
// (<domain>/<localpart>/), which local reads at delivery.
func (c *Config) SieveDir() string { return filepath.Join(c.DataDir, "sieve") }

func daemonNames() string {
	var n []string
	for _, d := range Daemons {
		n = append(n, d.Name)
	}
	return strings.Join(n, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// positionError turns a TOML decoding error into one that names file and line.
func positionError(path string, err error) error {
	var pe toml.ParseError
	if ppe := (*toml.ParseError)(nil); errors.As(err, &ppe) {
		pe = *ppe
	}
	if pe.Position.Line > 0 || errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = fmt.Sprintf("%s: %s", pe.LastKey, pe.Message)
		}
		return fmt.Errorf("%s:%d: %s", path, pe.Position.Line, msg)
	}
	// Type mismatches come as plain errors: toml: line N (last key "k"): message.
	if m := typeErrRe.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%s:%s: %s: %s", path, m[1], m[2], m[3])
	}
	return fmt.Errorf("%s: %w", path, err)
}

var typeErrRe = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

var tableRe = regexp.MustCompile(`^\s*\[+\s*([^\]]+?)\s*\]+`)

// keyLine finds the line of the file where key is set or its table opens; 0 if not found.
// BurntSushi/toml does not report the position of keys it could not place, so this reads
// the file the way a person would.
func keyLine(data []byte, key toml.Key) int {
	if len(key) == 0 {
		return 0
	}
	table := strings.Join(key[:len(key)-1], ".")
	last := key[len(key)-1]
	current := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	tableLine, within := 0, 0
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := tableRe.FindStringSubmatch(line); m != nil {
			current = strings.ReplaceAll(m[1], " ", "")
			if current == key.String() {
				tableLine = n
			}
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), `"`)
		full := k
		if current != "" {
			full = current + "." + k
		}
		if (current == table && k == last) || full == key.String() {
			return n
		}
		if strings.HasPrefix(key.String(), full+".") {
			within = n // an inline table holding the key
		}
	}
	if within > 0 {
		return within
	}
	return tableLine
}

// Duration is a time.Duration written as a string in the file ("5m", "1h30m").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (write it like \"30s\", \"5m\" or \"2h\")", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a number of bytes, written as an integer or a string with a K, M or G suffix.
type Size int64

// UnmarshalTOML implements toml.Unmarshaler, accepting 1048576 and "1M" alike.
func (s *Size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("size %d is negative", x)
		}
		*s = Size(x)
		return nil
	case string:
		str := strings.TrimSpace(strings.ToUpper(x))
		mult := int64(1)
		for suffix, m := range map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30} {
			if strings.HasSuffix(str, suffix) || strings.HasSuffix(str, suffix+"B") || strings.HasSuffix(str, suffix+"IB") {
				str = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(str, "IB"), "B"), suffix)
				mult = m
				break
			}
		}
		n, err := strconv.ParseInt(strings.TrimSpace(str), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad size %q (write it like 52428800 or \"50M\")", x)
		}
		*s = Size(n * mult)
		return nil
	}
	return fmt.Errorf("bad size %v (write it like 52428800 or \"50M\")", v)
}

// MaxSieveScriptSize is the largest sieve.max_script_size: the largest literal sieved
// reads (a script travels as one in PUTSCRIPT, RFC 5804 §2.6).
const MaxSieveScriptSize = 1 << 20

// validateSieve checks the [sieve] limits.
func (c *Config) validateSieve(bad func(key, format string, args ...any) error) error {
	s := c.Sieve
	if s.MaxScriptSize < 1<<10 || s.MaxScriptSize > MaxSieveScriptSize {
		return bad("sieve.max_script_size", "must be 1K to 1M, not %d", s.MaxScriptSize)
	}
	if s.MaxScripts < 1 || s.MaxScripts > 1000 {
		return bad("sieve.max_scripts", "must be 1 to 1000, not %d", s.MaxScripts)
	}
	if s.MaxActions < 1 || s.MaxActions > 1000 {
		return bad("sieve.max_actions", "must be 1 to 1000, not %d", s.MaxActions)
	}
	if s.MaxRedirects < 0 || s.MaxRedirects > s.MaxActions {
		return bad("sieve.max_redirects", "must be 0 to sieve.max_actions (%d), not %d", s.MaxActions, s.MaxRedirects)
	}
	return nil
}

package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"postern/pkg/junk"
)

// command is one subcommand of mailctl, such as "user add".
type command struct {
	// name is the words that select the command: "status", "queue list".
	name string
	// args describes the positional arguments in the usage line.
	args string
	// minArgs and maxArgs bound the number of positional arguments; maxArgs < 0 means
	// no bound.
	minArgs, maxArgs int
	// extraHint is added to the "too many arguments" error.
	extraHint string
	summary   string
	// detail is the longer help text.
	detail string
	// flags declares the command's flags into o.
	flags func(fs *flag.FlagSet, o *options)
	// placed names boolean flags whose place among the positional arguments matters
	// (spam train's --spam and --ham, which give the class of the PATHs after them):
	// execute lists them in options.placed instead of setting a value. flags declares
	// them too, for the help.
	placed []string
	run    func(a *app, o *options, args []string) error
}

// options holds every flag any subcommand has; each command declares the ones it takes.
type options struct {
	dev           bool
	force         bool
	listen        string
	hostname      string
	portBase      int
	quota         string
	passwordStdin bool
	selector      string
	algorithm     string
	dmarc         string
	onError       bool
	passes        int
	user          string
	off           bool
	limit         int
	days          bool
	subdomains    bool
	// cert renew
	directory, email, acmeHTTP, webroot, caFile string
	renewDays                                   int
	// log
	logFile string
	// placed lists the command's placed flags as given, in order.
	placed []placedFlag
}

// group returns the first word of a two-word command, or "".
func (c *command) group() string {
	if g, _, ok := strings.Cut(c.name, " "); ok {
		return g
	}
	return ""
}

// usage writes the command's usage; full adds the detailed help.
func (c *command) usage(w io.Writer, full bool) {
	fmt.Fprintf(w, "usage: mailctl [-c FILE] %s\n", strings.TrimSpace(c.name+" "+c.args))
	if full {
		fmt.Fprintf(w, "\n%s%s.\n", strings.ToUpper(c.summary[:1]), c.summary[1:])
		if c.detail != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.detail))
		}
	}
	if c.flags != nil {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.flags(fs, &options{})
		fmt.Fprintf(w, "\nOptions:\n")
		printFlags(w, fs)
	}
}

// printFlags lists the flags of fs the way the usage lines write them, with two dashes
// (the flag package accepts one or two).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if name == "value" {
			name = ""
		}
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace("--"+f.Name+" "+name), usage)
	})
}

// shortArgs drops the options from an args description, for the list of commands.
func shortArgs(args string) string {
	var out []string
	for _, f := range strings.Fields(args) {
		if !strings.HasPrefix(f, "[--") && !strings.HasPrefix(f, "--") && !strings.HasSuffix(f, "]") || f == "[DOMAIN]" || f == "[ID...]" {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

// lookup finds the command named by the first words of args. It returns the command and
// how many words named it; for a known group without a known subcommand it returns nil
// and 1, and for an unknown word nil and 0.
func lookup(args []string) (*command, int) {
	if len(args) == 0 {
		return nil, 0
	}
	if len(args) >= 3 {
		for _, c := range commands {
			if c.name == args[0]+" "+args[1]+" "+args[2] {
				return c, 3
			}
		}
	}
	if len(args) >= 2 {
		for _, c := range commands {
			if c.name == args[0]+" "+args[1] {
				return c, 2
			}
		}
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c, 1
		}
	}
	for _, c := range commands {
		if c.group() == args[0] {
			return nil, 1
		}
	}
	return nil, 0
}

const passwordHint = "; a password is never given on the command line: mailctl asks for it on the terminal, or reads it from standard input with --password-stdin"

// commands lists every subcommand, in the order help shows them.
var commands = []*command{
	{
		name: "init", args: "[--dev] [--hostname NAME] [--listen IP] [--port-base N]", maxArgs: 0,
		summary: "create a new instance: configuration, certificate, accounts database",
		detail: `
With --dev, init creates a self-contained development instance in the directory of the
configuration file given with -c (it is created if needed): postern.toml, spool/, data/
(users.db and the Maildirs) and tls/ (a self-signed certificate). It listens on IP
(default 127.0.0.1) at ports N+25 (smtp), N+587 (submission), N+465 (submissions),
N+143 (imap), N+993 (imaps) and N+9154 (metricsd's Prometheus endpoint, /metrics),
N being --port-base (default 10000; 0 means the real
ports 25, 587, 465, 143 and 993, which need root). It creates the domain example.test with the account demo@example.test, an
administrator (its password is generated and printed once), and the aliases postmaster@ and abuse@.

Without --dev, init sets up the system instance (default /etc/postern/postern.toml) with
the system paths and the real ports (metrics on 127.0.0.1:9154), a self-signed certificate if there is none yet, and an
empty accounts database: no demo domain or account. It needs root. The host name is
--hostname, else this machine's fully qualified name (the canonical name /etc/hosts gives
the system's host name, as hostname --fqdn finds it); init warns when it has no dot.

With --dev, bin_dir is the directory of this mailctl, or, for an installed mailctl
(/usr/sbin/mailctl), ../lib/postern beside it, where the daemons are.

As root, init also creates the system users the daemons run as (postern, vmail,
postern-spam, postern-web, all in group postern) and the admin group (with
postern-web in it: the admin panel uses the control sockets), and gives the
accounts database and the Maildirs to their owners. init never overwrites an existing
configuration file.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.dev, "dev", false, "create a development instance in the config file's directory")
			fs.StringVar(&o.listen, "listen", "", "`IP` address to listen on (default 127.0.0.1 with --dev, else all)")
			fs.StringVar(&o.hostname, "hostname", "", "the host `NAME` of the greeting and Received headers (default mail.example.test with --dev, else this machine's fully qualified name)")
			o.portBase = -1
			fs.Func("port-base", "listen on ports `N`+25, N+587, N+465 (default 10000 with --dev, else 0: the real ports)", func(s string) error {
				n, err := strconv.Atoi(s)
				if err != nil || n < 0 {
					return fmt.Errorf("%q is not a port number", s)
				}
				o.portBase = n
				return nil
			})
		},
		run: runInit,
	},
	{
		name: "config check", maxArgs: 0,
		summary: "load and validate the configuration file",
		detail: `
Reads the configuration the way the daemons do and prints "FILE: ok", or the first
problem with the file and line it is on (exit status 1). Nothing is started.`,
		run: runConfigCheck,
	},
	{
		name: "status", maxArgs: 0,
		summary: "show the daemons master runs and the size of the queue",
		detail: `
Asks master for its daemons (user, pid, state, uptime, restarts, how the last one
ended) and qmgr for the number of messages in each queue directory. Exits with status 1
when master is not running.`,
		run: runStatus,
	},
	{
		name: "reload", maxArgs: 0,
		summary: "have master re-read the configuration",
		detail: `
Asks master, over its control socket, to re-read the configuration file and apply it,
as SIGHUP or "systemctl reload postern" do, but waits for the outcome: a configuration
that does not load is refused (master keeps running with the old one) and the reason is
printed.`,
		run: runReload,
	},
	{
		name: "domain add", args: "DOMAIN", minArgs: 1, maxArgs: 1,
		summary: "accept mail for a domain",
		run:     runDomainAdd,
	},
	{
		name: "domain del", args: "DOMAIN [--force]", minArgs: 1, maxArgs: 1,
		summary: "stop accepting mail for a domain",
		detail: `
A domain that still has accounts or aliases is refused; --force deletes them with the
domain. The mail on disk is never deleted.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.force, "force", false, "also delete the domain's accounts and aliases")
		},
		run: runDomainDel,
	},
	{
		name: "domain list", maxArgs: 0,
		summary: "list the domains",
		run:     runDomainList,
	},
	{
		name: "user add", args: "ADDRESS [--quota SIZE] [--password-stdin]", minArgs: 1, maxArgs: 1, extraHint: passwordHint,
		summary: "create an account",
		detail: `
Creates the account ADDRESS (its domain must exist) and its Maildir. The password is
asked twice on the terminal without echo, or read from the first line of standard input
with --password-stdin. It is never taken from the command line, where other users could
see it in the process list.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.quota, "quota", "", "the mailbox's quota, a `SIZE` like 500M or 2G; 0 means unlimited (default: local.default_quota)")
			fs.BoolVar(&o.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
		},
		run: runUserAdd,
	},
	{
		name: "user del", args: "ADDRESS", minArgs: 1, maxArgs: 1,
		summary: "delete an account (its mail stays on disk)",
		run:     runUserDel,
	},
	{
		name: "user list", args: "[DOMAIN]", maxArgs: 1,
		summary: "list the accounts, of every domain or of one",
		run:     runUserList,
	},
	{
		name: "user passwd", args: "ADDRESS [--password-stdin]", minArgs: 1, maxArgs: 1, extraHint: passwordHint,
		summary: "set an account's password",
		detail: `
The password is asked twice on the terminal without echo, or read from the first line
of standard input with --password-stdin; never from the command line.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
		},
		run: runUserPasswd,
	},
	{
		name: "user admin", args: "ADDRESS [--off]", minArgs: 1, maxArgs: 1,
		summary: "make an account an administrator (or, with --off, no longer one)",
		detail: `
An administrator may use the admin panel of the web interface. The flag is kept by
authd in users.db, and the change is recorded in the audit log (mailctl audit).`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.off, "off", false, "take the administrator's rights away")
		},
		run: runUserAdmin,
	},
	{
		name: "user quota", args: "ADDRESS SIZE", minArgs: 2, maxArgs: 2,
		summary: "set an account's quota (0 or unlimited: none)",
		detail: `
SIZE is a number of bytes or a number with K, M or G, such as 500M or 2G. Mail is
refused once the mailbox is full; the mail already in it stays.`,
		run: runUserQuota,
	},
	{
		name: "user disable", args: "ADDRESS [--off]", minArgs: 1, maxArgs: 1,
		summary: "stop an account from logging in (or, with --off, let it again)",
		detail: `
A disabled account logs in neither with its password nor with an app password (IMAP,
POP3, SMTP AUTH, web); its mail is still delivered and kept. Sessions open now go on
until they end, and imapd may let a client that logged in within the last minute in
again from the same address (its login cache, see imapd(8)).`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.off, "off", false, "enable the account again")
		},
		run: runUserDisable,
	},
	{
		name: "app-password add", args: "ADDRESS NAME", minArgs: 2, maxArgs: 2,
		summary: "generate an app password for an account and print it, once",
		detail: `
An app password logs in to IMAP, POP3 and SMTP AUTH in place of the account's password,
so that each device or program has its own, revoked on its own when the device is lost.
NAME says which device it is for ("phone"). authd generates it (four groups of four
letters; the dashes may be left out when typing it), keeps only its argon2id hash, and
mailctl prints it this once. An account has at most 20.`,
		run: runAppPasswordAdd,
	},
	{
		name: "app-password list", args: "ADDRESS", minArgs: 1, maxArgs: 1,
		summary: "list an account's app passwords: name, creation, last day of use",
		run:     runAppPasswordList,
	},
	{
		name: "app-password revoke", args: "ADDRESS NAME", minArgs: 2, maxArgs: 2,
		summary: "delete an app password: it no longer logs in",
		detail: `
Logins already made with it (an IMAP session open now) go on until they end; the next
login with it fails.`,
		run: runAppPasswordRevoke,
	},
	{
		name: "alias add", args: "ADDRESS TARGET...", minArgs: 2, maxArgs: -1,
		summary: "deliver mail for ADDRESS to the TARGET addresses",
		detail: `
ADDRESS must be in one of Postern's domains; the targets may be accounts, other aliases
or outside addresses. "@DOMAIN" as ADDRESS is the domain's catch-all: it receives mail
for every address of the domain that is neither an account nor an alias, as in
"mailctl alias add @example.test demo@example.test".`,
		run: runAliasAdd,
	},
	{
		name: "alias del", args: "ADDRESS", minArgs: 1, maxArgs: 1,
		summary: "delete an alias (or a catch-all, \"@DOMAIN\")",
		run:     runAliasDel,
	},
	{
		name: "alias list", args: "[DOMAIN]", maxArgs: 1,
		summary: "list the aliases, of every domain or of one",
		run:     runAliasList,
	},
	{
		name: "throttle list", maxArgs: 0,
		summary: "list the clients and accounts refused for failed logins",
		detail: `
authd counts failed logins (IMAP, submission) per client address, per network (/24 or
/64), per account and client, and per account, and refuses a key that had too many for a
while (see authd(8) and [authd] in postern.toml(5)). This lists the keys refused now:
their kind (client, network, pair, account), whom they stop, the failures counted and
when the refusal ends. A client that logged in to an account before is never stopped by
that account's block.`,
		run: runThrottleList,
	},
	{
		name: "throttle lift", args: "ADDRESS|NETWORK|ACCOUNT", minArgs: 1, maxArgs: 1,
		summary: "end the throttling of a client, a network or an account",
		detail: `
Forgets the failed logins counted for the target and ends its blocks. An IP address
lifts the address, its network and the account-and-client keys at that address; a
network (CIDR, like 192.0.2.0/24) every address and key within it; an account's address
the account and its account-and-client keys.`,
		run: runThrottleLift,
	},
	{
		name: "audit", args: "[--limit N]", maxArgs: 0,
		summary: "print the audit log of administrative changes",
		detail: `
Every change authd applies (domains, accounts, passwords, quotas, disabled accounts,
administrators, aliases, app passwords, throttle lifts) and every queue administration of qmgr (flush, hold,
release, delete) is appended to the daemon's audit log, which nothing deletes or
rewrites, and written to the log. This prints both, merged by time: when, who (the
Unix user that asked, or the web administrator and the user of httpd), from which IP
address (for the web), the operation, what it changed.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.IntVar(&o.limit, "limit", 0, "print only the last `N` entries (default: all)")
		},
		run: runAudit,
	},
	{
		name: "stats", args: "[--days]", maxArgs: 0,
		summary: "print the delivery statistics, per hour or per day",
		detail: `
qmgr keeps, per hour for the last 48 hours and per day for the last 60 days: messages
received, recipients delivered, delivery attempts deferred (per recipient), recipients
bounced, recipients and messages smtpd rejected with a 5xx reply (at RCPT TO, or at the
end of DATA), and received messages spamd judged junk. This prints them per hour, or
with --days per day, oldest first, and their sum.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.days, "days", false, "per day (the last 60) instead of per hour (the last 48)")
		},
		run: runStats,
	},
	{
		name: "queue list", maxArgs: 0,
		summary: "list the queued messages, like mailq",
		detail: `
One entry per message: queue ID, size, arrival time and sender, then its recipients,
each under the reason it was deferred for. A "*" after the ID marks a message being
delivered (active/), "!" one on hold (hold/), "#" one set aside as corrupt (corrupt/).`,
		run: runQueueList,
	},
	{
		name: "log", args: "[--file FILE] ID", minArgs: 1, maxArgs: 1,
		summary: "print every log line about a message, from every daemon, as grep ID over a maillog does",
		detail: `
The lines whose queue ID is ID (smtpd's, cleanup's, qmgr's, local's, remote's, spamd's),
and those of the notifications queued about it (bounces, delay warnings), whose own
queue IDs its lines name, in the order they were logged. They come from the journal
(journalctl POSTERN_QUEUE_ID=ID) when [log] target is journal, or auto on a machine
with systemd's journal; from [log] file when the target is file; from --file FILE
(a saved standard error of master) when given. Reading the journal takes root or the
systemd-journal or adm group.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.logFile, "file", "", "read the log lines from `FILE` instead of the journal or [log] file")
		},
		run: runLog,
	},
	{
		name: "queue show", args: "ID", minArgs: 1, maxArgs: 1,
		summary: "show a queued message: envelope, recipients' status, header section",
		run:     runQueueShow,
	},
	{
		name: "queue flush", args: "[ID...]", maxArgs: -1,
		summary: "try the deferred messages (or the given ones) again now",
		run:     runQueueFlush,
	},
	{
		name: "queue hold", args: "ID...", minArgs: 1, maxArgs: -1,
		summary: "put messages on hold: they are not delivered until released",
		run:     runQueueHold,
	},
	{
		name: "queue release", args: "ID...", minArgs: 1, maxArgs: -1,
		summary: "release messages from hold",
		run:     runQueueRelease,
	},
	{
		name: "queue delete", args: "ID...", minArgs: 1, maxArgs: -1,
		summary: "delete messages from the queue without delivering or bouncing them",
		run:     runQueueDelete,
	},
	{
		name: "spam train", args: "[--on-error] [--passes N] [--user ADDRESS] --spam|--ham PATH... [--spam|--ham PATH...]", minArgs: 1, maxArgs: -1,
		summary: "teach spamd's classifier messages as spam or as ham",
		detail: `
Each PATH is a message file, an mbox file (messages after "From " lines) or a Maildir
folder (the files of its cur/ and new/). --spam or --ham gives the class of the PATHs
after it, so that one command trains both classes, as it should:

  mailctl spam train --spam spam.mbox Maildir/.Junk --ham Maildir sent.mbox

Each message goes to spamd over control/spamd as a descriptor; spamd learns it into the
global corpus, or into the account's own with --user. The classifier learns by small
steps, one for each message it is sent: the command lists every message first, then
sends them all --passes times (` + strconv.Itoa(junk.DefaultPasses) + ` by default), in another order each pass that mixes
the spam and the ham. Train spam and ham together: after all the spam and then all
the ham (two commands), the classifier's verdicts lean toward the class it learned
last.
Prints a line per class: N messages learned (new to the corpus, or moved from the other
class) and M known already.
With --on-error a message takes a step only when the classifier, as trained so far, gets
it wrong or is unsure of it (training on error); a line per pass and class says how
many did, and the command stops after a pass in which none did.
The classifier gives no opinion until it has learned enough spam and ham (spam status).`,
		placed: []string{"spam", "ham"},
		flags: func(fs *flag.FlagSet, o *options) {
			fs.Bool("spam", false, "learn the PATHs that follow as spam")
			fs.Bool("ham", false, "learn the PATHs that follow as ham (wanted mail)")
			fs.BoolVar(&o.onError, "on-error", false, "learn only the messages the classifier gets wrong or is unsure of")
			fs.IntVar(&o.passes, "passes", junk.DefaultPasses, "send every message `N` times (1 to 100), in another order each pass")
			fs.StringVar(&o.user, "user", "", "learn into the corpus of the account `ADDRESS` (default: the global one)")
		},
		run: runSpamTrain,
	},
	{
		name: "spam status", maxArgs: 0,
		summary: "show what spamd's classifier has learned and whether it gives an opinion",
		run:     runSpamStatus,
	},
	{
		name: "spam block", args: "[--user ADDRESS] [--subdomains] ENTRY...", minArgs: 1, maxArgs: -1,
		summary: "refuse mail from IP addresses, networks, domains or addresses (or file it into a user's Junk)",
		detail: `
Each ENTRY is an IP address or CIDR, a domain, or a mail address. spamd refuses a
message (550 5.7.1) whose client address, MAIL FROM or From: address matches an entry
of the administrator's block list. With --user, the entry goes on that account's own
list (domains and addresses only): that user's copy of a matching message goes into
Junk, the other recipients' copies are not affected. --subdomains makes the domains
match their subdomains too. An entry on the allow list moves to the block list.`,
		flags: listFlags,
		run:   runSpamBlock,
	},
	{
		name: "spam allow", args: "[--user ADDRESS] [--subdomains] ENTRY...", minArgs: 1, maxArgs: -1,
		summary: "accept mail from IP addresses, networks, domains or addresses whatever its spam score",
		detail: `
An allowed client address skips the DNS lists; an allowed domain or address counts only
when SPF (for MAIL FROM) or an aligned SPF or DKIM pass (for From:) shows the message
really comes from it. An allowed message is accepted whatever its score, the DNS lists
and the classifier say, but SPF and DMARC refusals still apply (use [spamd]
trusted_relays for hosts whose mail must not be checked at all). With --user, the entry
goes on that account's own list: that user's copy stays out of Junk. An entry on the
block list moves to the allow list.`,
		flags: listFlags,
		run:   runSpamAllow,
	},
	{
		name: "spam unblock", args: "[--user ADDRESS] ENTRY...", minArgs: 1, maxArgs: -1,
		summary: "take entries off the block and allow lists",
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.user, "user", "", "change the lists of the account `ADDRESS` (default: the administrator's)")
		},
		run: runSpamUnblock,
	},
	{
		name: "spam lists", args: "[--user ADDRESS]", maxArgs: 0,
		summary: "show the block and allow lists: the administrator's and every user's, or one user's",
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.user, "user", "", "show only the lists of the account `ADDRESS`")
		},
		run: runSpamLists,
	},
	{
		name: "spam reports list", maxArgs: 0,
		summary: "show the DMARC evaluations waiting for the next aggregate report",
		run:     runSpamReportsList,
	},
	{
		name: "spam reports send", maxArgs: 0,
		summary: "send the DMARC aggregate reports of everything recorded so far, now",
		detail: `
spamd builds one report per domain (RFC 7489 §7.2) of the evaluations recorded so far,
looks up the domain's rua= addresses, and queues the report for those that accept it;
the evaluations are then deleted. Needs dmarc_reports = true in [spamd].`,
		run: runSpamReportsSend,
	},
	{
		name: "sieve list", args: "ADDRESS", minArgs: 1, maxArgs: 1,
		summary: "list an account's Sieve scripts, the active one marked",
		run:     runSieveList,
	},
	{
		name: "sieve get", args: "ADDRESS NAME", minArgs: 2, maxArgs: 2,
		summary: "print one of an account's Sieve scripts",
		run:     runSieveGet,
	},
	{
		name: "sieve put", args: "ADDRESS NAME < SCRIPT", minArgs: 2, maxArgs: 2,
		summary: "store a Sieve script (read from standard input) for an account",
		detail: `
sieved checks the script first: one that does not parse is refused with its line and
column, and nothing is stored. A script of the same name is replaced; storing does not
make it active (sieve activate).`,
		run: runSievePut,
	},
	{
		name: "sieve activate", args: "ADDRESS [NAME]", minArgs: 1, maxArgs: 2,
		summary: "make a script the account's active one (without NAME: none)",
		detail: `
local runs the active script at each delivery to the account. Without NAME the account
has no active script and mail goes to the INBOX (or Junk) unfiltered.`,
		run: runSieveActivate,
	},
	{
		name: "dkim generate", args: "DOMAIN [--selector S] [--algorithm ed25519|rsa]", minArgs: 1, maxArgs: 1,
		summary: "make a DKIM signing key for a domain",
		detail: `
Makes a new key pair in data_dir/dkim/DOMAIN/: SELECTOR.key (the private key, mode 0600,
given to cleanup's user when run as root) and SELECTOR.pub, and prints the TXT record
to publish. cleanup signs the mail of authenticated users and the bounces whose From:
is in DOMAIN (or a subdomain) with every key of the domain, from the next message on;
no restart is needed. An existing selector is never overwritten. ed25519 (RFC 8463) is
the default; rsa makes a 2048-bit RSA key, which every verifier understands: publish
both for the widest reach. The selector defaults to the algorithm and the month, such
as ed202611. authd writes the key and records the change in its audit log, as for the
admin panel; when authd does not run, mailctl writes it itself.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.selector, "selector", "", "the key's `SELECTOR`, one DNS label (default: ed or rsa and the year and month)")
			fs.StringVar(&o.algorithm, "algorithm", "ed25519", "the key type, `ed25519 or rsa` (2048 bits)")
		},
		run: runDKIMGenerate,
	},
	{
		name: "dkim list", args: "[DOMAIN]", maxArgs: 1,
		summary: "list the DKIM keys, of every domain or of one",
		run:     runDKIMList,
	},
	{
		name: "dkim remove", args: "DOMAIN SELECTOR", minArgs: 2, maxArgs: 2,
		summary: "retire a DKIM key of a domain",
		detail: `
Deletes the key SELECTOR of DOMAIN: mail is no longer signed with it from the next
message on. To rotate a key, generate a new selector, publish its record, wait for the
DNS to carry it, then remove the old key, and its record once the mail signed with it
has been delivered. Like generate, it goes through authd (audit log), or is done
offline when authd does not run.`,
		run: runDKIMRemove,
	},
	{
		name: "dns records", args: "DOMAIN [--dmarc POLICY]", minArgs: 1, maxArgs: 1,
		summary: "print the DNS records a domain needs, as zone-file lines",
		detail: `
Prints every record the domain needs for mail served by this host (hostname in
postern.toml): MX, SPF, the DKIM keys of the domain, DMARC, MTA-STS and TLS-RPT, the SRV
records mail clients look up (RFC 6186, RFC 8314) and the autoconfig and autodiscover
names. Long TXT records are split into strings of 255 octets. The ports of the SRV
records are those the configuration listens on. Nothing is changed.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.dmarc, "dmarc", "quarantine", "the DMARC `POLICY`: none, quarantine or reject")
		},
		run: runDNSRecords,
	},
	{
		name: "dns check", args: "DOMAIN [--dmarc POLICY]", minArgs: 1, maxArgs: 1,
		summary: "check the domain's DNS against what dns records says should be there",
		detail: `
Looks up, with the resolvers remote uses ([remote] resolvers, else /etc/resolv.conf),
every record dns records prints and a few it implies, and prints each as ok, wrong
(with the record that fixes it) or missing: the MX (must name hostname), hostname's A
and AAAA (the addresses smtpd listens on, when the configuration names public ones),
the PTR of each address with forward confirmation (the PTR names hostname, which has
that address), SPF (one record, evaluated: it must pass for hostname's addresses), each
DKIM key of the domain (the published p= must be the key Postern signs with), DMARC (one
record that parses), MTA-STS (the _mta-sts record, and the policy fetched from
https://mta-sts.DOMAIN/.well-known/mta-sts.txt must name hostname), TLS-RPT, the SRV
records of RFC 6186 and autoconfig. MTA-STS, TLS-RPT, SRV and autoconfig are optional:
missing, they do not fail the check; wrong, they do. Exit status 1 when a record is wrong
or a required one missing. Nothing is changed.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.dmarc, "dmarc", "quarantine", "the DMARC `POLICY` of the record suggested as a fix")
		},
		run: runDNSCheck,
	},
	{
		name: "cert renew", args: "[NAME...] [--email ADDR] [--http ADDR | --webroot DIR] [--force]", maxArgs: -1,
		summary: "get or renew the TLS certificate from an ACME CA such as Let's Encrypt",
		detail: `
Gets a certificate for NAME... from an ACME certificate authority (RFC 8555; Let's
Encrypt unless --directory says otherwise) when the certificate that [tls] cert names
is due: missing, self-signed, not covering every name, or expiring within
--renew-before days. Without NAME, the names kept in acme-names beside the TLS key are
used, or the hostname when none are kept; names given are kept there once the run
succeeds, so that the daily run (a systemd timer or cron) needs none. The CA checks
each name with the HTTP-01 challenge: it fetches
http://NAME/.well-known/acme-challenge/... on port 80. When httpd runs with an http listener, cert renew leaves the answers in
data_dir/acme and httpd serves them; otherwise cert renew answers itself (--http,
default :80, so it runs as root), or, when another web server holds port 80, writes
them under --webroot DIR. The new key and certificate replace [tls] key and cert (with
their owner and mode); smtpd, imapd, httpd and sieved notice the new files within
seconds and serve them without a restart or a signal. The account key is kept beside
the TLS key (acme-account.key). It does nothing until the certificate is due.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.directory, "directory", "", "the ACME directory `URL` (default Let's Encrypt's)")
			fs.StringVar(&o.email, "email", "", "the account's contact `ADDRESS`, for the CA's expiry warnings")
			fs.StringVar(&o.acmeHTTP, "http", "", "the `ADDRESS` to answer the http-01 challenge on (default :80)")
			fs.StringVar(&o.webroot, "webroot", "", "write the challenge files under `DIR` for another web server instead")
			fs.StringVar(&o.caFile, "ca", "", "trust the CA's HTTPS certificate from `FILE` (a private or test CA)")
			fs.IntVar(&o.renewDays, "renew-before", 30, "renew when the certificate expires within `DAYS`")
			fs.BoolVar(&o.force, "force", false, "renew even when not due")
		},
		run: runCertRenew,
	},
	{
		name: "import", args: "mbox|maildir PATH ADDRESS [FOLDER]", minArgs: 3, maxArgs: 4,
		summary: "bring the messages of an mbox file or a Maildir folder into an account",
		detail: `
Imports every message of the mbox file PATH (RFC 4155; mboxrd's ">From " lines
unescaped) or of the Maildir folder PATH (its cur/ and new/) into the folder FOLDER of
the account ADDRESS (default INBOX; a folder that does not exist is created). Flags are
kept: from the Status and X-Status fields of an mbox (read, answered, flagged, deleted,
draft), from the file names of a Maildir (its system flags; keywords are left out). The
date of an mbox's "From " line, or a Maildir file's time, becomes the internal date.
local writes each message, like a delivery, and imapd takes it in: mailctl writes nothing
into the Maildirs itself. The file is read as a stream, in constant memory whatever its
size. A file that is not an mbox, or an unreadable message, stops the import with an error
that names it, and says how many messages were imported before.`,
		run: runImport,
	},
	{
		name: "export", args: "mbox|maildir ADDRESS PATH [FOLDER]", minArgs: 3, maxArgs: 4,
		summary: "write an account's folder as an mbox file or a Maildir folder",
		detail: `
Writes the messages of the folder FOLDER (default INBOX) of the account ADDRESS, oldest
first, into the new mbox file PATH (mboxrd: lines that begin with ">*From " get one more
'>'; Status and X-Status fields carry the flags; the "From " line the internal date) or
the Maildir folder PATH (the files with their names, flags and times), which import reads
back. It reads the account's files as they are, while Postern runs; a message that imapd
moves meanwhile is found again by its name.`,
		run: runExport,
	},
	{
		name: "backup", args: "DIR", minArgs: 1, maxArgs: 1,
		summary: "copy users.db, the Maildirs, the DKIM keys and the SRS secrets into DIR while Postern runs",
		detail: `
Copies, into the new or empty directory DIR, users.db as one consistent snapshot (authd
writes it with bbolt's online backup, in one read transaction, while it goes on
serving), every Maildir with its folders, flags (file names), UIDs (dovecot-uidlist)
and dates (file times), the DKIM keys and the SRS secrets. imapd's index (postern-imap.db) is left out:
it is a cache that imapd rebuilds from the file names and dovecot-uidlist, and a copy taken
while imapd writes it could be torn. A message that imapd moves while it is copied is
found again by its name. Restore with mailctl restore DIR.`,
		run: runBackup,
	},
	{
		name: "restore", args: "DIR", minArgs: 1, maxArgs: 1,
		summary: "put a backup back (Postern stopped)",
		detail: `
Puts back what mailctl backup copied into DIR: users.db (the one in place is kept as
users.db.before-restore), the Maildirs, the DKIM keys and the SRS secrets, given to the
daemons' users when run as root (the SRS secrets by master at its next start). Postern must be stopped (the files belong to authd, local and imapd while it
runs): restore refuses while master answers. imapd rebuilds its indexes when each account
is next opened; the UIDs and flags are those of the backup.`,
		run: runRestore,
	},
}

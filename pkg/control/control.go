// Package control defines the administration API: the operations that mailctl (and later
// the admin panel) sends to the control sockets in <spool>/control — authd's for domains,
// accounts and aliases, qmgr's for the queue, spamd's for the spam classifier, master's
// for the daemons. The sockets admit
// only root, the instance's own user and members of the admin group (SO_PEERCRED).
package control

import (
	"time"

	"postern/pkg/audit"
	"postern/pkg/dkim"
	"postern/pkg/stats"
)

// Operations on control/authd.
const (
	DomainAdd  = "domain.add"
	DomainDel  = "domain.del"
	DomainList = "domain.list"
	UserAdd    = "user.add"
	UserDel    = "user.del"
	UserList   = "user.list"
	UserPasswd = "user.passwd"
	AliasAdd   = "alias.add"
	AliasDel   = "alias.del"
	AliasList  = "alias.list"
	// Backup writes a consistent copy of users.db into the file passed as a descriptor
	// (SCM_RIGHTS), while authd goes on; it answers with a BackupResult.
	Backup = "backup"
	// ThrottleList and ThrottleLift show and lift the blocks of failed-login throttling.
	ThrottleList = "throttle.list"
	ThrottleLift = "throttle.lift"
	// UserAdmin makes an account an administrator (of the web admin panel), or no longer.
	UserAdmin = "user.admin"
	// UserQuota sets an account's quota (UserRequest.Quota, bytes, 0 for unlimited).
	UserQuota = "user.quota"
	// UserDisable disables an account (no login; its mail is still delivered), or
	// enables it again.
	UserDisable = "user.disable"
	// AppPasswordAdd generates an app password for an account and answers it, once;
	// AppPasswordList lists an account's app passwords (names, never the passwords);
	// AppPasswordRevoke deletes one.
	AppPasswordAdd    = "apppassword.add"
	AppPasswordList   = "apppassword.list"
	AppPasswordRevoke = "apppassword.revoke"
)

// Operations on control/authd for the DKIM signing keys of the domains, the files
// under <data_dir>/dkim/<domain>/ that cleanup signs outbound mail with. authd, which
// owns the domains and runs as cleanup's user, writes them; `mailctl dkim` and the admin
// panel both ask it, so that the two never disagree, and every change goes into authd's
// audit log. DKIMList lists the keys with their DNS records (DKIMRequest.Domain, or every
// domain); DKIMGenerate makes a new key (Domain, Selector or the default of
// dkim.DefaultSelector, Algorithm or ed25519) and answers it as a DKIMKey; DKIMRemove
// retires the key Domain, Selector.
const (
	DKIMList     = "dkim.list"
	DKIMGenerate = "dkim.generate"
	DKIMRemove   = "dkim.remove"
)

// DKIMRequest is the body of the dkim operations.
type DKIMRequest struct {
	Origin
	Domain    string `json:"domain,omitempty"`
	Selector  string `json:"selector,omitempty"`
	Algorithm string `json:"algorithm,omitempty"`
}

// DKIMKey describes a DKIM key: Name and Record are its TXT record to publish (RFC 6376
// §3.6.2.1, §3.6.1), the record's text unquoted and unsplit.
type DKIMKey struct {
	Domain    string    `json:"domain"`
	Selector  string    `json:"selector"`
	Algorithm string    `json:"algorithm"`
	Created   time.Time `json:"created"`
	Name      string    `json:"name"`
	Record    string    `json:"record"`
}

// DKIMListResult answers dkim.list, sorted by domain and selector.
type DKIMListResult struct {
	Keys []DKIMKey `json:"keys"`
}

// DKIMKeyOf describes k.
func DKIMKeyOf(k *dkim.Key) (DKIMKey, error) {
	rec, err := k.Record()
	if err != nil {
		return DKIMKey{}, err
	}
	return DKIMKey{Domain: k.Domain, Selector: k.Selector, Algorithm: k.Algorithm, Created: k.Created, Name: k.RecordName(), Record: rec}, nil
}

// AuditList reads the audit log of a daemon: on control/authd (domains, accounts,
// aliases, throttling) and on control/qmgr (queue administration).
const AuditList = "audit.list"

// Origin names, in a request that changes something, on whose behalf a peer asks: httpd
// names the web administrator (an account's address) and the browser's IP address; the
// audit log records them with the peer's uid. mailctl leaves it empty: the Unix user
// is the actor.
type Origin struct {
	Actor    string `json:"actor,omitempty"`
	RemoteIP string `json:"remote_ip,omitempty"`
}

// AuditRequest is the body of audit.list: the last Limit entries (0: all, up to
// audit.MaxRead).
type AuditRequest struct {
	Limit int `json:"limit,omitempty"`
}

// AuditResult answers audit.list, oldest entry first.
type AuditResult struct {
	Entries []audit.Entry `json:"entries"`
}

// UserAdminRequest is the body of user.admin.
type UserAdminRequest struct {
	Origin
	Address string `json:"address"`
	Admin   bool   `json:"admin"`
}

// UserDisableRequest is the body of user.disable.
type UserDisableRequest struct {
	Origin
	Address  string `json:"address"`
	Disabled bool   `json:"disabled"`
}

// AppPasswordRequest is the body of apppassword.add, .list and .revoke: the account,
// and the app password's name (not for list).
type AppPasswordRequest struct {
	Origin
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
}

// AppPassword describes an app password, never its clear text but in the answer of
// apppassword.add.
type AppPassword struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created,omitzero"`
	// LastUsed is the day (UTC) of its last successful login; zero if never.
	LastUsed time.Time `json:"last_used,omitzero"`
	// Password is the generated app password, in the answer of apppassword.add only.
	Password string `json:"password,omitempty"`
}

// AppPasswordListResult answers apppassword.list.
type AppPasswordListResult struct {
	AppPasswords []AppPassword `json:"app_passwords"`
}

// BackupResult answers backup: the octets written.
type BackupResult struct {
	Size int64 `json:"size"`
}

// Operations on control/qmgr.
const (
	QueueList    = "queue.list"
	QueueShow    = "queue.show"
	QueueFlush   = "queue.flush"
	QueueHold    = "queue.hold"
	QueueRelease = "queue.release"
	QueueDelete  = "queue.delete"
	QueueCounts  = "queue.counts"
	// Stats reads the delivery statistics qmgr keeps (pkg/stats).
	Stats = "stats"
)

// StatsRequest is the body of stats: how many of the last hours and days to answer
// (0: all that are kept, stats.HourKeep and stats.DayKeep).
type StatsRequest struct {
	Hours int `json:"hours,omitempty"`
	Days  int `json:"days,omitempty"`
}

// StatsResult answers stats: per hour and per day, oldest first, the current one last,
// and the counts since qmgr started.
type StatsResult struct {
	Hours []stats.Period `json:"hours"`
	Days  []stats.Period `json:"days"`
	Total stats.Counts   `json:"total"`
}

// Operations on control/local: messages brought in by mailctl import, written by
// local (the only writer of the Maildirs' tmp/ and new/) for imapd to take in.
const (
	// MaildirImport writes one message, passed as a descriptor with ImportRequest.
	MaildirImport = "maildir.import"
)

// ImportRequest is the body of maildir.import: the message lies at Offset, Size
// octets long, in the descriptor sent along (a Maildir file, or one message of an
// mbox, whose ">From " escaping Mbox says to undo). Maildir is the account's (from
// user.list); Folder "" or INBOX is the account's INBOX. Flags are Maildir flag
// letters (D F P R S T); Date becomes the message's internal date.
type ImportRequest struct {
	Maildir string    `json:"maildir"`
	Folder  string    `json:"folder,omitempty"`
	Flags   string    `json:"flags,omitempty"`
	Date    time.Time `json:"date,omitzero"`
	Offset  int64     `json:"offset"`
	Size    int64     `json:"size"`
	Mbox    bool      `json:"mbox,omitempty"`
}

// ImportResult answers maildir.import: the size written (CRLF line ends).
type ImportResult struct {
	Size int64 `json:"size"`
}

// Operations on control/master.
const (
	MasterStatus = "status"
	MasterReload = "reload"
)

// Operations on control/spamd: the learning classifier's training and statistics.
const (
	// SpamLearn learns one message, passed as a descriptor (SCM_RIGHTS), as spam or ham.
	SpamLearn  = "spam.learn"
	SpamStatus = "spam.status"
)

// SpamLearnRequest is the body of spam.learn: the message lies at Offset, Size octets
// long, in the descriptor sent along (a file, or one message of an mbox). User names the
// corpus, "" the global one. With OnError the message is learned only when the classifier
// gets it wrong or is unsure of it (training on error, junk.DB.LearnOnError).
type SpamLearnRequest struct {
	Spam    bool   `json:"spam"`
	User    string `json:"user,omitempty"`
	Offset  int64  `json:"offset"`
	Size    int64  `json:"size"`
	OnError bool   `json:"on_error,omitempty"`
}

// SpamLearnResult answers spam.learn: Changed is false when the message had been learned
// so already, or with OnError when the classifier was sure of it.
type SpamLearnResult struct {
	Changed bool `json:"changed"`
}

// SpamCorpus is the size of one corpus of the classifier.
type SpamCorpus struct {
	User   string `json:"user,omitempty"`
	Spam   int    `json:"spam"`
	Ham    int    `json:"ham"`
	Tokens int    `json:"tokens"`
}

// SpamStatusResult answers spam.status: the global corpus, the users' own, and the
// minimums of spam and ham the classifier needs (global and user's together) before it
// gives an opinion.
type SpamStatusResult struct {
	Global  SpamCorpus   `json:"global"`
	Users   []SpamCorpus `json:"users,omitempty"`
	MinSpam int          `json:"min_spam"`
	MinHam  int          `json:"min_ham"`
}

// Operations on control/spamd: the block and allow lists of senders, the
// administrator's (User empty) and each user's own. The same ops serve mailctl and the
// web account page, which names the logged-in user.
const (
	// SpamListAdd puts entries on the block or the allow list (an entry on the other
	// list of the same user moves).
	SpamListAdd = "spam.list.add"
	// SpamListRemove takes entries off both lists.
	SpamListRemove = "spam.list.remove"
	// SpamLists shows the entries.
	SpamLists = "spam.lists"
)

// Actions of a list entry.
const (
	SpamBlock = "block"
	SpamAllow = "allow"
)

// SpamListAddRequest is the body of spam.list.add. Each entry is an IP address or CIDR
// (the administrator's lists only), a mail address, or a domain; Subdomains makes the
// domains match their subdomains too.
type SpamListAddRequest struct {
	User       string   `json:"user,omitempty"`
	Action     string   `json:"action"`
	Entries    []string `json:"entries"`
	Subdomains bool     `json:"subdomains,omitempty"`
}

// SpamListRemoveRequest is the body of spam.list.remove.
type SpamListRemoveRequest struct {
	User    string   `json:"user,omitempty"`
	Entries []string `json:"entries"`
}

// SpamListsRequest is the body of spam.lists: the entries of User ("" the
// administrator's), or with All those of the administrator and of every user.
type SpamListsRequest struct {
	User string `json:"user,omitempty"`
	All  bool   `json:"all,omitempty"`
}

// SpamListEntry is one entry of a list. Kind is "ip", "address" or "domain"; Value is
// the entry as spamd keeps it (lower case, a CIDR for a network).
type SpamListEntry struct {
	User       string    `json:"user,omitempty"`
	Action     string    `json:"action"`
	Kind       string    `json:"kind"`
	Value      string    `json:"value"`
	Subdomains bool      `json:"subdomains,omitempty"`
	Added      time.Time `json:"added"`
}

// SpamListsResult answers spam.lists, spam.list.add (the entries stored) and
// spam.list.remove (the entries removed; NotListed names those that were on no list).
type SpamListsResult struct {
	Entries   []SpamListEntry `json:"entries,omitempty"`
	NotListed []string        `json:"not_listed,omitempty"`
}

// Domain names a mail domain.
type Domain struct {
	Name    string `json:"name"`
	Users   int    `json:"users,omitempty"`
	Aliases int    `json:"aliases,omitempty"`
}

// DomainRequest is the body of domain.add and domain.del. Force on domain.del also
// deletes the domain's accounts and aliases (never their mail on disk).
type DomainRequest struct {
	Origin
	Name  string `json:"name"`
	Force bool   `json:"force,omitempty"`
}

// DomainListResult answers domain.list.
type DomainListResult struct {
	Domains []Domain `json:"domains"`
}

// User is an account.
type User struct {
	Address string    `json:"address"`
	Quota   int64     `json:"quota,omitempty"`
	Created time.Time `json:"created,omitzero"`
	Maildir string    `json:"maildir,omitempty"`
	Admin   bool      `json:"admin,omitempty"`
	// Disabled: the account may not log in.
	Disabled bool `json:"disabled,omitempty"`
}

// UserRequest is the body of user.add, user.del, user.passwd and user.quota. Quota < 0 on
// user.add means the configured default; on user.quota it is refused.
type UserRequest struct {
	Origin
	Address  string `json:"address"`
	Password string `json:"password,omitempty"`
	Quota    int64  `json:"quota,omitempty"`
}

// ListRequest is the body of user.list and alias.list; an empty Domain lists all.
type ListRequest struct {
	Domain string `json:"domain,omitempty"`
}

// UserListResult answers user.list.
type UserListResult struct {
	Users []User `json:"users"`
}

// Alias sends mail for Address to Targets. An Address of the form "@domain" is the
// domain's catch-all.
type Alias struct {
	Origin
	Address string   `json:"address"`
	Targets []string `json:"targets"`
}

// AliasListResult answers alias.list.
type AliasListResult struct {
	Aliases []Alias `json:"aliases"`
}

// ThrottleBlock is one key of authd's failed-login throttling: Kind "client" (Client is
// an IP address), "network" (Client is a /24 or /64 prefix), "pair" (Account from Client,
// an IPv4 address or IPv6 /64) or "account" (Account from anywhere). Account is an
// address as given at login, whether or not such an account exists.
type ThrottleBlock struct {
	Kind    string `json:"kind"`
	Account string `json:"account,omitempty"`
	Client  string `json:"client,omitempty"`
	// Failures are those counted in the current window.
	Failures int `json:"failures"`
	// Until is when the refusal ends (in the past for a key no longer refused).
	Until time.Time `json:"until,omitzero"`
}

// ThrottleListResult answers throttle.list: the keys refused now.
type ThrottleListResult struct {
	Blocks []ThrottleBlock `json:"blocks"`
}

// ThrottleLiftRequest is the body of throttle.lift. Target is an account's address (its
// account and pair keys are lifted), an IP address (its client key, its network's and
// the pairs at its site) or a network in CIDR notation (every client, network and pair
// key within it).
type ThrottleLiftRequest struct {
	Origin
	Target string `json:"target"`
}

// ThrottleLiftResult answers throttle.lift: the keys forgotten, blocked or not.
type ThrottleLiftResult struct {
	Lifted []ThrottleBlock `json:"lifted"`
}

// QueueRecipient is one recipient of a queued message and where it stands.
type QueueRecipient struct {
	Addr   string `json:"addr"`
	ORcpt  string `json:"orcpt,omitempty"`
	Status string `json:"status,omitempty"` // "", delivered, failed, delayed
	Reason string `json:"reason,omitempty"`
}

// QueueEntry describes one queued message, like a line of mailq.
type QueueEntry struct {
	ID         string           `json:"id"`
	State      string           `json:"state"` // incoming, active, deferred, hold, corrupt
	Size       int64            `json:"size"`
	Arrival    time.Time        `json:"arrival"`
	From       string           `json:"from"`
	Recipients []QueueRecipient `json:"recipients"`
	// Next is when qmgr tries again a deferred message; Attempts how often it tried.
	Next     time.Time `json:"next,omitzero"`
	Attempts int       `json:"attempts,omitempty"`
}

// QueueListResult answers queue.list.
type QueueListResult struct {
	Messages []QueueEntry `json:"messages"`
}

// QueueShowResult answers queue.show: the entry and the message's header section.
type QueueShowResult struct {
	Entry   QueueEntry `json:"entry"`
	Headers string     `json:"headers"`
}

// IDsRequest names messages for queue.show, flush, hold, release and delete. An empty
// list on queue.flush means every deferred message.
type IDsRequest struct {
	Origin
	IDs []string `json:"ids,omitempty"`
}

// CountResult says how many messages an operation touched.
type CountResult struct {
	Count int `json:"count"`
}

// QueueCountsResult answers queue.counts: messages per queue directory.
type QueueCountsResult struct {
	Counts map[string]int `json:"counts"`
}

// DaemonStatus is what master knows about one daemon.
type DaemonStatus struct {
	Name     string    `json:"name"`
	User     string    `json:"user"`
	PID      int       `json:"pid,omitempty"`
	State    string    `json:"state"` // running, starting, backoff, stopped, disabled
	Started  time.Time `json:"started,omitzero"`
	Restarts int       `json:"restarts,omitempty"`
	LastExit string    `json:"last_exit,omitempty"`
}

// MasterStatusResult answers master's status.
type MasterStatusResult struct {
	PID     int            `json:"pid"`
	Started time.Time      `json:"started"`
	Config  string         `json:"config"`
	Daemons []DaemonStatus `json:"daemons"`
}

// Operations on control/sieved: an account's Sieve scripts, for the administrator.
const (
	SieveList     = "sieve.list"
	SieveGet      = "sieve.get"
	SievePut      = "sieve.put"
	SieveActivate = "sieve.activate"
)

// SieveRequest is the body of the sieve operations: the account, and the script's name
// (get, put, activate; "" with activate deactivates) and text (put).
type SieveRequest struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
	Script  string `json:"script,omitempty"`
}

// SieveScript is a script in the answer of sieve.list (no Script) and sieve.get.
type SieveScript struct {
	Name   string `json:"name"`
	Active bool   `json:"active,omitempty"`
	Script string `json:"script,omitempty"`
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/pkg/audit"
	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/stats"
)

// fakeInstance is a configuration whose control sockets are served in process by fake
// daemons that record what they were asked.
type fakeInstance struct {
	t      *testing.T
	config string
	spool  string

	mu    sync.Mutex
	calls []call
	// replies maps an op to its answer: a response body, an error, or a func(call) any
	// that gives one for each call.
	replies map[string]any
}

type call struct {
	daemon, op string
	body       string
	file       string // what spam.learn's descriptor holds at its offset
}

func newFakeInstance(t *testing.T, daemons ...string) *fakeInstance {
	t.Helper()
	dir := t.TempDir()
	fi := &fakeInstance{t: t, config: filepath.Join(dir, "postern.toml"), spool: filepath.Join(dir, "spool"), replies: map[string]any{}}
	if err := os.WriteFile(fi.config, []byte("hostname = \"mx.example.test\"\nspool_dir = \"spool\"\ndata_dir = \"data\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(fi.spool, "control"), 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, d := range daemons {
		path := filepath.Join(fi.spool, "control", d)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		s := &ipc.Server{Name: d}
		var ops []string
		switch d {
		case "authd":
			ops = []string{control.DomainAdd, control.DomainDel, control.DomainList, control.UserAdd, control.UserDel,
				control.UserList, control.UserPasswd, control.AliasAdd, control.AliasDel, control.AliasList,
				control.ThrottleList, control.ThrottleLift, control.UserAdmin, control.AppPasswordAdd, control.AppPasswordList,
				control.AppPasswordRevoke, control.AuditList, control.UserQuota, control.UserDisable}
		case "qmgr":
			ops = []string{control.QueueList, control.QueueShow, control.QueueFlush, control.QueueHold,
				control.QueueRelease, control.QueueDelete, control.QueueCounts, control.AuditList, control.Stats}
		case "master":
			ops = []string{control.MasterStatus, control.MasterReload}
		case "spamd":
			ops = []string{control.SpamLearn, control.SpamStatus, control.SpamListAdd, control.SpamListRemove, control.SpamLists}
		}
		for _, op := range ops {
			s.Handle(op, func(ctx context.Context, peer ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
				fi.mu.Lock()
				defer fi.mu.Unlock()
				c := call{daemon: d, op: op, body: string(body)}
				if len(files) == 1 && op == control.SpamLearn {
					// The message itself, read from the descriptor where the request says.
					var req control.SpamLearnRequest
					json.Unmarshal(body, &req)
					buf := make([]byte, req.Size)
					files[0].ReadAt(buf, req.Offset)
					c.file = string(buf)
				}
				ipc.CloseFiles(files)
				fi.calls = append(fi.calls, c)
				switch r := fi.replies[op].(type) {
				case func(call) any:
					v := r(c)
					if err, ok := v.(error); ok {
						return nil, err
					}
					return v, nil
				case error:
					return nil, r
				case nil:
					return struct{}{}, nil
				default:
					return r, nil
				}
			})
		}
		go s.Serve(ctx, l)
	}
	return fi
}

// run runs mailctl -c <config> args with stdin and returns exit status, stdout, stderr.
func (fi *fakeInstance) run(stdin string, args ...string) (int, string, string) {
	ta := newTestApp(fi.t, stdin)
	code := ta.run(append([]string{"-c", fi.config}, args...)...)
	return code, ta.out.String(), ta.err.String()
}

// last returns the last call the fake daemons received, and forgets the calls.
func (fi *fakeInstance) last() call {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	if len(fi.calls) == 0 {
		return call{}
	}
	c := fi.calls[len(fi.calls)-1]
	fi.calls = nil
	return c
}

// count returns how many calls the fake daemons received since last forgot them.
func (fi *fakeInstance) count() int {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return len(fi.calls)
}

// take returns the calls made so far and forgets them.
func (fi *fakeInstance) take() []call {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	calls := fi.calls
	fi.calls = nil
	return calls
}

func (fi *fakeInstance) reply(op string, v any) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	fi.replies[op] = v
}

func TestAccountCommands(t *testing.T) {
	fi := newFakeInstance(t, "authd")
	for _, tc := range []struct {
		stdin string
		args  []string
		op    string
		body  string
		out   string
	}{
		{"", []string{"domain", "add", "Other.Test"}, control.DomainAdd, `{"name":"other.test"}`, "domain other.test added"},
		{"", []string{"domain", "del", "other.test"}, control.DomainDel, `{"name":"other.test"}`, "deleted"},
		{"", []string{"domain", "del", "--force", "other.test"}, control.DomainDel, `{"name":"other.test","force":true}`, "deleted"},
		{"s3cret pass\n", []string{"user", "add", "bob@other.test", "--password-stdin"}, control.UserAdd,
			`{"address":"bob@other.test","password":"s3cret pass","quota":-1}`, "account bob@other.test created"},
		{"pw\r\nignored second line\n", []string{"user", "add", "--quota", "1G", "--password-stdin", "bob@other.test"}, control.UserAdd,
			`{"address":"bob@other.test","password":"pw","quota":1073741824}`, "created"},
		{"pw", []string{"user", "add", "--quota", "0", "--password-stdin", "bob@other.test"}, control.UserAdd,
			`{"address":"bob@other.test","password":"pw"}`, "created"},
		{"new\n", []string{"user", "passwd", "bob@other.test", "--password-stdin"}, control.UserPasswd,
			`{"address":"bob@other.test","password":"new"}`, "password of bob@other.test changed"},
		{"", []string{"user", "del", "bob@other.test"}, control.UserDel, `{"address":"bob@other.test"}`, "deleted"},
		{"", []string{"alias", "add", "team@other.test", "bob@other.test", "demo@example.test"}, control.AliasAdd,
			`{"address":"team@other.test","targets":["bob@other.test","demo@example.test"]}`, "alias team@other.test → bob@other.test, demo@example.test"},
		{"", []string{"alias", "add", "@other.test", "bob@other.test"}, control.AliasAdd,
			`{"address":"@other.test","targets":["bob@other.test"]}`, "catch-all of other.test"},
		{"", []string{"alias", "del", "@other.test"}, control.AliasDel, `{"address":"@other.test","targets":null}`, "deleted"},
		{"", []string{"user", "list", "other.test"}, control.UserList, `{"domain":"other.test"}`, "no accounts"},
		{"", []string{"user", "list"}, control.UserList, `{}`, "no accounts"},
		{"", []string{"alias", "list"}, control.AliasList, `{}`, "no aliases"},
		{"", []string{"domain", "list"}, control.DomainList, ``, "no domains"},
	} {
		code, out, errOut := fi.run(tc.stdin, tc.args...)
		if code != 0 {
			t.Errorf("mailctl %v: exit %d: %s", tc.args, code, errOut)
			continue
		}
		c := fi.last()
		if c.op != tc.op || c.body != tc.body {
			t.Errorf("mailctl %v sent %s %s, want %s %s", tc.args, c.op, c.body, tc.op, tc.body)
		}
		if !strings.Contains(out, tc.out) {
			t.Errorf("mailctl %v printed %q, want %q", tc.args, out, tc.out)
		}
		if strings.Contains(out+errOut, "s3cret") {
			t.Errorf("mailctl %v printed the password", tc.args)
		}
	}
}

func TestAccountLists(t *testing.T) {
	fi := newFakeInstance(t, "authd")
	created := time.Date(2025, 1, 2, 3, 4, 0, 0, time.Local)
	fi.reply(control.DomainList, control.DomainListResult{Domains: []control.Domain{{Name: "other.test", Users: 1}, {Name: "example.test", Users: 1, Aliases: 2}}})
	fi.reply(control.UserList, control.UserListResult{Users: []control.User{
		{Address: "bob@other.test", Quota: 1 << 30, Created: created},
		{Address: "demo@example.test", Admin: true, Disabled: true},
	}})
	fi.reply(control.AliasList, control.AliasListResult{Aliases: []control.Alias{
		{Address: "team@other.test", Targets: []string{"bob@other.test", "demo@example.test"}},
		{Address: "@other.test", Targets: []string{"bob@other.test"}},
	}})
	_, out, _ := fi.run("", "domain", "list")
	if want := "DOMAIN        USERS  ALIASES\nexample.test  1      2\nother.test    1      0\n"; out != want {
		t.Errorf("domain list:\n%s\nwant\n%s", out, want)
	}
	_, out, _ = fi.run("", "user", "list")
	if want := "ADDRESS            QUOTA      CREATED           FLAGS\ndemo@example.test  unlimited  -                 admin,disabled\nbob@other.test     1G         2025-01-02 03:04  -\n"; out != want {
		t.Errorf("user list:\n%s\nwant\n%s", out, want)
	}
	_, out, _ = fi.run("", "alias", "list")
	if want := "@other.test      → bob@other.test\nteam@other.test  → bob@other.test, demo@example.test\n"; out != want {
		t.Errorf("alias list:\n%s\nwant\n%s", out, want)
	}
}

func TestAccountErrors(t *testing.T) {
	fi := newFakeInstance(t, "authd")
	fi.reply(control.UserAdd, ipc.Errorf("exists", "account bob@other.test already exists"))
	code, _, errOut := fi.run("pw\n", "user", "add", "bob@other.test", "--password-stdin")
	if code != exitFail || errOut != "mailctl user add: account bob@other.test already exists\n" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	fi.reply(control.DomainDel, ipc.Errorf("invalid", "domain other.test has 2 accounts and 0 aliases: domain is not empty"))
	code, _, errOut = fi.run("", "domain", "del", "other.test")
	if code != exitFail || !strings.Contains(errOut, "--force") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	fi.reply(control.UserAdd, map[string]any{"address": "bob@other.test", "maildir": "/data/mail/other.test/bob", "warning": "local is not running"})
	code, out, errOut := fi.run("pw\n", "user", "add", "Bob@Other.Test", "--password-stdin")
	if code != 0 || out != "account bob@other.test created, Maildir /data/mail/other.test/bob\n" || !strings.Contains(errOut, "warning: local is not running") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	fi.reply(control.UserDel, ipc.Errorf("denied", "authd: uid 1000 may not use this socket"))
	code, _, errOut = fi.run("", "user", "del", "bob@other.test")
	if code != exitFail || !strings.Contains(errOut, "postern-admin") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}

	// Bad addresses are caught before authd is asked.
	fi.last()
	for _, args := range [][]string{{"user", "add", "--password-stdin", "bob"}, {"alias", "add", "x@other.test", "not an address"}, {"domain", "add", "a@b"}, {"user", "del", "@other.test"}} {
		if code, _, _ := fi.run("pw\n", args...); code != exitFail {
			t.Errorf("mailctl %v: exit %d", args, code)
		}
	}
	if c := fi.last(); c.op != "" {
		t.Errorf("authd was asked %s %s", c.op, c.body)
	}

	// Without --password-stdin and without a terminal: a clear error, nothing sent.
	code, _, errOut = fi.run("pw\n", "user", "add", "bob@other.test")
	if code != exitFail || !strings.Contains(errOut, "--password-stdin") {
		t.Errorf("no terminal: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = fi.run("", "user", "passwd", "bob@other.test", "--password-stdin")
	if code != exitFail || !strings.Contains(errOut, "no password") {
		t.Errorf("empty stdin: exit %d, stderr %q", code, errOut)
	}
	if c := fi.last(); c.op != "" {
		t.Errorf("authd was asked %s %s", c.op, c.body)
	}
}

func TestThrottleCommands(t *testing.T) {
	fi := newFakeInstance(t, "authd")
	fi.reply(control.ThrottleList, control.ThrottleListResult{Blocks: []control.ThrottleBlock{}})
	if code, out, _ := fi.run("", "throttle", "list"); code != 0 || out != "no logins are throttled\n" {
		t.Errorf("empty list: exit %d, %q", code, out)
	}
	until := time.Now().Add(90 * time.Second)
	fi.reply(control.ThrottleList, control.ThrottleListResult{Blocks: []control.ThrottleBlock{
		{Kind: "network", Client: "127.0.0.0/24", Failures: 50, Until: until},
		{Kind: "pair", Account: "demo@example.test", Client: "10.0.0.9", Failures: 5, Until: until},
		{Kind: "account", Account: "evil\x1b[2J@example.test", Failures: 100, Until: until},
	}})
	code, out, _ := fi.run("", "throttle", "list")
	at := until.Local().Format("2006-01-02 15:04:05")
	for _, re := range []string{`^KIND +BLOCKED +FAILURES +UNTIL\n`,
		`\nnetwork +127\.0\.0\.0/24 +50 +` + at + ` \(1m(29|30)s left\)\n`,
		`\npair +demo@example\.test from 10\.0\.0\.9 +5 +`,
		`\naccount +evil\^\[\[2J@example\.test +100 `} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("throttle list: exit %d, output does not match %s:\n%s", code, re, out)
		}
	}

	fi.reply(control.ThrottleLift, control.ThrottleLiftResult{Lifted: []control.ThrottleBlock{
		{Kind: "network", Client: "127.0.0.0/24", Failures: 50, Until: until},
		{Kind: "client", Client: "127.0.0.51", Failures: 1},
	}})
	for _, tc := range []struct{ arg, body string }{
		{"127.0.0.51", `{"target":"127.0.0.51"}`},
		{"::ffff:127.0.0.51", `{"target":"127.0.0.51"}`},
		{"2001:db8::1:0:0:0:1/64", `{"target":"2001:db8:0:1::/64"}`},
		{"<Demo@Example.TEST>", `{"target":"Demo@example.test"}`},
	} {
		code, out, errOut := fi.run("", "throttle", "lift", tc.arg)
		if c := fi.last(); code != 0 || c.op != control.ThrottleLift || c.body != tc.body {
			t.Errorf("throttle lift %s: exit %d (%s), sent %s %s; want %s", tc.arg, code, errOut, c.op, c.body, tc.body)
		}
		if !strings.Contains(out, "lifted the block of network 127.0.0.0/24\n") || !strings.Contains(out, ": 1 blocks lifted, the failures of 2 keys forgotten") {
			t.Errorf("throttle lift %s printed %q", tc.arg, out)
		}
	}
	fi.reply(control.ThrottleLift, control.ThrottleLiftResult{Lifted: []control.ThrottleBlock{}})
	if _, out, _ := fi.run("", "throttle", "lift", "192.0.2.1"); out != "nothing to lift for 192.0.2.1: no failed logins counted\n" {
		t.Errorf("nothing lifted: %q", out)
	}
	fi.last()
	if code, _, errOut := fi.run("", "throttle", "lift", "somewhere"); code != exitUsage || !strings.Contains(errOut, "neither an IP address") {
		t.Errorf("a bad target: exit %d, %q", code, errOut)
	}
	if c := fi.last(); c.op != "" {
		t.Errorf("authd was asked %s %s", c.op, c.body)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	fi := newFakeInstance(t) // no daemons
	sock := filepath.Join(fi.spool, "control", "authd")
	code, _, errOut := fi.run("", "domain", "list")
	if want := "mailctl domain list: cannot reach authd at " + sock + ": is master running?\n"; code != exitFail || errOut != want {
		t.Errorf("exit %d, stderr %q, want %q", code, errOut, want)
	}
	// A socket file nobody listens on (master died): the same.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(fi.spool, "control", "qmgr"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	code, _, errOut = fi.run("", "queue", "list")
	if code != exitFail || !strings.Contains(errOut, "cannot reach qmgr at") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	code, out, errOut := fi.run("", "status")
	if code != exitFail || !strings.Contains(errOut, "master is not running") || out != "" {
		t.Errorf("status: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestQueueCommands(t *testing.T) {
	fi := newFakeInstance(t, "qmgr")
	const id = "0123456789ABCDEF"
	for _, tc := range []struct {
		args []string
		op   string
		body string
		out  string
	}{
		{[]string{"queue", "flush"}, control.QueueFlush, `{}`, "0 messages will be tried again now"},
		{[]string{"queue", "flush", id}, control.QueueFlush, `{"ids":["` + id + `"]}`, ""},
		{[]string{"queue", "hold", strings.ToLower(id), id + "*"}, control.QueueHold, `{"ids":["` + id + `","` + id + `"]}`, "put on hold"},
		{[]string{"queue", "release", id}, control.QueueRelease, `{"ids":["` + id + `"]}`, "released from hold"},
		{[]string{"queue", "delete", id}, control.QueueDelete, `{"ids":["` + id + `"]}`, "deleted"},
	} {
		code, out, errOut := fi.run("", tc.args...)
		if code != 0 {
			t.Errorf("mailctl %v: exit %d: %s", tc.args, code, errOut)
			continue
		}
		if c := fi.last(); c.op != tc.op || c.body != tc.body {
			t.Errorf("mailctl %v sent %s %s, want %s %s", tc.args, c.op, c.body, tc.op, tc.body)
		}
		if !strings.Contains(out, tc.out) {
			t.Errorf("mailctl %v printed %q, want %q", tc.args, out, tc.out)
		}
	}
	fi.reply(control.QueueDelete, control.CountResult{Count: 1})
	if _, out, _ := fi.run("", "queue", "delete", id); out != "1 message deleted\n" {
		t.Errorf("queue delete printed %q", out)
	}
	if code, _, errOut := fi.run("", "queue", "hold", "nonsense"); code != exitFail || !strings.Contains(errOut, `"nonsense" is not a queue ID`) {
		t.Errorf("bad ID: exit %d, %s", code, errOut)
	}
	fi.reply(control.QueueShow, ipc.Errorf("notfound", "no message %s in the queue", id))
	if code, _, errOut := fi.run("", "queue", "show", id); code != exitFail || !strings.Contains(errOut, "no message") {
		t.Errorf("show of a missing message: exit %d, %s", code, errOut)
	}
}

func TestQueueList(t *testing.T) {
	fi := newFakeInstance(t, "qmgr")
	if _, out, _ := fi.run("", "queue", "list"); out != "Mail queue is empty\n" {
		t.Errorf("empty queue: %q", out)
	}
	arrival := time.Date(2025, 3, 4, 5, 6, 7, 0, time.Local)
	fi.reply(control.QueueList, control.QueueListResult{Messages: []control.QueueEntry{
		{ID: "0123456789ABCDEF", State: "deferred", Size: 1500, Arrival: arrival, From: "demo@example.test", Recipients: []control.QueueRecipient{
			{Addr: "done@example.test", Status: "delivered"},
			{Addr: "bob@other.test", Status: "delayed", Reason: "local: connection refused"},
			{Addr: "ann@other.test", Status: "delayed", Reason: "local: connection refused"},
			{Addr: "eve@other.test", Status: "delayed", Reason: "mailbox full\x1b[2J"},
		}},
		{ID: "0123456789ABCDEG", State: "hold", Size: 700, Arrival: arrival, From: "", Recipients: []control.QueueRecipient{{Addr: "x@y.test"}}},
		{ID: "0123456789ABCDEH", State: "active", Size: 10, Arrival: arrival, From: "a@b.test", Recipients: []control.QueueRecipient{{Addr: "c@d.test"}}},
	}})
	_, out, _ := fi.run("", "queue", "list")
	pad := strings.Repeat(" ", 49)
	want := "-Queue ID-------- --Size-- ----Arrival Time---- -Sender/Recipient-------\n" +
		"0123456789ABCDEF      1500  Tue Mar  4 05:06:07  demo@example.test\n" +
		"(local: connection refused)\n" +
		pad + "bob@other.test\n" +
		pad + "ann@other.test\n" +
		"(mailbox full^[[2J)\n" +
		pad + "eve@other.test\n" +
		"\n" +
		"0123456789ABCDEG!      700  Tue Mar  4 05:06:07  MAILER-DAEMON\n" +
		pad + "x@y.test\n" +
		"\n" +
		"0123456789ABCDEH*       10  Tue Mar  4 05:06:07  a@b.test\n" +
		pad + "c@d.test\n" +
		"\n" +
		"-- 3 Kbytes in 3 Requests.\n"
	if out != want {
		t.Errorf("queue list:\n%s\nwant:\n%s", out, want)
	}
}

func TestQueueShow(t *testing.T) {
	fi := newFakeInstance(t, "qmgr")
	const id = "0123456789ABCDEF"
	fi.reply(control.QueueShow, control.QueueShowResult{
		Entry: control.QueueEntry{ID: id, State: "deferred", Size: 1500, Arrival: time.Now().Add(-time.Hour), From: "demo@example.test",
			Next: time.Now().Add(10 * time.Minute), Attempts: 2,
			Recipients: []control.QueueRecipient{
				{Addr: "bob@other.test", ORcpt: "rfc822;team@other.test", Status: "delayed", Reason: "local: connection refused"},
				{Addr: "ann@other.test", Status: "delivered"},
			}},
		Headers: "Received: from client.test\r\n\tby mx.example.test\r\nMessage-ID: <deferred@t>\r\nSubject: \x1b]0;pwned\x07hi\r\n",
	})
	code, out, errOut := fi.run("", "queue", "show", strings.ToLower(id))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if c := fi.last(); c.body != `{"ids":["`+id+`"]}` {
		t.Errorf("sent %s", c.body)
	}
	for _, want := range []string{
		"Queue ID:  " + id, "State:     deferred, 2 delivery attempts, next attempt ", "(in 10m", "Sender:    <demo@example.test>",
		"  <bob@other.test> (originally rfc822;team@other.test): delayed: local: connection refused",
		"  <ann@other.test>: delivered", "\nReceived: from client.test\n\tby mx.example.test\nMessage-ID: <deferred@t>\n",
		"Subject: ^[]0;pwned^Ghi\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("queue show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") || strings.Contains(out, "\r") {
		t.Errorf("queue show passes control characters through:\n%q", out)
	}
}

func TestStatus(t *testing.T) {
	fi := newFakeInstance(t, "master", "qmgr")
	now := time.Now()
	fi.reply(control.MasterStatus, control.MasterStatusResult{PID: 100, Started: now.Add(-3 * time.Hour), Config: fi.config, Daemons: []control.DaemonStatus{
		{Name: "authd", User: "postern", PID: 101, State: "running", Started: now.Add(-3 * time.Hour)},
		{Name: "local", User: "vmail", PID: 102, State: "running", Started: now.Add(-90 * time.Second), Restarts: 2, LastExit: "signal: killed"},
		{Name: "smtpd", User: "postern", State: "backoff", Restarts: 5, LastExit: "exit status 1"},
		{Name: "cleanup", User: "postern", State: "disabled"},
	}})
	fi.reply(control.QueueCounts, control.QueueCountsResult{Counts: map[string]int{"deferred": 2, "hold": 1}})
	code, out, errOut := fi.run("", "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, re := range []string{
		`master: running, pid 100, up 3h0m, config ` + fi.config,
		`(?m)^DAEMON\s+USER\s+PID\s+STATE\s+UPTIME\s+RESTARTS\s+LAST EXIT$`,
		`(?m)^authd\s+postern\s+101\s+running\s+3h0m\s+0\s+-$`,
		`(?m)^local\s+vmail\s+102\s+running\s+1m3\ds\s+2\s+signal: killed$`,
		`(?m)^smtpd\s+postern\s+-\s+backoff\s+-\s+5\s+exit status 1$`,
		`(?m)^cleanup\s+postern\s+-\s+disabled`,
		`queue: 3 messages \(incoming 0, active 0, deferred 2, hold 1, corrupt 0\)`,
	} {
		if !regexpMatch(re, out) {
			t.Errorf("status does not match %s:\n%s", re, out)
		}
	}
}

// TestStatusWithoutQmgr: master answers, qmgr does not: status shows the daemons and
// says the queue is unknown.
func TestStatusWithoutQmgr(t *testing.T) {
	fi := newFakeInstance(t, "master")
	fi.reply(control.MasterStatus, control.MasterStatusResult{PID: 100, Started: time.Now()})
	code, out, errOut := fi.run("", "status")
	if code != 0 || !strings.Contains(out, "queue: unknown (cannot reach qmgr") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestReload(t *testing.T) {
	fi := newFakeInstance(t, "master")
	code, out, _ := fi.run("", "reload")
	if c := fi.last(); code != 0 || c.op != control.MasterReload || out != "master reloaded the configuration\n" {
		t.Errorf("exit %d, op %s, stdout %q", code, c.op, out)
	}
	fi.reply(control.MasterReload, ipc.Errorf("invalid", "reload failed, master keeps the running configuration: x.toml:3: bad"))
	if code, _, errOut := fi.run("", "reload"); code != exitFail || !strings.Contains(errOut, "x.toml:3: bad") {
		t.Errorf("failed reload: exit %d, stderr %q", code, errOut)
	}
}

func TestUptime(t *testing.T) {
	now := time.Now()
	for d, want := range map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", 12*time.Minute + 3*time.Second: "12m3s", 5*time.Hour + 2*time.Minute: "5h2m",
		76 * time.Hour: "3d4h", -time.Second: "0s",
	} {
		if got := uptime(now.Add(-d), now); got != want {
			t.Errorf("uptime(%v) = %q, want %q", d, got, want)
		}
	}
	if got := uptime(time.Time{}, now); got != "-" {
		t.Errorf("uptime of zero time = %q", got)
	}
}

func regexpMatch(re, s string) bool {
	ok, err := regexp.MatchString(re, s)
	if err != nil {
		panic(fmt.Sprintf("bad test regexp %s: %v", re, err))
	}
	return ok
}

func TestAdminAndAppPasswordCommands(t *testing.T) {
	fi := newFakeInstance(t, "authd")
	if code, out, errOut := fi.run("", "user", "admin", "Demo@Example.test"); code != 0 || out != "Demo@example.test is an administrator\n" {
		t.Errorf("user admin: %d %q %q", code, out, errOut)
	}
	if c := fi.last(); c.op != control.UserAdmin || c.body != `{"address":"Demo@example.test","admin":true}` {
		t.Errorf("user admin sent %+v", c)
	}
	if code, out, _ := fi.run("", "user", "admin", "demo@example.test", "--off"); code != 0 || !strings.Contains(out, "no longer") {
		t.Errorf("user admin --off: %d %q", code, out)
	}
	if c := fi.last(); c.body != `{"address":"demo@example.test","admin":false}` {
		t.Errorf("user admin --off sent %+v", c)
	}

	if code, out, _ := fi.run("", "user", "quota", "demo@example.test", "2G"); code != 0 || out != "quota of demo@example.test: 2G\n" {
		t.Errorf("user quota: %d %q", code, out)
	}
	if c := fi.last(); c.op != control.UserQuota || c.body != `{"address":"demo@example.test","quota":2147483648}` {
		t.Errorf("user quota sent %+v", c)
	}
	if code, _, _ := fi.run("", "user", "quota", "demo@example.test", "lots"); code != 2 {
		t.Errorf("user quota lots: exit %d", code)
	}
	if code, out, _ := fi.run("", "user", "disable", "demo@example.test"); code != 0 || !strings.Contains(out, "is disabled") {
		t.Errorf("user disable: %d %q", code, out)
	}
	if c := fi.last(); c.op != control.UserDisable || c.body != `{"address":"demo@example.test","disabled":true}` {
		t.Errorf("user disable sent %+v", c)
	}
	fi.run("", "user", "disable", "demo@example.test", "--off")
	if c := fi.last(); c.body != `{"address":"demo@example.test","disabled":false}` {
		t.Errorf("user disable --off sent %+v", c)
	}

	fi.reply(control.AppPasswordAdd, control.AppPassword{Name: "phone", Password: "abcd-efgh-ijkl-mnop"})
	code, out, _ := fi.run("", "app-password", "add", "demo@example.test", "phone")
	if code != 0 || !strings.HasSuffix(out, "\nabcd-efgh-ijkl-mnop\n") || !strings.Contains(out, "shown only now") {
		t.Errorf("app-password add: %d %q", code, out)
	}
	if c := fi.last(); c.op != control.AppPasswordAdd || c.body != `{"address":"demo@example.test","name":"phone"}` {
		t.Errorf("app-password add sent %+v", c)
	}
	if code, _, _ := fi.run("", "app-password", "add", "demo@example.test"); code != 2 {
		t.Errorf("app-password add without a name: exit %d", code)
	}

	created := time.Date(2026, 12, 1, 9, 30, 0, 0, time.Local)
	fi.reply(control.AppPasswordList, control.AppPasswordListResult{AppPasswords: []control.AppPassword{
		{Name: "laptop", Created: created},
		{Name: "phone", Created: created, LastUsed: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)},
	}})
	_, out, _ = fi.run("", "app-password", "list", "demo@example.test")
	if want := "NAME    CREATED           LAST USED\nlaptop  2026-12-01 09:30  never\nphone   2026-12-01 09:30  2026-12-07\n"; out != want {
		t.Errorf("app-password list:\n%s\nwant\n%s", out, want)
	}
	if code, out, _ := fi.run("", "app-password", "revoke", "demo@example.test", "phone"); code != 0 || out != "app password \"phone\" of demo@example.test revoked\n" {
		t.Errorf("app-password revoke: %d %q", code, out)
	}
	if c := fi.last(); c.op != control.AppPasswordRevoke || c.body != `{"address":"demo@example.test","name":"phone"}` {
		t.Errorf("app-password revoke sent %+v", c)
	}
	fi.reply(control.AppPasswordRevoke, ipc.Errorf("notfound", "app password \"x\": not found"))
	if code, _, errOut := fi.run("", "app-password", "revoke", "demo@example.test", "x"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("revoking a missing app password: %d %q", code, errOut)
	}
}

func TestAuditCommand(t *testing.T) {
	fi := newFakeInstance(t, "authd", "qmgr")
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.Local)
	fi.reply(control.AuditList, control.AuditResult{Entries: []audit.Entry{
		{Seq: 1, Time: t0, Daemon: "authd", UID: 0, User: "root", Op: "user.add", Target: "a@example.test"},
		{Seq: 2, Time: t0.Add(2 * time.Second), Daemon: "authd", UID: 998, Web: "admin@example.test", IP: "192.0.2.9", Op: "user.del", Target: "a@example.test"},
	}})
	code, out, errOut := fi.run("", "audit")
	if code != 0 {
		t.Fatalf("audit: %d %q", code, errOut)
	}
	// Both daemons answered (the fake gives both the same entries): four lines, by time.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "TIME") ||
		!strings.Contains(lines[1], "root") || !strings.Contains(lines[1], "user.add") ||
		!strings.Contains(lines[4], "admin@example.test (web, via uid 998)") || !strings.Contains(lines[4], "192.0.2.9") {
		t.Errorf("audit printed:\n%s", out)
	}
	if code, _, _ := fi.run("", "audit", "--limit", "1"); code != 0 {
		t.Error("audit --limit failed")
	}
	if c := fi.last(); c.body != `{"limit":1}` {
		t.Errorf("audit --limit sent %+v", c)
	}
	// qmgr down: authd's part is printed, and the exit status says it is incomplete.
	fi2 := newFakeInstance(t, "authd")
	fi2.reply(control.AuditList, control.AuditResult{Entries: []audit.Entry{{Seq: 1, Time: t0, Daemon: "authd", User: "root", Op: "domain.add"}}})
	code, out, errOut = fi2.run("", "audit")
	if code != 1 || !strings.Contains(out, "domain.add") || !strings.Contains(errOut, "qmgr") {
		t.Errorf("audit without qmgr: %d %q %q", code, out, errOut)
	}
}

func TestStatsCommand(t *testing.T) {
	fi := newFakeInstance(t, "qmgr")
	h0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.Local)
	d0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.Local)
	fi.reply(control.Stats, control.StatsResult{
		Hours: []stats.Period{{Start: h0, Counts: stats.Counts{Received: 10, Delivered: 9, Deferred: 2, Bounced: 1, Rejected: 30, Junk: 3}},
			{Start: h0.Add(time.Hour), Counts: stats.Counts{Received: 5, Delivered: 5}}},
		Days: []stats.Period{{Start: d0, Counts: stats.Counts{Received: 100, Delivered: 99}}, {Start: d0.AddDate(0, 0, 1), Counts: stats.Counts{Received: 15, Delivered: 14, Rejected: 30}}},
	})
	code, out, errOut := fi.run("", "stats")
	want := "HOUR              RECEIVED  DELIVERED  DEFERRED  BOUNCED  REJECTED    JUNK\n" +
		"2026-12-07 09:00        10          9         2        1        30       3\n" +
		"2026-12-07 10:00         5          5         0        0         0       0\n" +
		"total                   15         14         2        1        30       3\n"
	if code != 0 || out != want {
		t.Errorf("stats: %d %q\n%s\nwant\n%s", code, errOut, out, want)
	}
	_, out, _ = fi.run("", "stats", "--days")
	want = "DAY         RECEIVED  DELIVERED  DEFERRED  BOUNCED  REJECTED    JUNK\n" +
		"2026-12-06       100         99         0        0         0       0\n" +
		"2026-12-07        15         14         0        0        30       0\n" +
		"total            115        113         0        0        30       0\n"
	if out != want {
		t.Errorf("stats --days:\n%s\nwant\n%s", out, want)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/delivery"
	"postern/pkg/ipc"
	"postern/pkg/logtest"
	"postern/pkg/ratelimit"
	"postern/pkg/userdb"
)

// env is an authd serving on temporary sockets, with a fake local delivery agent.
type env struct {
	a       *Authd
	dir     string
	auth    *auth.Client
	ctl     *ipc.Client
	clock   *clock
	mu      sync.Mutex
	created []string // Maildirs the fake local was asked to create
	logs    *logtest.Buffer
	// webPeer says whether the test's peer passes for httpd (WebPeer).
	webPeer atomic.Bool
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func listen(t *testing.T, path string) *net.UnixListener {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// start runs authd in-process. withLocal says whether a local agent answers.
func start(t *testing.T, withLocal bool) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "authd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	db, err := userdb.OpenWith(filepath.Join(dir, "users.db"), userdb.Options{Hash: userdb.HashParams{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, clock: &clock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}, logs: &logtest.Buffer{}}
	th := NewThrottle(LimitsOf(config.Default().Authd))
	th.Now = e.clock.Now
	e.a = &Authd{
		DB:           db,
		MailRoot:     filepath.Join(dir, "mail"),
		DefaultQuota: 1 << 30,
		Local:        delivery.NewClient(filepath.Join(dir, "local")),
		Throttle:     th,
		Log:          slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Web:          &WebSessions{Idle: 30 * time.Minute, Lifetime: 12 * time.Hour, Now: e.clock.Now, tokens: map[[32]byte]*webToken{}},
		WebPeer:      func(ipc.Cred) bool { return e.webPeer.Load() },
		DKIMDir:      filepath.Join(dir, "dkim"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	if withLocal {
		local := &ipc.Server{Name: "local"}
		local.Handle(delivery.OpCreateMailbox, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
			var req delivery.CreateMailboxRequest
			json.Unmarshal(body, &req)
			e.mu.Lock()
			e.created = append(e.created, req.Maildir)
			e.mu.Unlock()
			return nil, nil
		})
		go local.Serve(ctx, listen(t, filepath.Join(dir, "local")))
	}
	done := make(chan error, 1)
	private, ctl := listen(t, filepath.Join(dir, "auth")), listen(t, filepath.Join(dir, "ctl"))
	go func() { done <- e.a.Serve(ctx, private, ctl, nil, nil) }()
	e.auth = auth.NewClient(filepath.Join(dir, "auth"))
	e.ctl = ipc.NewClient(filepath.Join(dir, "ctl"))
	t.Cleanup(func() {
		e.auth.Close()
		e.ctl.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
		db.Close()
	})
	return e
}

func (e *env) call(t *testing.T, op string, req, resp any) {
	t.Helper()
	if _, err := e.ctl.Call(context.Background(), op, req, resp); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

func (e *env) callErr(t *testing.T, code, op string, req any) {
	t.Helper()
	_, err := e.ctl.Call(context.Background(), op, req, nil)
	if !ipc.IsCode(err, code) {
		t.Errorf("%s %+v: err = %v; want code %q", op, req, err, code)
	}
}

func TestControl(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	var d control.Domain
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "Example.ORG"}, &d)
	if d.Name != "example.org" {
		t.Errorf("domain.add = %+v", d)
	}
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "b.example"}, nil)
	e.callErr(t, "exists", control.DomainAdd, control.DomainRequest{Name: "example.org"})
	e.callErr(t, "invalid", control.DomainAdd, control.DomainRequest{Name: "bad domain"})

	var u UserAddResult
	e.call(t, control.UserAdd, control.UserRequest{Address: "Alice@Example.org", Password: "quiet violet harbour 7", Quota: -1}, &u)
	wantDir := filepath.Join(e.dir, "mail", "example.org", "alice")
	if u.Address != "alice@example.org" || u.Quota != 1<<30 || u.Maildir != wantDir || u.Created.IsZero() || u.Warning != "" {
		t.Errorf("user.add = %+v", u)
	}
	var u2 UserAddResult
	e.call(t, control.UserAdd, control.UserRequest{Address: "bob@example.org", Password: "plain wooden spoon 19"}, &u2)
	if u2.Quota != 0 {
		t.Errorf("user.add with quota 0: quota = %d; want unlimited", u2.Quota)
	}
	e.call(t, control.UserAdd, control.UserRequest{Address: "carol@b.example", Password: "plain wooden spoon 19", Quota: 5000}, nil)
	e.mu.Lock()
	if want := []string{wantDir, filepath.Join(e.dir, "mail", "example.org", "bob"), filepath.Join(e.dir, "mail", "b.example", "carol")}; !reflect.DeepEqual(e.created, want) {
		t.Errorf("local was asked to create %v; want %v", e.created, want)
	}
	e.mu.Unlock()
	e.callErr(t, "exists", control.UserAdd, control.UserRequest{Address: "ALICE@example.org", Password: "plain wooden spoon 19"})
	e.callErr(t, "notfound", control.UserAdd, control.UserRequest{Address: "x@nope.example", Password: "plain wooden spoon 19"})
	e.callErr(t, "invalid", control.UserAdd, control.UserRequest{Address: "../x@example.org", Password: "plain wooden spoon 19"})
	e.callErr(t, "invalid", control.UserAdd, control.UserRequest{Address: "dave@example.org", Password: ""})

	var ul control.UserListResult
	e.call(t, control.UserList, control.ListRequest{}, &ul)
	var names []string
	for _, u := range ul.Users {
		names = append(names, u.Address)
	}
	if want := []string{"carol@b.example", "alice@example.org", "bob@example.org"}; !reflect.DeepEqual(names, want) {
		t.Errorf("user.list = %v; want %v", names, want)
	}
	if ul.Users[0].Quota != 5000 || ul.Users[0].Maildir != filepath.Join(e.dir, "mail", "b.example", "carol") {
		t.Errorf("user.list entry = %+v", ul.Users[0])
	}
	e.call(t, control.UserList, control.ListRequest{Domain: "b.example"}, &ul)
	if len(ul.Users) != 1 {
		t.Errorf("user.list b.example = %+v", ul)
	}
	e.callErr(t, "notfound", control.UserList, control.ListRequest{Domain: "nope.example"})

	e.call(t, control.UserPasswd, control.UserRequest{Address: "alice@example.org", Password: "brand new lantern 52"}, nil)
	if r, err := e.auth.Verify(ctx, auth.VerifyRequest{User: "alice@example.org", Password: "brand new lantern 52"}); err != nil || !r.OK {
		t.Errorf("verify after user.passwd = %+v, %v", r, err)
	}
	e.callErr(t, "notfound", control.UserPasswd, control.UserRequest{Address: "nobody@example.org", Password: "brand new lantern 52"})

	var al control.Alias
	e.call(t, control.AliasAdd, control.Alias{Address: "Sales@example.org", Targets: []string{"alice@example.org", "Ext@Elsewhere.example"}}, &al)
	if al.Address != "sales@example.org" || !reflect.DeepEqual(al.Targets, []string{"alice@example.org", "Ext@elsewhere.example"}) {
		t.Errorf("alias.add = %+v", al)
	}
	e.call(t, control.AliasAdd, control.Alias{Address: "@b.example", Targets: []string{"carol@b.example"}}, nil)
	e.callErr(t, "exists", control.AliasAdd, control.Alias{Address: "alice@example.org", Targets: []string{"bob@example.org"}})
	e.callErr(t, "invalid", control.AliasAdd, control.Alias{Address: "loop@example.org", Targets: []string{"loop@example.org"}})
	e.callErr(t, "invalid", control.AliasAdd, control.Alias{Address: "x@example.org"})
	var all control.AliasListResult
	e.call(t, control.AliasList, control.ListRequest{}, &all)
	if len(all.Aliases) != 2 || all.Aliases[0].Address != "@b.example" || all.Aliases[1].Address != "sales@example.org" {
		t.Errorf("alias.list = %+v", all)
	}

	var dl control.DomainListResult
	e.call(t, control.DomainList, nil, &dl)
	if want := []control.Domain{{Name: "b.example", Users: 1, Aliases: 1}, {Name: "example.org", Users: 2, Aliases: 1}}; !reflect.DeepEqual(dl.Domains, want) {
		t.Errorf("domain.list = %+v; want %+v", dl.Domains, want)
	}

	e.callErr(t, "invalid", control.DomainDel, control.DomainRequest{Name: "b.example"})
	e.call(t, control.AliasDel, control.Alias{Address: "SALES@example.org"}, nil)
	e.callErr(t, "notfound", control.AliasDel, control.Alias{Address: "sales@example.org"})
	e.call(t, control.UserDel, control.UserRequest{Address: "Bob@example.org"}, nil)
	e.callErr(t, "notfound", control.UserDel, control.UserRequest{Address: "bob@example.org"})
	e.call(t, control.DomainDel, control.DomainRequest{Name: "b.example", Force: true}, nil)
	e.callErr(t, "notfound", control.DomainDel, control.DomainRequest{Name: "b.example"})
	dl = control.DomainListResult{}
	e.call(t, control.DomainList, nil, &dl)
	if len(dl.Domains) != 1 || dl.Domains[0].Name != "example.org" || dl.Domains[0].Users != 1 || dl.Domains[0].Aliases != 0 {
		t.Errorf("domain.list after deletions = %+v", dl.Domains)
	}
	e.callErr(t, "invalid", "no.such.op", nil)
	if _, err := e.ctl.Call(ctx, control.UserAdd, json.RawMessage(`"not an object"`), nil); !ipc.IsCode(err, "invalid") {
		t.Errorf("undecodable request: err = %v", err)
	}

	logs := e.logs.String()
	for _, want := range []string{`msg="domain added" domain=example.org`, `msg="account added" user=alice@example.org`,
		`msg="password changed" user=alice@example.org`, `msg="alias added" alias=sales@example.org`,
		`msg="alias deleted" alias=sales@example.org`, `user=bob@example.org`, `msg="domain deleted" domain=b.example force=true`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	for _, secret := range []string{"quiet violet harbour 7", "brand new lantern 52"} {
		if strings.Contains(logs, "="+secret+" ") || strings.Contains(logs, "\""+secret+"\"") {
			t.Errorf("logs contain a password: %s", logs)
		}
	}
}

func TestUserAddWithoutLocal(t *testing.T) {
	e := start(t, false)
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	var u UserAddResult
	e.call(t, control.UserAdd, control.UserRequest{Address: "alice@example.org", Password: "plain wooden spoon 19", Quota: 10}, &u)
	if u.Address != "alice@example.org" || u.Quota != 10 || u.Warning == "" {
		t.Errorf("user.add without local = %+v", u)
	}
	// The account exists all the same.
	r, err := e.auth.Mailbox(context.Background(), "alice@example.org")
	if err != nil || !r.Exists {
		t.Errorf("mailbox = %+v, %v", r, err)
	}
	if !strings.Contains(e.logs.String(), "creating maildir failed") {
		t.Error("the failure was not logged")
	}
}

func TestPrivate(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	db := e.a.DB
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "plain wooden spoon 19", 1000))
	must(db.AddAlias("team@example.org", []string{"alice@example.org", "x@external.example"}))

	res, err := e.auth.Resolve(ctx, "Team+x@EXAMPLE.org")
	if want := (auth.ResolveResult{Local: true, Found: true, Targets: []string{"alice@example.org", "x@external.example"}}); err != nil || !reflect.DeepEqual(res, want) {
		t.Errorf("resolve = %+v, %v; want %+v", res, err, want)
	}
	res, err = e.auth.Resolve(ctx, "nobody@example.org")
	if err != nil || !res.Local || res.Found {
		t.Errorf("resolve unknown = %+v, %v", res, err)
	}
	res, err = e.auth.Resolve(ctx, "a@other.example")
	if err != nil || res.Local || res.Found {
		t.Errorf("resolve foreign = %+v, %v", res, err)
	}
	if _, err := e.auth.Resolve(ctx, "no-at-sign"); !ipc.IsCode(err, "invalid") {
		t.Errorf("resolve without @: err = %v", err)
	}

	mb, err := e.auth.Mailbox(ctx, "ALICE@example.org")
	want := auth.MailboxResult{Exists: true, Address: "alice@example.org", Maildir: filepath.Join(e.dir, "mail", "example.org", "alice"), Quota: 1000}
	if err != nil || mb != want {
		t.Errorf("mailbox = %+v, %v; want %+v", mb, err, want)
	}
	// No account: LocalDomain says whether the address would have been ours.
	for addr, local := range map[string]bool{"team@example.org": true, "nobody@example.org": true,
		"alice+x@example.org": true, "bob@other.example": false} {
		if mb, err := e.auth.Mailbox(ctx, addr); err != nil || mb.Exists || mb.LocalDomain != local {
			t.Errorf("mailbox(%q) = %+v, %v; want no account, local domain %v", addr, mb, err, local)
		}
	}
	if _, err := e.auth.Mailbox(ctx, "bad address"); !ipc.IsCode(err, "invalid") {
		t.Errorf("mailbox without @: err = %v", err)
	}

	v, err := e.auth.Verify(ctx, auth.VerifyRequest{User: "Alice@Example.org", Password: "plain wooden spoon 19", RemoteAddr: "192.0.2.1"})
	if err != nil || !v.OK || v.Address != "alice@example.org" || v.Throttled {
		t.Errorf("verify = %+v, %v", v, err)
	}
	v, err = e.auth.Verify(ctx, auth.VerifyRequest{User: "alice@example.org", Password: "wrong", RemoteAddr: "192.0.2.1"})
	if err != nil || v.OK || v.Address != "" || v.Throttled {
		t.Errorf("verify wrong = %+v, %v", v, err)
	}
	if strings.Contains(e.logs.String(), "wrong") {
		t.Error("a password reached the logs")
	}
}

// TestThrottling checks authd's answers through its sockets: a throttled login is told
// apart from a wrong password and says how long to wait, a block is logged once, and
// the control socket lists and lifts blocks.
func TestThrottling(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	must(e.a.DB.AddDomain("example.org"))
	must(e.a.DB.AddUser("alice@example.org", "plain wooden spoon 19", 0))
	must(e.a.DB.AddUser("bob@example.org", "plain wooden spoon 19", 0))
	verify := func(user, pw, remote string) auth.VerifyResult {
		t.Helper()
		r, err := e.auth.Verify(ctx, auth.VerifyRequest{User: user, Password: pw, RemoteAddr: remote})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Bob logged in from his phone before.
	if r := verify("bob@example.org", "plain wooden spoon 19", "198.51.100.1"); !r.OK {
		t.Fatalf("bob: %+v", r)
	}
	// Ten wrong passwords from one client, for accounts that exist and some that do not:
	// wrong passwords, not throttled, until the tenth blocks the client.
	for i := range 10 {
		user := []string{"alice@example.org", "bob@example.org", "nobody@example.org"}[i%3]
		if r := verify(user, "guess", "192.0.2.7:4567"); r.OK || r.Throttled {
			t.Fatalf("failure %d: %+v", i+1, r)
		}
	}
	// Now the right password from that client is refused as throttled, with the wait,
	// for an account that exists as for one that does not.
	r := verify("alice@example.org", "plain wooden spoon 19", "192.0.2.7")
	if r.OK || !r.Throttled || r.RetryAfter != 60 {
		t.Errorf("throttled client with the right password got %+v; want throttled for 60s", r)
	}
	if r2 := verify("nobody@example.org", "plain wooden spoon 19", "192.0.2.7"); r2 != r {
		t.Errorf("throttled answer for no account %+v differs from %+v", r2, r)
	}
	e.clock.Add(15 * time.Second)
	if r := verify("alice@example.org", "plain wooden spoon 19", "192.0.2.7"); r.RetryAfter != 45 {
		t.Errorf("15s later: %+v; want 45s to wait", r)
	}
	if r := verify("alice@example.org", "plain wooden spoon 19", "198.51.100.2"); !r.OK {
		t.Errorf("another client got %+v", r)
	}
	if n := strings.Count(e.logs.String(), `msg="login throttled"`); n != 1 {
		t.Errorf("the block was logged %d times; want once:\n%s", n, e.logs.String())
	}

	// mailctl's view: throttle.list shows the block, throttle.lift ends it.
	var list control.ThrottleListResult
	e.call(t, control.ThrottleList, nil, &list)
	if len(list.Blocks) != 1 || list.Blocks[0].Kind != "client" || list.Blocks[0].Client != "192.0.2.7" || list.Blocks[0].Failures != 10 {
		t.Errorf("throttle.list = %+v", list)
	}
	var lift control.ThrottleLiftResult
	e.call(t, control.ThrottleLift, control.ThrottleLiftRequest{Target: "192.0.2.7"}, &lift)
	if len(lift.Lifted) == 0 {
		t.Errorf("throttle.lift = %+v", lift)
	}
	if r := verify("alice@example.org", "plain wooden spoon 19", "192.0.2.7"); !r.OK {
		t.Errorf("after the lift: %+v", r)
	}
	e.call(t, control.ThrottleList, nil, &list)
	if len(list.Blocks) != 0 {
		t.Errorf("throttle.list after the lift = %+v", list)
	}
	e.callErr(t, "invalid", control.ThrottleLift, control.ThrottleLiftRequest{Target: " "})

	// 100 wrong passwords for bob from all over: new clients are throttled, his phone
	// is not.
	for i := range 100 {
		verify("bob@example.org", "guess", fmt.Sprintf("10.%d.%d.1", i/100, i%100))
	}
	if r := verify("bob@example.org", "plain wooden spoon 19", "203.0.113.9"); !r.Throttled {
		t.Errorf("a new client of the attacked account got %+v", r)
	}
	if r := verify("bob@example.org", "plain wooden spoon 19", "198.51.100.1"); !r.OK {
		t.Errorf("bob's phone got %+v", r)
	}
	if strings.Contains(e.logs.String(), "guess") || strings.Contains(e.logs.String(), "pw\"") {
		t.Error("a password reached the logs")
	}
}

func TestDeniedPeer(t *testing.T) {
	e := start(t, true)
	deny := func(ipc.Cred) bool { return false }
	for _, tc := range []struct {
		name string
		srv  *ipc.Server
	}{
		{"private", e.a.PrivateServer(deny)},
		{"control", e.a.ControlServer(deny)},
	} {
		path := filepath.Join(e.dir, tc.name+"-denied")
		ctx, cancel := context.WithCancel(context.Background())
		go tc.srv.Serve(ctx, listen(t, path))
		// The server refuses before reading a request; read its answer on a bare
		// connection (an ipc.Client may instead see its request fail with EPIPE when the
		// refusal and close win the race with its write).
		c, err := ipc.Dial(path)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.ReadResponse(nil)
		if !ipc.IsCode(err, "denied") {
			t.Errorf("%s: err = %v; want denied", tc.name, err)
		}
		c.Close()
		cancel()
	}
	if !strings.Contains(e.logs.String(), "peer refused") {
		t.Error("refusal not logged")
	}
}

// TestShutdown checks that Serve returns once its context ends, even with idle clients
// connected.
func TestShutdown(t *testing.T) {
	dir, err := os.MkdirTemp("", "authd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := userdb.OpenWith(filepath.Join(dir, "users.db"), userdb.Options{Hash: userdb.HashParams{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := &Authd{DB: db, MailRoot: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	private, ctl := listen(t, filepath.Join(dir, "auth")), listen(t, filepath.Join(dir, "ctl"))
	go func() { done <- a.Serve(ctx, private, ctl, nil, nil) }()
	cl := auth.NewClient(filepath.Join(dir, "auth"))
	defer cl.Close()
	if _, err := cl.Resolve(context.Background(), "a@b.c"); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// must stops a test (by panicking, which fails it with a trace) when a setup step
// fails.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestSendAs(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	db := e.a.DB
	must(db.AddDomain("example.org"))
	must(db.AddUser("alice@example.org", "plain wooden spoon 19", 0))
	must(db.AddAlias("team@example.org", []string{"alice@example.org", "x@external.example"}))
	res, err := e.auth.SendAs(ctx, "Alice@example.org")
	if want := []string{"alice@example.org", "team@example.org"}; err != nil || !reflect.DeepEqual(res.Addresses, want) {
		t.Fatalf("sendas = %+v, %v; want %v", res, err, want)
	}
	for addr, want := range map[string]bool{
		"alice@example.org":      true,
		"ALICE+news@Example.ORG": true,
		"team+x@example.org":     true,
		"bob@example.org":        false,
		"alice@example.net":      false,
		"+@example.org":          false,
		"alice":                  false,
	} {
		if got := res.Allows(addr); got != want {
			t.Errorf("Allows(%q) = %v, want %v", addr, got, want)
		}
	}
	if _, err := e.auth.SendAs(ctx, "nobody@example.org"); !ipc.IsCode(err, "notfound") {
		t.Errorf("sendas of no account: err = %v", err)
	}
}

// TestRememberedLoginsSurviveRestart checks that the sites where accounts logged in are
// kept in users.db (once a day per site) and known again to a restarted authd, so that
// an attack right after a restart does not lock the owner's devices out.
func TestRememberedLoginsSurviveRestart(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	must(e.a.DB.AddDomain("example.org"))
	must(e.a.DB.AddUser("bob@example.org", "plain wooden spoon 19", 0))
	login := func() {
		t.Helper()
		r, err := e.auth.Verify(ctx, auth.VerifyRequest{User: "Bob@example.org", Password: "plain wooden spoon 19", RemoteAddr: "198.51.100.1"})
		if err != nil || !r.OK {
			t.Fatalf("bob: %+v, %v", r, err)
		}
	}
	t0 := e.clock.Now()
	login()
	e.clock.Add(time.Hour)
	login() // within the day: not written again
	ls, err := e.a.DB.Logins(time.Time{})
	if want := []userdb.Login{{Account: "bob@example.org", Site: "198.51.100.1", At: t0}}; err != nil || !reflect.DeepEqual(ls, want) {
		t.Fatalf("stored logins = %v, %v; want %v", ls, err, want)
	}
	e.clock.Add(24 * time.Hour)
	login()
	if ls, _ := e.a.DB.Logins(time.Time{}); len(ls) != 1 || !ls[0].At.Equal(e.clock.Now()) {
		t.Errorf("a day later the stored login is %v; want renewed", ls)
	}

	// A restarted authd on the same users.db knows the site.
	th := NewThrottle(LimitsOf(config.Default().Authd))
	th.Now = e.clock.Now
	a2 := &Authd{DB: e.a.DB, Throttle: th, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := a2.LoadLogins(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		th.Fail(newAttempt("bob@example.org", fmt.Sprintf("10.%d.0.1", i)))
	}
	if b, _, _ := th.Check(newAttempt("bob@example.org", "203.0.113.1")); !b {
		t.Error("the account is not blocked for new clients")
	}
	if b, _, known := th.Check(newAttempt("bob@example.org", "198.51.100.1")); b || !known {
		t.Errorf("after a restart bob's phone is blocked %v, known %v", b, known)
	}
	// Logins older than remember_logins are neither loaded nor kept.
	e.clock.Add(31 * 24 * time.Hour)
	th = NewThrottle(LimitsOf(config.Default().Authd))
	th.Now = e.clock.Now
	a3 := &Authd{DB: e.a.DB, Throttle: th, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := a3.LoadLogins(); err != nil {
		t.Fatal(err)
	}
	if _, _, known := th.Check(newAttempt("bob@example.org", "198.51.100.1")); known {
		t.Error("a site 31 days old is known")
	}
	if ls, _ := e.a.DB.Logins(time.Time{}); len(ls) != 0 {
		t.Errorf("old logins kept in users.db: %v", ls)
	}
}

// TestRatesSurviveRestart: the per-account submission counts are authd's and are kept
// in users.db: after a restart (a new Authd on the same database) an account that used
// its hour's messages is still refused, and another account is not.
func TestRatesSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	open := func() *userdb.DB {
		db, err := userdb.OpenWith(path, userdb.Options{Hash: userdb.HashParams{Memory: 64, Time: 1, Threads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	take := func(a *Authd, user string, recipient bool) bool {
		res, err := a.rate(context.Background(), ipc.Cred{}, &auth.RateRequest{User: user, Recipient: recipient})
		if err != nil {
			t.Fatal(err)
		}
		return res.(auth.RateResult).OK
	}
	db := open()
	a := &Authd{DB: db, Rates: ratelimit.NewPersistent(2, 3, time.Hour), Log: slog.New(slog.DiscardHandler)}
	if !take(a, "Bob@Example.test", false) || !take(a, "bob@example.test", false) || !take(a, "bob@example.test", true) {
		t.Fatal("refused within the limits")
	}
	if take(a, "bob@example.test", false) {
		t.Fatal("third message of the hour accepted")
	}
	// Serve stores the counts when it ends; a shutdown is enough.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Serve(ctx, listen(t, filepath.Join(t.TempDir(), "a")), listen(t, filepath.Join(t.TempDir(), "c")), nil, nil)
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = open()
	defer db.Close()
	b := &Authd{DB: db, Rates: ratelimit.NewPersistent(2, 3, time.Hour), Log: slog.New(slog.DiscardHandler)}
	if err := b.LoadRates(); err != nil {
		t.Fatal(err)
	}
	if take(b, "bob@example.test", false) {
		t.Error("after a restart, a third message of the hour accepted")
	}
	if !take(b, "bob@example.test", true) || !take(b, "bob@example.test", true) || take(b, "bob@example.test", true) {
		t.Error("recipients: want two more and then a refusal")
	}
	if !take(b, "alice@example.test", false) {
		t.Error("another account refused")
	}
}

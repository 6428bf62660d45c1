package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/spamcheck"
)

func TestParseEntry(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":          "ip:192.0.2.7",
		"192.0.2.0/24":       "ip:192.0.2.0/24",
		"192.0.2.9/24":       "ip:192.0.2.0/24",
		"2001:DB8::/32":      "ip:2001:db8::/32",
		"Bob@Example.TEST":   "address:bob@example.test",
		"<bob@example.test>": "address:bob@example.test",
		"Example.Test.":      "domain:example.test",
		"xn--bcher-kva.test": "domain:xn--bcher-kva.test",
	} {
		e, err := parseEntry(in, true)
		if err != nil || e.key() != want {
			t.Errorf("%q: %q %v, want %q", in, e.key(), err, want)
		}
	}
	for _, in := range []string{"", "a b@example.test", "@example.test", "bob@", "bob@-x.test", "exa mple.test", "bücher.test",
		"a@b@example.test", "x..test", strings.Repeat("a", 64) + ".test", "bob@example.test\r\nX: y", "[192.0.2.1]", "a;b.test"} {
		if e, err := parseEntry(in, true); err == nil {
			t.Errorf("%q: parsed as %q", in, e.key())
		}
	}
	if _, err := parseEntry("192.0.2.7", false); err == nil {
		t.Error("an IP address on a user's list")
	}
}

// FuzzParseEntry feeds parseEntry what users may send through the web account page: it
// must not panic, and what it accepts is clean and parses again to itself.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{"192.0.2.7", "10.0.0.0/8", "::1", "bob@example.test", "<a@b.test>", "example.test.", "a@b@c", "", " x ", "\x00", "2001:db8::/129"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, ip bool) {
		e, err := parseEntry(s, ip)
		if err != nil {
			return
		}
		if e.Value == "" || strings.ContainsAny(e.Value, " \t\r\n\x00<>") || strings.ToLower(e.Value) != e.Value {
			t.Fatalf("%q: value %q", s, e.Value)
		}
		if e.Kind == kindIP && (!ip || e.net == nil) {
			t.Fatalf("%q: ip entry %+v with ip=%v", s, e, ip)
		}
		again, err := parseEntry(e.Value, ip)
		if err != nil || again.key() != e.key() {
			t.Fatalf("%q: %q parses again as %q %v", s, e.key(), again.key(), err)
		}
	})
}

// listsServer returns spamd's lists on a fresh database, served on a control socket.
func listsServer(t testing.TB, path string) (*senderLists, *ipc.Client, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := openLists(db, localSet{"example.test": true}, log)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "ctl")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	srv := &ipc.Server{Name: "control/spamd"}
	l.register(srv)
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Serve(ctx, ln)
	cl := ipc.NewClient(sock)
	t.Cleanup(func() { cl.Close(); cancel(); srv.Shutdown(context.Background()); db.Close() })
	return l, cl, db
}

// TestListOps checks the ops of control/spamd that mailctl and the account page call:
// entries are added, moved between block and allow, listed, removed, kept across a
// restart; bad entries and users are refused.
func TestListOps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spamd.db")
	_, cl, db := listsServer(t, path)
	call := func(op string, req any) (*control.SpamListsResult, error) {
		var res control.SpamListsResult
		_, err := cl.Call(context.Background(), op, req, &res)
		return &res, err
	}
	mustCall := func(op string, req any) *control.SpamListsResult {
		t.Helper()
		res, err := call(op, req)
		if err != nil {
			t.Fatalf("%s %+v: %v", op, req, err)
		}
		return res
	}
	mustCall(control.SpamListAdd, control.SpamListAddRequest{Action: "block", Entries: []string{"192.0.2.0/24", "Spam.Test", "x@bad.test"}, Subdomains: true})
	mustCall(control.SpamListAdd, control.SpamListAddRequest{Action: "allow", Entries: []string{"x@bad.test"}}) // moves
	mustCall(control.SpamListAdd, control.SpamListAddRequest{User: "Demo@Example.test", Action: "block", Entries: []string{"pest@other.test"}})
	for _, bad := range []any{
		control.SpamListAddRequest{Action: "maybe", Entries: []string{"a.test"}},
		control.SpamListAddRequest{Action: "block", Entries: []string{"not an entry"}},
		control.SpamListAddRequest{Action: "block"},
		control.SpamListAddRequest{User: "demo@example.test", Action: "block", Entries: []string{"192.0.2.1"}},
		control.SpamListAddRequest{User: "someone@elsewhere.test", Action: "block", Entries: []string{"a.test"}},
		control.SpamListAddRequest{User: "not-an-address", Action: "block", Entries: []string{"a.test"}},
	} {
		if _, err := call(control.SpamListAdd, bad); !ipc.IsCode(err, "invalid") {
			t.Errorf("%+v: %v, want an invalid error", bad, err)
		}
	}
	global := mustCall(control.SpamLists, control.SpamListsRequest{})
	var got []string
	for _, e := range global.Entries {
		got = append(got, e.Action+" "+e.Kind+":"+e.Value)
		if e.Kind == kindDomain && !e.Subdomains || e.Kind != kindDomain && e.Subdomains || e.Added.IsZero() {
			t.Errorf("entry %+v", e)
		}
	}
	if strings.Join(got, ",") != "block ip:192.0.2.0/24,block domain:spam.test,allow address:x@bad.test" {
		t.Errorf("global lists: %v", got)
	}
	all := mustCall(control.SpamLists, control.SpamListsRequest{All: true})
	if len(all.Entries) != 4 || all.Entries[3].User != "demo@example.test" || all.Entries[3].Value != "pest@other.test" {
		t.Errorf("all lists: %+v", all.Entries)
	}
	res := mustCall(control.SpamListRemove, control.SpamListRemoveRequest{Entries: []string{"192.0.2.9/24", "never.test"}})
	if len(res.Entries) != 1 || res.Entries[0].Value != "192.0.2.0/24" || len(res.NotListed) != 1 || res.NotListed[0] != "never.test" {
		t.Errorf("remove: %+v", res)
	}

	// Reopened, as after a restart.
	db.Close()
	l2, _, _ := listsServer(t, path)
	ids := senderIdentities(net.ParseIP("192.0.2.1"), "a@mail.spam.test", nil)
	if m := l2.read(ids, nil).block; len(m) != 1 || m[0].entry.Value != "spam.test" || m[0].id.kind != "mailfrom" {
		t.Errorf("after reopening, the block list matches %+v", m)
	}
	if m := l2.read(senderIdentities(net.ParseIP("192.0.2.1"), "", []string{"pest@other.test"}), []string{"Demo@example.test"}).users; len(m) != 1 || len(m[0].block) != 1 || m[0].rcpt != "Demo@example.test" {
		t.Errorf("after reopening, the user's list matches %+v", m)
	}
}

// TestListMatch checks how entries match identities: networks, exact domains, domains
// with subdomains, addresses.
func TestListMatch(t *testing.T) {
	sc := &scope{entries: map[string]*listEntry{}}
	for _, s := range []struct {
		entry string
		sub   bool
	}{{"10.0.0.0/8", false}, {"2001:db8::/32", false}, {"exact.test", false}, {"wide.test", true}, {"who@any.test", false}} {
		e, err := parseEntry(s.entry, true)
		if err != nil {
			t.Fatal(err)
		}
		e.Action, e.Subdomains = control.SpamBlock, s.sub
		sc.put(&e)
	}
	for _, tc := range []struct {
		ip, from string
		want     bool
	}{
		{"10.1.2.3", "", true},
		{"2001:db8::5", "", true},
		{"11.0.0.1", "", false},
		{"11.0.0.1", "a@exact.test", true},
		{"11.0.0.1", "a@sub.exact.test", false},
		{"11.0.0.1", "a@wide.test", true},
		{"11.0.0.1", "a@deep.sub.wide.test", true},
		{"11.0.0.1", "a@notwide.test", false},
		{"11.0.0.1", "who@any.test", true},
		{"11.0.0.1", "other@any.test", false},
	} {
		m := sc.match(senderIdentities(net.ParseIP(tc.ip), "", []string{tc.from}), control.SpamBlock)
		if (len(m) > 0) != tc.want {
			t.Errorf("%s %s: %+v", tc.ip, tc.from, m)
		}
		if m := sc.match(senderIdentities(net.ParseIP(tc.ip), "", []string{tc.from}), control.SpamAllow); len(m) > 0 {
			t.Errorf("%s %s matched as allowed: %+v", tc.ip, tc.from, m)
		}
	}
	sc.remove("ip:10.0.0.0/8")
	if m := sc.match(senderIdentities(net.ParseIP("10.1.2.3"), "", nil), control.SpamBlock); len(m) != 0 {
		t.Errorf("removed network still matches: %+v", m)
	}
}

// TestListVerdicts checks what the lists do to verdicts: the administrator's block list
// refuses; the allow list overrides the score, DNS lists and classifier only for an
// authenticated sender, and never DMARC's refusal of mail forged in our own name; a
// user's block list puts that recipient's copy into Junk, a user's allow list keeps it
// out. A check takes the lists' lock once, whatever the number of recipients.
func TestListVerdicts(t *testing.T) {
	c, srv, _ := newChecker(t)
	l, _, _ := listsServer(t, filepath.Join(t.TempDir(), "spamd.db"))
	c.Lists = l
	ctx := context.Background()
	add := func(user, action string, entries ...string) {
		t.Helper()
		if _, err := l.add(ctx, control.SpamListAddRequest{User: user, Action: action, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Add(`9.113.0.203.bl.test. 300 IN A 127.0.0.2`); err != nil {
		t.Fatal(err)
	}
	c.DNSLists = dnsListsOf(config.Spamd{DNSBL: []config.DNSBL{{Zone: "bl.test", Reject: true}}})
	run := func(ip, from, header string, rcpts ...string) *spamcheck.Verdict {
		if len(rcpts) == 0 {
			rcpts = []string{"a@example.test"}
		}
		msg := "From: " + header + "\r\nSubject: hi\r\n\r\nhi\r\n"
		req := &spamcheck.Request{QueueID: "Q1", From: from, Recipients: rcpts, ClientAddr: ip, Helo: "client.test", Size: int64(len(msg))}
		return c.Check(ctx, req, strings.NewReader(msg))
	}

	add("", "block", "198.51.100.0/24", "blocked.test", "pest@soft.test")
	for _, tc := range []struct{ ip, from, header, text string }{
		{"198.51.100.7", "x@pass.test", "x@pass.test", "Client address 198.51.100.7"},
		{"203.0.113.5", "x@sub.blocked.test", "x@soft.test", ""}, // no subdomains: not blocked
		{"203.0.113.5", "x@soft.test", "x@blocked.test", "Sender x@blocked.test"},
		{"203.0.113.5", "pest@soft.test", "y@soft.test", "Sender pest@soft.test"},
	} {
		v := run(tc.ip, tc.from, tc.header)
		if tc.text == "" {
			if v.Action == spamcheck.Reject {
				t.Errorf("%+v: refused: %+v", tc, v)
			}
			continue
		}
		if v.Action != spamcheck.Reject || v.Code != "5.7.1" || !strings.HasPrefix(v.Text, tc.text) || !strings.HasPrefix(v.Reasons[0], "BLOCKLIST(") {
			t.Errorf("%+v: %+v", tc, v)
		}
	}

	// Allowed by address: with SPF passing for it, the DNSBL listing and a spammy
	// classifier do not count; forged (SPF not passing), they do.
	c.Classifier = fixedClassifier(1)
	add("", "allow", "friend@pass.test", "friend@soft.test")
	if v := run("192.0.2.1", "friend@pass.test", "friend@pass.test"); v.Action != spamcheck.Accept || !strings.Contains(strings.Join(v.Reasons, " "), "ALLOWLIST(address:friend@pass.test)") ||
		strings.Contains(strings.Join(v.Reasons, " "), "BAYES") || !strings.Contains(v.AuthResults, "spf=pass") {
		t.Errorf("allowed and authenticated: %+v", v)
	}
	if v := run("203.0.113.9", "friend@pass.test", "friend@pass.test"); v.Action != spamcheck.Reject {
		t.Errorf("allowed address, forged from a listed client: %+v", v)
	}
	if v := run("203.0.113.5", "friend@soft.test", "friend@soft.test"); v.Action != spamcheck.Junk || strings.Contains(strings.Join(v.Reasons, " "), "ALLOWLIST") {
		t.Errorf("allowed address, SPF softfail: %+v", v)
	}
	// Allowed by client address: the DNSBL is not even asked.
	add("", "allow", "203.0.113.9")
	if v := run("203.0.113.9", "x@soft.test", "x@soft.test"); v.Action != spamcheck.Accept || strings.Contains(strings.Join(v.Reasons, " "), "DNSBL") {
		t.Errorf("allowed client: %+v", v)
	}
	// An allowed domain of ours does not let forged mail in our name past DMARC.
	add("", "allow", "example.test", "192.0.2.77")
	if v := run("192.0.2.77", "demo@example.test", "demo@example.test"); v.Action != spamcheck.Reject || !strings.Contains(v.Text, "example.test") {
		t.Errorf("allow-listed own domain, forged: %+v", v)
	}

	// Users' lists: demo blocks soft.test (Junk for demo only); carol allows
	// friend2@pass.test (INBOX for carol although the score says Junk).
	c.Classifier = fixedClassifier(0.5)
	add("demo@example.test", "block", "soft.test")
	add("carol@example.test", "allow", "friend2@pass.test", "x@soft.test")
	reads := l.reads.Load()
	v := run("203.0.113.5", "x@soft.test", "x@soft.test", "demo@example.test", "bob@example.test", "carol@example.test")
	if v.Action != spamcheck.Accept || strings.Join(v.Junk, ",") != "demo@example.test" || v.Inbox != nil || !strings.Contains(strings.Join(v.Reasons, " "), "USER_BLOCKLIST") {
		t.Errorf("a user's block list: %+v", v)
	}
	// The administrator's lists and three recipients' (two with lists of their own):
	// the lists are read once.
	if n := l.reads.Load() - reads; n != 1 {
		t.Errorf("a check of a message to three recipients took the lists' lock %d times, want 1", n)
	}
	c.Classifier, c.Policy.ClassifierSpam = fixedClassifier(1), 10
	v = run("192.0.2.1", "friend2@pass.test", "friend2@pass.test", "demo@example.test", "carol@example.test")
	if v.Action != spamcheck.Junk || strings.Join(v.Inbox, ",") != "carol@example.test" {
		t.Errorf("a user's allow list: %+v", v)
	}
	// Spam enough to be refused, but carol wants it: delivered, into Junk for others.
	c.Policy.RejectScore = 2
	v = run("192.0.2.1", "friend2@pass.test", "friend2@pass.test", "demo@example.test", "carol@example.test")
	if v.Action != spamcheck.Junk || strings.Join(v.Inbox, ",") != "carol@example.test" {
		t.Errorf("a user's allow list, over the reject score: %+v", v)
	}
	// Not authenticated (softfail): carol's allow entry does not count.
	v = run("203.0.113.5", "x@soft.test", "x@soft.test", "carol@example.test")
	if v.Action != spamcheck.Reject || v.Inbox != nil {
		t.Errorf("a user's allow list, sender not authenticated: %+v", v)
	}
}

// TestOpPeers checks that private/spamd lets each peer call only its own op: with the
// learn op admitting nobody here, a learn request is denied while check is served.
func TestOpPeers(t *testing.T) {
	c, _, _ := newChecker(t)
	d := &Spamd{Checker: c, Log: c.Log}
	sock := filepath.Join(t.TempDir(), "spamd")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	srv := d.Server(func(ipc.Cred) bool { return true }, func(ipc.Cred) bool { return false })
	go srv.Serve(t.Context(), ln)
	defer srv.Shutdown(context.Background())
	cl := ipc.NewClient(sock)
	defer cl.Close()
	if _, err := cl.Call(t.Context(), spamcheck.OpLearn, spamcheck.LearnRequest{User: "a@example.test", Spam: true, Size: 1}, nil); !ipc.IsCode(err, "denied") {
		t.Errorf("learn by a peer that may only check: %v, want denied", err)
	}
	// check is served (and refuses the request without a descriptor as invalid).
	if _, err := cl.Call(t.Context(), spamcheck.OpCheck, spamcheck.Request{QueueID: "Q", ClientAddr: "192.0.2.1", Recipients: []string{"a@example.test"}}, nil); !ipc.IsCode(err, "invalid") {
		t.Errorf("check: %v, want invalid (no descriptor)", err)
	}
	srv2 := d.Server(func(ipc.Cred) bool { return false }, func(ipc.Cred) bool { return true })
	sock2 := filepath.Join(t.TempDir(), "spamd")
	ln2, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock2, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	go srv2.Serve(t.Context(), ln2)
	defer srv2.Shutdown(context.Background())
	cl2 := ipc.NewClient(sock2)
	defer cl2.Close()
	if _, err := cl2.Call(t.Context(), spamcheck.OpCheck, spamcheck.Request{QueueID: "Q", ClientAddr: "192.0.2.1", Recipients: []string{"a@example.test"}}, nil); !ipc.IsCode(err, "denied") {
		t.Errorf("check by a peer that may only learn: %v, want denied", err)
	}
}

// TestAccountListOps checks the list ops of private/spamd that the web account page
// calls: only for the peers admitted, only for a named user's own lists.
func TestAccountListOps(t *testing.T) {
	l, _, _ := listsServer(t, filepath.Join(t.TempDir(), "spamd.db"))
	if _, err := l.add(context.Background(), control.SpamListAddRequest{Action: "block", Entries: []string{"192.0.2.1"}}); err != nil {
		t.Fatal(err)
	}
	serve := func(admit bool) *ipc.Client {
		sock := filepath.Join(t.TempDir(), "spamd")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		srv := &ipc.Server{Name: "spamd"}
		l.registerAccount(srv, func(ipc.Cred) bool { return admit })
		go srv.Serve(t.Context(), ln)
		t.Cleanup(func() { srv.Shutdown(context.Background()) })
		cl := ipc.NewClient(sock)
		t.Cleanup(cl.Close)
		return cl
	}
	cl := serve(true)
	var res control.SpamListsResult
	if _, err := cl.Call(t.Context(), control.SpamListAdd, control.SpamListAddRequest{User: "demo@example.test", Action: "allow", Entries: []string{"friend@a.test"}}, &res); err != nil || len(res.Entries) != 1 {
		t.Fatalf("a user's own entry: %+v %v", res, err)
	}
	for op, req := range map[string]any{
		control.SpamListAdd:    control.SpamListAddRequest{Action: "block", Entries: []string{"x.test"}},
		control.SpamListRemove: control.SpamListRemoveRequest{Entries: []string{"192.0.2.1"}},
		control.SpamLists:      control.SpamListsRequest{All: true},
	} {
		if _, err := cl.Call(t.Context(), op, req, nil); !ipc.IsCode(err, "invalid") {
			t.Errorf("%s without a user: %v, want invalid", op, err)
		}
	}
	res = control.SpamListsResult{}
	if _, err := cl.Call(t.Context(), control.SpamLists, control.SpamListsRequest{User: "demo@example.test", All: true}, &res); err != nil ||
		len(res.Entries) != 1 || res.Entries[0].Value != "friend@a.test" {
		t.Errorf("a user's lists, All asked for: %+v %v", res, err)
	}
	if _, err := serve(false).Call(t.Context(), control.SpamLists, control.SpamListsRequest{User: "demo@example.test"}, nil); !ipc.IsCode(err, "denied") {
		t.Errorf("a peer not admitted: %v, want denied", err)
	}
}

// BenchmarkCheckLists checks a message to ten recipients who each have lists of their
// own, with the administrator's lists and a DNS list configured, and reports how many
// times a check took the lists' lock for reading (rlocks/op).
func BenchmarkCheckLists(b *testing.B) {
	c, _, _ := newChecker(b)
	l, _, _ := listsServer(b, filepath.Join(b.TempDir(), "spamd.db"))
	c.Lists = l
	c.DNSLists = dnsListsOf(config.Spamd{DNSBL: []config.DNSBL{{Zone: "bl.test", Reject: true}}})
	ctx := context.Background()
	add := func(user, action string, entries ...string) {
		b.Helper()
		if _, err := l.add(ctx, control.SpamListAddRequest{User: user, Action: action, Entries: entries}); err != nil {
			b.Fatal(err)
		}
	}
	add("", "block", "198.51.100.0/24", "blocked.test")
	add("", "allow", "friend@pass.test")
	var rcpts []string
	for i := range 10 {
		u := fmt.Sprintf("u%d@example.test", i)
		rcpts = append(rcpts, u)
		add(u, "block", "soft.test")
		add(u, "allow", "friend@pass.test")
	}
	msg := "From: friend@pass.test\r\nSubject: hi\r\n\r\nhi\r\n"
	req := &spamcheck.Request{QueueID: "Q1", From: "friend@pass.test", Recipients: rcpts, ClientAddr: "192.0.2.1", Helo: "client.test", Size: int64(len(msg))}
	if v := c.Check(ctx, req, strings.NewReader(msg)); v.Action != spamcheck.Accept || !strings.Contains(strings.Join(v.Reasons, " "), "USER_ALLOWLIST") {
		b.Fatalf("verdict %+v", v)
	}
	before := l.reads.Load()
	b.ResetTimer()
	for range b.N {
		c.Check(ctx, req, strings.NewReader(msg))
	}
	b.ReportMetric(float64(l.reads.Load()-before)/float64(b.N), "rlocks/op")
}

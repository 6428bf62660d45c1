package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/pkg/audit"
	"postern/pkg/auth"
	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/mtasts"
	"postern/pkg/stats"
)

// accountOps adds to the fake authd what the admin panel and the account page ask on
// private/auth: account (alice is an admin when fa.admin), verify (alice's password is
// "pw") and resolve (example.test is ours).
func accountOps(as *ipc.Server, fa *fakeAuthd) {
	as.Handle(auth.OpAccount, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var r auth.AccountRequest
		json.Unmarshal(body, &r)
		fa.mu.Lock()
		defer fa.mu.Unlock()
		return auth.AccountResult{Exists: r.Address == "alice@example.test", Address: r.Address, Admin: fa.admin && r.Address == "alice@example.test"}, nil
	})
	as.Handle(auth.OpVerify, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var r auth.VerifyRequest
		json.Unmarshal(body, &r)
		return auth.VerifyResult{OK: r.User == "alice@example.test" && r.Password == "pw", Address: r.User}, nil
	})
	as.Handle(auth.OpResolve, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var r auth.ResolveRequest
		json.Unmarshal(body, &r)
		return auth.ResolveResult{Local: strings.HasSuffix(r.Address, "@example.test")}, nil
	})
}

// fakeControl serves control/authd and control/qmgr, recording the requests and
// answering from replies.
type fakeControl struct {
	mu      sync.Mutex
	calls   []string // "daemon op body"
	replies map[string]any
}

func newFakeControl(t *testing.T, s *Server) *fakeControl {
	t.Helper()
	fc := &fakeControl{replies: map[string]any{}}
	os.MkdirAll(filepath.Join(s.cfg.SpoolDir, "control"), 0o700)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for d, ops := range map[string][]string{
		"authd": {control.DomainAdd, control.DomainDel, control.DomainList, control.UserAdd, control.UserDel, control.UserList,
			control.UserPasswd, control.UserQuota, control.UserDisable, control.UserAdmin, control.AliasAdd, control.AliasDel,
			control.AliasList, control.AuditList, control.AppPasswordAdd, control.AppPasswordList, control.AppPasswordRevoke},
		"qmgr": {control.QueueList, control.QueueShow, control.QueueFlush, control.QueueHold, control.QueueRelease,
			control.QueueDelete, control.Stats, control.AuditList},
	} {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.cfg.ControlSocket(d), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		srv := &ipc.Server{Name: d, Logger: s.log}
		for _, op := range ops {
			srv.Handle(op, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
				fc.mu.Lock()
				defer fc.mu.Unlock()
				fc.calls = append(fc.calls, d+" "+op+" "+string(body))
				if r, ok := fc.replies[d+" "+op]; ok {
					if err, ok := r.(error); ok {
						return nil, err
					}
					return r, nil
				}
				return struct{}{}, nil
			})
		}
		go srv.Serve(ctx, l)
	}
	return fc
}

func (fc *fakeControl) reply(key string, v any) {
	fc.mu.Lock()
	fc.replies[key] = v
	fc.mu.Unlock()
}

// taken returns the calls made since the last time, and forgets them.
func (fc *fakeControl) taken() []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c := fc.calls
	fc.calls = nil
	return c
}

func TestAdminPanel(t *testing.T) {
	s, fa := newTestServer(t)
	fc := newFakeControl(t, s)
	c := login(t, s)
	sess := s.sessions.get(c.Value)

	// Not an admin: 403 on every admin URL, and no control call.
	for _, u := range []string{"/admin", "/admin/queue?id=X"} {
		if w := do(s, "GET", u, nil, c); w.Code != http.StatusForbidden {
			t.Errorf("GET %s as a non-admin: %d", u, w.Code)
		}
	}
	if w := do(s, "POST", "/admin/do", url.Values{"csrf": {sess.csrf}, "op": {"user.del"}, "address": {"bob@example.test"}}, c); w.Code != http.StatusForbidden {
		t.Errorf("POST /admin/do as a non-admin: %d", w.Code)
	}
	if calls := fc.taken(); len(calls) != 0 {
		t.Fatalf("control calls for a non-admin: %q", calls)
	}

	fa.mu.Lock()
	fa.admin = true
	fa.mu.Unlock()
	t0 := time.Now().Truncate(time.Hour)
	fc.reply("authd "+control.DomainList, control.DomainListResult{Domains: []control.Domain{{Name: "example.test", Users: 2}}})
	fc.reply("authd "+control.UserList, control.UserListResult{Users: []control.User{{Address: "alice@example.test", Admin: true}, {Address: "bob@example.test", Quota: 1 << 30, Disabled: true}}})
	fc.reply("authd "+control.AliasList, control.AliasListResult{Aliases: []control.Alias{{Address: "team@example.test", Targets: []string{"alice@example.test", "bob@example.test"}}}})
	fc.reply("qmgr "+control.QueueList, control.QueueListResult{Messages: []control.QueueEntry{{ID: "1K21ZMTZ2BW0000Q", State: "deferred", Size: 2048, From: "x@far.test",
		Recipients: []control.QueueRecipient{{Addr: "bob@example.test", Reason: "<script>local down</script>"}}}}})
	fc.reply("qmgr "+control.Stats, control.StatsResult{
		Hours: []stats.Period{{Start: t0.Add(-time.Hour), Counts: stats.Counts{Received: 7, Delivered: 6}}, {Start: t0, Counts: stats.Counts{Received: 3, Rejected: 11}}},
		Days:  []stats.Period{{Start: t0, Counts: stats.Counts{Received: 10, Delivered: 6, Rejected: 11}}},
	})
	fc.reply("authd "+control.AuditList, control.AuditResult{Entries: []audit.Entry{{Seq: 1, Time: t0, Daemon: "authd", User: "root", Op: "user.add", Target: "bob@example.test"}}})
	w := do(s, "GET", "/admin", nil, c)
	if w.Code != 200 {
		t.Fatalf("GET /admin: %d %s", w.Code, w.Body)
	}
	page := w.Body.String()
	for _, want := range []string{
		"example.test", "bob@example.test", "1024.0 MB", "disabled", "team@example.test", "alice@example.test, bob@example.test",
		`<a href="/admin/queue?id=1K21ZMTZ2BW0000Q">`, "&lt;script&gt;local down&lt;/script&gt;", "<svg", "<polyline", `stroke="#0b57d0"`,
		"received 10", "rejected 11", "user.add", "root",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the admin page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>local") {
		t.Error("a queue reason reached the page unescaped")
	}
	// The chart is inline SVG: no inline script or style that the CSP would block.
	if strings.Contains(page, "style=") || strings.Contains(page, "<script>") {
		t.Error("the admin page has inline style or script")
	}
	fc.taken()

	// Every change goes to the daemon with the web admin and the browser's address.
	for _, c2 := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"op": {"domain.add"}, "name": {"new.test"}}, `authd domain.add {"actor":"alice@example.test","remote_ip":"192.0.2.7","name":"new.test"}`},
		{url.Values{"op": {"user.add"}, "address": {"carol@example.test"}, "password": {"s3cret"}, "quota": {"2G"}}, `authd user.add {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"carol@example.test","password":"s3cret","quota":2147483648}`},
		{url.Values{"op": {"user.add"}, "address": {"dave@example.test"}, "password": {"x"}}, `authd user.add {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"dave@example.test","password":"x","quota":-1}`},
		{url.Values{"op": {"user.passwd"}, "address": {"bob@example.test"}, "password": {"new"}}, `authd user.passwd {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"bob@example.test","password":"new"}`},
		{url.Values{"op": {"user.quota"}, "address": {"bob@example.test"}, "quota": {"500M"}}, `authd user.quota {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"bob@example.test","quota":524288000}`},
		{url.Values{"op": {"user.enable"}, "address": {"bob@example.test"}}, `authd user.disable {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"bob@example.test","disabled":false}`},
		{url.Values{"op": {"user.admin"}, "address": {"bob@example.test"}}, `authd user.admin {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"bob@example.test","admin":true}`},
		{url.Values{"op": {"user.del"}, "address": {"bob@example.test"}}, `authd user.del {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"bob@example.test"}`},
		{url.Values{"op": {"alias.add"}, "address": {"sales@example.test"}, "targets": {"a@example.test, b@example.test"}}, `authd alias.add {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"sales@example.test","targets":["a@example.test","b@example.test"]}`},
		{url.Values{"op": {"alias.del"}, "address": {"sales@example.test"}}, `authd alias.del {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"sales@example.test","targets":null}`},
		{url.Values{"op": {"queue.hold"}, "id": {"1k21zmtz2bw0000q"}}, `qmgr queue.hold {"actor":"alice@example.test","remote_ip":"192.0.2.7","ids":["1K21ZMTZ2BW0000Q"]}`},
		{url.Values{"op": {"queue.flush"}}, `qmgr queue.flush {"actor":"alice@example.test","remote_ip":"192.0.2.7"}`},
		{url.Values{"op": {"domain.del"}, "name": {"new.test"}, "force": {"1"}}, `authd domain.del {"actor":"alice@example.test","remote_ip":"192.0.2.7","name":"new.test","force":true}`},
	} {
		c2.form.Set("csrf", sess.csrf)
		w := do(s, "POST", "/admin/do", c2.form, c)
		calls := fc.taken()
		// The admin check asks authd's private socket; the change is the one control call.
		if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/admin?notice=") || len(calls) != 1 || calls[0] != c2.want {
			t.Errorf("%s: %d %s, calls %q; want %q", c2.form.Get("op"), w.Code, w.Header().Get("Location"), calls, c2.want)
		}
	}
	// A refusal of the daemon is shown; a hold without a message asks nothing.
	fc.reply("authd "+control.UserDel, ipc.Errorf("notfound", "account nobody@example.test: not found"))
	w = do(s, "POST", "/admin/do", url.Values{"csrf": {sess.csrf}, "op": {"user.del"}, "address": {"nobody@example.test"}}, c)
	if loc := w.Header().Get("Location"); !strings.Contains(loc, "error=") || !strings.Contains(loc, "not+found") {
		t.Errorf("refused deletion went to %q", loc)
	}
	do(s, "POST", "/admin/do", url.Values{"csrf": {sess.csrf}, "op": {"queue.hold"}}, c)
	if w := do(s, "POST", "/admin/do", url.Values{"csrf": {sess.csrf}, "op": {"user.unadmin"}, "address": {"alice@example.test"}}, c); !strings.Contains(w.Header().Get("Location"), "error=") {
		t.Errorf("an admin dropped their own rights: %s", w.Header().Get("Location"))
	}
	if calls := fc.taken(); len(calls) != 1 { // the user.del only
		t.Errorf("calls %q", calls)
	}
	// Without the CSRF token nothing is done.
	if w := do(s, "POST", "/admin/do", url.Values{"op": {"domain.add"}, "name": {"x.test"}}, c); w.Code != http.StatusForbidden || len(fc.taken()) != 0 {
		t.Errorf("a change without the CSRF token: %d", w.Code)
	}
	if w := do(s, "POST", "/admin/do", url.Values{"csrf": {sess.csrf}, "op": {"rm -rf"}}, c); w.Code != http.StatusBadRequest {
		t.Errorf("unknown op: %d", w.Code)
	}

	fc.reply("qmgr "+control.QueueShow, control.QueueShowResult{Entry: control.QueueEntry{ID: "1K21ZMTZ2BW0000Q", State: "deferred", From: "x@far.test"}, Headers: "Subject: <b>hi</b>\r\n"})
	w = do(s, "GET", "/admin/queue?id=1k21zmtz2bw0000q", nil, c)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "Subject: &lt;b&gt;hi&lt;/b&gt;") {
		t.Errorf("queue show page: %d\n%s", w.Code, w.Body)
	}
	if calls := fc.taken(); len(calls) != 1 || calls[0] != `qmgr queue.show {"ids":["1K21ZMTZ2BW0000Q"]}` {
		t.Errorf("queue show asked %q", calls)
	}
}

func TestAccountPage(t *testing.T) {
	s, _ := newTestServer(t)
	fc := newFakeControl(t, s)
	c := login(t, s)
	sess := s.sessions.get(c.Value)

	fc.reply("authd "+control.AppPasswordList, control.AppPasswordListResult{AppPasswords: []control.AppPassword{{Name: "laptop", Created: time.Now()}}})
	w := do(s, "GET", "/account", nil, c)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "laptop") || !strings.Contains(w.Body.String(), "/account/mobileconfig") {
		t.Fatalf("account page: %d\n%s", w.Code, w.Body)
	}
	if calls := fc.taken(); len(calls) != 1 || calls[0] != `authd apppassword.list {"address":"alice@example.test"}` {
		t.Errorf("account page asked %q", calls)
	}

	// A new app password is shown once, on the answer to the form.
	fc.reply("authd "+control.AppPasswordAdd, control.AppPassword{Name: "phone", Password: "abcd-efgh-ijkl-mnop"})
	w = do(s, "POST", "/account/apppassword", url.Values{"csrf": {sess.csrf}, "op": {"add"}, "name": {"phone"}}, c)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "abcd-efgh-ijkl-mnop") {
		t.Errorf("app password add: %d\n%s", w.Code, w.Body)
	}
	if calls := fc.taken(); len(calls) < 1 || calls[0] != `authd apppassword.add {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"alice@example.test","name":"phone"}` {
		t.Errorf("app password add asked %q", calls)
	}
	// Only the user's own: the address is the session's, whatever the form says.
	w = do(s, "POST", "/account/apppassword", url.Values{"csrf": {sess.csrf}, "op": {"revoke"}, "name": {"phone"}, "address": {"bob@example.test"}}, c)
	if calls := fc.taken(); w.Code != http.StatusSeeOther || len(calls) != 1 || calls[0] != `authd apppassword.revoke {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"alice@example.test","name":"phone"}` {
		t.Errorf("app password revoke: %d, asked %q", w.Code, calls)
	}

	// Password change: the current password is checked first.
	w = do(s, "POST", "/account/password", url.Values{"csrf": {sess.csrf}, "current": {"wrong"}, "password": {"n3w"}, "again": {"n3w"}}, c)
	if calls := fc.taken(); w.Code != http.StatusForbidden || len(calls) != 1 { // the page's list only
		t.Errorf("password change with a wrong current password: %d, asked %q", w.Code, calls)
	}
	w = do(s, "POST", "/account/password", url.Values{"csrf": {sess.csrf}, "current": {"pw"}, "password": {"n3w"}, "again": {"other"}}, c)
	if w.Code != http.StatusBadRequest {
		t.Errorf("password change with differing copies: %d", w.Code)
	}
	fc.taken()
	w = do(s, "POST", "/account/password", url.Values{"csrf": {sess.csrf}, "current": {"pw"}, "password": {"n3w"}, "again": {"n3w"}}, c)
	if calls := fc.taken(); w.Code != http.StatusSeeOther || len(calls) != 1 || calls[0] != `authd user.passwd {"actor":"alice@example.test","remote_ip":"192.0.2.7","address":"alice@example.test","password":"n3w"}` {
		t.Errorf("password change: %d, asked %q", w.Code, calls)
	}

	// The Apple profile of the account.
	w = do(s, "GET", "/account/mobileconfig", nil, c)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-apple-aspen-config" || !strings.Contains(w.Body.String(), "<string>alice@example.test</string>") {
		t.Errorf("mobileconfig: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	// Logged out: no page.
	if w := do(s, "GET", "/account", nil); w.Code != http.StatusSeeOther {
		t.Errorf("account page without a session: %d", w.Code)
	}
}

// TestPublicHandlers: the MTA-STS policy and the client settings are served without a
// session, for our domains only.
func TestPublicHandlers(t *testing.T) {
	s, _ := newTestServer(t)
	s.cfg.Hostname = "mail.example.test"
	s.handler = s.routes()
	get := func(method, host, target, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "https://"+host+target, strings.NewReader(body))
		r.Host = host
		w := httptest.NewRecorder()
		s.handler.ServeHTTP(w, r)
		return w
	}
	w := get("GET", "mta-sts.example.test", mtasts.PolicyPath, "")
	if want, _ := mtasts.Published("mail.example.test"); w.Code != 200 || w.Body.String() != want {
		t.Errorf("MTA-STS policy: %d %q", w.Code, w.Body)
	}
	if w.Header().Get("Strict-Transport-Security") == "" {
		t.Error("the policy lacks the security headers")
	}
	if w := get("GET", "mta-sts.other.test", mtasts.PolicyPath, ""); w.Code != 404 {
		t.Errorf("MTA-STS policy of another domain: %d", w.Code)
	}
	w = get("GET", "autoconfig.example.test", "/mail/config-v1.1.xml?emailaddress=alice%40example.test", "")
	var cfg struct {
		Provider struct {
			Domain string `xml:"domain"`
		} `xml:"emailProvider"`
	}
	if w.Code != 200 || xml.Unmarshal(w.Body.Bytes(), &cfg) != nil || cfg.Provider.Domain != "example.test" || !strings.Contains(w.Body.String(), "<hostname>mail.example.test</hostname>") {
		t.Errorf("autoconfig: %d\n%s", w.Code, w.Body)
	}
	if w := get("GET", "example.test", "/.well-known/autoconfig/mail/config-v1.1.xml", ""); w.Code != 200 {
		t.Errorf("well-known autoconfig: %d", w.Code)
	}
	req := `<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@example.test</EMailAddress></Request></Autodiscover>`
	for _, p := range []string{"/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"} {
		if w := get("POST", "autodiscover.example.test", p, req); w.Code != 200 || !strings.Contains(w.Body.String(), "<LoginName>alice@example.test</LoginName>") {
			t.Errorf("autodiscover %s: %d\n%s", p, w.Code, w.Body)
		}
	}
}

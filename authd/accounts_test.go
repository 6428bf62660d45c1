package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"postern/pkg/auth"
	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/pwstrength"
)

func TestAdminFlagAndAccountOp(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	e.call(t, control.UserAdd, control.UserRequest{Address: "alice@example.org", Password: "quiet violet harbour 7"}, nil)
	if r, err := e.auth.Account(ctx, "Alice@Example.org"); err != nil || !r.Exists || r.Admin || r.Address != "alice@example.org" {
		t.Fatalf("account before user.admin = %+v, %v", r, err)
	}
	e.call(t, control.UserAdmin, control.UserAdminRequest{Address: "alice@example.org", Admin: true}, nil)
	if r, err := e.auth.Account(ctx, "alice@example.org"); err != nil || !r.Admin {
		t.Fatalf("account after user.admin = %+v, %v", r, err)
	}
	var ul control.UserListResult
	e.call(t, control.UserList, control.ListRequest{}, &ul)
	if len(ul.Users) != 1 || !ul.Users[0].Admin {
		t.Errorf("user.list = %+v", ul)
	}
	e.call(t, control.UserAdmin, control.UserAdminRequest{Address: "alice@example.org", Admin: false}, nil)
	if r, _ := e.auth.Account(ctx, "alice@example.org"); r.Admin {
		t.Error("user.admin --off left the flag")
	}
	e.callErr(t, "notfound", control.UserAdmin, control.UserAdminRequest{Address: "bob@example.org", Admin: true})
	for _, addr := range []string{"bob@example.org", "no address", ""} {
		if r, err := e.auth.Account(ctx, addr); err != nil || r.Exists || r.Admin {
			t.Errorf("account(%q) = %+v, %v", addr, r, err)
		}
	}
}

func TestAppPasswordOps(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	e.call(t, control.UserAdd, control.UserRequest{Address: "alice@example.org", Password: "quiet violet harbour 7"}, nil)
	var ap control.AppPassword
	e.call(t, control.AppPasswordAdd, control.AppPasswordRequest{Address: "alice@example.org", Name: "phone"}, &ap)
	if ap.Name != "phone" || len(ap.Password) != 19 {
		t.Fatalf("apppassword.add = %+v", ap)
	}
	e.callErr(t, "exists", control.AppPasswordAdd, control.AppPasswordRequest{Address: "alice@example.org", Name: "phone"})
	e.callErr(t, "notfound", control.AppPasswordAdd, control.AppPasswordRequest{Address: "bob@example.org", Name: "phone"})

	v, err := e.auth.Verify(ctx, auth.VerifyRequest{User: "alice@example.org", Password: ap.Password, RemoteAddr: "192.0.2.1"})
	if err != nil || !v.OK || v.Address != "alice@example.org" || v.AppPassword != "phone" {
		t.Fatalf("verify with the app password = %+v, %v", v, err)
	}
	if v, _ := e.auth.Verify(ctx, auth.VerifyRequest{User: "alice@example.org", Password: "quiet violet harbour 7", RemoteAddr: "192.0.2.1"}); !v.OK || v.AppPassword != "" {
		t.Errorf("verify with the password = %+v", v)
	}
	var list control.AppPasswordListResult
	e.call(t, control.AppPasswordList, control.AppPasswordRequest{Address: "alice@example.org"}, &list)
	if len(list.AppPasswords) != 1 || list.AppPasswords[0].Name != "phone" || list.AppPasswords[0].Password != "" || list.AppPasswords[0].LastUsed.IsZero() {
		t.Errorf("apppassword.list = %+v", list)
	}
	e.call(t, control.AppPasswordRevoke, control.AppPasswordRequest{Address: "alice@example.org", Name: "phone"}, nil)
	if v, _ := e.auth.Verify(ctx, auth.VerifyRequest{User: "alice@example.org", Password: ap.Password, RemoteAddr: "192.0.2.1"}); v.OK {
		t.Error("a revoked app password still verifies")
	}
	e.callErr(t, "notfound", control.AppPasswordRevoke, control.AppPasswordRequest{Address: "alice@example.org", Name: "phone"})
	if strings.Contains(e.logs.String(), ap.Password) {
		t.Error("the log holds an app password")
	}
}

func TestAuditLog(t *testing.T) {
	e := start(t, true)
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	e.call(t, control.UserAdd, control.UserRequest{Address: "alice@example.org", Password: "quiet violet harbour 7",
		Origin: control.Origin{Actor: "admin@example.org", RemoteIP: "198.51.100.7"}}, nil)
	e.call(t, control.UserPasswd, control.UserRequest{Address: "alice@example.org", Password: "other maple kettle 3"}, nil)
	e.call(t, control.UserAdmin, control.UserAdminRequest{Address: "alice@example.org", Admin: true}, nil)
	e.call(t, control.AliasAdd, control.Alias{Address: "sales@example.org", Targets: []string{"alice@example.org"}}, nil)
	e.call(t, control.AliasDel, control.Alias{Address: "sales@example.org"}, nil)
	e.call(t, control.AppPasswordAdd, control.AppPasswordRequest{Address: "alice@example.org", Name: "phone"}, nil)
	e.call(t, control.AppPasswordRevoke, control.AppPasswordRequest{Address: "alice@example.org", Name: "phone"}, nil)
	e.call(t, control.ThrottleLift, control.ThrottleLiftRequest{Target: "192.0.2.1"}, nil)
	e.call(t, control.UserDel, control.UserRequest{Address: "alice@example.org"}, nil)
	e.call(t, control.DomainDel, control.DomainRequest{Name: "example.org"}, nil)
	// Refused changes and reads are not changes.
	e.callErr(t, "notfound", control.UserDel, control.UserRequest{Address: "alice@example.org"})
	e.call(t, control.UserList, control.ListRequest{}, nil)

	var res control.AuditResult
	e.call(t, control.AuditList, control.AuditRequest{}, &res)
	want := []string{control.DomainAdd, control.UserAdd, control.UserPasswd, control.UserAdmin, control.AliasAdd, control.AliasDel,
		control.AppPasswordAdd, control.AppPasswordRevoke, control.ThrottleLift, control.UserDel, control.DomainDel}
	if len(res.Entries) != len(want) {
		t.Fatalf("audit.list has %d entries; want %d: %+v", len(res.Entries), len(want), res.Entries)
	}
	for i, en := range res.Entries {
		if en.Op != want[i] || en.Seq != uint64(i+1) || en.Daemon != "authd" || en.UID != os.Getuid() || en.Time.IsZero() {
			t.Errorf("entry %d = %+v; want op %s", i, en, want[i])
		}
	}
	if u := res.Entries[1]; u.Target != "alice@example.org" || u.Web != "admin@example.org" || u.IP != "198.51.100.7" {
		t.Errorf("user.add entry = %+v", u)
	}
	if en := res.Entries[6]; en.Detail != "phone" {
		t.Errorf("apppassword.add entry = %+v", en)
	}
	var last control.AuditResult
	e.call(t, control.AuditList, control.AuditRequest{Limit: 2}, &last)
	if len(last.Entries) != 2 || last.Entries[1].Op != control.DomainDel {
		t.Errorf("audit.list limit 2 = %+v", last.Entries)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `msg=audit seq=2 op=user.add target=alice@example.org who="admin@example.org (web, via`) || !strings.Contains(logs, "ip=198.51.100.7") {
		t.Errorf("the log lacks the audit line of user.add:\n%s", logs)
	}
}

func TestQuotaAndDisable(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	e.call(t, control.UserAdd, control.UserRequest{Address: "alice@example.org", Password: "quiet violet harbour 7", Quota: 1 << 20}, nil)
	e.call(t, control.UserQuota, control.UserRequest{Address: "alice@example.org", Quota: 5 << 20}, nil)
	if mb, err := e.auth.Mailbox(ctx, "alice@example.org"); err != nil || mb.Quota != 5<<20 {
		t.Errorf("quota after user.quota = %+v, %v", mb, err)
	}
	e.call(t, control.UserQuota, control.UserRequest{Address: "alice@example.org"}, nil) // unlimited
	if mb, _ := e.auth.Mailbox(ctx, "alice@example.org"); mb.Quota != 0 {
		t.Errorf("quota after user.quota 0 = %d", mb.Quota)
	}
	e.callErr(t, "invalid", control.UserQuota, control.UserRequest{Address: "alice@example.org", Quota: -1})
	e.callErr(t, "notfound", control.UserQuota, control.UserRequest{Address: "bob@example.org", Quota: 1})

	e.call(t, control.UserDisable, control.UserDisableRequest{Address: "alice@example.org", Disabled: true}, nil)
	if v, _ := e.auth.Verify(ctx, auth.VerifyRequest{User: "alice@example.org", Password: "quiet violet harbour 7", RemoteAddr: "192.0.2.1"}); v.OK {
		t.Error("a disabled account logs in")
	}
	if r, _ := e.auth.Account(ctx, "alice@example.org"); !r.Disabled {
		t.Errorf("account = %+v", r)
	}
	var ul control.UserListResult
	e.call(t, control.UserList, control.ListRequest{}, &ul)
	if len(ul.Users) != 1 || !ul.Users[0].Disabled {
		t.Errorf("user.list = %+v", ul)
	}
	e.call(t, control.UserDisable, control.UserDisableRequest{Address: "alice@example.org", Disabled: false}, nil)
	if v, _ := e.auth.Verify(ctx, auth.VerifyRequest{User: "alice@example.org", Password: "quiet violet harbour 7", RemoteAddr: "192.0.2.1"}); !v.OK {
		t.Error("an enabled account does not log in")
	}
	var res control.AuditResult
	e.call(t, control.AuditList, control.AuditRequest{Limit: 4}, &res)
	var got []string
	for _, en := range res.Entries {
		got = append(got, en.Op+" "+en.Detail)
	}
	if strings.Join(got, ", ") != "user.quota quota 5242880, user.quota quota 0, user.disable disabled, user.disable enabled" {
		t.Errorf("audit = %q", got)
	}
}

func TestLocalDomain(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	for d, want := range map[string]bool{"example.org": true, "Example.ORG": true, "other.org": false, "": false, "a@b": false, "bad..name": false} {
		if got, err := e.auth.LocalDomain(ctx, d); err != nil || got != want {
			t.Errorf("LocalDomain(%q) = %v, %v; want %v", d, got, err, want)
		}
	}
}

// TestWebSessionsAndAccounts: an app password does not open a web session, and
// disabling or deleting an account ends its web sessions.
func TestWebSessionsAndAccounts(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	e.webPeer.Store(true)
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	e.call(t, control.UserAdd, control.UserRequest{Address: "alice@example.org", Password: "quiet violet harbour 7"}, nil)
	var ap control.AppPassword
	e.call(t, control.AppPasswordAdd, control.AppPasswordRequest{Address: "alice@example.org", Name: "phone"}, &ap)
	if r, err := e.auth.WebLogin(ctx, auth.WebLoginRequest{User: "alice@example.org", Password: ap.Password, RemoteAddr: "192.0.2.1"}); err != nil || r.OK || r.Token != "" {
		t.Errorf("web login with an app password = %+v, %v", r, err)
	}
	login := func() string {
		t.Helper()
		r, err := e.auth.WebLogin(ctx, auth.WebLoginRequest{User: "alice@example.org", Password: "quiet violet harbour 7", RemoteAddr: "192.0.2.1"})
		if err != nil || !r.OK {
			t.Fatalf("web login: %+v, %v", r, err)
		}
		return r.Token
	}
	live := func(tok string) bool {
		r, err := e.auth.WebCheck(ctx, "alice@example.org", tok)
		return err == nil && r.OK
	}
	tok := login()
	e.call(t, control.UserDisable, control.UserDisableRequest{Address: "alice@example.org", Disabled: true}, nil)
	if live(tok) {
		t.Error("a disabled account's web session goes on")
	}
	if r, _ := e.auth.WebLogin(ctx, auth.WebLoginRequest{User: "alice@example.org", Password: "quiet violet harbour 7", RemoteAddr: "192.0.2.1"}); r.OK {
		t.Error("a disabled account opens a web session")
	}
	e.call(t, control.UserDisable, control.UserDisableRequest{Address: "alice@example.org", Disabled: false}, nil)
	tok = login()
	e.call(t, control.UserDel, control.UserRequest{Address: "alice@example.org"}, nil)
	if live(tok) {
		t.Error("a deleted account's web session goes on")
	}
}

// TestPasswordPolicy: user.add and user.passwd (mailctl, the admin panel and the account
// page all use them) refuse a weak password with an answer that says why, and change
// nothing; a passphrase passes; a policy of length 4 and score 0 lets a short one by.
func TestPasswordPolicy(t *testing.T) {
	e := start(t, true)
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	for pw, want := range map[string]string{
		"abc":              "the password is too short: 3 characters, at least 10 are needed",
		"password123":      "the password is too easy to guess",
		"AliceExample.org": "made of your own address",
	} {
		_, err := e.ctl.Call(context.Background(), control.UserAdd, control.UserRequest{Address: "alice@example.org", Password: pw}, nil)
		if !ipc.IsCode(err, "invalid") || !strings.Contains(err.Error(), want) {
			t.Errorf("user.add with %q: %v, want invalid with %q", pw, err, want)
		}
	}
	var list control.UserListResult
	e.call(t, control.UserList, control.ListRequest{}, &list)
	if len(list.Users) != 0 {
		t.Fatalf("refused passwords made accounts: %+v", list.Users)
	}
	const good = "Correct horse, battery staple 42!"
	e.call(t, control.UserAdd, control.UserRequest{Address: "alice@example.org", Password: good}, nil)
	_, err := e.ctl.Call(context.Background(), control.UserPasswd, control.UserRequest{Address: "alice@example.org", Password: "password123"}, nil)
	if !ipc.IsCode(err, "invalid") || !strings.Contains(err.Error(), "it is a common password") {
		t.Errorf("user.passwd with password123: %v", err)
	}
	ctx := context.Background()
	if v, _ := e.auth.Verify(ctx, auth.VerifyRequest{User: "alice@example.org", Password: good, RemoteAddr: "192.0.2.1"}); !v.OK {
		t.Error("a refused password change changed the password")
	}
	e.a.Passwords = pwstrength.Policy{MinLength: 4}
	e.call(t, control.UserPasswd, control.UserRequest{Address: "alice@example.org", Password: "abcd"}, nil)
}

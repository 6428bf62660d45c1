package main

import (
	"context"
	"testing"
	"time"

	"postern/pkg/auth"
	"postern/pkg/control"
	"postern/pkg/ipc"
)

// TestWebSessions: a token from web.login is good for its user alone, until it idles out,
// outlives the session, or is revoked; web.login is refused to a peer that is not httpd.
func TestWebSessions(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	e.call(t, control.UserAdd, control.UserRequest{Address: "alice@example.org", Password: "quiet violet harbour 7"}, nil)
	e.call(t, control.UserAdd, control.UserRequest{Address: "bob@example.org", Password: "plain wooden spoon 19"}, nil)

	if _, err := e.auth.WebLogin(ctx, auth.WebLoginRequest{User: "alice@example.org", Password: "quiet violet harbour 7"}); !ipc.IsCode(err, "denied") {
		t.Fatalf("web.login from a peer that is not httpd: err = %v; want denied", err)
	}
	e.webPeer.Store(true)
	if r, err := e.auth.WebLogin(ctx, auth.WebLoginRequest{User: "alice@example.org", Password: "wrong", RemoteAddr: "192.0.2.1"}); err != nil || r.OK || r.Token != "" {
		t.Fatalf("a wrong password: %+v, %v", r, err)
	}
	login := func() string {
		t.Helper()
		r, err := e.auth.WebLogin(ctx, auth.WebLoginRequest{User: "Alice@Example.org", Password: "quiet violet harbour 7", RemoteAddr: "192.0.2.1"})
		if err != nil || !r.OK || r.Token == "" || r.Address != "alice@example.org" {
			t.Fatalf("web.login: %+v, %v", r, err)
		}
		return r.Token
	}
	tok := login()
	check := func(user, token string) bool {
		t.Helper()
		r, err := e.auth.WebCheck(ctx, user, token)
		if err != nil {
			t.Fatal(err)
		}
		return r.OK
	}
	if !check("alice@EXAMPLE.org", tok) {
		t.Error("the token is refused to its user")
	}
	if check("bob@example.org", tok) {
		t.Error("alice's token is accepted for bob")
	}
	if check("alice@example.org", tok+"x") || check("alice@example.org", "") {
		t.Error("a wrong token is accepted")
	}
	// Used within the idle timeout, it lives on; idle longer, it is gone.
	e.clock.Add(20 * time.Minute)
	if !check("alice@example.org", tok) {
		t.Error("the token died within the idle timeout")
	}
	e.clock.Add(20 * time.Minute)
	if !check("alice@example.org", tok) {
		t.Error("a use did not restart the idle timer")
	}
	e.clock.Add(31 * time.Minute)
	if check("alice@example.org", tok) {
		t.Error("the token outlived the idle timeout")
	}
	// However busy, it ends with the session's lifetime.
	tok = login()
	for range 25 {
		e.clock.Add(29 * time.Minute)
		check("alice@example.org", tok)
	}
	if check("alice@example.org", tok) {
		t.Error("the token outlived session_lifetime")
	}
	// Logout revokes one token; logout everywhere every token of the account.
	t1, t2 := login(), login()
	e.webPeer.Store(false)
	if _, err := e.auth.WebLogout(ctx, t1, true); !ipc.IsCode(err, "denied") {
		t.Errorf("web.logout from a peer that is not httpd: err = %v", err)
	}
	e.webPeer.Store(true)
	if n, err := e.auth.WebLogout(ctx, t1, false); err != nil || n != 1 || check("alice@example.org", t1) || !check("alice@example.org", t2) {
		t.Errorf("logout: revoked %d, %v; or the wrong token went", n, err)
	}
	t3 := login()
	if n, err := e.auth.WebLogout(ctx, t3, true); err != nil || n != 2 || check("alice@example.org", t2) {
		t.Errorf("logout everywhere: revoked %d, %v", n, err)
	}
}

func TestParseWebResponse(t *testing.T) {
	u, tok, err := auth.ParseWebResponse(auth.WebResponse("a@b.example", "tok"))
	if err != nil || u != "a@b.example" || tok != "tok" {
		t.Errorf("round trip: %q %q %v", u, tok, err)
	}
	for _, bad := range []string{"", "a@b", "\x00tok", "a@b\x00", "a\x00b\x00c"} {
		if _, _, err := auth.ParseWebResponse([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestWebImages: web.images keeps a user's image senders in users.db, for httpd alone
// and only with a live web session token of that user.
func TestWebImages(t *testing.T) {
	e := start(t, true)
	ctx := context.Background()
	e.call(t, control.DomainAdd, control.DomainRequest{Name: "example.org"}, nil)
	e.call(t, control.UserAdd, control.UserRequest{Address: "alice@example.org", Password: "quiet violet harbour 7"}, nil)
	e.call(t, control.UserAdd, control.UserRequest{Address: "bob@example.org", Password: "plain wooden spoon 19"}, nil)
	e.webPeer.Store(true)
	r, err := e.auth.WebLogin(ctx, auth.WebLoginRequest{User: "alice@example.org", Password: "quiet violet harbour 7"})
	if err != nil || !r.OK {
		t.Fatalf("web.login: %+v, %v", r, err)
	}
	tok := r.Token
	got, err := e.auth.WebImages(ctx, auth.WebImagesRequest{User: "alice@example.org", Token: tok, Allow: "News@Shop.example"})
	if err != nil || len(got) != 1 || got[0] != "news@shop.example" {
		t.Fatalf("allow: %q, %v", got, err)
	}
	if got, err := e.auth.WebImages(ctx, auth.WebImagesRequest{User: "alice@example.org", Token: tok}); err != nil || len(got) != 1 {
		t.Errorf("list: %q, %v", got, err)
	}
	// alice's token is no key to bob's preferences, nor is a wrong token to hers.
	if _, err := e.auth.WebImages(ctx, auth.WebImagesRequest{User: "bob@example.org", Token: tok, Allow: "x@other.test"}); !ipc.IsCode(err, "denied") {
		t.Errorf("bob's senders with alice's token: %v, want denied", err)
	}
	if _, err := e.auth.WebImages(ctx, auth.WebImagesRequest{User: "alice@example.org", Token: tok + "x"}); !ipc.IsCode(err, "denied") {
		t.Errorf("a wrong token: %v, want denied", err)
	}
	if _, err := e.auth.WebImages(ctx, auth.WebImagesRequest{User: "alice@example.org", Token: tok, Allow: "not an address"}); !ipc.IsCode(err, "invalid") {
		t.Errorf("a bad sender: %v, want invalid", err)
	}
	if s, _ := e.a.DB.ImageSenders("bob@example.org"); len(s) != 0 {
		t.Errorf("bob has senders: %q", s)
	}
	// Only httpd may ask.
	e.webPeer.Store(false)
	if _, err := e.auth.WebImages(ctx, auth.WebImagesRequest{User: "alice@example.org", Token: tok}); !ipc.IsCode(err, "denied") {
		t.Errorf("a peer that is not httpd: %v, want denied", err)
	}
	e.webPeer.Store(true)
	if got, err := e.auth.WebImages(ctx, auth.WebImagesRequest{User: "alice@example.org", Token: tok, Forget: "news@shop.example"}); err != nil || len(got) != 0 {
		t.Errorf("forget: %q, %v", got, err)
	}
}

package test

import (
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAccountDelete: a user deletes their account on the account page. A wrong password,
// a missing confirmation or a missing CSRF token change nothing; the last administrator
// may not delete themselves; with the password, the mail of every folder is gone from
// the Maildir, IMAP login fails, the session has ended, and `mailctl audit` shows the
// deletion by the user from 127.0.0.1.
func TestAccountDelete(t *testing.T) {
	in := NewInstance(t, "")
	const bob = "bob@example.test"
	pass := in.addUser(t, bob)
	in.sendMail(t, "alice@other.test", bob, testMessage("First", "one\r\n"))
	in.sendMail(t, "alice@other.test", bob, testMessage("Second", "two\r\n"))
	in.WaitMessages(bob, 2, 20*time.Second)
	tg := imapTargetOf(t, in)
	c := tg.loginAs(t, bob, pass, nil)
	if err := c.Create("Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appendMsg(t, c, "Projects", testMessage("Filed", "three\r\n"), nil)
	appendMsg(t, c, "Sent", testMessage("Sent one", "four\r\n"), nil)
	c.Logout().Wait()
	c.Close()
	if n := countMailFiles(t, in.Maildir(bob)); n != 4 {
		t.Fatalf("%d message files in the Maildir before, want 4", n)
	}

	// The last administrator (the demo account) may not delete itself.
	admin := in.newWebClient(t)
	if code := admin.login("demo@example.test", in.Password); code != http.StatusSeeOther {
		t.Fatalf("demo login: %d", code)
	}
	_, page := admin.get("/account")
	if resp, body := admin.post("/account/delete", url.Values{"csrf": {admin.csrf(page)}, "confirm": {"demo@example.test"}, "current": {in.Password}}); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "last administrator") {
		t.Errorf("the last administrator deleting itself: %d", resp.StatusCode)
	}

	w := in.newWebClient(t)
	if code := w.login(bob, pass); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	_, page = w.get("/account")
	if !strings.Contains(page, `action="/account/delete"`) {
		t.Fatalf("the account page has no delete form:\n%s", page)
	}
	csrf := w.csrf(page)
	for _, c := range []struct {
		form url.Values
		code int
	}{
		{url.Values{"confirm": {bob}, "current": {pass}}, http.StatusForbidden},                        // no CSRF token
		{url.Values{"csrf": {csrf}, "confirm": {bob}, "current": {"wrong"}}, http.StatusForbidden},     // wrong password
		{url.Values{"csrf": {csrf}, "confirm": {"someone"}, "current": {pass}}, http.StatusBadRequest}, // not confirmed
	} {
		if resp, _ := w.post("/account/delete", c.form); resp.StatusCode != c.code {
			t.Errorf("delete with %v: %d, want %d", c.form, resp.StatusCode, c.code)
		}
	}
	if n := countMailFiles(t, in.Maildir(bob)); n != 4 {
		t.Fatalf("a refused deletion removed mail: %d files left", n)
	}

	resp, _ := w.post("/account/delete", url.Values{"csrf": {csrf}, "confirm": {bob}, "current": {pass}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("delete: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), tail(in.Log(), 30))
	}
	if n := countMailFiles(t, in.Maildir(bob)); n != 0 {
		t.Errorf("%d message files left in the Maildir after the deletion", n)
	}
	if resp, _ := w.get("/account"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("the session outlives the account: %d", resp.StatusCode)
	}
	// imapd dropped its remembered login when authd deleted the account: the password
	// opens nothing at once, from the address that just logged in too.
	c = tg.dial(t, nil)
	if err := c.Login(bob, pass).Wait(); err == nil {
		t.Errorf("IMAP login of the deleted account succeeds\n%s", tail(in.Log(), 30))
	}
	c.Close()
	if out := in.Mailctl("", "audit"); !regexp.MustCompile(`bob@example\.test \(web, via \S+\) +127\.0\.0\.1 +user\.del +bob@example\.test`).MatchString(out) {
		t.Errorf("mailctl audit lacks the deletion:\n%s", out)
	}
}

// countMailFiles counts the message files in the cur/ and new/ of a Maildir and its
// folders.
func countMailFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b := filepath.Base(filepath.Dir(p)); b == "cur" || b == "new" {
				n++
			}
		}
		return nil
	})
	return n
}

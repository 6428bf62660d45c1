package test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestAdminPanelBrowser: in headless Chromium the demo administrator creates an account
// with the admin panel's form; the new user then logs in over IMAP with the go-imap v2
// client, `mailctl audit` names the creation (by the administrator, through the web, from
// 127.0.0.1), and the new user, who is no administrator, gets 403 on the admin URLs.
func TestAdminPanelBrowser(t *testing.T) {
	b := newBrowser(t)
	in := NewInstance(t, "")
	const demo, carol, carolPass = "demo@example.test", "carol@example.test", "carol-Pw-7kq2-long"
	web := "https://" + in.HTTPSAddr()
	in.newWebClient(t) // waits for httpd

	b.navigate(web + "/login")
	b.waitFor("the login form", `document.getElementById("login")`)
	b.eval(fmt.Sprintf(`document.querySelector("input[name=user]").value = %q;
		document.querySelector("input[name=password]").value = %q;
		document.getElementById("login").submit(); true`, demo, in.Password))
	b.waitFor("the message list", `location.pathname === "/mail"`)
	b.navigate(web + "/admin")
	b.waitFor("the admin panel's create-user form", `document.querySelector('form input[name=op][value="user.add"]')`)
	b.eval(fmt.Sprintf(`(() => {
		const f = document.querySelector('form input[name=op][value="user.add"]').form;
		f.querySelector("input[name=address]").value = %q;
		f.querySelector("input[name=password]").value = %q;
		f.querySelector("button[type=submit]").click();
		return true })()`, carol, carolPass))
	b.waitFor("the panel's notice of the creation", fmt.Sprintf(`location.pathname === "/admin" && document.body.innerText.includes("Account %s created.")`, carol))
	b.waitFor("the new account in the panel's list", fmt.Sprintf(`document.getElementById("users").innerText.includes(%q)`, carol))

	c := imapTargetOf(t, in).loginAs(t, carol, carolPass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT INBOX as the new user: %v", err)
	}
	c.Logout().Wait()
	c.Close()

	if out := in.Mailctl("", "audit"); !regexp.MustCompile(`demo@example\.test \(web, via \S+\) +127\.0\.0\.1 +user\.add +carol@example\.test`).MatchString(out) {
		t.Errorf("mailctl audit lacks the creation in the panel:\n%s", out)
	}

	// The new user is no administrator.
	w := in.newWebClient(t)
	if code := w.login(carol, carolPass); code != http.StatusSeeOther {
		t.Fatalf("the new user's web login: %d", code)
	}
	for _, path := range []string{"/admin", "/admin/queue?id=X"} {
		if resp, _ := w.get(path); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s as a non-admin: %d, want 403", path, resp.StatusCode)
		}
	}
	_, page := w.get("/account")
	resp, _ := w.post("/admin/do", url.Values{"csrf": {w.csrf(page)}, "op": {"user.add"}, "address": {"mallory@example.test"}, "password": {"mallory-Pw-7kq2"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /admin/do as a non-admin: %d, want 403", resp.StatusCode)
	}
	if out := in.Mailctl("", "user", "list"); strings.Contains(out, "mallory") {
		t.Errorf("a non-admin created an account:\n%s", out)
	}
}

package test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestPasswordStrength: authd refuses weak passwords on every way of setting one, with
// an answer that says why: mailctl user add and user passwd (abc, too short;
// password123, a common password), and the account page; a passphrase is accepted.
func TestPasswordStrength(t *testing.T) {
	in := NewInstance(t, "")
	for pw, want := range map[string]string{
		"abc":         "the password is too short: 3 characters, at least 10 are needed",
		"password123": "the password is too easy to guess",
	} {
		out, err := in.MailctlErr(pw+"\n", "user", "add", "weak@example.test", "--password-stdin")
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("mailctl user add with %q: %v\n%s\nwant %q", pw, err, out, want)
		}
		if strings.Contains(out, pw) {
			t.Errorf("the refusal repeats the password %q:\n%s", pw, out)
		}
	}
	if out, _ := in.MailctlErr("password123\n", "user", "add", "weak@example.test", "--password-stdin"); !strings.Contains(out, "it is a common password") {
		t.Errorf("the refusal of password123 does not say it is a common password:\n%s", out)
	}
	if out := in.Mailctl("", "user", "list"); strings.Contains(out, "weak@example.test") {
		t.Fatalf("a refused password made the account:\n%s", out)
	}
	const good = "Correct horse, battery staple 42!"
	in.Mailctl(good+"\n", "user", "add", "strong@example.test", "--password-stdin")
	if out, err := in.MailctlErr("qwertyuiop\n", "user", "passwd", "strong@example.test", "--password-stdin"); err == nil || !strings.Contains(out, "too easy to guess") {
		t.Errorf("mailctl user passwd with qwertyuiop: %v\n%s", err, out)
	}

	// The account page shows authd's answer.
	w := in.newWebClient(t)
	if code := w.login("strong@example.test", good); code != http.StatusSeeOther {
		t.Fatalf("web login: %d", code)
	}
	_, page := w.get("/account")
	resp, page := w.post("/account/password", url.Values{"csrf": {w.csrf(page)}, "current": {good}, "password": {"iloveyou2024"}, "again": {"iloveyou2024"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(html.UnescapeString(page), "The password was not changed: the password is too easy to guess") {
		t.Errorf("account page with a weak password: %d\n%s", resp.StatusCode, page)
	}
	tg := imapTargetOf(t, in)
	tg.loginAs(t, "strong@example.test", good, nil).Logout().Wait()
}

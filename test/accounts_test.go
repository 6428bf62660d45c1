package test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAppPasswordsIMAPAndSMTP logs in over IMAP and SMTP AUTH with an app password made
// by mailctl, and is refused with it once it is revoked; and with anything while the
// account is disabled.
func TestAppPasswordsIMAPAndSMTP(t *testing.T) {
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	other := in.addUser(t, "other@example.test")

	out := in.Mailctl("", "app-password", "add", "demo@example.test", "phone")
	m := regexp.MustCompile(`(?m)^([a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no app password in the output of app-password add:\n%s", out)
	}
	app := m[1]
	if out, err := in.MailctlErr("", "app-password", "add", "demo@example.test", "phone"); err == nil {
		t.Errorf("a second app password named phone:\n%s", out)
	}

	// IMAP LOGIN with it, as typed with or without the dashes.
	for _, pw := range []string{app, strings.ToUpper(strings.ReplaceAll(app, "-", ""))} {
		c := tg.loginAs(t, "demo@example.test", pw, nil)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatalf("SELECT after a login with the app password: %v", err)
		}
		c.Logout().Wait()
	}
	// SMTP AUTH with it: the message is sent and arrives.
	msg := "From: demo@example.test\r\nTo: other@example.test\r\nSubject: from the phone\r\n\r\nsent with an app password\r\n"
	if err := in.submit("demo@example.test", app, "demo@example.test", []string{"other@example.test"}, msg); err != nil {
		t.Fatalf("submission with the app password: %v", err)
	}
	got := in.WaitMessages("other@example.test", 1, 10*time.Second)
	if !strings.Contains(string(got[0]), "sent with an app password") {
		t.Errorf("delivered message:\n%s", got[0])
	}
	// An app password is the account's only: not another account's.
	if err := in.submit("other@example.test", app, "other@example.test", []string{"demo@example.test"}, msg); err == nil {
		t.Error("demo's app password logged in as other@")
	}
	if out := in.Mailctl("", "app-password", "list", "demo@example.test"); !regexp.MustCompile(`(?m)^phone +\d{4}-\d\d-\d\d \d\d:\d\d +\d{4}-\d\d-\d\d$`).MatchString(out) {
		t.Errorf("app-password list after use:\n%s", out)
	}

	in.Mailctl("", "app-password", "revoke", "demo@example.test", "phone")
	if out := in.Mailctl("", "app-password", "list", "demo@example.test"); !strings.Contains(out, "no app passwords") {
		t.Errorf("app-password list after revoke:\n%s", out)
	}
	c := tg.dial(t, nil)
	if err := c.Login("demo@example.test", app).Wait(); err == nil {
		t.Error("IMAP LOGIN with a revoked app password succeeded")
	}
	if err := in.submit("demo@example.test", app, "demo@example.test", []string{"other@example.test"}, msg); err == nil || !strings.Contains(err.Error(), "535") {
		t.Errorf("SMTP AUTH with a revoked app password: %v", err)
	}
	// The account's own passwords are untouched.
	tg.loginAs(t, "demo@example.test", in.Password, nil).Logout().Wait()
	reply := "From: other@example.test\r\nTo: demo@example.test\r\nSubject: re\r\n\r\nwith a password\r\n"
	if err := in.submit("other@example.test", other, "other@example.test", []string{"demo@example.test"}, reply); err != nil {
		t.Errorf("submission with other@'s password: %v", err)
	}
	// A disabled account logs in with nothing; mail still reaches it.
	in.Mailctl("", "user", "disable", "other@example.test")
	if err := in.submit("other@example.test", other, "other@example.test", []string{"demo@example.test"}, reply); err == nil || !strings.Contains(err.Error(), "535") {
		t.Errorf("SMTP AUTH of a disabled account: %v", err)
	}
	if c := tg.dial(t, nil); c.Login("other@example.test", other).Wait() == nil {
		t.Error("IMAP LOGIN of a disabled account succeeded")
	}
	send(t, in, "x@far.test", "other@example.test", "<to-disabled@t>")
	in.WaitMessages("other@example.test", 2, 10*time.Second)
	in.Mailctl("", "user", "disable", "other@example.test", "--off")
	tg.loginAs(t, "other@example.test", other, nil).Logout().Wait()

	if strings.Contains(in.Log(), app) || strings.Contains(in.Log(), strings.ReplaceAll(app, "-", "")) {
		t.Error("the log holds the app password")
	}
}

// TestAdminAuditAndStats checks, on real daemons, that the demo account is an
// administrator, that authd's and qmgr's changes land in the audit log with the Unix
// user who made them, and that the delivery statistics count what happened and survive
// a restart.
func TestAdminAuditAndStats(t *testing.T) {
	in := NewInstance(t, "")
	if out := in.Mailctl("", "user", "list"); !regexp.MustCompile(`(?m)^demo@example\.test .* admin$`).MatchString(out) {
		t.Errorf("the dev demo account is not an administrator:\n%s", out)
	}
	in.addUser(t, "bob@example.test")
	in.Mailctl("", "user", "admin", "bob@example.test")
	in.Mailctl("", "user", "admin", "bob@example.test", "--off")
	in.Mailctl("", "alias", "add", "team@example.test", "bob@example.test")

	// Mail: one delivered, one refused at RCPT, one that waits in the queue while local
	// is off, held and deleted.
	send(t, in, "x@far.test", "bob@example.test", "<one@t>")
	in.WaitMessages("bob@example.test", 1, 10*time.Second)
	c, _ := in.dialRaw(t, in.SMTPAddr(), false)
	c.expect("MAIL FROM:<x@far.test>", "250")
	c.expect("RCPT TO:<nobody@example.test>", "550")
	c.expect("QUIT", "221")
	in.SetConfig("services.local", "enable", "false")
	in.Reload()
	in.WaitFor("local to stop", 10*time.Second, func() bool { _, ok := in.DaemonPIDs()["local"]; return !ok })
	id := send(t, in, "x@far.test", "bob@example.test", "<two@t>")
	in.WaitFor("the message in deferred/", 15*time.Second, func() bool {
		_, err := os.Stat(in.Cfg.SpoolDir + "/deferred/" + id)
		return err == nil
	})
	in.Mailctl("", "queue", "hold", id)
	in.Mailctl("", "queue", "delete", id)

	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	out := in.Mailctl("", "audit")
	for _, want := range []string{
		`user\.add +bob@example\.test +quota 0`, `user\.admin +bob@example\.test +admin`, `user\.admin +bob@example\.test +not admin`,
		`alias\.add +team@example\.test +→ bob@example\.test`, `queue\.hold +` + id + ` +1 message`, `queue\.delete +` + id + ` +1 message`,
	} {
		if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +` + regexp.QuoteMeta(me.Username) + ` +- +` + want + `$`).MatchString(out) {
			t.Errorf("audit lacks %q by %s:\n%s", want, me.Username, out)
		}
	}
	if !strings.Contains(in.Log(), "msg=audit") {
		t.Error("no audit line in the log")
	}

	// smtpd reports its refusals every 10 seconds: wait for them.
	var total []int
	in.WaitFor("the statistics", 30*time.Second, func() bool {
		total = statsTotal(t, in.Mailctl("", "stats"))
		return total[4] >= 1
	})
	// received: one@t and two@t; delivered: one@t; deferred: two@t at least once;
	// rejected: nobody@.
	if total[0] != 2 || total[1] != 1 || total[2] < 1 || total[3] != 0 || total[4] != 1 {
		t.Errorf("stats total received, delivered, deferred, bounced, rejected, junk = %v", total)
	}
	// Kept across a restart (stored when qmgr stops), and in the days too.
	in.Stop()
	in.Start()
	days := statsTotal(t, in.Mailctl("", "stats", "--days"))
	if days[0] != 2 || days[1] != 1 || days[4] != 1 {
		t.Errorf("stats --days total after a restart = %v", days)
	}
	if out := in.Mailctl("", "audit", "--limit", "1"); !strings.Contains(out, "queue.delete") || strings.Contains(out, "user.add") {
		t.Errorf("audit --limit 1 after a restart:\n%s", out)
	}
}

// statsTotal reads the total line of mailctl stats: received, delivered, deferred,
// bounced, rejected, junk.
func statsTotal(t *testing.T, out string) []int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^total +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no total in mailctl stats:\n%s", out)
	}
	var n []int
	for _, s := range m[1:] {
		v, _ := strconv.Atoi(s)
		n = append(n, v)
	}
	return n
}

// TestWebAdminPanel: over HTTPS through the real daemons, the dev demo account (an
// admin) creates an account in the panel, which then logs in over IMAP; the change is in
// the audit log with the web admin and the browser's address; a non-admin gets 403; the
// account page makes an app password that logs in over IMAP; httpd serves the MTA-STS
// policy mailctl dns records announces.
func TestWebAdminPanel(t *testing.T) {
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	w := in.newWebClient(t)
	if code := w.login("demo@example.test", in.Password); code != http.StatusSeeOther {
		t.Fatalf("web login of demo: %d", code)
	}
	resp, page := w.get("/admin")
	if resp.StatusCode != 200 || !strings.Contains(page, "demo@example.test") || !strings.Contains(page, "<svg") {
		t.Fatalf("GET /admin: %d\n%.2000s", resp.StatusCode, page)
	}
	resp, _ = w.post("/admin/do", url.Values{"csrf": {w.csrf(page)}, "op": {"user.add"}, "address": {"web@example.test"}, "password": {"from-the-panel-7"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "notice=") {
		t.Fatalf("create user in the panel: %d %s", resp.StatusCode, loc)
	}
	tg.loginAs(t, "web@example.test", "from-the-panel-7", nil).Logout().Wait()
	_, page = w.get("/admin")
	if !regexp.MustCompile(`<td>user\.add</td><td>web@example\.test</td>`).MatchString(page) || !strings.Contains(page, "demo@example.test (web, via ") {
		t.Errorf("the panel's audit log lacks the creation:\n%s", page[strings.Index(page, `id="audit"`):])
	}
	if out := in.Mailctl("", "audit"); !regexp.MustCompile(`demo@example\.test \(web, via \S+\) +127\.0\.0\.1 +user\.add +web@example\.test`).MatchString(out) {
		t.Errorf("mailctl audit lacks the web creation:\n%s", out)
	}

	// The account page of the new user: an app password, usable over IMAP; no panel.
	u := in.newWebClient(t)
	if code := u.login("web@example.test", "from-the-panel-7"); code != http.StatusSeeOther {
		t.Fatalf("web login of the new user: %d", code)
	}
	if resp, _ := u.get("/admin"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /admin as a non-admin: %d", resp.StatusCode)
	}
	_, page = u.get("/account")
	_, page = u.post("/account/apppassword", url.Values{"csrf": {u.csrf(page)}, "op": {"add"}, "name": {"tablet"}})
	m := regexp.MustCompile(`id="newapppassword">([a-z-]{19})<`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no app password on the account page:\n%s", page)
	}
	tg.loginAs(t, "web@example.test", m[1], nil).Logout().Wait()
	if resp, body := u.get("/account/mobileconfig"); resp.StatusCode != 200 || !strings.Contains(body, "<string>web@example.test</string>") {
		t.Errorf("mobileconfig: %d", resp.StatusCode)
	}

	// MTA-STS: the policy served is the one the TXT record announces.
	req, _ := http.NewRequest("GET", w.base+"/.well-known/mta-sts.txt", nil)
	req.Host = "mta-sts.example.test"
	resp, policy := w.do(req)
	records := in.Mailctl("", "dns", "records", "example.test")
	// A domain Postern does not serve gets no records that would send its mail here.
	if out, err := in.MailctlErr("", "dns", "records", "elsewhere.test"); err == nil || !strings.Contains(out, "mailctl domain add elsewhere.test") {
		t.Errorf("dns records for a domain Postern does not serve: %v\n%s", err, out)
	}
	id := regexp.MustCompile(`v=STSv1; id=([0-9a-f]+)`).FindStringSubmatch(records)
	if resp.StatusCode != 200 || id == nil || !strings.Contains(policy, "mx: "+in.Cfg.Hostname+"\r\n") {
		t.Fatalf("MTA-STS policy: %d %q; records:\n%s", resp.StatusCode, policy, records)
	}
	if sum := sha256.Sum256([]byte(strings.ReplaceAll(policy, "\r\n", "\n"))); hex.EncodeToString(sum[:8]) != id[1] {
		t.Errorf("the served policy does not match the id %s that mailctl dns records publishes", id[1])
	}
}

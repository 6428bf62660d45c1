package test

import (
	"bytes"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// TestAdminPanelDKIM: the panel's DKIM page, which asks authd as `mailctl dkim` does,
// shows the very zone-file line `mailctl dns records` prints for a key, and whether the
// (fake) DNS has it; a key generated in the panel is in `mailctl dkim list` and the
// audit log (by the web administrator), and signs the next outbound message (verified
// with go-msgauth against the records mailctl prints); a key removed in the panel signs
// no more.
func TestAdminPanelDKIM(t *testing.T) {
	in := NewInstance(t, "")
	const demo = "demo@example.test"
	in.Mailctl("", "dkim", "generate", "example.test", "--selector", "ed1")
	zone := in.Mailctl("", "dns", "records", "example.test")
	records, _ := zoneTXT(t, zone)
	// The fake DNS carries ed1's record.
	publish(t, fmt.Sprintf(`ed1._domainkey.example.test. 300 IN TXT %q`, records["ed1._domainkey.example.test"]))
	var ed1Line string
	for _, l := range strings.Split(zone, "\n") {
		if strings.HasPrefix(l, "ed1._domainkey.example.test.") {
			ed1Line = l
		}
	}
	if ed1Line == "" {
		t.Fatalf("no ed1 record in dns records:\n%s", zone)
	}

	w := in.newWebClient(t)
	if code := w.login(demo, in.Password); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	resp, page := w.get("/admin/dkim")
	if resp.StatusCode != 200 || !strings.Contains(html.UnescapeString(page), ed1Line) {
		t.Fatalf("the DKIM page lacks the line of mailctl dns records %q:\n%s", ed1Line, page)
	}
	row := regexp.MustCompile(`(?s)<tr class="dkim-key" data-selector="ed1">.*?</tr>`).FindString(page)
	if !strings.Contains(row, `class="dns-ok"`) {
		t.Errorf("the published ed1 is not shown as ok in the DNS: %s", row)
	}

	// A new RSA key, made in the panel.
	resp, _ = w.post("/admin/do", url.Values{"csrf": {w.csrf(page)}, "op": {"dkim.generate"}, "domain": {"example.test"}, "selector": {"web1"}, "algorithm": {"rsa"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/admin/dkim?notice=") {
		t.Fatalf("generate: %d %s", resp.StatusCode, loc)
	}
	_, page = w.get("/admin/dkim")
	row = regexp.MustCompile(`(?s)<tr class="dkim-key" data-selector="web1">.*?</tr>`).FindString(page)
	if !strings.Contains(row, ">rsa<") || !strings.Contains(row, `class="dns-missing"`) {
		t.Errorf("the new key's row (unpublished): %s", row)
	}
	if out := in.Mailctl("", "dkim", "list", "example.test"); !regexp.MustCompile(`example\.test +web1 +rsa`).MatchString(out) {
		t.Errorf("mailctl dkim list does not show the panel's key:\n%s", out)
	}
	if out := in.Mailctl("", "audit"); !regexp.MustCompile(`demo@example\.test \(web, via \S+\) +127\.0\.0\.1 +dkim\.generate +example\.test +web1 rsa`).MatchString(out) {
		t.Errorf("the audit log lacks the panel's dkim.generate:\n%s", out)
	}
	zone = in.Mailctl("", "dns", "records", "example.test")
	records, _ = zoneTXT(t, zone)
	var web1Lines []string // an RSA record spans lines
	for _, l := range strings.Split(zone, "\n") {
		if strings.HasPrefix(l, "web1._domainkey.example.test.") || len(web1Lines) > 0 && len(web1Lines) < 2 {
			web1Lines = append(web1Lines, l)
		}
	}
	if !strings.Contains(html.UnescapeString(page), strings.Join(web1Lines, "\n")) {
		t.Errorf("the DKIM page lacks the RSA record as mailctl prints it:\n%s", strings.Join(web1Lines, "\n"))
	}

	// The next message is signed with both keys; after ed1 is removed in the panel,
	// with web1 alone.
	// signers submits message n and returns the selectors of its signatures, each
	// verified: those whose keys go-msgauth looked up.
	signers := func(n int) []string {
		t.Helper()
		msg := fmt.Sprintf("From: Demo <demo@example.test>\r\nTo: demo@example.test\r\nSubject: dkim panel %d\r\n\r\nsigned\r\n", n)
		if err := in.submit(demo, in.Password, demo, []string{demo}, msg); err != nil {
			t.Fatal(err)
		}
		msgs := in.WaitMessages(demo, n, 20*time.Second)
		var m []byte
		for _, b := range msgs {
			if bytes.Contains(b, []byte(fmt.Sprintf("Subject: dkim panel %d\r\n", n))) {
				m = b
			}
		}
		var out []string
		lookup := func(name string) ([]string, error) {
			name = strings.TrimSuffix(name, ".")
			out = append(out, strings.TrimSuffix(name, "._domainkey.example.test"))
			if v, ok := records[name]; ok {
				return []string{v}, nil
			}
			return nil, fmt.Errorf("no TXT record %s", name)
		}
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if v.Err != nil || v.Domain != "example.test" {
				t.Errorf("message %d: signature of %s: %v", n, v.Domain, v.Err)
			}
		}
		if len(vs) != len(out) {
			t.Errorf("message %d: %d signatures, %d keys looked up", n, len(vs), len(out))
		}
		sort.Strings(out)
		return out
	}
	if got := strings.Join(signers(1), " "); got != "ed1 web1" {
		t.Errorf("the message after generating web1 is signed by %q, want ed1 and web1", got)
	}
	resp, _ = w.post("/admin/do", url.Values{"csrf": {w.csrf(page)}, "op": {"dkim.remove"}, "domain": {"example.test"}, "selector": {"ed1"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "notice=") {
		t.Fatalf("remove: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := strings.Join(signers(2), " "); got != "web1" {
		t.Errorf("the message after removing ed1 is signed by %q, want web1 alone", got)
	}
	if out := in.Mailctl("", "audit"); !strings.Contains(out, "dkim.remove") {
		t.Errorf("the audit log lacks the panel's dkim.remove:\n%s", out)
	}
}

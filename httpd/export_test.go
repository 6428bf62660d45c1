package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"postern/pkg/control"
)

// TestExportPath: a folder's name in the zip keeps its hierarchy and cannot climb out of
// the archive or name another folder's entry through a "/" in a name.
func TestExportPath(t *testing.T) {
	for _, c := range []struct {
		mailbox string
		delim   rune
		want    string
	}{
		{"INBOX", '/', "INBOX.mbox"},
		{"Archive/2026", '/', "Archive/2026.mbox"},
		{"Archive.2026", '.', "Archive/2026.mbox"},
		{"a/b", '.', "a_b.mbox"},
		{"../../etc", '/', "_../_../etc.mbox"},
		{"/x//y", '/', "_/x/_/y.mbox"},
		{"plain", 0, "plain.mbox"},
	} {
		if got := exportPath(&imap.ListData{Mailbox: c.mailbox, Delim: c.delim}); got != c.want {
			t.Errorf("exportPath(%q, %q) = %q, want %q", c.mailbox, c.delim, got, c.want)
		}
	}
}

// TestAccountDeleteRefused: without the address typed again, with a wrong password, or
// for the last administrator, the account page deletes nothing (no user.del reaches
// authd) and says why.
func TestAccountDeleteRefused(t *testing.T) {
	s, fa := newTestServer(t)
	fc := newFakeControl(t, s)
	c := login(t, s)
	sess := s.sessions.get(c.Value)
	for _, tc := range []struct {
		form url.Values
		code int
	}{
		{url.Values{"csrf": {sess.csrf}, "confirm": {"bob@example.test"}, "current": {"pw"}}, http.StatusBadRequest},
		{url.Values{"csrf": {sess.csrf}, "confirm": {"alice@example.test"}, "current": {"wrong"}}, http.StatusForbidden},
		{url.Values{"csrf": {sess.csrf}, "confirm": {"alice@example.test"}, "current": {strings.Repeat("x", maxPassword+1)}}, http.StatusBadRequest},
	} {
		if w := do(s, "POST", "/account/delete", tc.form, c); w.Code != tc.code {
			t.Errorf("delete with %v: %d, want %d", tc.form, w.Code, tc.code)
		}
	}
	fa.mu.Lock()
	fa.admin = true
	fa.mu.Unlock()
	fc.reply("authd "+control.UserList, control.UserListResult{Users: []control.User{{Address: "alice@example.test", Admin: true}, {Address: "bob@example.test"}}})
	w := do(s, "POST", "/account/delete", url.Values{"csrf": {sess.csrf}, "confirm": {"alice@example.test"}, "current": {"pw"}}, c)
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "last administrator") {
		t.Errorf("the last admin deleting itself: %d\n%s", w.Code, w.Body)
	}
	for _, call := range fc.taken() {
		if strings.HasPrefix(call, "authd "+control.UserDel) {
			t.Errorf("a refused deletion asked %q", call)
		}
	}
	if s.sessions.get(c.Value) == nil {
		t.Error("a refused deletion ended the session")
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"postern/pkg/acmecert"
	"postern/pkg/auth"
	"postern/pkg/config"
	"postern/pkg/ipc"
)

// fakeAuthd answers web.login for alice@example.test with password "pw" (and
// throttles "slow@example.test"), and records web.logout.
type fakeAuthd struct {
	mu      sync.Mutex
	logins  []auth.WebLoginRequest
	logouts []auth.WebLogoutRequest
	// admin makes alice an administrator (admin_test.go).
	admin bool
}

func newTestServer(t *testing.T) (*Server, *fakeAuthd) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.SpoolDir = dir
	os.MkdirAll(filepath.Join(dir, "private"), 0o700)
	fa := &fakeAuthd{}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.PrivateSocket("auth"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	as := &ipc.Server{Name: "auth", Logger: quiet}
	as.Handle(auth.OpWebLogin, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var r auth.WebLoginRequest
		json.Unmarshal(body, &r)
		fa.mu.Lock()
		fa.logins = append(fa.logins, r)
		fa.mu.Unlock()
		switch {
		case r.User == "alice@example.test" && r.Password == "pw":
			return auth.WebLoginResult{VerifyResult: auth.VerifyResult{OK: true, Address: "alice@example.test"}, Token: "tok-" + r.RemoteAddr}, nil
		case r.User == "slow@example.test":
			return auth.WebLoginResult{VerifyResult: auth.VerifyResult{Throttled: true, RetryAfter: 42}}, nil
		}
		return auth.WebLoginResult{}, nil
	})
	as.Handle(auth.OpWebLogout, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var r auth.WebLogoutRequest
		json.Unmarshal(body, &r)
		fa.mu.Lock()
		fa.logouts = append(fa.logouts, r)
		fa.mu.Unlock()
		return auth.WebLogoutResult{Revoked: 1}, nil
	})
	accountOps(as, fa) // admin_test.go
	ctx, cancel := context.WithCancel(context.Background())
	go as.Serve(ctx, l)
	t.Cleanup(cancel)
	tmpl, err := parseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{log: quiet, cfg: cfg, auth: auth.NewClient(cfg.PrivateSocket("auth")), tmpl: tmpl, maxUpload: 1 << 20, orders: newOrderCache(orderCacheUIDs),
		bodies: newBodyCache(bodyCacheBytes)}
	s.sessions = newSessionStore(30*time.Minute, 12*time.Hour, s.endSession)
	s.handler = s.routes()
	t.Cleanup(s.auth.Close)
	return s, fa
}

// do sends a request through the server's handler, as from https://mail.test.
func do(s *Server, method, target string, form url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "https://mail.test"+target, body)
	r.RemoteAddr = "192.0.2.7:5555"
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	s.handler.ServeHTTP(w, r)
	return w
}

func cookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// login goes through the login form and returns the session cookie.
func login(t *testing.T, s *Server) *http.Cookie {
	t.Helper()
	page := do(s, "GET", "/login", nil)
	lc := cookie(page, loginCookie)
	if lc == nil {
		t.Fatal("no login cookie")
	}
	w := do(s, "POST", "/login", url.Values{"csrf": {lc.Value}, "user": {"alice@example.test"}, "password": {"pw"}}, lc)
	c := cookie(w, sessionCookie)
	if w.Code != http.StatusSeeOther || c == nil {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	return c
}

func TestLogin(t *testing.T) {
	s, fa := newTestServer(t)
	page := do(s, "GET", "/login?next=/mail%3Ff%3DJunk", nil)
	lc := cookie(page, loginCookie)
	if page.Code != 200 || lc == nil || !strings.Contains(page.Body.String(), `value="`+lc.Value+`"`) {
		t.Fatalf("login page: %d, cookie %v", page.Code, lc)
	}
	// Without the form's token (a form posted from another site): refused, and authd
	// is not asked.
	w := do(s, "POST", "/login", url.Values{"user": {"alice@example.test"}, "password": {"pw"}}, lc)
	if w.Code != http.StatusForbidden {
		t.Errorf("login without the token: %d", w.Code)
	}
	w = do(s, "POST", "/login", url.Values{"csrf": {"forged"}, "user": {"alice@example.test"}, "password": {"pw"}}, &http.Cookie{Name: loginCookie, Value: "other"})
	if w.Code != http.StatusForbidden {
		t.Errorf("login with a token that is not the cookie's: %d", w.Code)
	}
	if len(fa.logins) != 0 {
		t.Errorf("authd was asked %d times for refused forms", len(fa.logins))
	}
	form := func(user, pw string) url.Values {
		return url.Values{"csrf": {lc.Value}, "user": {user}, "password": {pw}, "next": {"/mail?f=Junk"}}
	}
	if w := do(s, "POST", "/login", form("alice@example.test", "wrong"), lc); w.Code != http.StatusUnauthorized || cookie(w, sessionCookie) != nil {
		t.Errorf("wrong password: %d", w.Code)
	}
	if w := do(s, "POST", "/login", form("slow@example.test", "x"), lc); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "42" {
		t.Errorf("throttled: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	w = do(s, "POST", "/login", form("alice@example.test", "pw"), lc)
	c := cookie(w, sessionCookie)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/mail?f=Junk" || c == nil {
		t.Fatalf("good login: %d, location %q", w.Code, w.Header().Get("Location"))
	}
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("session cookie %+v: want Secure, HttpOnly, SameSite=Strict, Path=/", c)
	}
	// authd got the browser's address, for its throttling.
	if last := fa.logins[len(fa.logins)-1]; last.RemoteAddr != "192.0.2.7" {
		t.Errorf("remote address given to authd: %q", last.RemoteAddr)
	}
	// The session holds authd's token, and nothing of the password.
	sess := s.sessions.get(c.Value)
	if sess == nil || sess.token != "tok-192.0.2.7" || sess.user != "alice@example.test" {
		t.Fatalf("session %+v", sess)
	}
	// An open redirect through next is not possible.
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example"} {
		if got := safeNext(next); got != "/mail" {
			t.Errorf("safeNext(%q) = %q", next, got)
		}
	}
}

func TestCSRF(t *testing.T) {
	s, fa := newTestServer(t)
	c := login(t, s)
	sess := s.sessions.get(c.Value)
	// A POST without the token, with a wrong one, or from another origin is refused
	// before anything is done.
	for name, form := range map[string]url.Values{
		"no token":    {"op": {"read"}, "uid": {"1"}},
		"wrong token": {"op": {"read"}, "uid": {"1"}, "csrf": {"x" + sess.csrf}},
	} {
		if w := do(s, "POST", "/mail/act", form, c); w.Code != http.StatusForbidden {
			t.Errorf("%s: %d", name, w.Code)
		}
	}
	for _, h := range [][2]string{{"Origin", "https://evil.example"}, {"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}} {
		r := httptest.NewRequest("POST", "https://mail.test/logout", strings.NewReader(url.Values{"csrf": {sess.csrf}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set(h[0], h[1])
		r.AddCookie(c)
		w := httptest.NewRecorder()
		s.handler.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden || s.sessions.get(c.Value) == nil {
			t.Errorf("logout with %s: %s: %d", h[0], h[1], w.Code)
		}
	}
	// Without a session: GET goes to the login page, POST is refused.
	if w := do(s, "GET", "/mail?f=INBOX", nil); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login?next=") {
		t.Errorf("GET without a session: %d %s", w.Code, w.Header().Get("Location"))
	}
	if w := do(s, "POST", "/mail/act", url.Values{"csrf": {sess.csrf}}); w.Code != http.StatusUnauthorized {
		t.Errorf("POST without a session: %d", w.Code)
	}
	// With the token the logout goes through and authd revokes the token.
	w := do(s, "POST", "/logout", url.Values{"csrf": {sess.csrf}, "all": {"1"}}, c)
	if w.Code != http.StatusSeeOther || s.sessions.get(c.Value) != nil {
		t.Errorf("logout: %d, session still there: %v", w.Code, s.sessions.get(c.Value) != nil)
	}
	if len(fa.logouts) != 1 || fa.logouts[0].Token != sess.token || !fa.logouts[0].All {
		t.Errorf("authd's logouts: %+v", fa.logouts)
	}
}

func TestSessionExpiry(t *testing.T) {
	var ended []*session
	st := newSessionStore(30*time.Minute, 2*time.Hour, func(s *session) { ended = append(ended, s) })
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st.now = func() time.Time { return now }
	s := st.add("a@example.test", "tok", "192.0.2.1")
	now = now.Add(29 * time.Minute)
	if st.get(s.id) == nil {
		t.Fatal("expired within the idle timeout")
	}
	// Requests keep it alive, but not beyond its lifetime.
	for range 3 {
		now = now.Add(25 * time.Minute)
		if st.get(s.id) == nil {
			t.Fatalf("expired at %v although busy", now)
		}
	}
	if !st.alive(s) {
		t.Error("alive says no")
	}
	now = now.Add(25 * time.Minute) // 2h09 after login, 25 minutes after the last request
	if st.get(s.id) != nil || len(ended) != 1 {
		t.Errorf("outlived its lifetime; ended %d", len(ended))
	}
	s2 := st.add("a@example.test", "tok2", "192.0.2.1")
	now = now.Add(31 * time.Minute)
	if st.alive(s2) || st.get(s2.id) != nil || len(ended) != 2 {
		t.Error("outlived the idle timeout")
	}
	if st.get("nonsense") != nil {
		t.Error("an unknown cookie has a session")
	}
}

func TestSecurityHeaders(t *testing.T) {
	s, _ := newTestServer(t)
	w := do(s, "GET", "/login", nil)
	h := w.Header()
	for k, want := range map[string]string{
		"Strict-Transport-Security": "max-age=31536000",
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "no-referrer",
		"X-Frame-Options":           "DENY",
	} {
		if h.Get(k) != want {
			t.Errorf("%s = %q; want %q", k, h.Get(k), want)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("the application's CSP allows inline code: %q", csp)
	}
	if !strings.Contains(bodyCSP, "sandbox") || strings.Contains(bodyCSP, "script-src") || strings.Contains(bodyCSP, "allow-scripts") || strings.Contains(bodyCSP, "http") {
		t.Errorf("the message body CSP is not strict: %q", bodyCSP)
	}
	// The page's scripts are files, not inline.
	if strings.Contains(w.Body.String(), "<script>") {
		t.Error("inline script on the login page")
	}
	// Plain HTTP redirects to HTTPS on the https listener's port.
	s.httpsPort = "8443"
	r := httptest.NewRequest("GET", "http://mail.test:8080/mail?f=INBOX", nil)
	rw := httptest.NewRecorder()
	s.redirect(rw, r)
	if rw.Code != http.StatusMovedPermanently || rw.Header().Get("Location") != "https://mail.test:8443/mail?f=INBOX" {
		t.Errorf("redirect: %d %q", rw.Code, rw.Header().Get("Location"))
	}
	// Except the ACME HTTP-01 answers mailctl cert renew leaves in <data_dir>/acme.
	s.cfg.DataDir = t.TempDir()
	if err := (acmecert.Webroot{Dir: acmecert.WebrootDir(s.cfg.DataDir)}).Present("tok-EN_1", "tok-EN_1.thumb"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		acmecert.ChallengePath + "tok-EN_1": "200 tok-EN_1.thumb",
		acmecert.ChallengePath + "other":    "404",
		acmecert.ChallengePath + "..%2F..":  "404",
	} {
		rw := httptest.NewRecorder()
		s.redirect(rw, httptest.NewRequest("GET", "http://mail.test"+path, nil))
		if got := strings.TrimSpace(fmt.Sprintf("%d %s", rw.Code, rw.Body.String())); !strings.HasPrefix(got, want) || (rw.Code == 200 && got != want) {
			t.Errorf("GET %s: %q, want %q", path, got, want)
		}
	}
}

func TestSanitize(t *testing.T) {
	in := `<html><head><base href="https://evil.example/"><meta http-equiv="refresh" content="0;url=https://evil.example/">
<script>window.pwned=1</script><style>body{background:url(https://evil.example/t.png)}</style></head>
<body onload="window.pwned=1"><p style="color: red; background-image: url(https://evil.example/bg.png)">Hi <b>there</b></p>
<a href="javascript:window.pwned=1">click</a> <a href="https://example.org/">site</a>
<img src="https://evil.example/track.png"> <img src="cid:logo@example.test"> <img src="data:image/svg+xml,<svg onload=alert(1)>">
<svg><script>window.pwned=1</script></svg><iframe src="https://evil.example/"></iframe>
<form action="https://evil.example/"><input name="p"></form><object data="x.swf"></object></body></html>`
	out, remote := sanitizeHTML([]byte(in), map[string]inlinePart{"logo@example.test": {Type: "image/png", Data: []byte("PNG")}}, false)
	for _, bad := range []string{"<script", "onload", "javascript:", "<base", "<meta", "<style", "url(", "<iframe", "<form", "<input", "<object", "<svg", "data:image/svg"} {
		if strings.Contains(strings.ToLower(out), bad) {
			t.Errorf("sanitized output keeps %q:\n%s", bad, out)
		}
	}
	for _, good := range []string{"<b>there</b>", `style="color: red"`, `href="https://example.org/"`, `src="data:image/png;base64,UE5H"`, `rel="nofollow noreferrer noopener"`} {
		if !strings.Contains(out, good) {
			t.Errorf("sanitized output lacks %q:\n%s", good, out)
		}
	}
	if !remote || strings.Contains(out, ` src="https://evil.example/track.png"`) || !strings.Contains(out, `data-remote-src="https://evil.example/track.png"`) {
		t.Errorf("the remote image was not noticed or not blocked (%v):\n%s", remote, out)
	}
	if allowed, _ := sanitizeHTML([]byte(in), nil, true); !strings.Contains(allowed, `src="https://evil.example/track.png"`) {
		t.Errorf("remote images allowed, but not shown:\n%s", allowed)
	}
	if _, remote := sanitizeHTML([]byte(`<p>plain <img src="cid:x"></p>`), nil, false); remote {
		t.Error("a cid: image counted as remote")
	}
	if got := unescapeCID("a%40b&amp;c%zz"); got != "a@b&c%zz" {
		t.Errorf("unescapeCID = %q", got)
	}
}

func TestStructure(t *testing.T) {
	text := func(sub string) *imap.BodyStructureSinglePart {
		return &imap.BodyStructureSinglePart{Type: "text", Subtype: sub, Params: map[string]string{"charset": "utf-8"}}
	}
	att := &imap.BodyStructureSinglePart{Type: "application", Subtype: "pdf", Size: 100,
		Extended: &imap.BodyStructureSinglePartExt{Disposition: &imap.BodyStructureDisposition{Value: "attachment", Params: map[string]string{"filename": "a.pdf"}}}}
	img := &imap.BodyStructureSinglePart{Type: "image", Subtype: "png", ID: "<logo@x>"}
	bs := &imap.BodyStructureMultiPart{Subtype: "mixed", Children: []imap.BodyStructure{
		&imap.BodyStructureMultiPart{Subtype: "related", Children: []imap.BodyStructure{
			&imap.BodyStructureMultiPart{Subtype: "alternative", Children: []imap.BodyStructure{text("plain"), text("html")}},
			img,
		}},
		att,
	}}
	tx, inline, atts := structure(bs)
	if tx == nil || tx.Type != "text/html" || tx.Path != "1.1.2" {
		t.Errorf("text part %+v", tx)
	}
	if len(inline) != 1 || inline[0].ID != "logo@x" || inline[0].Path != "1.2" {
		t.Errorf("inline %+v", inline)
	}
	if len(atts) != 1 || atts[0].Name != "a.pdf" || atts[0].Path != "2" {
		t.Errorf("attachments %+v", atts)
	}
	if p, ok := splitPath("1.2.3"); !ok || len(p) != 3 {
		t.Error("splitPath 1.2.3")
	}
	for _, bad := range []string{"", "1..2", "a", "0", "-1"} {
		if _, ok := splitPath(bad); ok {
			t.Errorf("splitPath(%q) accepted", bad)
		}
	}
}

func TestBuildMessage(t *testing.T) {
	var buf strings.Builder
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="attach"; filename="notes.txt"`)
	h.Set("Content-Type", "text/plain")
	pw, _ := mw.CreatePart(h)
	pw.Write([]byte("attached text"))
	mw.Close()
	form, err := multipart.NewReader(strings.NewReader(buf.String()), mw.Boundary()).ReadForm(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	d := composeData{Selected: "alice@example.test", Subject: "Grüße", Body: "line 1\nline 2", InReplyTo: "<a@b.example>", References: "<z@b.example> <a@b.example>"}
	bcc := []*mail.Address{{Address: "hidden@example.org"}}
	msg, err := buildMessage("mail.example.test", d, []*mail.Address{{Name: "Bob", Address: "bob@example.org"}}, nil, bcc, false, form.File["attach"], []byte("Subject: old\r\n\r\nold body\r\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := string(msg)
	for _, want := range []string{"From: <alice@example.test>", "To: \"Bob\" <bob@example.org>", "Subject: =?utf-8?", "In-Reply-To: <a@b.example>",
		"References: <z@b.example> <a@b.example>", "Message-Id: <", "@mail.example.test>", "multipart/mixed", "line 1\r\nline 2",
		"filename=notes.txt", "message/rfc822", "old body"} {
		if !strings.Contains(m, want) {
			t.Errorf("message lacks %q:\n%s", want, m)
		}
	}
	if strings.Contains(m, "hidden@example.org") {
		t.Error("a sent message carries its Bcc")
	}
	draft, _ := buildMessage("mail.example.test", d, nil, nil, bcc, true, nil, nil, nil)
	if !strings.Contains(string(draft), "Bcc: <hidden@example.org>") {
		t.Errorf("a draft lost its Bcc:\n%s", draft)
	}
}

package main

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"postern/pkg/config"
	"postern/pkg/ipc"
	"postern/pkg/spamcheck"
)

// TestGreylistAtRcpt checks that with [spamd] greylist on, smtpd asks spamd at RCPT
// on port 25 about each local recipient and answers 451 4.7.1 to a triplet spamd
// holds back; a recipient spamd lets pass, an unknown user (550 first) and a foreign
// one are not delayed; spamd down means accepted.
func TestGreylistAtRcpt(t *testing.T) {
	e := startEnv(t, func(c *config.Config) { c.Spamd.Greylist.Greylist = true })
	ctx, cancel := context.WithCancel(context.Background())
	asked := fakeGreylistSpamd(ctx, t, e, func(req *spamcheck.GreylistRequest) spamcheck.GreylistResult {
		return spamcheck.GreylistResult{Pass: req.Rcpt != "demo@example.test", Retry: 299}
	})

	c := e.session()
	expect(t, c.cmd("EHLO client.test"), "250")
	expect(t, c.cmd("MAIL FROM:<a@sender.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "451 4.7.1 <demo@example.test>: Recipient address rejected: Greylisted, try again in 299 seconds")
	expect(t, c.cmd("RCPT TO:<nobody@example.test>"), "550 5.1.1")
	expect(t, c.cmd("RCPT TO:<user@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<x@elsewhere.test>"), "554 5.7.1")
	if a := asked(); len(a) != 2 || a[0] != (spamcheck.GreylistRequest{ClientAddr: "127.0.0.1", From: "a@sender.test", Rcpt: "demo@example.test", Helo: "client.test"}) || a[1].Rcpt != "user@example.test" {
		t.Errorf("spamd was asked %+v", a)
	}

	cancel()

	// spamd not running: accepted, with a warning in the log.
	e = startEnv(t, func(c *config.Config) { c.Spamd.Greylist.Greylist = true })
	c = e.session()
	expect(t, c.cmd("EHLO client.test"), "250")
	expect(t, c.cmd("MAIL FROM:<a@sender.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	if _, ok := e.waitLog("greylisting not checked, recipient accepted"); !ok {
		t.Errorf("no warning in the log")
	}
}

// TestGreylistNeverForSubmission: greylisting is for strangers on port 25; an
// authenticated client on 587 (STARTTLS) or 465 (implicit TLS) is never asked about,
// though spamd here would hold back every triplet (as it does on port 25, shown first).
func TestGreylistNeverForSubmission(t *testing.T) {
	e := startEnv(t, func(c *config.Config) { c.Spamd.Greylist.Greylist = true })
	asked := fakeGreylistSpamd(t.Context(), t, e, func(*spamcheck.GreylistRequest) spamcheck.GreylistResult {
		return spamcheck.GreylistResult{Retry: 300}
	})

	c := e.session()
	expect(t, c.cmd("MAIL FROM:<a@sender.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "451 4.7.1")

	auth := "AUTH PLAIN " + b64("\x00demo@example.test\x00"+demoPassword)
	sub := e.submission()
	expect(t, sub.cmd(auth), "235")
	implicit, greeting := e.dial(listenSubmissions)
	expect(t, greeting, "220")
	expect(t, implicit.cmd("EHLO client.test"), "250")
	expect(t, implicit.cmd(auth), "235")
	for name, cl := range map[string]*client{"587": sub, "465": implicit} {
		expect(t, cl.cmd("MAIL FROM:<demo@example.test>"), "250")
		if got := cl.cmd("RCPT TO:<user@example.test>"); !strings.HasPrefix(got, "250") {
			t.Errorf("port %s, authenticated: RCPT to a local user got %q", name, got)
		}
	}
	if a := asked(); len(a) != 1 {
		t.Errorf("spamd was asked about authenticated submissions: %+v", a)
	}
}

// fakeGreylistSpamd serves spamd's greylist operation on e's spamd socket until ctx ends,
// answering with answer, and returns a function that lists the requests it got.
func fakeGreylistSpamd(ctx context.Context, t *testing.T, e *testEnv, answer func(*spamcheck.GreylistRequest) spamcheck.GreylistResult) func() []spamcheck.GreylistRequest {
	t.Helper()
	var mu sync.Mutex
	var asked []spamcheck.GreylistRequest
	spamd := &ipc.Server{Name: "fake-spamd"}
	spamd.Handle(spamcheck.OpGreylist, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		req, err := spamcheck.DecodeGreylistRequest(body)
		if err != nil {
			return nil, ipc.Errorf("invalid", "%v", err)
		}
		mu.Lock()
		asked = append(asked, *req)
		mu.Unlock()
		return answer(req), nil
	})
	go spamd.Serve(ctx, listenUnix(t, e.cfg.PrivateSocket("spamd")))
	return func() []spamcheck.GreylistRequest {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked)
	}
}

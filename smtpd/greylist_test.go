package main

import (
	"context"
	"encoding/json"
	"os"
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
		return spamcheck.GreylistResult{Pass: req.Rcpt != "demo@example.test", Retry: 299}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	l := listenUnix(t, e.cfg.PrivateSocket("spamd"))
	go spamd.Serve(ctx, l)

	c := e.session()
	expect(t, c.cmd("EHLO client.test"), "250")
	expect(t, c.cmd("MAIL FROM:<a@sender.test>"), "250")
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "451 4.7.1 <demo@example.test>: Recipient address rejected: Greylisted, try again in 299 seconds")
	expect(t, c.cmd("RCPT TO:<nobody@example.test>"), "550 5.1.1")
	expect(t, c.cmd("RCPT TO:<user@example.test>"), "250")
	expect(t, c.cmd("RCPT TO:<x@elsewhere.test>"), "554 5.7.1")
	mu.Lock()
	if len(asked) != 2 || asked[0] != (spamcheck.GreylistRequest{ClientAddr: "127.0.0.1", From: "a@sender.test", Rcpt: "demo@example.test"}) || asked[1].Rcpt != "user@example.test" {
		t.Errorf("spamd was asked %+v", asked)
	}
	mu.Unlock()

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

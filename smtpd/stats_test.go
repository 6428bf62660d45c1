package main

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"

	"postern/pkg/ipc"
	mailstats "postern/pkg/stats"
)

// TestRejectionsReported checks that smtpd counts the recipients and messages it
// refuses for good, and sends the counts to qmgr when it stops.
func TestRejectionsReported(t *testing.T) {
	e := startEnv(t, nil)
	// A fake qmgr on private/qmgr takes the reports.
	var mu sync.Mutex
	var got mailstats.Counts
	q := &ipc.Server{Name: "fake-qmgr"}
	q.Handle(mailstats.OpAdd, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var cs mailstats.Counts
		if err := json.Unmarshal(body, &cs); err != nil {
			return nil, err
		}
		mu.Lock()
		got = got.Plus(cs)
		mu.Unlock()
		return nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Serve(ctx, listenUnix(t, e.cfg.PrivateSocket("qmgr")))

	c := e.session()
	expect(t, c.cmd("DATA"), "503") // out of sequence: refuses nothing offered
	c.cmd("MAIL FROM:<x@other.test>")
	expect(t, c.cmd("RCPT TO:<nobody@example.test>"), "550")
	expect(t, c.cmd("RCPT TO:<far@remote.test>"), "554") // relaying denied
	expect(t, c.cmd("RCPT TO:<demo@example.test>"), "250")
	expect(t, c.cmd("DATA"), "354")
	c.send("x\r\n.\r\n")
	expect(t, c.read(), "250")
	c.cmd("QUIT")
	if p := e.srv.stats.Pending(); p != (mailstats.Counts{Rejected: 2}) {
		t.Errorf("smtpd counted %+v; want 2 rejected", p)
	}
	// Stopping smtpd sends what it counted.
	e.cancel()
	err := <-e.done
	e.done <- err // for the harness's cleanup
	mu.Lock()
	defer mu.Unlock()
	if got != (mailstats.Counts{Rejected: 2}) {
		t.Errorf("qmgr got %+v; want 2 rejected", got)
	}
}

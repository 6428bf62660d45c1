package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/queue"
)

// public/qmgr answers mailq for every local user with what queue.mailq_users lets them
// see: their own sendmail submissions, everything, or nothing; administrators see all.
func TestPublicMailq(t *testing.T) {
	dir := t.TempDir()
	spool := queue.Spool{Root: filepath.Join(dir, "spool")}
	if err := spool.Create(0o700); err != nil {
		t.Fatal(err)
	}
	me := os.Getuid()
	write := func(env *queue.Envelope) string {
		env.ID, env.Arrival = queue.NewID(), time.Now()
		env.Recipients = []queue.Recipient{{Addr: "bob@example.test"}}
		w, err := queue.Create(spool.Dir(queue.Hold), env)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "Subject: x\r\n\r\nx\r\n")
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		return env.ID
	}
	mine := write(&queue.Envelope{From: "me@example.test", Local: true, LocalUID: me})
	theirs := write(&queue.Envelope{From: "other@example.test", Local: true, LocalUID: me + 1})
	smtp := write(&queue.Envelope{From: "world@example.test"})
	os.WriteFile(spool.Path(queue.Corrupt, queue.NewID()), []byte("garbage"), 0o600)

	list := func(mode string, admin bool) ([]string, error) {
		t.Helper()
		q := &Qmgr{Spool: spool, Queue: config.Queue{MailqUsers: mode}}
		sock := filepath.Join(dir, "public-"+mode)
		os.Remove(sock)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := q.PublicServer(func(ipc.Cred) bool { return admin })
		go s.Serve(ctx, l)
		defer s.Shutdown(context.Background())
		cl := ipc.NewClient(sock)
		defer cl.Close()
		var res control.QueueListResult
		if _, err := cl.Call(ctx, control.QueueList, nil, &res); err != nil {
			return nil, err
		}
		var ids []string
		for _, m := range res.Messages {
			ids = append(ids, m.ID)
		}
		slices.Sort(ids)
		// The other operations of the control socket are not there.
		if _, err := cl.Call(ctx, control.QueueDelete, control.IDsRequest{IDs: []string{mine}}, nil); err == nil {
			t.Error("queue.delete answered on the public socket")
		}
		return ids, nil
	}
	all := []string{mine, theirs, smtp}
	slices.Sort(all)
	if got, err := list(config.MailqOwn, false); err != nil || !slices.Equal(got, []string{mine}) {
		t.Errorf("own: %v %v, want only %s", got, err, mine)
	}
	if got, err := list(config.MailqAll, false); err != nil || len(got) != 4 || !slices.Contains(got, smtp) {
		t.Errorf("all: %v %v, want every message and the corrupt file", got, err)
	}
	if got, err := list(config.MailqAdmin, false); !ipc.IsCode(err, "denied") {
		t.Errorf("admin, for a user: %v %v, want denied", got, err)
	}
	for _, mode := range []string{config.MailqOwn, config.MailqAdmin} {
		if got, err := list(mode, true); err != nil || len(got) != 4 {
			t.Errorf("%s, for an administrator: %v %v, want the whole queue", mode, got, err)
		}
	}
	if _, err := os.Stat(spool.Path(queue.Hold, mine)); err != nil {
		t.Errorf("the message is gone: %v", err)
	}
}

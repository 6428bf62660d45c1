package delivery

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/pkg/ipc"
)

// agent serves Handle(deliver) on a socket in dir; stop ends it and closes its
// connections, as when the agent dies.
func agent(t *testing.T, sock string, deliver DeliverFunc) (stop func()) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s := &ipc.Server{Name: "agent"}
	Handle(s, deliver)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	stop = func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		s.Shutdown(sctx)
		scancel()
	}
	t.Cleanup(stop)
	return stop
}

func queueFile(t *testing.T) (*os.File, *Request) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q")
	os.WriteFile(path, []byte("header\nSubject: x\r\n\r\nbody\r\n"), 0o600)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, &Request{QueueID: "Q1", Offset: 7, Size: 20, Recipients: []Recipient{{Addr: "a@b.test"}}}
}

func sent(_ context.Context, req *Request, f *os.File) []Result {
	out := make([]Result, len(req.Recipients))
	for i := range out {
		out[i] = Result{Status: Sent, Code: "2.0.0"}
	}
	return out
}

func shortTimeouts(t *testing.T, ack time.Duration) {
	oldAck, oldDeliver := ackTimeout, deliverTimeout
	ackTimeout, deliverTimeout = ack, 10*time.Second
	t.Cleanup(func() { ackTimeout, deliverTimeout = oldAck, oldDeliver })
}

// A delivery that takes longer than AckTimeout is fine: the agent took it at once.
func TestSlowDeliveryIsAcknowledged(t *testing.T) {
	shortTimeouts(t, 100*time.Millisecond)
	sock := filepath.Join(t.TempDir(), "agent")
	agent(t, sock, func(ctx context.Context, req *Request, f *os.File) []Result {
		time.Sleep(400 * time.Millisecond)
		return sent(ctx, req, f)
	})
	c := NewClient(sock)
	defer c.Close()
	f, req := queueFile(t)
	res, err := c.Deliver(context.Background(), f, req)
	if err != nil || len(res) != 1 || res[0].Status != Sent {
		t.Fatalf("%+v %v", res, err)
	}
}

// A socket bound but not served (the agent in master's restart backoff) is an error
// after AckTimeout, not after DeliverTimeout.
func TestAgentThatDoesNotTakeTheRequest(t *testing.T) {
	shortTimeouts(t, 200*time.Millisecond)
	sock := filepath.Join(t.TempDir(), "agent")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close() // never accepts
	c := NewClient(sock)
	defer c.Close()
	f, req := queueFile(t)
	_, err = c.Deliver(context.Background(), f, req)
	if err == nil || !strings.Contains(err.Error(), "did not take the message") {
		t.Fatalf("err = %v", err)
	}
}

// A request the agent refuses is an ipc error, and the connection stays usable.
func TestRefusedRequest(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent")
	agent(t, sock, sent)
	c := NewClient(sock)
	defer c.Close()
	f, req := queueFile(t)
	bad := *req
	bad.Size = 1 << 20
	if _, err := c.Deliver(context.Background(), f, &bad); !ipc.IsCode(err, "invalid") {
		t.Fatalf("a message outside the file: %v", err)
	}
	if res, err := c.Deliver(context.Background(), f, req); err != nil || res[0].Status != Sent {
		t.Fatalf("after the refusal: %+v %v", res, err)
	}
}

// After the agent restarted, the pooled connection is dead; Deliver takes a new one.
func TestAgentRestarted(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent")
	stop := agent(t, sock, sent)
	c := NewClient(sock)
	defer c.Close()
	f, req := queueFile(t)
	if _, err := c.Deliver(context.Background(), f, req); err != nil {
		t.Fatal(err)
	}
	stop()
	os.Remove(sock)
	agent(t, sock, sent)
	if res, err := c.Deliver(context.Background(), f, req); err != nil || res[0].Status != Sent {
		t.Fatalf("after the restart: %+v %v", res, err)
	}
}

// An agent that does not admit qmgr's uid (a configuration error) says so: the refusal
// is the error, not the broken pipe of a request it did not read.
func TestAgentRefusesPeer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s := &ipc.Server{Name: "agent", Allow: func(ipc.Cred) bool { return false }}
	Handle(s, sent)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, l)
	c := NewClient(sock)
	defer c.Close()
	f, req := queueFile(t)
	if _, err := c.Deliver(context.Background(), f, req); !ipc.IsCode(err, "denied") {
		t.Fatalf("err = %v, want denied", err)
	}
}

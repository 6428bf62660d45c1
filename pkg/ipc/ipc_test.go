package ipc

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func listen(t *testing.T) (string, *net.UnixListener) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	return path, l
}

type echo struct {
	Text string `json:"text"`
}

func TestCallAndDescriptors(t *testing.T) {
	path, l := listen(t)
	s := &Server{Name: "test", Allow: AllowUIDs(os.Getuid())}
	s.Handle("echo", func(ctx context.Context, peer Cred, body json.RawMessage, files []*os.File) (any, error) {
		var e echo
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, err
		}
		if peer.UID != os.Getuid() {
			t.Errorf("peer uid %d, want %d", peer.UID, os.Getuid())
		}
		for _, f := range files {
			b, _ := io.ReadAll(f)
			e.Text += "+" + string(b)
			f.Close()
		}
		return e, nil
	})
	s.Handle("fail", func(context.Context, Cred, json.RawMessage, []*os.File) (any, error) {
		return nil, Errorf("notfound", "no such thing")
	})
	s.HandleStream("upload", func(ctx context.Context, peer Cred, c *Conn, body json.RawMessage, files []*os.File) error {
		b, err := io.ReadAll(c.StreamReader())
		if err != nil {
			return err
		}
		return c.Reply(echo{Text: string(b)}, nil)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, l)

	cl := NewClient(path)
	defer cl.Close()
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("from-fd")
	f.Seek(0, 0)
	var out echo
	if _, err := cl.Call(ctx, "echo", echo{Text: "hi"}, &out, f); err != nil {
		t.Fatal(err)
	}
	if out.Text != "hi+from-fd" {
		t.Fatalf("got %q", out.Text)
	}
	_, err = cl.Call(ctx, "fail", nil, nil)
	if !IsCode(err, "notfound") {
		t.Fatalf("got %v, want notfound", err)
	}
	_, err = cl.Call(ctx, "nope", nil, nil)
	if !IsCode(err, "invalid") {
		t.Fatalf("got %v, want invalid", err)
	}

	// Streams larger than one frame arrive whole, and the connection stays usable.
	c, err := cl.Get()
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("0123456789abcdef", 40000)
	if err := c.SendRequest("upload", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteStream(strings.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadResponse(&out); err != nil {
		t.Fatal(err)
	}
	if out.Text != big {
		t.Fatalf("stream mangled: %d bytes back of %d", len(out.Text), len(big))
	}
	if _, err := c.Call("echo", echo{Text: "again"}, &out); err != nil || out.Text != "again" {
		t.Fatalf("after stream: %v %q", err, out.Text)
	}
	cl.Put(c)
}

func TestDenied(t *testing.T) {
	path, l := listen(t)
	s := &Server{Name: "test", Allow: func(Cred) bool { return false }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, l)
	_, err := NewClient(path).Call(ctx, "x", nil, nil)
	if !IsCode(err, "denied") {
		t.Fatalf("got %v, want denied", err)
	}
}

func TestManyFramesWithDescriptors(t *testing.T) {
	a, b, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	go func() {
		for i := 0; i < 200; i++ {
			r, w, _ := os.Pipe()
			w.Write([]byte{byte(i)})
			w.Close()
			if i%3 == 0 {
				a.WriteFrame(KindJSON, []byte(`{}`))
			}
			a.WriteFrame(KindJSON, bytes.Repeat([]byte{'x'}, i*100), r)
			r.Close()
		}
	}()
	for i := 0; i < 200; i++ {
		if i%3 == 0 {
			if _, _, files, err := b.ReadFrame(); err != nil || len(files) != 0 {
				t.Fatalf("frame %d: %v %d files", i, err, len(files))
			}
		}
		_, p, files, err := b.ReadFrame()
		if err != nil || len(files) != 1 || len(p) != i*100 {
			t.Fatalf("frame %d: %v, %d files, %d bytes", i, err, len(files), len(p))
		}
		var one [1]byte
		files[0].Read(one[:])
		files[0].Close()
		if one[0] != byte(i) {
			t.Fatalf("frame %d carried the descriptor of frame %d", i, one[0])
		}
	}
}

func socketPair() (*Conn, *Conn, error) {
	dir, err := os.MkdirTemp("", "ipc")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	a, err := Dial(path)
	if err != nil {
		return nil, nil, err
	}
	uc, err := l.AcceptUnix()
	if err != nil {
		return nil, nil, err
	}
	return a, NewConn(uc), nil
}

// A server that answers and hangs up before reading the request (one that refuses the
// peer) makes the request's write fail: Call returns the answer, and the connection,
// broken, is closed rather than pooled.
func TestAnswerBeforeRequest(t *testing.T) {
	a, b, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := b.Reply(nil, Errorf("denied", "not you")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := a.Call("x", nil, nil); !IsCode(err, "denied") {
		t.Fatalf("got %v, want denied", err)
	}
	cl := &Client{}
	cl.Put(a)
	if len(cl.idle) != 0 {
		t.Error("a connection whose write failed went back to the pool")
	}
	// A request that cannot be encoded is not sent, and whatever comes on the
	// connection is no answer to it.
	c, d, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer d.Close()
	d.Reply(nil, Errorf("denied", "an answer to nothing"))
	if _, err := c.Call("x", make(chan int), nil); err == nil || IsCode(err, "denied") {
		t.Errorf("unencodable request: %v", err)
	}
}

// TestPeerGone checks that PeerGone tells a peer that closed its end (or died) from one
// that waits, also after this end shut down reading as Server.Shutdown does.
func TestPeerGone(t *testing.T) {
	a, b, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.PeerGone() {
		t.Fatal("a peer that is there is gone")
	}
	if err := a.WriteFrame(KindJSON, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if b.PeerGone() {
		t.Fatal("a peer that sent a frame and waits is gone")
	}
	b.UnixConn().CloseRead()
	if b.PeerGone() {
		t.Fatal("shutting down this end's reading made the peer gone")
	}
	b.Close()
	if !a.PeerGone() {
		t.Fatal("a closed peer is not gone")
	}
}

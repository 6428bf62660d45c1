package ipc

import (
	"context"
	"encoding/json"
	"os"
	"testing"
)

// TestOnly checks per-op admission: the socket admits any peer AnyOf admits, and each
// op wrapped in Only only its own peers; a denied op leaves the connection usable.
func TestOnly(t *testing.T) {
	path, l := listen(t)
	yes := func(Cred) bool { return true }
	no := func(Cred) bool { return false }
	ok := func(context.Context, Cred, json.RawMessage, []*os.File) (any, error) { return "done", nil }
	s := &Server{Name: "test", Allow: AnyOf(no, yes)}
	s.Handle("mine", Only(yes, ok))
	s.Handle("theirs", Only(no, ok))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, l)
	cl := NewClient(path)
	defer cl.Close()
	c, err := cl.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Call("theirs", nil, nil); !IsCode(err, "denied") {
		t.Fatalf("theirs: %v, want denied", err)
	}
	var res string
	if _, err := c.Call("mine", nil, &res); err != nil || res != "done" {
		t.Fatalf("mine on the same connection: %q %v", res, err)
	}
	if AnyOf(no, no)(Cred{}) || !AnyOf(no, yes)(Cred{}) {
		t.Error("AnyOf")
	}
}

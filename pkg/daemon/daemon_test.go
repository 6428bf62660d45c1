package daemon

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
)

func TestAccept(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	served, refused := listen(), listen()
	var accepted, returned atomic.Int32
	stop, err := Accept(log, map[string]net.Listener{"served": served, "refused": refused}, func(name string) func(net.Listener) {
		if name != "served" {
			return nil
		}
		return func(l net.Listener) {
			defer returned.Add(1)
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", refused.Addr().String()); err == nil {
		c.Close()
		t.Error("a listener open refused is still open")
	}
	c, err := net.Dial("tcp", served.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Read(make([]byte, 1)) // until the server closes it
	c.Close()
	stop()
	if accepted.Load() != 1 || returned.Load() != 1 {
		t.Errorf("accepted %d, accept functions returned %d; want 1 and 1 once stop returns", accepted.Load(), returned.Load())
	}
	if _, err := Accept(log, map[string]net.Listener{"x": listen()}, func(string) func(net.Listener) { return nil }); !errors.Is(err, ErrNoListener) {
		t.Errorf("nothing served: err = %v", err)
	}
}

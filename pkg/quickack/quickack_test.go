package quickack

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// quickAck reads TCP_QUICKACK of c: Linux answers 1 when the socket is out of
// interactive (delayed-ACK) mode.
func quickAck(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

func setQuickAck(t *testing.T, c *net.TCPConn, v int) {
	t.Helper()
	raw, _ := c.SyscallConn()
	var serr error
	raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, v) })
	if serr != nil {
		t.Fatal(serr)
	}
}

func pair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); sc.Close() })
	return sc.(*net.TCPConn), cc.(*net.TCPConn)
}

// TestReadSetsQuickAck puts the server's socket in delayed-ACK mode, as answering
// commands does, and checks that a Read through Conn leaves it.
func TestReadSetsQuickAck(t *testing.T) {
	sc, cc := pair(t)
	c := Wrap(sc)
	if _, ok := c.(*Conn); !ok {
		t.Fatalf("Wrap(*net.TCPConn) = %T, want *Conn", c)
	}
	for i := 0; i < 3; i++ {
		setQuickAck(t, sc, 0)
		if v := quickAck(t, sc); v != 0 {
			t.Fatalf("TCP_QUICKACK after setting 0 reads %d", v)
		}
		if _, err := cc.Write([]byte("a1 APPEND INBOX {5}\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if v := quickAck(t, sc); v != 1 {
			t.Fatalf("read %d: TCP_QUICKACK is %d after Read, want 1", i, v)
		}
	}
}

func TestWrapOther(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if c := Wrap(a); c != a {
		t.Fatalf("Wrap(pipe) = %T, want it unchanged", c)
	}
}

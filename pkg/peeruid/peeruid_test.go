package peeruid

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// TestOf connects to a listener of this process: the uid of the other end, seen from
// either side, is this process's.
func TestOf(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if network == "tcp6" {
			addr = "[::1]:0"
		}
		l, err := net.Listen(network, addr)
		if err != nil {
			t.Logf("%s: %v (skipped)", network, err)
			continue
		}
		defer l.Close()
		acc := make(chan net.Conn, 1)
		go func() {
			c, _ := l.Accept()
			acc <- c
		}()
		c, err := net.Dial(network, l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := <-acc
		defer s.Close()
		for _, conn := range []net.Conn{s, c} {
			uid, err := Of(conn)
			if err != nil || uid != os.Getuid() {
				t.Errorf("%s: Of = %d, %v; want %d", network, uid, err, os.Getuid())
			}
		}
	}
}

func TestFind(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:9C40 0100007F:0050 01 00000000:00000000 00:00000000 00000000   108        0 2 1 0 20 4 30 10 -1
`
	// The table above is in little-endian order, as on amd64 and arm64.
	if !littleEndian() {
		t.Skip("the sample table is little-endian")
	}
	want := socket{netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("127.0.0.1:80")}
	uid, err := find(strings.NewReader(table), want)
	if err != nil || uid != 108 {
		t.Errorf("find = %d, %v; want 108", uid, err)
	}
	want.local = netip.MustParseAddrPort("[::ffff:127.0.0.1]:40001")
	if _, err := find(strings.NewReader(table), want); !errors.Is(err, ErrNotLocal) {
		t.Errorf("a socket not in the table: err = %v", err)
	}
	if _, err := find(strings.NewReader("head\n 0: zz:0 00:00 0A 0 0 0 0\n"), want); err == nil || errors.Is(err, ErrNotLocal) {
		t.Errorf("a bad line: err = %v", err)
	}
}

func littleEndian() bool {
	a, err := parseAddr("0100007F:0001")
	return err == nil && a.Addr() == netip.MustParseAddr("127.0.0.1")
}

// FuzzParseLine: no line of the table crashes the parser.
func FuzzParseLine(f *testing.F) {
	f.Add("   1: 0100007F:9C40 0100007F:0050 01 00000000:00000000 00:00000000 00000000   108        0 2 1")
	f.Add("   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0")
	f.Fuzz(func(t *testing.T, line string) {
		parseLine(line)
	})
}

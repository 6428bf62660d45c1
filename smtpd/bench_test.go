package main

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSessions sends 4 KB messages over 10 concurrent sessions, each message one
// pipelined MAIL, RCPT, DATA group, as a load generator does. The fake cleanup keeps
// nothing, so what is measured is smtpd and the enqueue protocol.
func BenchmarkSessions(b *testing.B) {
	e := startEnv(b, nil)
	e.cleanup.discard.Store(true)
	body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 4096/80)
	msg := "MAIL FROM:<load@other.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n"
	const sessions = 10
	var next atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < sessions; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", e.addrs[listenSMTP])
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			w := bufio.NewWriter(c)
			read := func(want string) bool {
				for {
					line, err := r.ReadString('\n')
					if err != nil || !strings.HasPrefix(line, want) {
						b.Errorf("got %q %v, want %s", line, err, want)
						return false
					}
					if line[3] == ' ' {
						return true
					}
				}
			}
			read("220")
			w.WriteString("EHLO load.test\r\n")
			w.Flush()
			read("250")
			for next.Add(1) <= int64(b.N) {
				w.WriteString(msg)
				w.Flush()
				if !read("250") || !read("250") || !read("354") {
					return
				}
				w.WriteString(body)
				w.WriteString(".\r\n")
				w.Flush()
				if !read("250") {
					return
				}
			}
			w.WriteString("QUIT\r\n")
			w.Flush()
			read("221")
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

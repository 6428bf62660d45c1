package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkFetchBodies measures UID FETCH 1:* BODY.PEEK[] on 2,000 APPENDed messages.
func BenchmarkFetchBodies(b *testing.B) {
	e := newTestEnv(b)
	c := e.login("a")
	c.ok("CREATE Big")
	for i := 0; i < 2000; i++ {
		c.appendMsg("Big", "", msg(fmt.Sprintf("s%d", i), strings.Repeat("body line of some length here\r\n", 150)))
	}
	c.ok("SELECT Big")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		u := c.ok("UID FETCH 1:* BODY.PEEK[]")
		b.Logf("BODY.PEEK[] %v, %d responses", time.Since(start), len(u))
	}
}

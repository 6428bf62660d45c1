package main

import (
	"os"
	"runtime"
	"testing"
)

// TestIdleMemory reports what an idle IDLE session costs (set IDLEMEM=1).
func TestIdleMemory(t *testing.T) {
	if os.Getenv("IDLEMEM") == "" {
		t.Skip("set IDLEMEM=1")
	}
	e := newTestEnv(t)
	c0 := e.login("a")
	c0.appendMsg("INBOX", "", msg("x", "y\r\n"))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 1000
	for i := 0; i < n; i++ {
		c := e.login("a")
		c.ok("SELECT INBOX")
		c.send("i IDLE\r\n")
		c.line()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := func(a, b uint64) float64 { return float64(int64(b)-int64(a)) / n / 1024 }
	t.Logf("per session: heap %.1f KiB, stack %.1f KiB, sys %.1f KiB (client side included)",
		per(before.HeapInuse, after.HeapInuse), per(before.StackInuse, after.StackInuse), per(before.Sys, after.Sys))
}

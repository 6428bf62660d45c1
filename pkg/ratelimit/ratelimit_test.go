package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

func TestRateLimiterWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 30, 0, time.UTC)
	r := New(3, 0, time.Hour)
	r.Now = func() time.Time { return now }
	for i := range 3 {
		if !r.Take("a", false) {
			t.Fatalf("message %d refused", i+1)
		}
		now = now.Add(20 * time.Minute)
	}
	// 12:00:30, 12:20:30 and 12:40:30 are counted; at 13:00:30 the first is an hour old.
	if !r.Take("a", false) {
		t.Error("refused when the oldest message left the window")
	}
	if r.Take("a", false) {
		t.Error("fourth message within the hour accepted")
	}
	if !r.Take("b", false) || !r.Take("a", true) {
		t.Error("another account, or recipients without a limit, refused")
	}
	now = now.Add(2 * time.Hour)
	for i := range 3 {
		if !r.Take("a", false) {
			t.Fatalf("after two quiet hours, message %d refused", i+1)
		}
	}
}

// TestExportOnlyPersistent: a limiter made with New keeps no record of changed keys
// (smtpd never exports, the record would grow with every client); one made with
// NewPersistent exports what changed, once.
func TestExportOnlyPersistent(t *testing.T) {
	r := New(3, 3, time.Minute)
	r.Take("a", false)
	if m := r.Export(); m != nil || r.dirty != nil {
		t.Errorf("New limiter exports %v, records %v", m, r.dirty)
	}
	p := NewPersistent(3, 3, time.Hour)
	p.Take("a", false)
	if m := p.Export(); len(m) != 1 || m["a"] == nil {
		t.Errorf("export %v", m)
	}
	if m := p.Export(); m != nil {
		t.Errorf("second export %v", m)
	}
}

func TestNetworkAndSite(t *testing.T) {
	for _, c := range []struct{ ip, network, site string }{
		{"192.0.2.77", "192.0.2.0/24", "192.0.2.77"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", "2001:db8:1:2::/64"},
	} {
		ip := netip.MustParseAddr(c.ip)
		if n, s := Network(ip).String(), Site(ip); n != c.network || s != c.site {
			t.Errorf("%s: network %s, site %s", c.ip, n, s)
		}
	}
}

package stats

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"postern/pkg/ipc"

	bolt "go.etcd.io/bbolt"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestHoursAndDays(t *testing.T) {
	loc := time.FixedZone("X", 2*3600)
	clk := &clock{t: time.Date(2026, 12, 7, 23, 30, 0, 0, loc)}
	c := &Counters{Now: clk.now, Loc: loc}
	c.Add(Received, 3)
	c.Add(Delivered, 2)
	c.Add(Junk, 1)
	c.Add(Kind(99), 5) // unknown: ignored
	c.Add(Bounced, -1) // negative: ignored
	clk.add(time.Hour) // 00:30 the next day
	c.AddCounts(Counts{Rejected: 4, Deferred: 1, Received: 1})

	hs := c.Hours(3)
	if len(hs) != 3 {
		t.Fatalf("Hours(3) has %d", len(hs))
	}
	if !hs[2].Start.Equal(time.Date(2026, 12, 8, 0, 0, 0, 0, loc)) || hs[2].Received != 1 || hs[2].Rejected != 4 || hs[2].Deferred != 1 {
		t.Errorf("current hour = %+v", hs[2])
	}
	if hs[1].Received != 3 || hs[1].Delivered != 2 || hs[1].Junk != 1 || hs[1].Bounced != 0 {
		t.Errorf("previous hour = %+v", hs[1])
	}
	if !hs[0].Zero() {
		t.Errorf("hour without events = %+v", hs[0])
	}
	ds := c.Days(2)
	if !ds[1].Start.Equal(time.Date(2026, 12, 8, 0, 0, 0, 0, loc)) || ds[1].Received != 1 || ds[0].Received != 3 || ds[0].Delivered != 2 {
		t.Errorf("days = %+v", ds)
	}
	if tot := c.Total(); tot != (Counts{Received: 4, Delivered: 2, Junk: 1, Rejected: 4, Deferred: 1}) {
		t.Errorf("Total = %+v", tot)
	}
	if s := Sum(hs); s != c.Total() {
		t.Errorf("Sum(hours) = %+v", s)
	}
	if n := len(c.Hours(1000)); n != HourKeep {
		t.Errorf("Hours(1000) has %d", n)
	}
	if n := len(c.Days(0)); n != 1 {
		t.Errorf("Days(0) has %d", n)
	}
}

func TestSaveLoadPrune(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := []byte("stats")
	clk := &clock{t: time.Date(2026, 12, 7, 10, 15, 0, 0, time.UTC)}
	save := func(c *Counters) {
		t.Helper()
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			return c.Save(b)
		}); err != nil {
			t.Fatal(err)
		}
	}
	load := func() *Counters {
		t.Helper()
		c := &Counters{Now: clk.now, Loc: time.UTC}
		if err := db.View(func(tx *bolt.Tx) error { return c.Load(tx.Bucket(name)) }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := &Counters{Now: clk.now, Loc: time.UTC}
	c.Add(Delivered, 5)
	save(c)
	c.Add(Delivered, 1) // after the save: counted into the same hour
	save(c)

	// A restart: what was stored comes back, and new counts add to it.
	c2 := load()
	c2.Add(Delivered, 10)
	if h := c2.Hours(1)[0]; h.Delivered != 16 {
		t.Errorf("hour after restart = %+v", h)
	}
	if c2.Total().Delivered != 10 {
		t.Errorf("Total counts the loaded counts: %+v", c2.Total())
	}
	save(c2)
	if h := load().Hours(1)[0]; h.Delivered != 16 {
		t.Errorf("stored hour = %+v", h)
	}

	// Three days later the hours are gone, the days stay; 61 days later, the days too.
	clk.add(72 * time.Hour)
	c3 := load()
	c3.Add(Received, 1)
	save(c3)
	c4 := load()
	if s := Sum(c4.Hours(HourKeep)); s.Delivered != 0 || s.Received != 1 {
		t.Errorf("hours after 3 days = %+v", s)
	}
	if s := Sum(c4.Days(DayKeep)); s.Delivered != 16 {
		t.Errorf("days after 3 days = %+v", s)
	}
	count := func() (n int) {
		db.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(name).Stats().KeyN
			return nil
		})
		return n
	}
	if n := count(); n != 3 { // this hour, day 7 and day 10
		t.Errorf("%d keys stored after pruning the hours; want 3", n)
	}
	clk.add(61 * 24 * time.Hour)
	c5 := load()
	save(c5)
	if n := count(); n != 0 {
		t.Errorf("%d keys stored after 64 days; want 0", n)
	}
}

func TestReporter(t *testing.T) {
	dir, err := os.MkdirTemp("", "stats")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "qmgr")
	var mu sync.Mutex
	var got Counts
	r := NewReporter(path, nil)
	r.Add(Rejected, 2)
	r.Add(Rejected, 1)
	// Nobody listens: the counts stay pending.
	if err := r.Flush(context.Background()); err == nil {
		t.Fatal("Flush without qmgr succeeded")
	}
	if p := r.Pending(); p.Rejected != 3 {
		t.Fatalf("pending after a failed flush = %+v", p)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s := &ipc.Server{Name: "qmgr"}
	s.Handle(OpAdd, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var cs Counts
		if err := json.Unmarshal(body, &cs); err != nil {
			return nil, err
		}
		mu.Lock()
		got = got.Plus(cs)
		mu.Unlock()
		return nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, l)
	r.Add(Rejected, 1)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got.Rejected != 4 || !r.Pending().Zero() {
		t.Errorf("qmgr got %+v, pending %+v", got, r.Pending())
	}
	var nilReporter *Reporter
	nilReporter.Add(Rejected, 1) // counts nothing, does not crash
}

package metrics

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

func render(t *testing.T, series []Series) string {
	t.Helper()
	var b strings.Builder
	if err := Write(&b, series); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The exposition of counters, gauges and a histogram, byte for byte: HELP and TYPE once
// per metric, labels sorted by name and escaped, cumulative buckets with le, _sum and
// _count.
func TestWriteExposition(t *testing.T) {
	s := NewSet()
	s.Add(Rejected, 1, "command", "RCPT", "code", "5.1.1")
	s.Add(Rejected, 2, "code", "5.7.1", "command", "RCPT")
	s.Set(Queue, 3, "queue", "deferred")
	s.Add(Connections, 1, "listener", "a\"b\\c\nd", "daemon", "smtpd")
	s.Observe(DeliveryDuration, 0.05, "transport", "local") // on a bound: le is inclusive
	s.Observe(DeliveryDuration, 7, "transport", "local")
	s.Observe(DeliveryDuration, 1e6, "transport", "local")
	series, _ := s.Snapshot()
	got := render(t, series)
	want := `# HELP postern_smtp_rejected_total Negative SMTP replies, by command and enhanced status code (the reason).
# TYPE postern_smtp_rejected_total counter
postern_smtp_rejected_total{code="5.1.1",command="RCPT"} 1
postern_smtp_rejected_total{code="5.7.1",command="RCPT"} 2
# HELP postern_queue_messages Messages in each queue directory.
# TYPE postern_queue_messages gauge
postern_queue_messages{queue="deferred"} 3
# HELP postern_connections_total Connections accepted, by daemon and listener.
# TYPE postern_connections_total counter
postern_connections_total{daemon="smtpd",listener="a\"b\\c\nd"} 1
# HELP postern_delivery_duration_seconds Seconds from arrival to successful delivery, by transport.
# TYPE postern_delivery_duration_seconds histogram
postern_delivery_duration_seconds_bucket{transport="local",le="0.05"} 1
postern_delivery_duration_seconds_bucket{transport="local",le="0.1"} 1
postern_delivery_duration_seconds_bucket{transport="local",le="0.25"} 1
postern_delivery_duration_seconds_bucket{transport="local",le="0.5"} 1
postern_delivery_duration_seconds_bucket{transport="local",le="1"} 1
postern_delivery_duration_seconds_bucket{transport="local",le="2.5"} 1
postern_delivery_duration_seconds_bucket{transport="local",le="5"} 1
postern_delivery_duration_seconds_bucket{transport="local",le="10"} 2
postern_delivery_duration_seconds_bucket{transport="local",le="30"} 2
postern_delivery_duration_seconds_bucket{transport="local",le="60"} 2
postern_delivery_duration_seconds_bucket{transport="local",le="300"} 2
postern_delivery_duration_seconds_bucket{transport="local",le="900"} 2
postern_delivery_duration_seconds_bucket{transport="local",le="3600"} 2
postern_delivery_duration_seconds_bucket{transport="local",le="14400"} 2
postern_delivery_duration_seconds_bucket{transport="local",le="86400"} 2
postern_delivery_duration_seconds_bucket{transport="local",le="+Inf"} 3
postern_delivery_duration_seconds_sum{transport="local"} 1.00000705e+06
postern_delivery_duration_seconds_count{transport="local"} 3
`
	if got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
}

// A daemon that restarts starts counting from zero; the store keeps what the earlier
// process counted, so the sum only grows. Gauges are the new process's word.
func TestStoreAcrossRestarts(t *testing.T) {
	st := NewStore()
	old := NewSet()
	old.Add(Delivered, 5, "transport", "local")
	old.Set(Queue, 7, "queue", "active")
	old.Observe(DeliveryDuration, 1, "transport", "local")
	series, _ := old.Snapshot()
	st.Merge(Snapshot{Daemon: "qmgr", PID: 10, Series: series})
	// The same process again, counted further: replaces, does not add.
	old.Add(Delivered, 1, "transport", "local")
	series, _ = old.Snapshot()
	st.Merge(Snapshot{Daemon: "qmgr", PID: 10, Series: series})

	nu := NewSet()
	nu.Add(Delivered, 2, "transport", "local")
	nu.Set(Queue, 1, "queue", "active")
	nu.Observe(DeliveryDuration, 1, "transport", "local")
	series, _ = nu.Snapshot()
	st.Merge(Snapshot{Daemon: "qmgr", PID: 11, Series: series})
	// Another daemon's series of the same key add up.
	other := NewSet()
	other.Add(Delivered, 100, "transport", "local")
	series, _ = other.Snapshot()
	st.Merge(Snapshot{Daemon: "elsewhere", PID: 12, Series: series})

	got := render(t, st.Series())
	for _, want := range []string{
		`postern_messages_delivered_total{transport="local"} 108` + "\n",
		`postern_queue_messages{queue="active"} 1` + "\n",
		`postern_delivery_duration_seconds_count{transport="local"} 2` + "\n",
		`postern_delivery_duration_seconds_bucket{transport="local",le="1"} 2` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("store lacks %q:\n%s", want, got)
		}
	}
}

// A series that does not fit its definition is dropped, not rendered.
func TestStoreDropsBadSeries(t *testing.T) {
	st := NewStore()
	st.Merge(Snapshot{Daemon: "x", PID: 1, Series: []Series{
		{Name: "postern_unknown_total", Value: 1},
		{Name: Delivered, Labels: []string{"transport"}, Value: 1},
		{Name: Delivered, Labels: []string{"bad label", "x"}, Value: 1},
		{Name: Delivered, Labels: []string{"le", "x"}, Value: 1},
		{Name: DeliveryDuration, Buckets: []uint64{1}},
		{Name: Queue, Labels: []string{"queue", "hold"}, Value: 4},
	}})
	got := render(t, st.Series())
	want := "# HELP postern_queue_messages Messages in each queue directory.\n# TYPE postern_queue_messages gauge\npostern_queue_messages{queue=\"hold\"} 4\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

var sampleLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? (\+Inf|-Inf|NaN|[-+0-9.e]+)$`)

// FuzzStore merges any report a daemon could send and checks that the exposition stays
// well-formed: every line a comment or a sample of the text format.
func FuzzStore(f *testing.F) {
	f.Add([]byte(`{"daemon":"qmgr","pid":1,"series":[{"name":"postern_messages_delivered_total","labels":["transport","local"],"value":3}]}`))
	f.Add([]byte(`{"daemon":"qmgr","pid":2,"series":[{"name":"postern_delivery_duration_seconds","labels":["transport","x\"\n"],"buckets":[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2],"sum":3,"count":3}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Snapshot
		if json.Unmarshal(data, &s) != nil {
			return
		}
		st := NewStore()
		st.Merge(s)
		s.PID++
		st.Merge(s)
		var b strings.Builder
		if err := Write(&b, st.Series()); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(b.String()))
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
				continue
			}
			if !sampleLine.MatchString(line) {
				t.Fatalf("bad line %q", line)
			}
		}
	})
}

// The Grafana dashboard in conf/ queries the metrics that exist, and shows each of them.
func TestDashboardNamesMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../conf/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct{}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("conf/grafana-dashboard.json: %v", err)
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`postern_[a-z_]+`).FindAllString(string(raw), -1) {
		name := m
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(m, suffix); ok {
				if d, found := Lookup(base); found && d.Type == Histogram {
					name = base
				}
			}
		}
		if _, ok := Lookup(name); !ok {
			t.Errorf("the dashboard queries %s, which no daemon reports", m)
		}
		used[name] = true
	}
	for _, d := range Defs {
		if !used[d.Name] {
			t.Errorf("the dashboard does not show %s", d.Name)
		}
	}
}

// Report sends only when Version moved (or to resend): every change must move it, and a
// snapshot carries the version it was taken at.
func TestVersionCountsChanges(t *testing.T) {
	s := NewSet()
	v0 := s.Version()
	s.Add(Rejected, 1, "command", "RCPT", "code", "5.1.1")
	v1 := s.Version()
	s.Set(Queue, 3, "queue", "deferred")
	v2 := s.Version()
	s.Observe(DeliveryDuration, 1, "transport", "local")
	v3 := s.Version()
	if !(v0 < v1 && v1 < v2 && v2 < v3) {
		t.Errorf("versions %d %d %d %d: each change must move the version", v0, v1, v2, v3)
	}
	if _, v := s.Snapshot(); v != v3 || s.Version() != v3 {
		t.Errorf("a snapshot moved the version or carries another: %d, want %d", v, v3)
	}
}

// TestSetKeepsLabelsOfCaller checks that a series does not share the caller's labels
// slice: a caller reusing its slice must not rename a series already recorded.
func TestSetKeepsLabelsOfCaller(t *testing.T) {
	s := NewSet()
	labels := []string{"queue", "deferred"}
	s.Set(Queue, 3, labels...)
	labels[1] = "hold"
	s.Set(Queue, 4, labels...)
	series, _ := s.Snapshot()
	if len(series) != 2 || series[0].Labels[1] != "deferred" || series[0].Value != 3 ||
		series[1].Labels[1] != "hold" || series[1].Value != 4 {
		t.Fatalf("series = %+v, want deferred=3 and hold=4", series)
	}
}

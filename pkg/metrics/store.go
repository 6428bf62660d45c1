package metrics

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Store merges the snapshots of every daemon. A daemon's counters and histograms start
// from zero when it restarts; the store adds what the previous process had reported to
// the new one's, so that what it serves only grows (until metricsd itself restarts,
// which Prometheus sees as a counter reset). It is safe for concurrent use.
type Store struct {
	mu    sync.Mutex
	procs map[string]*proc
}

// proc is what one daemon reported: its process's last snapshot and what its earlier
// processes had counted.
type proc struct {
	pid  int
	last map[string]Series
	base map[string]Series
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{procs: map[string]*proc{}} }

// valid reports whether se fits its definition; a reporter is trusted (its uid is
// checked) but a bad series is dropped, not rendered into a broken exposition.
func valid(se *Series) bool {
	d, ok := Lookup(se.Name)
	if !ok || len(se.Labels)%2 != 0 {
		return false
	}
	for i := 0; i < len(se.Labels); i += 2 {
		if !validLabelName(se.Labels[i]) || se.Labels[i] == "le" {
			return false
		}
	}
	if d.Type == Histogram {
		return len(se.Buckets) == len(d.Buckets)+1
	}
	return len(se.Buckets) == 0
}

// validLabelName: [a-zA-Z_][a-zA-Z0-9_]*, the Prometheus data model's label names.
func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Merge takes a daemon's snapshot in.
func (st *Store) Merge(s Snapshot) {
	last := make(map[string]Series, len(s.Series))
	for _, se := range s.Series {
		if valid(&se) {
			if !sortedPairs(se.Labels) {
				se.Labels = sortLabels(se.Labels)
			}
			last[se.key()] = se
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.procs[s.Daemon]
	if p == nil {
		p = &proc{pid: s.PID, base: map[string]Series{}}
		st.procs[s.Daemon] = p
	}
	if p.pid != s.PID {
		// A new process: what the old one counted becomes the base. Gauges are not
		// carried over; they are what the new process says.
		for k, se := range p.last {
			if d, _ := Lookup(se.Name); d.Type != Gauge {
				p.base[k] = add(p.base[k], se)
			}
		}
		p.pid = s.PID
	}
	p.last = last
}

// add returns the sum of two series of the same key; a may be the zero Series.
func add(a, b Series) Series {
	if a.Name == "" {
		b.Labels = slices.Clone(b.Labels)
		b.Buckets = slices.Clone(b.Buckets)
		return b
	}
	a.Value += b.Value
	a.Sum += b.Sum
	a.Count += b.Count
	a.Buckets = slices.Clone(a.Buckets)
	for i := range a.Buckets {
		if i < len(b.Buckets) {
			a.Buckets[i] += b.Buckets[i]
		}
	}
	return a
}

// Series returns every series the store knows, summed over daemons and processes,
// sorted by name and labels.
func (st *Store) Series() []Series {
	st.mu.Lock()
	defer st.mu.Unlock()
	sum := map[string]Series{}
	for _, p := range st.procs {
		for k, se := range p.base {
			sum[k] = add(sum[k], se)
		}
		for k, se := range p.last {
			sum[k] = add(sum[k], se)
		}
	}
	out := make([]Series, 0, len(sum))
	for _, se := range sum {
		out = append(out, se)
	}
	slices.SortFunc(out, compareSeries)
	return out
}

// ContentType is the media type of Write's output: the Prometheus text exposition
// format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Write renders series in the text exposition format: for each metric of Defs that has
// series, its HELP and TYPE lines, then one line per series (a histogram's cumulative
// _bucket lines with le, then _sum and _count).
func Write(w io.Writer, series []Series) error {
	bw := bufio.NewWriter(w)
	byName := map[string][]Series{}
	for _, se := range series {
		byName[se.Name] = append(byName[se.Name], se)
	}
	for _, d := range Defs {
		ss := byName[d.Name]
		if len(ss) == 0 {
			continue
		}
		bw.WriteString("# HELP " + d.Name + " " + escapeHelp(d.Help) + "\n")
		bw.WriteString("# TYPE " + d.Name + " " + string(d.Type) + "\n")
		for _, se := range ss {
			if d.Type != Histogram {
				writeLine(bw, d.Name, se.Labels, "", se.Value)
				continue
			}
			var cum uint64
			for i, n := range se.Buckets {
				cum += n
				le := math.Inf(1)
				if i < len(d.Buckets) {
					le = d.Buckets[i]
				}
				writeLine(bw, d.Name+"_bucket", se.Labels, formatFloat(le), float64(cum))
			}
			writeLine(bw, d.Name+"_sum", se.Labels, "", se.Sum)
			writeLine(bw, d.Name+"_count", se.Labels, "", float64(se.Count))
		}
	}
	return bw.Flush()
}

func writeLine(w *bufio.Writer, name string, labels []string, le string, v float64) {
	w.WriteString(name)
	if len(labels) > 0 || le != "" {
		w.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(labels[i] + `="` + escapeValue(labels[i+1]) + `"`)
		}
		if le != "" {
			if len(labels) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(`le="` + le + `"`)
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

// formatFloat writes a value as the exposition format wants it: +Inf, -Inf, NaN or a
// Go float.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// The escapes of the exposition format, built once rather than for every line written.
var (
	valueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// escapeValue escapes a label value: backslash, double quote and line feed.
func escapeValue(s string) string { return valueEscaper.Replace(s) }

// escapeHelp escapes HELP text: backslash and line feed.
func escapeHelp(s string) string { return helpEscaper.Replace(s) }

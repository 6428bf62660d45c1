package metrics

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Series is one time series of a snapshot: a metric with its labels and its value, or,
// for a histogram, its buckets (not cumulative, one per Def.Buckets bound and a last
// one for +Inf), sum and count.
type Series struct {
	Name string `json:"name"`
	// Labels are name, value pairs, sorted by name.
	Labels  []string `json:"labels,omitempty"`
	Value   float64  `json:"value,omitempty"`
	Buckets []uint64 `json:"buckets,omitempty"`
	Sum     float64  `json:"sum,omitempty"`
	Count   uint64   `json:"count,omitempty"`
}

// key identifies a series: its name and labels.
func (s *Series) key() string {
	return string(appendKey(nil, s.Name, s.Labels))
}

// compareSeries orders series as their keys do, without building them.
func compareSeries(a, b Series) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return slices.Compare(a.Labels, b.Labels)
}

// appendKey appends the key of a series to b without allocating a string, so an update
// of an existing series looks it up with no allocation.
func appendKey(b []byte, name string, labels []string) []byte {
	b = append(b, name...)
	for _, l := range labels {
		b = append(b, 0)
		b = append(b, l...)
	}
	return b
}

// Snapshot is what a daemon reports: every series it has, with the process it comes from.
type Snapshot struct {
	Daemon string   `json:"daemon"`
	PID    int      `json:"pid"`
	Series []Series `json:"series"`
}

// Set holds the series of one process. It is safe for concurrent use.
type Set struct {
	mu      sync.Mutex
	series  map[string]*Series
	version uint64 // counts changes, so a reporter knows whether to send
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{series: map[string]*Series{}} }

// Default is the set of this process, which Report sends.
var Default = NewSet()

// Inc adds 1 to a counter of Default; labels are name, value pairs.
func Inc(name string, labels ...string) { Default.Add(name, 1, labels...) }

// Add adds v to a counter of Default.
func Add(name string, v float64, labels ...string) { Default.Add(name, v, labels...) }

// SetGauge sets a gauge of Default.
func SetGauge(name string, v float64, labels ...string) { Default.Set(name, v, labels...) }

// Observe records v in a histogram of Default.
func Observe(name string, v float64, labels ...string) { Default.Observe(name, v, labels...) }

// get returns the series, creating it; the caller holds s.mu. A name missing from Defs
// or labels not in pairs are a programming error.
func (s *Set) get(name string, want Type, labels []string) (*Series, Def) {
	d, ok := Lookup(name)
	if !ok || d.Type != want || len(labels)%2 != 0 {
		panic(fmt.Sprintf("metrics: %s is not a %s with labels in pairs (%q)", name, want, labels))
	}
	if !sortedPairs(labels) {
		labels = sortLabels(labels)
	}
	var buf [128]byte
	k := appendKey(buf[:0], name, labels)
	se := s.series[string(k)] // no allocation: the compiler looks up with the bytes
	if se == nil {
		// The caller's labels slice may be reused: keep a copy.
		se = &Series{Name: name, Labels: slices.Clone(labels)}
		if d.Type == Histogram {
			se.Buckets = make([]uint64, len(d.Buckets)+1)
		}
		s.series[string(k)] = se
	}
	s.version++
	return se, d
}

// sortedPairs reports whether the pairs are already sorted by label name, as the callers
// usually write them.
func sortedPairs(labels []string) bool {
	for i := 2; i+1 < len(labels); i += 2 {
		if labels[i] < labels[i-2] {
			return false
		}
	}
	return true
}

// sortLabels returns the pairs sorted by label name.
func sortLabels(labels []string) []string {
	type pair struct{ k, v string }
	ps := make([]pair, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		ps = append(ps, pair{labels[i], labels[i+1]})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].k < ps[j].k })
	out := make([]string, 0, len(labels))
	for _, p := range ps {
		out = append(out, p.k, p.v)
	}
	return out
}

// Add adds v to a counter.
func (s *Set) Add(name string, v float64, labels ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, _ := s.get(name, Counter, labels)
	se.Value += v
}

// Set sets a gauge.
func (s *Set) Set(name string, v float64, labels ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, _ := s.get(name, Gauge, labels)
	se.Value = v
}

// Observe records v in a histogram.
func (s *Set) Observe(name string, v float64, labels ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, d := s.get(name, Histogram, labels)
	i, _ := slices.BinarySearch(d.Buckets, v) // the first bound >= v: "le" is inclusive
	se.Buckets[i]++
	se.Sum += v
	se.Count++
}

// Version counts the changes to the set: a snapshot is stale when it differs.
func (s *Set) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Snapshot copies the series, sorted, with the set's version.
func (s *Set) Snapshot() ([]Series, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Series, 0, len(s.series))
	for _, se := range s.series {
		c := *se
		c.Labels = slices.Clone(se.Labels)
		c.Buckets = slices.Clone(se.Buckets)
		out = append(out, c)
	}
	slices.SortFunc(out, compareSeries)
	return out, s.version
}

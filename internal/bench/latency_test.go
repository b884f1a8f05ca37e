package bench

import (
	"testing"
	"time"
)

func within(got, want Micros, rel float64) bool {
	d := float64(got - want)
	if d < 0 {
		d = -d
	}
	return d <= rel*float64(want)
}

func TestHistogramPercentiles(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	s := h.Summary()
	checks := []struct {
		name      string
		got, want Micros
	}{
		{"min", s.Min, 1000},
		{"median", s.Median, 500_000},
		{"p75", s.P75, 750_000},
		{"p95", s.P95, 950_000},
		{"p99", s.P99, 990_000},
		{"p99.9", s.P999, 999_000},
		{"max", s.Max, 1_000_000},
		{"mean", s.Mean, 500_500},
	}
	for _, c := range checks {
		// 3 significant digits: within 0.1%.
		if !within(c.got, c.want, 0.001) {
			t.Errorf("%s = %d µs, want %d µs ± 0.1%%", c.name, c.got, c.want)
		}
	}
	if s.Count != 1000 {
		t.Errorf("count = %d, want 1000", s.Count)
	}
}

func TestHistogramMergeAndClamp(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	a.Record(-time.Second) // a clock step back: clamped, not lost
	b.Record(time.Hour)    // beyond the range: clamped to 10 min
	a.Merge(b)
	s := a.Summary()
	if s.Count != 2 || s.Min != 1 || !within(s.Max, Micros(10*time.Minute/time.Microsecond), 0.001) {
		t.Errorf("merged summary = %+v", s)
	}
	if (NewHistogram().Summary() != LatencySummary{}) {
		t.Error("an empty histogram has a non-zero summary")
	}
}

func TestHistogramBuckets(t *testing.T) {
	h := NewHistogram()
	for _, d := range []time.Duration{500 * time.Microsecond, 3 * time.Millisecond, 3 * time.Millisecond, 40 * time.Millisecond, 3 * time.Second} {
		h.Record(d)
	}
	bounds := []time.Duration{time.Millisecond, 5 * time.Millisecond, 50 * time.Millisecond}
	got := h.Buckets(bounds)
	want := []int64{1, 2, 1, 1}
	if len(got) != len(want) {
		t.Fatalf("buckets = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("buckets = %v, want %v", got, want)
		}
	}
}

package bench

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histogram bounds: 1 µs to 10 min, 3 significant digits, as
// PerfTest and omq report.
const (
	minTrackable = 1
	maxTrackable = int64(10 * time.Minute / time.Microsecond)
	sigFigs      = 3
)

// Histogram records latencies in microseconds. It is not safe for
// concurrent use: each goroutine keeps its own and they are merged.
type Histogram struct {
	h *hdrhistogram.Histogram
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(minTrackable, maxTrackable, sigFigs)}
}

// Record adds one latency. Values outside the range are clamped, so an odd
// clock never loses a sample.
func (h *Histogram) Record(d time.Duration) {
	us := d.Microseconds()
	us = min(max(us, minTrackable), maxTrackable)
	_ = h.h.RecordValue(us)
}

// Merge adds every sample of o.
func (h *Histogram) Merge(o *Histogram) { h.h.Merge(o.h) }

// Count is the number of samples.
func (h *Histogram) Count() int64 { return h.h.TotalCount() }

// Summary returns the distribution's percentiles.
func (h *Histogram) Summary() LatencySummary {
	if h.h.TotalCount() == 0 {
		return LatencySummary{}
	}
	q := func(p float64) Micros { return Micros(h.h.ValueAtQuantile(p)) }
	return LatencySummary{
		Count:  h.h.TotalCount(),
		Min:    Micros(h.h.Min()),
		Median: q(50),
		P75:    q(75),
		P95:    q(95),
		P99:    q(99),
		P999:   q(99.9),
		Max:    Micros(h.h.Max()),
		Mean:   Micros(h.h.Mean()),
	}
}

// Buckets counts the samples falling into each of the given ranges: bucket
// i holds samples in (bounds[i-1], bounds[i]], the last one everything above
// the last bound. It feeds the terminal bar chart.
func (h *Histogram) Buckets(bounds []time.Duration) []int64 {
	out := make([]int64, len(bounds)+1)
	for _, b := range h.h.Distribution() {
		if b.Count == 0 {
			continue
		}
		// A bar's representative value is its upper edge, the value HDR reports.
		v := time.Duration(b.To) * time.Microsecond
		i := 0
		for i < len(bounds) && v > bounds[i] {
			i++
		}
		out[i] += b.Count
	}
	return out
}

// Micros is a latency in microseconds, the unit of the JSON output.
type Micros int64

// Duration converts to a time.Duration.
func (m Micros) Duration() time.Duration { return time.Duration(m) * time.Microsecond }

// LatencySummary is a latency distribution, in microseconds.
type LatencySummary struct {
	Count  int64  `json:"count"`
	Min    Micros `json:"min_us"`
	Median Micros `json:"median_us"`
	P75    Micros `json:"p75_us"`
	P95    Micros `json:"p95_us"`
	P99    Micros `json:"p99_us"`
	P999   Micros `json:"p999_us"`
	Max    Micros `json:"max_us"`
	Mean   Micros `json:"mean_us"`
}

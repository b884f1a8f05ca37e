package bench

import (
	"sync/atomic"
	"time"
)

// Counters are the run's running totals, updated by producers and
// consumers with atomic adds and read once a second by the sampler.
type Counters struct {
	Sent, Confirmed, Nacked, Returned, Received atomic.Int64
}

// Counts is a snapshot of Counters.
type Counts struct {
	Sent      int64 `json:"sent"`
	Confirmed int64 `json:"confirmed"`
	Nacked    int64 `json:"nacked"`
	Returned  int64 `json:"returned"`
	Received  int64 `json:"received"`
}

// Snapshot reads every counter.
func (c *Counters) Snapshot() Counts {
	return Counts{
		Sent:      c.Sent.Load(),
		Confirmed: c.Confirmed.Load(),
		Nacked:    c.Nacked.Load(),
		Returned:  c.Returned.Load(),
		Received:  c.Received.Load(),
	}
}

func (c Counts) minus(o Counts) Counts {
	return Counts{
		Sent:      c.Sent - o.Sent,
		Confirmed: c.Confirmed - o.Confirmed,
		Nacked:    c.Nacked - o.Nacked,
		Returned:  c.Returned - o.Returned,
		Received:  c.Received - o.Received,
	}
}

// Rates are messages per second.
type Rates struct {
	Sent      float64 `json:"sent_per_sec"`
	Confirmed float64 `json:"confirmed_per_sec"`
	Nacked    float64 `json:"nacked_per_sec"`
	Returned  float64 `json:"returned_per_sec"`
	Received  float64 `json:"received_per_sec"`
}

// RatesOver divides counts by an interval.
func RatesOver(c Counts, d time.Duration) Rates {
	s := d.Seconds()
	if s <= 0 {
		return Rates{}
	}
	return Rates{
		Sent:      float64(c.Sent) / s,
		Confirmed: float64(c.Confirmed) / s,
		Nacked:    float64(c.Nacked) / s,
		Returned:  float64(c.Returned) / s,
		Received:  float64(c.Received) / s,
	}
}

// Sample is the counters at one moment of the run.
type Sample struct {
	At     time.Duration // since the start of the run
	Counts Counts
}

// Series is the per-interval record of a run, from which the whole-run and
// steady-state rates are derived. The first sample is the start (zero).
type Series struct {
	Samples []Sample
}

// Add appends a sample; samples must come in time order.
func (s *Series) Add(at time.Duration, c Counts) {
	s.Samples = append(s.Samples, Sample{At: at, Counts: c})
}

// Whole is the average rate from the first sample to the last.
func (s *Series) Whole() Rates {
	if len(s.Samples) < 2 {
		return Rates{}
	}
	first, last := s.Samples[0], s.Samples[len(s.Samples)-1]
	return RatesOver(last.Counts.minus(first.Counts), last.At-first.At)
}

// Steady is the average rate from the first sample at or after warmup to
// the last, leaving out the ramp-up. ok is false when the run was too short
// to have both (at least one full interval after the warm-up).
func (s *Series) Steady(warmup time.Duration) (r Rates, ok bool) {
	if len(s.Samples) < 2 {
		return Rates{}, false
	}
	last := s.Samples[len(s.Samples)-1]
	for _, smp := range s.Samples {
		if smp.At >= warmup {
			if smp.At >= last.At {
				return Rates{}, false
			}
			return RatesOver(last.Counts.minus(smp.Counts), last.At-smp.At), true
		}
	}
	return Rates{}, false
}

// Interval is the rates over one sampling interval, for progress lines.
type Interval struct {
	// Elapsed is the time since the start at the end of the interval.
	Elapsed        time.Duration `json:"-"`
	ElapsedSeconds float64       `json:"elapsed_seconds"`
	Rates          Rates         `json:"rates"`
	Totals         Counts        `json:"totals"`
}

func newInterval(a, b Sample) Interval {
	return Interval{Elapsed: b.At, ElapsedSeconds: b.At.Seconds(), Rates: RatesOver(b.Counts.minus(a.Counts), b.At-a.At), Totals: b.Counts}
}

// Last returns the rates over the most recent interval.
func (s *Series) Last() Interval {
	n := len(s.Samples)
	if n < 2 {
		return Interval{}
	}
	return newInterval(s.Samples[n-2], s.Samples[n-1])
}

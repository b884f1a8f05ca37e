package bench

import (
	"math"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func TestSeriesRates(t *testing.T) {
	var s Series
	s.Add(0, Counts{})
	// A slow first second (ramp-up), then 1000 msg/s sent and 900 received.
	s.Add(1*time.Second, Counts{Sent: 100, Confirmed: 90, Received: 50})
	s.Add(2*time.Second, Counts{Sent: 1100, Confirmed: 1090, Received: 950, Nacked: 2})
	s.Add(3*time.Second, Counts{Sent: 2100, Confirmed: 2090, Received: 1850, Nacked: 2, Returned: 1})
	s.Add(3500*time.Millisecond, Counts{Sent: 2600, Confirmed: 2590, Received: 2300, Nacked: 2, Returned: 1})

	whole := s.Whole()
	if !near(whole.Sent, 2600/3.5) || !near(whole.Received, 2300/3.5) || !near(whole.Nacked, 2/3.5) || !near(whole.Returned, 1/3.5) {
		t.Errorf("whole-run rates = %+v", whole)
	}
	steady, ok := s.Steady(time.Second)
	if !ok {
		t.Fatal("steady state missing")
	}
	if !near(steady.Sent, 1000) || !near(steady.Confirmed, 1000) || !near(steady.Received, 900) {
		t.Errorf("steady rates = %+v, want sent 1000, confirmed 1000, received 900", steady)
	}
	last := s.Last()
	if last.Elapsed != 3500*time.Millisecond || !near(last.Rates.Sent, 1000) || last.Totals.Sent != 2600 {
		t.Errorf("last interval = %+v", last)
	}
}

func TestSeriesSteadyNeedsAnIntervalAfterWarmup(t *testing.T) {
	var s Series
	s.Add(0, Counts{})
	s.Add(time.Second, Counts{Sent: 10})
	if _, ok := s.Steady(time.Second); ok {
		t.Error("steady state reported with no interval after the warm-up")
	}
	if _, ok := s.Steady(5 * time.Second); ok {
		t.Error("steady state reported for a run shorter than the warm-up")
	}
	var empty Series
	if (empty.Whole() != Rates{}) || (empty.Last() != Interval{}) {
		t.Error("an empty series has rates")
	}
}

func TestCountersSnapshot(t *testing.T) {
	var c Counters
	c.Sent.Add(5)
	c.Confirmed.Add(4)
	c.Nacked.Add(1)
	c.Returned.Add(2)
	c.Received.Add(3)
	if got := c.Snapshot(); got != (Counts{Sent: 5, Confirmed: 4, Nacked: 1, Returned: 2, Received: 3}) {
		t.Errorf("snapshot = %+v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Producers: 1, Consumers: 1, Size: 12, QueueType: QueueClassic}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"no work":          func(c *Config) { c.Producers, c.Consumers = 0, 0 },
		"tiny body":        func(c *Config) { c.Size = 11 },
		"ack above qos":    func(c *Config) { c.Prefetch, c.MultiAckEvery = 10, 20 },
		"bad queue type":   func(c *Config) { c.QueueType = "stream" },
		"negative window":  func(c *Config) { c.ConfirmWindow = -1 },
		"prefetch too big": func(c *Config) { c.Prefetch = 70000 },
	} {
		c := ok
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

package dlq

import (
	"context"
	"time"

	"github.com/mqctl/mqctl/internal/broker"
)

// pacer spaces operations to a rate.
type pacer struct {
	rate  float64
	start time.Time
	n     int
}

// wait returns when the next operation is due: the n-th one n/rate
// seconds after the first, so a slow moment is caught up on instead of
// lowering the rate for good. A rate of 0 or less never waits.
func (p *pacer) wait(ctx context.Context) error {
	if p.rate <= 0 {
		return nil
	}
	if p.n == 0 {
		p.start = time.Now()
	}
	due := p.start.Add(time.Duration(float64(p.n) / p.rate * float64(time.Second)))
	p.n++
	if d := time.Until(due); d > 0 {
		return broker.Sleep(ctx, d)
	}
	return nil
}

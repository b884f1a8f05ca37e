package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Queue types the benchmark declares.
const (
	QueueClassic = "classic"
	QueueQuorum  = "quorum"
)

// Config is one benchmark run, in PerfTest's terms.
type Config struct {
	Producers     int           `json:"producers"`              // -x
	Consumers     int           `json:"consumers"`              // -y
	Size          int           `json:"size"`                   // -s, bytes; at least HeaderLen
	ConfirmWindow int           `json:"confirm_window"`         // -c; 0 = no publisher confirms
	Prefetch      int           `json:"prefetch"`               // -q; 0 = unlimited
	MultiAckEvery int           `json:"multi_ack_every"`        // -A; 0 or 1 = ack each message
	Rate          float64       `json:"rate"`                   // -r, per producer; 0 = unlimited
	Duration      time.Duration `json:"-"`                      // -z; 0 = until the counts or interrupted
	ProducerCount int64         `json:"producer_message_count"` // -C, per producer; 0 = unlimited
	ConsumerCount int64         `json:"consumer_message_count"` // -D, per consumer; 0 = unlimited
	Persistent    bool          `json:"persistent"`             // -f persistent
	Mandatory     bool          `json:"mandatory"`              // -f mandatory
	QueueType     string        `json:"queue_type"`             // classic | quorum
	Queue         string        `json:"queue,omitempty"`        // -u: an existing queue; empty = declare a private one
	UseMillis     bool          `json:"use_millis"`             // timestamps in ms (PerfTest --use-millis)
	Warmup        time.Duration `json:"-"`                      // left out of the steady-state rates
	// DurationSeconds and WarmupSeconds mirror Duration and Warmup in the JSON output.
	DurationSeconds float64       `json:"duration_seconds"`
	WarmupSeconds   float64       `json:"warmup_seconds"`
	Interval        time.Duration `json:"-"` // sampling interval; default 1s
	Drain           time.Duration `json:"-"` // how long consumers may catch up after producers stop
	Timeout         time.Duration `json:"-"` // bound on each setup/teardown call
}

// Validate checks the combination of settings; the error names the flag.
func (c Config) Validate() error {
	switch {
	case c.Producers < 0 || c.Consumers < 0:
		return errors.New("-x and -y must not be negative")
	case c.Producers == 0 && c.Consumers == 0:
		return errors.New("nothing to do: -x and -y are both 0")
	case c.Size < HeaderLen:
		return fmt.Errorf("-s %d is smaller than the %d-byte PerfTest header", c.Size, HeaderLen)
	case c.ConfirmWindow < 0 || c.Prefetch < 0 || c.MultiAckEvery < 0 || c.Rate < 0:
		return errors.New("-c, -q, -A and -r must not be negative")
	case c.Prefetch > 0 && c.MultiAckEvery > c.Prefetch:
		return fmt.Errorf("-A %d is larger than -q %d: consumers would wait forever for messages the broker will not send", c.MultiAckEvery, c.Prefetch)
	case c.Prefetch > 65535:
		return fmt.Errorf("-q %d is above AMQP's limit of 65535", c.Prefetch)
	case c.Queue == "" && c.QueueType != QueueClassic && c.QueueType != QueueQuorum:
		return fmt.Errorf("--queue-type %q: want classic or quorum", c.QueueType)
	case c.QueueType == QueueQuorum && c.Queue == "" && !c.Persistent:
		// Quorum queues store every message; fine, nothing to refuse.
	}
	return nil
}

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 10 * time.Second
	}
	if c.MultiAckEvery == 0 {
		c.MultiAckEvery = 1
	}
}

// DialFunc opens one AMQP connection; name tells the broker who it is.
type DialFunc func(ctx context.Context, name string) (*amqp.Connection, error)

// Result is what a run measured.
type Result struct {
	Config Config `json:"config"`
	Queue  string `json:"queue"`
	// QueueDeclared tells whether the run declared (and deleted) the queue.
	QueueDeclared bool `json:"queue_declared"`
	// Seconds is the measured window: the rates are over it.
	Seconds float64 `json:"seconds"`
	// Totals counts everything, the drain after the window included.
	Totals Counts `json:"totals"`
	// Unreceived is what was sent and neither nacked, returned nor consumed
	// by this run's consumers by the end (left in the queue).
	Unreceived int64 `json:"unreceived"`
	Whole      Rates `json:"whole_run"`
	// Steady leaves out the first Config.Warmup; nil when the run was too short.
	Steady          *Rates         `json:"steady_state,omitempty"`
	ConsumerLatency LatencySummary `json:"consumer_latency"`
	ConfirmLatency  LatencySummary `json:"confirm_latency"`
	// NoTimestamp counts received messages whose header held no wall-clock
	// time (PerfTest without --use-millis), so no latency was recorded.
	NoTimestamp int64      `json:"no_timestamp"`
	Intervals   []Interval `json:"intervals"`
	Interrupted bool       `json:"interrupted"`
}

// Run declares the queue (unless cfg.Queue names one), starts the
// consumers, then the producers, samples the counters every interval
// (reporting each to onInterval, which may be nil) and stops at the
// duration, at the message counts, or when ctx ends (then Interrupted is
// set and the partial result returned with ctx's error). It deletes the
// queue it declared, even when interrupted.
func Run(ctx context.Context, cfg Config, dial DialFunc, onInterval func(Interval)) (_ *Result, retErr error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.DurationSeconds, cfg.WarmupSeconds = cfg.Duration.Seconds(), cfg.Warmup.Seconds()
	res := &Result{Config: cfg, Queue: cfg.Queue}

	setup, err := dial(ctx, "mqctl bench setup")
	if err != nil {
		return nil, fmt.Errorf("connect for setup: %w", err)
	}
	defer setup.Close()
	if cfg.Queue == "" {
		res.Queue = "mqctl-bench-" + randomHex(4)
		if err := declareQueue(ctx, setup, res.Queue, cfg.QueueType, cfg.Timeout); err != nil {
			return nil, err
		}
		res.QueueDeclared = true
		defer func() {
			// A fresh context: an interrupted run still cleans up.
			dctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
			defer cancel()
			if derr := deleteQueue(dctx, setup, res.Queue); derr != nil {
				retErr = errors.Join(retErr, derr)
			}
		}()
	} else if err := checkQueue(ctx, setup, cfg.Queue, cfg.Timeout); err != nil {
		return nil, err
	}

	var counters Counters
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	consCtx, stopConsumers := context.WithCancel(context.Background())
	defer stopConsumers()

	// Start consumers first, so producers never outpace an absent consumer.
	consumers := make([]*consumer, cfg.Consumers)
	for i := range consumers {
		c, err := startConsumer(runCtx, cfg, dial, res.Queue, i, &counters)
		if err != nil {
			for _, c := range consumers[:i] {
				c.close()
			}
			return nil, err
		}
		consumers[i] = c
	}
	producers := make([]*producer, cfg.Producers)
	for i := range producers {
		p, err := startProducer(runCtx, cfg, dial, res.Queue, i, &counters)
		if err != nil {
			for _, p := range producers[:i] {
				p.conn.Close()
			}
			for _, c := range consumers {
				c.close()
			}
			return nil, err
		}
		producers[i] = p
	}

	var wg sync.WaitGroup
	errs := make(chan error, len(producers)+len(consumers))
	var producersLeft, consumersLeft atomic.Int64
	producersLeft.Store(int64(len(producers)))
	consumersLeft.Store(int64(len(consumers)))
	producersDone := make(chan struct{})
	consumersDone := make(chan struct{})
	if len(producers) == 0 {
		close(producersDone)
	}
	if len(consumers) == 0 {
		close(consumersDone)
	}
	start := time.Now()
	for _, c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.run(consCtx); err != nil {
				errs <- err
				stopRun()
			}
			if consumersLeft.Add(-1) == 0 {
				close(consumersDone)
			}
		}()
	}
	for _, p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.run(runCtx); err != nil {
				errs <- err
				stopRun()
			}
			if producersLeft.Add(-1) == 0 {
				close(producersDone)
			}
		}()
	}

	// The window ends at the duration, when the counts are reached, or on
	// interruption or failure.
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	// Consumers without their own count stop once they have everything
	// the producers' counts add up to.
	var target int64
	if cfg.ConsumerCount == 0 && cfg.ProducerCount > 0 && cfg.Producers > 0 {
		target = cfg.ProducerCount * int64(cfg.Producers)
	}
	series := &Series{}
	series.Add(0, Counts{})
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	finished := func() bool {
		consumed := len(consumers) == 0 || closedChan(consumersDone) ||
			(target > 0 && counters.Received.Load() >= target)
		if len(consumers) > 0 && closedChan(consumersDone) && cfg.ProducerCount == 0 {
			// -D reached and the producers have no count of their own.
			return true
		}
		return closedChan(producersDone) && consumed
	}
window:
	for {
		select {
		case <-tick.C:
			series.Add(time.Since(start), counters.Snapshot())
			if onInterval != nil {
				onInterval(series.Last())
			}
		case <-poll.C:
			if finished() {
				break window
			}
		case <-deadline:
			break window
		case <-runCtx.Done():
			break window
		}
	}
	end := time.Since(start)
	if last := series.Samples[len(series.Samples)-1]; end > last.At {
		series.Add(end, counters.Snapshot())
	}
	stopRun() // producers stop publishing and wait for their confirms
	<-producersDone

	// Let the consumers take what is still in flight, bounded by Drain.
	if ctx.Err() == nil && len(consumers) > 0 && cfg.ConsumerCount == 0 {
		drain := time.NewTimer(cfg.Drain)
		defer drain.Stop()
	catchUp:
		for {
			c := counters.Snapshot()
			if c.Received >= c.Sent-c.Nacked-c.Returned {
				break
			}
			select {
			case <-poll.C:
			case <-consumersDone:
				break catchUp
			case <-drain.C:
				break catchUp
			case <-ctx.Done():
				break catchUp
			}
		}
	}
	stopConsumers()
	wg.Wait()
	close(errs)

	res.Seconds = end.Seconds()
	res.Totals = counters.Snapshot()
	res.Unreceived = max(0, res.Totals.Sent-res.Totals.Nacked-res.Totals.Returned-res.Totals.Received)
	if len(consumers) == 0 {
		res.Unreceived = 0
	}
	res.Whole = series.Whole()
	if r, ok := series.Steady(cfg.Warmup); ok {
		res.Steady = &r
	}
	for i := 1; i < len(series.Samples); i++ {
		a, b := series.Samples[i-1], series.Samples[i]
		res.Intervals = append(res.Intervals, newInterval(a, b))
	}
	consumerLat, confirmLat := NewHistogram(), NewHistogram()
	for _, c := range consumers {
		consumerLat.Merge(c.latency)
		res.NoTimestamp += c.noTimestamp
	}
	for _, p := range producers {
		confirmLat.Merge(p.latency)
	}
	res.ConsumerLatency = consumerLat.Summary()
	res.ConfirmLatency = confirmLat.Summary()

	var runErr error
	for e := range errs {
		runErr = errors.Join(runErr, e)
	}
	if ctx.Err() != nil {
		res.Interrupted = true
		return res, errors.Join(fmt.Errorf("benchmark interrupted: %w", ctx.Err()), runErr)
	}
	return res, runErr
}

// bounded runs fn, giving up after timeout or when ctx ends. amqp091's
// channel calls take no context; a call abandoned here ends when its
// connection is closed.
func bounded(ctx context.Context, timeout time.Duration, what string, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

func declareQueue(ctx context.Context, conn *amqp.Connection, name, queueType string, timeout time.Duration) error {
	return bounded(ctx, timeout, "declare benchmark queue "+name, func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		_, err = ch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": queueType})
		return err
	})
}

func checkQueue(ctx context.Context, conn *amqp.Connection, name string, timeout time.Duration) error {
	err := bounded(ctx, timeout, "check queue "+name, func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		_, err = ch.QueueDeclarePassive(name, false, false, false, false, nil)
		return err
	})
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return fmt.Errorf("queue %q given with -u does not exist: declare it first, or leave -u out to let the benchmark declare its own: %w", name, err)
	}
	return err
}

func deleteQueue(ctx context.Context, conn *amqp.Connection, name string) error {
	deadline, _ := ctx.Deadline()
	return bounded(ctx, time.Until(deadline), "delete benchmark queue "+name, func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		_, err = ch.QueueDelete(name, false, false, false)
		return err
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func closedChan(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

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

	"github.com/mqctl/mqctl/internal/broker"
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

	r, err := startRun(ctx, cfg, dial, res.Queue)
	if err != nil {
		return nil, err
	}
	defer r.stopRun()
	defer r.stopConsumers()
	r.launch()
	series, end := r.measure(onInterval)
	r.stopRun() // producers stop publishing and wait for their confirms
	<-r.producersDone
	r.drain(ctx)
	r.stopConsumers()
	r.wg.Wait()
	close(r.errs)
	r.summarize(res, series, end)

	var runErr error
	for e := range r.errs {
		runErr = errors.Join(runErr, e)
	}
	if ctx.Err() != nil {
		res.Interrupted = true
		return res, errors.Join(fmt.Errorf("benchmark interrupted: %w", ctx.Err()), runErr)
	}
	return res, runErr
}

// run is one benchmark's clients and their shared state.
type run struct {
	cfg       Config
	counters  Counters
	consumers []*consumer
	producers []*producer
	// runCtx ends the window (and the producers); consumers stop later,
	// with consCtx, after they caught up.
	runCtx        context.Context
	stopRun       context.CancelFunc
	consCtx       context.Context
	stopConsumers context.CancelFunc

	start                        time.Time // of the window
	wg                           sync.WaitGroup
	errs                         chan error
	producersLeft, consumersLeft atomic.Int64
	producersDone, consumersDone chan struct{}
}

// startRun connects every consumer, then every producer (consumers first,
// so producers never outpace an absent consumer). On failure it closes
// what it opened.
func startRun(ctx context.Context, cfg Config, dial DialFunc, queue string) (*run, error) {
	r := &run{cfg: cfg, producersDone: make(chan struct{}), consumersDone: make(chan struct{})}
	r.runCtx, r.stopRun = context.WithCancel(ctx)
	r.consCtx, r.stopConsumers = context.WithCancel(context.Background())
	fail := func(err error) (*run, error) {
		for _, p := range r.producers {
			p.conn.Close()
		}
		for _, c := range r.consumers {
			c.close()
		}
		r.stopRun()
		r.stopConsumers()
		return nil, err
	}
	for i := range cfg.Consumers {
		c, err := startConsumer(r.runCtx, cfg, dial, queue, i, &r.counters)
		if err != nil {
			return fail(err)
		}
		r.consumers = append(r.consumers, c)
	}
	for i := range cfg.Producers {
		p, err := startProducer(r.runCtx, cfg, dial, queue, i, &r.counters)
		if err != nil {
			return fail(err)
		}
		r.producers = append(r.producers, p)
	}
	return r, nil
}

// launch starts the window's clock and runs every client in its own
// goroutine; a failing one ends the window.
func (r *run) launch() {
	r.errs = make(chan error, len(r.producers)+len(r.consumers))
	r.producersLeft.Store(int64(len(r.producers)))
	r.consumersLeft.Store(int64(len(r.consumers)))
	if len(r.producers) == 0 {
		close(r.producersDone)
	}
	if len(r.consumers) == 0 {
		close(r.consumersDone)
	}
	r.start = time.Now()
	for _, c := range r.consumers {
		r.goClient(r.consCtx, c.run, &r.consumersLeft, r.consumersDone)
	}
	for _, p := range r.producers {
		r.goClient(r.runCtx, p.run, &r.producersLeft, r.producersDone)
	}
}

// goClient runs one client until ctx ends; the last of its kind closes done.
func (r *run) goClient(ctx context.Context, run func(context.Context) error, left *atomic.Int64, done chan struct{}) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := run(ctx); err != nil {
			r.errs <- err
			r.stopRun()
		}
		if left.Add(-1) == 0 {
			close(done)
		}
	}()
}

// measure samples the counters every interval until the window ends: at
// the duration, when the counts are reached, or on interruption or
// failure. It returns the samples and the window's length.
func (r *run) measure(onInterval func(Interval)) (*Series, time.Duration) {
	cfg, start := r.cfg, r.start
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	series := &Series{}
	series.Add(0, Counts{})
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
window:
	for {
		select {
		case <-tick.C:
			series.Add(time.Since(start), r.counters.Snapshot())
			if onInterval != nil {
				onInterval(series.Last())
			}
		case <-poll.C:
			if r.finished() {
				break window
			}
		case <-deadline:
			break window
		case <-r.runCtx.Done():
			break window
		}
	}
	end := time.Since(start)
	if last := series.Samples[len(series.Samples)-1]; end > last.At {
		series.Add(end, r.counters.Snapshot())
	}
	return series, end
}

// finished reports whether the counts are reached: the producers' (and
// consumers without their own count stop once they have everything the
// producers' counts add up to), or the consumers' when producers have none.
func (r *run) finished() bool {
	cfg := r.cfg
	var target int64
	if cfg.ConsumerCount == 0 && cfg.ProducerCount > 0 && cfg.Producers > 0 {
		target = cfg.ProducerCount * int64(cfg.Producers)
	}
	consumed := len(r.consumers) == 0 || closedChan(r.consumersDone) ||
		(target > 0 && r.counters.Received.Load() >= target)
	if len(r.consumers) > 0 && closedChan(r.consumersDone) && cfg.ProducerCount == 0 {
		// -D reached and the producers have no count of their own.
		return true
	}
	return closedChan(r.producersDone) && consumed
}

// drain lets the consumers take what is still in flight, bounded by
// cfg.Drain.
func (r *run) drain(ctx context.Context) {
	if ctx.Err() != nil || len(r.consumers) == 0 || r.cfg.ConsumerCount != 0 {
		return
	}
	drain := time.NewTimer(r.cfg.Drain)
	defer drain.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		c := r.counters.Snapshot()
		if c.Received >= c.Sent-c.Nacked-c.Returned {
			return
		}
		select {
		case <-poll.C:
		case <-r.consumersDone:
			return
		case <-drain.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// summarize fills res with the totals, rates and latencies of the run.
func (r *run) summarize(res *Result, series *Series, end time.Duration) {
	res.Seconds = end.Seconds()
	res.Totals = r.counters.Snapshot()
	res.Unreceived = max(0, res.Totals.Sent-res.Totals.Nacked-res.Totals.Returned-res.Totals.Received)
	if len(r.consumers) == 0 {
		res.Unreceived = 0
	}
	res.Whole = series.Whole()
	if st, ok := series.Steady(r.cfg.Warmup); ok {
		res.Steady = &st
	}
	for i := 1; i < len(series.Samples); i++ {
		a, b := series.Samples[i-1], series.Samples[i]
		res.Intervals = append(res.Intervals, newInterval(a, b))
	}
	consumerLat, confirmLat := NewHistogram(), NewHistogram()
	for _, c := range r.consumers {
		consumerLat.Merge(c.latency)
		res.NoTimestamp += c.noTimestamp
	}
	for _, p := range r.producers {
		confirmLat.Merge(p.latency)
	}
	res.ConsumerLatency = consumerLat.Summary()
	res.ConfirmLatency = confirmLat.Summary()
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
		_, _, err := broker.QueueCountsOn(conn, name)
		return err
	})
	if errors.Is(err, broker.ErrQueueNotFound) {
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

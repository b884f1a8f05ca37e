package bench

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
)

func envDial(env *brokertest.Env) DialFunc {
	return func(ctx context.Context, name string) (*amqp.Connection, error) {
		return amqp.DialConfig(env.AMQPURL, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second), Properties: amqp.Table{"connection_name": name}})
	}
}

func queueExists(t *testing.T, env *brokertest.Env, name string) bool {
	t.Helper()
	ch := env.Channel(t)
	_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	return err == nil
}

// A counted run: every message sent is confirmed and received exactly
// once across two producers and two consumers, and the queue is gone after.
func TestRunCountsEveryMessage(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	cfg := Config{
		Producers: 2, Consumers: 2, Size: 200, ConfirmWindow: 50, Prefetch: 100, MultiAckEvery: 10,
		ProducerCount: 1500, Persistent: true, QueueType: QueueQuorum, Warmup: time.Second,
	}
	var intervals int
	res, err := Run(context.Background(), cfg, envDial(env), func(Interval) { intervals++ })
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{Sent: 3000, Confirmed: 3000, Received: 3000}
	if res.Totals != want {
		t.Errorf("totals = %+v, want %+v", res.Totals, want)
	}
	if res.Unreceived != 0 || res.NoTimestamp != 0 {
		t.Errorf("unreceived %d, without timestamp %d; want 0, 0", res.Unreceived, res.NoTimestamp)
	}
	if res.ConsumerLatency.Count != 3000 || res.ConfirmLatency.Count != 3000 {
		t.Errorf("latency samples: consumer %d, confirm %d; want 3000 each", res.ConsumerLatency.Count, res.ConfirmLatency.Count)
	}
	l := res.ConsumerLatency
	if !(l.Min > 0 && l.Min <= l.Median && l.Median <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("consumer latency not ordered: %+v", l)
	}
	if res.Whole.Sent <= 0 || res.Whole.Received <= 0 || res.Seconds <= 0 {
		t.Errorf("rates not positive: %+v over %.2fs", res.Whole, res.Seconds)
	}
	if intervals > len(res.Intervals) {
		t.Errorf("%d intervals reported, only %d recorded", intervals, len(res.Intervals))
	}
	if !res.QueueDeclared || queueExists(t, env, res.Queue) {
		t.Errorf("queue %s declared %v, still exists %v", res.Queue, res.QueueDeclared, queueExists(t, env, res.Queue))
	}
}

// A timed run returns sane, non-zero figures, and after the drain every
// message sent has been received.
func TestRunForDuration(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	cfg := Config{
		Producers: 1, Consumers: 1, Size: 1000, ConfirmWindow: 100, Prefetch: 200, MultiAckEvery: 20,
		Duration: 2 * time.Second, Persistent: true, QueueType: QueueClassic, Warmup: 500 * time.Millisecond,
		Rate: 2000,
	}
	res, err := Run(context.Background(), cfg, envDial(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Totals.Sent == 0 || res.Totals.Received != res.Totals.Sent || res.Totals.Confirmed != res.Totals.Sent {
		t.Errorf("totals = %+v: want sent > 0, all confirmed and received", res.Totals)
	}
	// The window ends at the duration, never before: a lower bound the
	// timer keeps however slow the machine. (Rates over the window depend
	// on the machine; rates_test.go checks how they are computed.)
	if res.Seconds < cfg.Duration.Seconds() || res.Whole.Confirmed <= 0 {
		t.Errorf("window %.2fs, want at least %s; whole %+v", res.Seconds, cfg.Duration, res.Whole)
	}
}

// With -u the queue is the user's: checked, used, not deleted.
func TestRunUsesExistingQueue(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ch := env.Channel(t)
	if _, err := ch.QueueDeclare("orders", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Producers: 1, Consumers: 0, Size: 12, ConfirmWindow: 10, ProducerCount: 250, Rate: 500, Queue: "orders"}
	res, err := Run(context.Background(), cfg, envDial(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.QueueDeclared || res.Totals.Confirmed != 250 {
		t.Errorf("declared %v, confirmed %d; want false, 250", res.QueueDeclared, res.Totals.Confirmed)
	}
	// -r 500: the 250th message cannot leave before 249/500 s; the rate
	// limit is a lower bound on the run's length, however slow the machine.
	if res.Seconds < 249.0/500 {
		t.Errorf("250 messages at -r 500 sent in %.3fs, faster than the limit allows", res.Seconds)
	}
	if got := env.QueueDepth(t, "orders"); got != 250 {
		t.Errorf("orders holds %d messages, want 250", got)
	}

	// Consumers alone drain it with -D.
	cfg = Config{Producers: 0, Consumers: 1, Size: 12, Prefetch: 50, MultiAckEvery: 25, ConsumerCount: 250, Queue: "orders"}
	res, err = Run(context.Background(), cfg, envDial(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Totals.Received != 250 || res.ConsumerLatency.Count != 250 {
		t.Errorf("received %d with %d latencies, want 250", res.Totals.Received, res.ConsumerLatency.Count)
	}
	if got := env.QueueDepth(t, "orders"); got != 0 {
		t.Errorf("orders holds %d messages after the consumer, want 0", got)
	}

	cfg.Queue = "missing"
	if _, err := Run(context.Background(), cfg, envDial(env), nil); err == nil {
		t.Error("a missing -u queue was accepted")
	}
}

// Ctrl-C: the partial result comes back, marked, and the queue is deleted.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := Config{Producers: 1, Consumers: 1, Size: 100, ConfirmWindow: 100, Prefetch: 100, QueueType: QueueClassic, Rate: 1000,
		Interval: 100 * time.Millisecond}
	// Interrupted once messages flow, whenever that is on this machine.
	res, err := Run(ctx, cfg, envDial(env), func(iv Interval) {
		if iv.Totals.Sent > 0 {
			cancel()
		}
	})
	if err == nil || res == nil || !res.Interrupted {
		t.Fatalf("interrupted run: result %v, error %v", res, err)
	}
	if res.Totals.Sent == 0 || queueExists(t, env, res.Queue) {
		t.Errorf("sent %d, queue still exists %v", res.Totals.Sent, queueExists(t, env, res.Queue))
	}
}

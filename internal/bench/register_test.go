package bench

import (
	"context"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
)

// A short sign-up run with tiny latencies: every sign-up of the shipped
// (async) design answers 201 and its event reaches the queue through the
// relay, the sync design fails exactly when the e-mail provider is down.
// Which design is faster is the benchmark's to show, not this test's.
func TestRunRegister(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	cfg := RegisterConfig{
		// The provider timeout is far above the latencies, so a loaded
		// machine cannot fail a sign-up while providers are up; the down
		// case starts all its sign-ups at once, so it lasts one timeout.
		Requests: 60, DownRequests: 10, Rate: 200, Concurrency: 10,
		EmailLatency: 30 * time.Millisecond, OtherLatency: time.Millisecond, ProviderTimeout: time.Second,
		QueueType: QueueQuorum, Timeout: time.Minute,
	}
	relay, err := broker.NewDialer(env.Settings(t), "bench register relay")
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunRegister(context.Background(), cfg, envDial(env), relay)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Up) != 2 || len(res.Down) != 2 {
		t.Fatalf("phases: up %d, down %d", len(res.Up), len(res.Down))
	}
	syncUp, asyncUp, syncDown, asyncDown := res.Up[0], res.Up[1], res.Down[0], res.Down[1]
	if syncUp.Design != DesignSync || asyncUp.Design != DesignAsync {
		t.Fatalf("designs %s, %s", syncUp.Design, asyncUp.Design)
	}
	for _, p := range []Phase{syncUp, asyncUp, asyncDown} {
		if p.Errors != 0 || p.Latency.Count != int64(p.Requests) || p.Throughput <= 0 {
			t.Errorf("%s: %d errors (%s), %d samples of %d, throughput %.1f", p.Design, p.Errors, p.FirstError, p.Latency.Count, p.Requests, p.Throughput)
		}
	}
	if syncDown.Errors != 10 || syncDown.ErrorRate != 1 {
		t.Errorf("sync with e-mail down: %d errors, rate %.2f; want 10, 1", syncDown.Errors, syncDown.ErrorRate)
	}
	// The synchronous path sleeps through e-mail, points and coupon: a
	// lower bound the timers keep, however slow the machine.
	if syncUp.Latency.Min < Micros(32*time.Millisecond/time.Microsecond) {
		t.Errorf("sync min latency %d µs is below the providers' 32 ms", syncUp.Latency.Min)
	}
	// Every async sign-up's event was published by the relay.
	if res.QueueDepth != 70 || res.OutboxUnsent != 0 {
		t.Errorf("queue depth %d, outbox unsent %d; want 70, 0", res.QueueDepth, res.OutboxUnsent)
	}
	var n int64
	for _, b := range asyncUp.Buckets {
		n += b
	}
	if n != int64(asyncUp.Requests) || len(asyncUp.Buckets) != len(LatencyBounds)+1 {
		t.Errorf("async buckets %v hold %d samples, want %d", asyncUp.Buckets, n, asyncUp.Requests)
	}
	if res.P99Ratio <= 0 {
		t.Errorf("p99 ratio %.2f: want the ratio of two measured p99s", res.P99Ratio)
	}
	if queueExists(t, env, res.Queue) {
		t.Errorf("queue %s still exists after the run", res.Queue)
	}
}

package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAttempt(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want int
	}{
		{nil, 1}, {int32(3), 3}, {int64(2), 2}, {int8(4), 4}, {"5", 5}, {int32(0), 1}, {"x", 1}, {-2, 1},
	} {
		h := amqp.Table{}
		if tc.v != nil {
			h[pattern.HeaderAttempt] = tc.v
		}
		if got := Attempt(h); got != tc.want {
			t.Errorf("Attempt(%#v) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestRepublishStampsTheContractHeaders(t *testing.T) {
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	later := first.Add(time.Minute)
	r := pattern.Retry{Queue: "email", MaxAttempts: 3, Backoff: []time.Duration{time.Second}, DLQ: "email.dlq"}
	d := amqp.Delivery{MessageId: "m1", Body: []byte("{}"), Expiration: "100", UserId: "someone",
		Exchange: "user.events", RoutingKey: "user.registered.eu", Headers: amqp.Table{"custom": "kept"}}

	retry := Republish(d, r.AfterFailure(1), "email", 1, errors.New("smtp 451"), first)
	if retry.Headers[pattern.HeaderAttempt] != int32(2) {
		t.Errorf("retry attempt header = %v, want 2", retry.Headers[pattern.HeaderAttempt])
	}
	for k, want := range map[string]any{
		pattern.HeaderFailureReason: "smtp 451", pattern.HeaderOriginQueue: "email",
		pattern.HeaderFirstFailedAt: first.Format(time.RFC3339), pattern.HeaderFailedAt: first.Format(time.RFC3339),
		"custom": "kept", pattern.HeaderExchange: "user.events", pattern.HeaderRoutingKey: "user.registered.eu",
	} {
		if retry.Headers[k] != want {
			t.Errorf("retry header %s = %v, want %v", k, retry.Headers[k], want)
		}
	}
	if retry.Expiration != "" || retry.UserId != "" || retry.MessageId != "m1" || retry.DeliveryMode != amqp.Persistent {
		t.Errorf("retry properties: expiration %q user %q id %q mode %d", retry.Expiration, retry.UserId, retry.MessageId, retry.DeliveryMode)
	}

	// Back from the delay queue, the delivery has the key of that hop:
	// the first publish's stays.
	d.Headers, d.Exchange, d.RoutingKey = retry.Headers, "", "email"
	dead := Republish(d, r.AfterFailure(3), "email", 3, errors.New("smtp 550"), later)
	if dead.Headers[pattern.HeaderRoutingKey] != "user.registered.eu" || dead.Headers[pattern.HeaderExchange] != "user.events" {
		t.Errorf("first publish after a retry: %v %v", dead.Headers[pattern.HeaderExchange], dead.Headers[pattern.HeaderRoutingKey])
	}
	if dead.Headers[pattern.HeaderAttempt] != int32(3) {
		t.Errorf("dead letter attempt header = %v, want the last attempt 3", dead.Headers[pattern.HeaderAttempt])
	}
	if dead.Headers[pattern.HeaderFirstFailedAt] != first.Format(time.RFC3339) || dead.Headers[pattern.HeaderFailedAt] != later.Format(time.RFC3339) {
		t.Errorf("failure times = first %v last %v", dead.Headers[pattern.HeaderFirstFailedAt], dead.Headers[pattern.HeaderFailedAt])
	}
	if dead.Headers[pattern.HeaderFailureReason] != "smtp 550" {
		t.Errorf("reason = %v", dead.Headers[pattern.HeaderFailureReason])
	}
}

func TestErrorClass(t *testing.T) {
	named := classed{}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("smtp 451"), "error"},
		{fmt.Errorf("send: %w", errors.New("x")), "error"},
		{fmt.Errorf("send: %w", &net.OpError{Op: "dial", Err: errors.New("refused")}), "*net.OpError"},
		{Permanent(&json.SyntaxError{}), "*json.SyntaxError"},
		{Permanent(errors.New("bad json")), "error"},
		{fmt.Errorf("wrapped: %w", named), "SmtpTimeout"},
	} {
		if got := ErrorClass(tc.err); got != tc.want {
			t.Errorf("ErrorClass(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	h := Republish(amqp.Delivery{}, pattern.Decision{DeadLetter: true}, "email", 3, named, time.Now()).Headers
	if h[pattern.HeaderErrorClass] != "SmtpTimeout" || h[pattern.HeaderWorker] == "" {
		t.Errorf("class %v worker %v", h[pattern.HeaderErrorClass], h[pattern.HeaderWorker])
	}
}

type classed struct{}

func (classed) Error() string      { return "smtp timeout" }
func (classed) ErrorClass() string { return "SmtpTimeout" }

func TestPermanent(t *testing.T) {
	err := fmt.Errorf("decode: %w", Permanent(errors.New("bad json")))
	if !IsPermanent(err) || IsPermanent(errors.New("x")) {
		t.Error("IsPermanent does not see through wrapping, or sees what is not there")
	}
}

// setup applies a topology of one work queue with r's retry and
// dead_letter in a fresh vhost and returns the env and a publish function
// onto the work queue.
func setup(t *testing.T, r pattern.Retry) (*brokertest.Env, func(id, body string)) {
	t.Helper()
	env := brokertest.New(t)
	applyRetryQueue(t, env, r)
	conn := env.Dial(t)
	pub, err := broker.NewPublisher(conn, 100)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return env, func(id, body string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pub.PublishAndWait(ctx, "", r.Queue, amqp.Publishing{MessageId: id, DeliveryMode: amqp.Persistent, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
}

// applyRetryQueue applies the topology file a user would write for r (the
// retry and dead_letter patterns on one quorum queue) the way `mqctl
// topology apply` does: expanded by the topology package, imported through
// the management API.
func applyRetryQueue(t *testing.T, env *brokertest.Env, r pattern.Retry) {
	t.Helper()
	backoff := make([]string, len(r.Backoff))
	for i, d := range r.Backoff {
		backoff[i] = d.String()
	}
	file := fmt.Sprintf("apiVersion: mqctl/v1\nvhost: %q\nqueues:\n  - name: %q\n    type: quorum\n    retry:\n      max_attempts: %d\n      backoff: [%s]\n    dead_letter: %q\n",
		env.Vhost, r.Queue, r.MaxAttempts, strings.Join(backoff, ", "), r.DLQ)
	f, err := topology.ParseAndValidate("worker_test.yaml", []byte(file))
	if err != nil {
		t.Fatalf("%v\n%s", err, file)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := &topology.MgmtBroker{Client: env.Mgmt}
	if _, err := topology.ApplyExpanded(ctx, b, topology.Expand(f)); err != nil {
		t.Fatal(err)
	}
}

func dialer(t *testing.T, env *brokertest.Env) *broker.Dialer {
	t.Helper()
	d, err := broker.NewDialer(env.Settings(t), "worker test "+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// start runs a worker until the test ends and waits for it to stop.
func start(t *testing.T, cfg Config) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("worker did not stop within 30s")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

type recorder struct {
	mu       sync.Mutex
	attempts map[string][]int
	times    map[string][]time.Time
	events   map[EventKind]int
	delays   map[string][]time.Duration // per message, of its Retried events
}

func newRecorder() *recorder {
	return &recorder{attempts: map[string][]int{}, times: map[string][]time.Time{}, events: map[EventKind]int{}, delays: map[string][]time.Duration{}}
}

func (r *recorder) handler(fail func(d Delivery) error) Handler {
	return func(ctx context.Context, d Delivery) error {
		r.mu.Lock()
		r.attempts[d.MessageID] = append(r.attempts[d.MessageID], d.Attempt)
		r.times[d.MessageID] = append(r.times[d.MessageID], time.Now())
		r.mu.Unlock()
		return fail(d)
	}
}

func (r *recorder) event(e Event) {
	r.mu.Lock()
	r.events[e.Kind]++
	if e.Kind == Retried {
		r.delays[e.MessageID] = append(r.delays[e.MessageID], e.Delay)
	}
	r.mu.Unlock()
}

func (r *recorder) count(k EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[k]
}

func TestWorkerRetriesWithBackoffThenDeadLetters(t *testing.T) {
	t.Parallel()
	backoff := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond}
	r := pattern.Retry{Queue: "email", MaxAttempts: 4, Backoff: backoff, DLQ: "email.dlq"}
	env, publish := setup(t, r)
	const n = 5
	for i := range n {
		publish(fmt.Sprintf("m%d", i), "{}")
	}
	rec := newRecorder()
	stop := start(t, Config{Queue: "email", Retry: r, Prefetch: 3, Dialer: dialer(t, env), OnEvent: rec.event,
		Handler: rec.handler(func(Delivery) error { return errors.New("provider down") })})
	brokertest.WaitFor(t, "every message in the DLQ", 30*time.Second, func() bool { return env.QueueDepth(t, "email.dlq") == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	for i := range n {
		id := fmt.Sprintf("m%d", i)
		got := rec.attempts[id]
		if fmt.Sprint(got) != "[1 2 3 4]" {
			t.Errorf("%s attempts = %v, want [1 2 3 4]", id, got)
		}
		// Waits before attempts 2, 3, 4: 300ms, 600ms, 600ms (the last repeats).
		want := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 600 * time.Millisecond}
		if fmt.Sprint(rec.delays[id]) != fmt.Sprint(want) {
			t.Errorf("%s retried with delays %v, want %v", id, rec.delays[id], want)
		}
		// The delay queue's TTL is a lower bound the broker keeps: a slow
		// machine only makes the gap longer. The broker counts TTLs in
		// whole milliseconds from its own clock, hence the 5 ms allowance.
		ts := rec.times[id]
		for j, w := range want {
			if gap := ts[j+1].Sub(ts[j]); gap < w-5*time.Millisecond {
				t.Errorf("%s waited %s before attempt %d, want at least %s", id, gap, j+2, w)
			}
		}
	}
	for _, q := range []string{"email", "email.retry.1", "email.retry.2"} {
		if d := env.QueueDepth(t, q); d != 0 {
			t.Errorf("%s holds %d messages, want 0", q, d)
		}
	}
	// The dead letters carry the failure.
	ch := env.Channel(t)
	m, ok, err := ch.Get("email.dlq", false)
	if err != nil || !ok {
		t.Fatalf("get from DLQ: %v %v", ok, err)
	}
	if m.Headers[pattern.HeaderFailureReason] != "provider down" || m.Headers[pattern.HeaderOriginQueue] != "email" || Attempt(m.Headers) != 4 {
		t.Errorf("dead letter headers = %v", m.Headers)
	}
	if rec.count(DeadLettered) != n || rec.count(Retried) != 3*n {
		t.Errorf("events: %d dead-lettered, %d retried; want %d and %d", rec.count(DeadLettered), rec.count(Retried), n, 3*n)
	}
}

func TestWorkerDeadLettersPermanentFailuresAtOnce(t *testing.T) {
	t.Parallel()
	r := pattern.Retry{Queue: "points", MaxAttempts: 4, Backoff: []time.Duration{time.Hour}, DLQ: "points.dlq"}
	env, publish := setup(t, r)
	publish("bad", "not json")
	publish("good", "{}")
	rec := newRecorder()
	start(t, Config{Queue: "points", Retry: r, Dialer: dialer(t, env),
		Handler: rec.handler(func(d Delivery) error {
			if d.MessageID == "bad" {
				return Permanent(errors.New("body is not JSON"))
			}
			if d.MessageID == "good" {
				panic("handler bug")
			}
			return nil
		})})
	brokertest.WaitFor(t, "bad in the DLQ, good in the delay queue", 20*time.Second, func() bool {
		return env.QueueDepth(t, "points.dlq") == 1 && env.QueueDepth(t, "points.retry.1") == 1
	})
	if got := rec.attempts["bad"]; len(got) != 1 {
		t.Errorf("permanent failure was attempted %v times, want once", got)
	}
}

// A retry publish that keeps failing (here: the delay queue is gone) hands
// the message back to the broker, and that must count toward the work
// queue's delivery limit on every version, so the message ends in the DLQ
// instead of looping. RabbitMQ 4.3 stopped counting nack(requeue=true).
func TestWorkerRequeueCountsTowardTheDeliveryLimit(t *testing.T) {
	t.Parallel()
	r := pattern.Retry{Queue: "email", MaxAttempts: 4, Backoff: []time.Duration{time.Second}, DLQ: "email.dlq"}
	env, publish := setup(t, r)
	if _, err := env.Channel(t).QueueDelete(pattern.DelayQueue("email", 1), false, false, false); err != nil {
		t.Fatal(err)
	}
	publish("looping", "{}")
	rec := newRecorder()
	stop := start(t, Config{Queue: "email", Retry: r, Dialer: dialer(t, env), OnEvent: rec.event,
		Handler: rec.handler(func(Delivery) error { return errors.New("provider down") })})
	// The worker waits a second after each failed retry publish; the
	// limit of 10 is reached after about 11 deliveries.
	brokertest.WaitFor(t, "the message dead-lettered at the delivery limit", 90*time.Second, func() bool {
		return env.QueueDepth(t, "email.dlq") == 1
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := env.QueueDepth(t, "email"); d != 0 {
		t.Errorf("email holds %d messages, want 0", d)
	}
	m, ok, err := env.Channel(t).Get("email.dlq", false)
	if err != nil || !ok {
		t.Fatalf("get from DLQ: %v %v", ok, err)
	}
	if m.MessageId != "looping" {
		t.Errorf("dead letter is %q, want looping", m.MessageId)
	}
	if n := len(rec.attempts["looping"]); n < 2 || n > 12 {
		t.Errorf("handler ran %d times, want the delivery limit (10) plus one at most", n)
	}
	if rec.count(Requeued) == 0 {
		t.Error("no Requeued event: the retry publish did not fail as the test intends")
	}
}

func TestWorkerProcessesEveryMessageAcrossAConnectionLoss(t *testing.T) {
	t.Parallel()
	r := pattern.Retry{Queue: "coupon", MaxAttempts: 3, Backoff: []time.Duration{100 * time.Millisecond}, DLQ: "coupon.dlq"}
	env, publish := setup(t, r)
	const n = 200
	for i := range n {
		publish(fmt.Sprintf("m%d", i), "{}")
	}
	var mu sync.Mutex
	done := map[string]bool{}
	var killed atomic.Bool
	rec := newRecorder()
	name := "worker test " + t.Name()
	start(t, Config{Queue: "coupon", Retry: r, Prefetch: 4, Dialer: dialer(t, env), OnEvent: rec.event,
		Handler: func(ctx context.Context, d Delivery) error {
			mu.Lock()
			progress := len(done)
			mu.Unlock()
			// After some progress, hold the work until the worker saw its
			// connection die, so the rest must be done after the reconnect.
			for progress >= 20 && !killed.Load() && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			done[d.MessageID] = true
			mu.Unlock()
			return nil
		}})
	brokertest.WaitFor(t, "some progress", 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(done) >= 20 })
	// Kill the worker's connection from the broker side. The management
	// API lists a new connection only after its next stats sample.
	brokertest.WaitFor(t, "the worker's connection closed through the management API", 30*time.Second, func() bool {
		conns, err := env.Mgmt.ListConnections()
		if err != nil {
			return false
		}
		closed := false
		for _, c := range conns {
			if c.Vhost == env.Vhost && c.ClientProperties["connection_name"] == name {
				if _, err := env.Mgmt.CloseConnection(c.Name); err == nil {
					closed = true
				}
			}
		}
		return closed
	})
	brokertest.WaitFor(t, "the worker to see the close", 20*time.Second, func() bool { return rec.count(Disconnected) >= 1 })
	// Let the handlers in hand finish (their acks go nowhere: the broker
	// redelivers those messages on the new connection).
	killed.Store(true)
	brokertest.WaitFor(t, "a reconnect", 20*time.Second, func() bool { return rec.count(Connected) >= 2 })
	brokertest.WaitFor(t, "every message processed", 60*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(done) == n })
	brokertest.WaitFor(t, "the queue drained", 20*time.Second, func() bool { return env.QueueDepth(t, "coupon") == 0 })
	if d := env.QueueDepth(t, "coupon.dlq"); d != 0 {
		t.Errorf("DLQ holds %d, want 0", d)
	}
}

func TestWorkerStopFinishesInFlightWork(t *testing.T) {
	t.Parallel()
	r := pattern.Retry{Queue: "email", MaxAttempts: 2, Backoff: []time.Duration{time.Second}, DLQ: "email.dlq"}
	env, publish := setup(t, r)
	for i := range 3 {
		publish(fmt.Sprintf("m%d", i), "{}")
	}
	started := make(chan struct{}, 3)
	release := make(chan struct{})
	stopping := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	finished := 0
	stop := start(t, Config{Queue: "email", Retry: r, Prefetch: 1, Dialer: dialer(t, env),
		OnEvent: func(e Event) {
			if e.Kind == Stopping {
				once.Do(func() { close(stopping) })
			}
		},
		Handler: func(ctx context.Context, d Delivery) error {
			started <- struct{}{}
			// Hold the delivery until the worker is told to stop.
			<-release
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mu.Lock()
			finished++
			mu.Unlock()
			return nil
		}})
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	<-stopping
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := finished
	mu.Unlock()
	if got < 1 {
		t.Fatalf("the delivery in hand at stop was not finished")
	}
	// Whatever was finished was acked; the rest is back in the queue.
	if d := env.QueueDepth(t, "email"); d != 3-got {
		t.Errorf("queue holds %d after stop with %d finished, want %d", d, got, 3-got)
	}
}

// A queue deleted under a consuming worker (as `topology apply --migrate`
// does) ends the consumer with a basic.cancel; the worker reconnects,
// waits for the queue while it is missing, and consumes the new one.
func TestWorkerConsumesTheQueueAgainAfterItIsRecreated(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ch := env.Channel(t)
	if _, err := ch.QueueDeclare("jobs", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(env.Dial(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	publish := func(prefix string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := range 10 {
			if err := pub.PublishAndWait(ctx, "", "jobs", amqp.Publishing{MessageId: fmt.Sprint(prefix, i), DeliveryMode: amqp.Persistent}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	handled := map[string]bool{}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }
	rec := newRecorder()
	stop := start(t, Config{Queue: "jobs", Prefetch: 5, Dialer: dialer(t, env), OnEvent: rec.event,
		Reconnect: broker.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		Handler: func(ctx context.Context, d Delivery) error {
			mu.Lock()
			handled[d.MessageID] = true
			mu.Unlock()
			return nil
		}})
	publish("before-")
	brokertest.WaitFor(t, "the first 10 messages handled", 20*time.Second, func() bool { return count() == 10 })

	if _, err := ch.QueueDelete("jobs", false, false, false); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "the worker to see the cancel and find the queue missing", 20*time.Second, func() bool {
		return rec.count(Disconnected) >= 1 && rec.count(Retrying) >= 1
	})
	// Declared again with another type, as a migration does.
	if _, err := ch.QueueDeclare("jobs", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	publish("after-")
	brokertest.WaitFor(t, "the messages of the new queue handled", 30*time.Second, func() bool { return count() == 20 })
	if err := stop(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	if n := rec.count(Connected); n < 2 {
		t.Errorf("connected %d times, want a reconnect", n)
	}
}

// A queue that does not exist when the worker starts is a mistake no
// wait fixes; one that stays gone past MissingQueueTimeout ends Run too.
func TestWorkerMissingQueue(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	noop := func(context.Context, Delivery) error { return nil }
	err := Run(ctx, Config{Queue: "nope", Dialer: dialer(t, env), Handler: noop})
	if !errors.Is(err, ErrQueueMissing) || ctx.Err() != nil {
		t.Fatalf("Run on a missing queue = %v, want ErrQueueMissing at once", err)
	}

	ch := env.Channel(t)
	if _, err := ch.QueueDeclare("gone", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Queue: "gone", Dialer: dialer(t, env), Handler: noop, OnEvent: rec.event,
			Reconnect: broker.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}, MissingQueueTimeout: time.Second})
	}()
	brokertest.WaitFor(t, "the worker consuming", 20*time.Second, func() bool { return rec.count(Connected) == 1 })
	if _, err := ch.QueueDelete("gone", false, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrQueueMissing) || !strings.Contains(err.Error(), "after the worker had consumed") {
			t.Errorf("Run after the queue stayed gone = %v, want ErrQueueMissing after the timeout", err)
		}
	case <-ctx.Done():
		t.Fatal("the worker kept waiting for a queue gone past MissingQueueTimeout")
	}
}

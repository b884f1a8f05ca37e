package dlq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/worker"
)

// mixed is a DLQ, email.dlq, that holds every kind of death: a real
// worker's failures of three error kinds (ids and numbers vary per
// message), a message replayed and failed again, broker delivery_limit
// from the quorum queue sms (one with a worker's stale failure headers:
// issue 14's story), and expired and rejected ones from push.
type mixed struct {
	env *brokertest.Env
	ch  *amqp.Channel
}

func newMixed(t *testing.T) *mixed {
	t.Helper()
	env := brokertest.New(t)
	m := &mixed{env: env, ch: env.Channel(t)}
	ch := m.ch
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	dlx := pattern.DeadLetterExchange("email")
	must(ch.ExchangeDeclare(dlx, "direct", true, false, false, false, nil))
	for name, args := range map[string]amqp.Table{
		"email.dlq":                    nil,
		"email":                        {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "email"},
		pattern.DelayQueue("email", 1): {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "email", "x-message-ttl": int32(20)},
		"sms":                          {"x-queue-type": "quorum", "x-delivery-limit": int32(1), "x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "sms"},
		"push":                         {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "push"},
	} {
		_, err := ch.QueueDeclare(name, true, false, false, false, args)
		must(err)
	}
	for _, key := range []string{"email", "sms", "push"} {
		must(ch.QueueBind("email.dlq", key, dlx, false, nil))
	}
	must(ch.Confirm(false))
	return m
}

func (m *mixed) publish(t *testing.T, exchange, key string, msg amqp.Publishing) {
	t.Helper()
	dc, err := m.ch.PublishWithDeferredConfirmWithContext(context.Background(), exchange, key, true, false, msg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
		t.Fatalf("publish to %s not confirmed: %v", key, err)
	}
}

func job(id, kind string, n int) amqp.Publishing {
	return amqp.Publishing{MessageId: id, DeliveryMode: 2, ContentType: "application/json",
		Body: []byte(fmt.Sprintf(`{"kind":%q,"n":%d}`, kind, n))}
}

// handler fails every job by its kind, with ids and numbers that vary;
// a replayed job fails with a timeout.
func handler(_ context.Context, d worker.Delivery) error {
	var b struct {
		Kind string `json:"kind"`
		N    int    `json:"n"`
	}
	_ = json.Unmarshal(d.Body, &b)
	if n, _ := d.Headers[pattern.HeaderReplayCount].(int64); n > 0 {
		b.Kind = "timeout"
	}
	switch b.Kind {
	case "provider":
		return fmt.Errorf("provider unavailable: request %08x-1c2d-4e5f-8a9b-%012x failed", b.N*7919, b.N*104729)
	case "timeout":
		return fmt.Errorf("timeout after %dms calling billing for order %d", 100+b.N, 1000*b.N)
	}
	return worker.Permanent(fmt.Errorf("invalid address u%d@example.com", b.N))
}

type deadLetters struct {
	mu sync.Mutex
	n  int
}

func (c *deadLetters) event(e worker.Event) {
	if e.Kind == worker.DeadLettered {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
}

func (c *deadLetters) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// workerDeaths runs a real worker on email: evt-again fails, is replayed
// and fails again; then three kinds of failures. The worker stops before
// the test replays anything to email.
func (m *mixed) workerDeaths(t *testing.T) {
	t.Helper()
	d, err := broker.NewDialer(m.env.Settings(t), "mixed deaths worker")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	dead := &deadLetters{}
	go func() {
		done <- worker.Run(ctx, worker.Config{Queue: "email", Prefetch: 4, Dialer: d, Handler: handler, OnEvent: dead.event,
			Retry: pattern.Retry{Queue: "email", MaxAttempts: 2, Backoff: []time.Duration{20 * time.Millisecond}, DLQ: "email.dlq"}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	m.publish(t, "", "email", job("evt-again", "provider", 99))
	brokertest.WaitFor(t, "evt-again dead-lettered", 30*time.Second, func() bool { return dead.count() == 1 })
	rep, err := dlq.Replay(context.Background(), m.env.Dial(t), m.env.Dial(t), dlq.ReplayOptions{
		Queue: "email.dlq", Selection: dlq.SelectIDs([]string{"evt-again"}), MaxReplays: 3, Window: 4})
	if err != nil || rep.Replayed != 1 {
		t.Fatalf("replay of evt-again: %v %+v", err, rep)
	}
	brokertest.WaitFor(t, "evt-again dead-lettered again", 30*time.Second, func() bool { return dead.count() == 2 })
	for i, kind := range []string{"provider", "timeout", "invalid", "provider", "timeout", "invalid", "provider", "timeout"} {
		m.publish(t, "", "email", job(fmt.Sprintf("evt-%s-%d", kind, i), kind, i*37+1))
	}
	brokertest.WaitFor(t, "every job dead-lettered", 60*time.Second, func() bool { return dead.count() == 10 })
}

// brokerDeaths: delivery_limit from sms (evt-story carries a worker's
// failure headers from an hour ago), expired and rejected from push.
func (m *mixed) brokerDeaths(t *testing.T) {
	t.Helper()
	story := job("evt-story", "provider", 7)
	story.Headers = amqp.Table{pattern.HeaderOriginQueue: "sms", pattern.HeaderFailureReason: "provider unavailable",
		pattern.HeaderAttempt: int32(2), pattern.HeaderFailedAt: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
		pattern.HeaderFirstFailedAt: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}
	for _, p := range []amqp.Publishing{job("evt-limit-1", "sms", 1), story, job("evt-limit-2", "sms", 2)} {
		m.publish(t, "", "sms", p)
	}
	ch := m.env.Channel(t)
	defer ch.Close()
	// Done when the DLQ has them: sms may look empty for a moment while a
	// rejected message is on its way back.
	before := m.env.QueueDepth(t, "email.dlq")
	brokertest.WaitFor(t, "sms looped to its delivery limit", 30*time.Second, func() bool {
		d, ok, err := ch.Get("sms", false)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			_ = d.Reject(true)
		}
		return m.env.QueueDepth(t, "email.dlq") == before+3
	})
	for i := 1; i <= 2; i++ {
		p := job(fmt.Sprintf("evt-expired-%d", i), "push", i)
		p.Expiration = "1"
		m.publish(t, "", "push", p)
	}
	brokertest.WaitFor(t, "push messages expired", 30*time.Second, func() bool { return m.env.QueueDepth(t, "push") == 0 })
	m.publish(t, "", "push", job("evt-rejected", "push", 3))
	d, ok, err := ch.Get("push", false)
	if err != nil || !ok {
		t.Fatalf("get push: %v %v", ok, err)
	}
	_ = d.Reject(false)
	brokertest.WaitFor(t, "15 dead letters", 30*time.Second, func() bool { return m.env.QueueDepth(t, "email.dlq") == 15 })
}

// arrivals publishes dead letters into email.dlq while a replay runs
// (from its first progress report): the replay never reads them.
type arrivals struct {
	t    *testing.T
	m    *mixed
	msgs []amqp.Publishing
	once sync.Once
}

func (a *arrivals) Add(int) {
	a.once.Do(func() {
		for _, p := range a.msgs {
			a.m.publish(a.t, pattern.DeadLetterExchange("email"), "email", p)
		}
	})
}

func groupCounts(gs []dlq.Group) map[string]int {
	out := map[string]int{}
	for _, g := range gs {
		out[*g.Origin+" | "+*g.Reason+" | "+*g.Error] = g.Count
	}
	return out
}

func TestMixedDeathsGroupsAndSelectedReplay(t *testing.T) {
	t.Parallel()
	m := newMixed(t)
	m.workerDeaths(t)
	m.brokerDeaths(t)
	ctx := context.Background()

	res, err := dlq.GroupQueue(ctx, m.env.Dial(t), "email.dlq", 0, dlq.GroupAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"email | failed | provider unavailable: request <id> failed":         3,
		"email | failed | timeout after <n>ms calling billing for order <n>": 4,
		"email | failed | invalid address <email>":                           2,
		"sms | delivery_limit | ":                                            3,
		"push | expired | ":                                                  2,
		"push | rejected | ":                                                 1,
	}
	if got := groupCounts(res.Groups); !reflect.DeepEqual(got, want) || res.Read != 15 || res.Selected != 15 {
		t.Errorf("groups (read %d, selected %d):\n%v\nwant\n%v", res.Read, res.Selected, got, want)
	}
	checkNewestReasons(t, m)

	// The story is found by what the worker saw before the loop.
	f, err := dlq.NewFilter(`reason == "delivery_limit" && last_error contains "provider"`, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dry := replay(t, m, &dlq.Selection{All: true, Filter: f}, true, nil)
	if dry.Scanned != 15 || len(dry.Outcomes) != 1 || dry.Outcomes[0].ID != "evt-story" || dry.Outcomes[0].Destination != "sms" {
		t.Errorf("dry run by last_error: %+v", dry)
	}
	replayByWhere(t, m)
	replayByGroup(t, m, res.Groups)
}

// checkNewestReasons reads every message and checks the reason shown is
// its newest death.
func checkNewestReasons(t *testing.T, m *mixed) {
	t.Helper()
	got := map[string]dlq.Death{}
	if _, err := dlq.Peek(context.Background(), m.env.Dial(t), "email.dlq", 0, func(r dlq.Record) error {
		got[r.ID] = r.Death
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id, d := range got {
		want := map[string]string{"evt-story": "delivery_limit", "evt-limit-1": "delivery_limit", "evt-limit-2": "delivery_limit",
			"evt-expired-1": "expired", "evt-expired-2": "expired", "evt-rejected": "rejected"}[id]
		if want == "" {
			want = dlq.ReasonFailed
		}
		if d.Reason != want {
			t.Errorf("%s: reason %q, want %q (history %+v)", id, d.Reason, want, d.History)
		}
	}
	story := got["evt-story"]
	if dlq.ReasonText(story) != "delivery_limit" || story.LastError != "provider unavailable" || story.OriginQueue != "sms" {
		t.Errorf("evt-story shows %q (last error %q, origin %s): the stale failure header won", dlq.ReasonText(story), story.LastError, story.OriginQueue)
	}
	again := got["evt-again"]
	var lives []string
	for _, e := range again.History {
		if !e.Retry {
			lives = append(lives, fmt.Sprintf("%d:%s", e.Life, dlq.NormalizeError(e.Error)))
		}
	}
	if fmt.Sprint(lives) != "[0:provider unavailable: request <id> failed 1:timeout after <n>ms calling billing for order <n>]" ||
		again.Deaths != 4 {
		t.Errorf("evt-again: history %v, %d deaths; want the first failure, then the second, 2 attempts each", lives, again.Deaths)
	}
}

func replay(t *testing.T, m *mixed, sel *dlq.Selection, dryRun bool, progress dlq.Progress) *dlq.Report {
	t.Helper()
	rep, err := dlq.Replay(context.Background(), m.env.Dial(t), m.env.Dial(t), dlq.ReplayOptions{
		Queue: "email.dlq", Selection: sel, MaxReplays: 3, Window: 2, DryRun: dryRun, Progress: progress, AllOutcomes: true})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func sorted(ids []string) []string {
	sort.Strings(ids)
	return ids
}

// replayByWhere moves the timeouts back to email, while two more
// timeouts arrive in the DLQ during the replay and stay there.
func replayByWhere(t *testing.T, m *mixed) {
	t.Helper()
	f, err := dlq.NewFilter(`origin == "email" && error contains "timeout" && age < duration("1h")`, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	late := func(id string) amqp.Publishing {
		p := job(id, "timeout", 5)
		p.Headers = amqp.Table{pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "timeout after 1ms calling billing for order 5",
			pattern.HeaderFailedAt: time.Now().UTC().Format(time.RFC3339), pattern.HeaderAttempt: int32(2)}
		return p
	}
	a := &arrivals{t: t, m: m, msgs: []amqp.Publishing{late("evt-late-1"), late("evt-late-2")}}
	rep := replay(t, m, &dlq.Selection{All: true, Filter: f}, false, a)
	if rep.Replayed != 4 || rep.Partial() || rep.Depth != 15 || f.Failed != 0 {
		t.Fatalf("replay --where: %+v (filter failed on %d)", rep, f.Failed)
	}
	want := []string{"evt-again", "evt-timeout-1", "evt-timeout-4", "evt-timeout-7"}
	if got := sorted(ids(drain(t, m.env, "email"))); !reflect.DeepEqual(got, want) {
		t.Errorf("email got %v, want %v", got, want)
	}
	left := brokertest.PeekIDs(t, m.env, "email.dlq")
	if len(left) != 13 || left[len(left)-2] != "evt-late-1" || left[len(left)-1] != "evt-late-2" {
		t.Errorf("dlq holds %v: want the 11 not selected, then the 2 late arrivals", left)
	}
}

// replayByGroup moves the expired group back to push, while a message of
// the same group arrives during the replay and stays.
func replayByGroup(t *testing.T, m *mixed, groups []dlq.Group) {
	t.Helper()
	var key string
	for _, g := range groups {
		if *g.Reason == "expired" {
			key = g.Key
		}
	}
	f, err := dlq.NewFilter("", []string{key}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Same origin, reason and (empty) error: a copy of an expired one's
	// x-death, which RabbitMQ 3.10 keeps (3.13+ drops it: another group,
	// and it must stay all the same).
	late := job("evt-expired-late", "push", 9)
	late.Headers = amqp.Table{"x-death": []any{amqp.Table{"queue": "push", "reason": "expired", "count": int64(1), "time": time.Now()}}}
	a := &arrivals{t: t, m: m, msgs: []amqp.Publishing{late}}
	rep := replay(t, m, &dlq.Selection{All: true, Filter: f}, false, a)
	if rep.Replayed != 2 || rep.Partial() || rep.Depth != 13 {
		t.Fatalf("replay --group %s: %+v", key, rep)
	}
	if got := sorted(ids(drain(t, m.env, "push"))); !reflect.DeepEqual(got, []string{"evt-expired-1", "evt-expired-2"}) {
		t.Errorf("push got %v", got)
	}
	left := brokertest.PeekIDs(t, m.env, "email.dlq")
	if len(left) != 12 || left[len(left)-1] != "evt-expired-late" {
		t.Errorf("dlq holds %v: want the 11 not selected, then the late arrival", left)
	}
	for _, q := range []string{"email", "sms"} {
		if n := m.env.QueueDepth(t, q); n != 0 {
			t.Errorf("%s holds %d messages: a group replay went elsewhere", q, n)
		}
	}
}

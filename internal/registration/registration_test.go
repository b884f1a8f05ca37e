package registration_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/ledger"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/registration"
	"github.com/mqctl/mqctl/internal/registration/registrationtest"
	"github.com/mqctl/mqctl/internal/worker"
)

func openDB(t *testing.T, name string) *ledger.Ledger {
	t.Helper()
	db, err := ledger.Open(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := ledger.New(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRegisterAPIValidatesAndStoresUserWithOutboxRow(t *testing.T) {
	l := openDB(t, "app.db")
	store, err := registration.NewStore(context.Background(), l.DB())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registration.Handler(store, registration.NewRelayHealth()))
	defer srv.Close()
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"name":"Ada","email":"ada@example.com","vip":true}`, 201},
		{`{"name":"Bob","email":"bob@example.com"}`, 201},
		{`{"name":"Ada again","email":"ada@example.com"}`, 409},
		{`{"name":"","email":"x@example.com"}`, 400},
		{`{"name":"Eve","email":"not an address"}`, 400},
		{`{"name":"Eve","email":"Eve <eve@example.com>"}`, 400},
		{`{"name":"Eve","email":"eve@example.com","admin":true}`, 400},
		{`not json`, 400},
	} {
		resp, err := http.Post(srv.URL+"/register", "application/json", bytes.NewBufferString(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("POST %s = %d %v, want %d", tc.body, resp.StatusCode, out, tc.code)
		}
		if tc.code == 201 && (out["user_id"] == "" || out["event_id"] == "") {
			t.Errorf("201 without ids: %v", out)
		}
	}
	st, err := store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Users != 2 || st.Pending != 2 {
		t.Errorf("stats = %+v, want 2 users and 2 pending outbox rows", st)
	}
	rows, _ := store.Pending(context.Background(), 10)
	if len(rows) != 2 || rows[0].RoutingKey != registration.KeyRegisteredVIP || rows[1].RoutingKey != registration.KeyRegistered {
		t.Errorf("outbox rows = %+v", rows)
	}
}

// app is serve (the Stack) + the three workers, in-process, against one
// vhost.
type app struct {
	stack  *registration.Stack
	db     *sql.DB // the stack's
	fx     *registration.Effects
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

func startApp(t *testing.T, env *brokertest.Env, providers map[string]*registration.Provider, overrides ...pattern.Retry) *app {
	t.Helper()
	return startAppOn(t, env.Settings(t), env.Mgmt, env.Vhost, providers, overrides...)
}

// startAppOn applies the registration topology to vhost through mgmt and
// runs the app against the broker in s.
func startAppOn(t *testing.T, s config.Settings, mgmt *rabbithole.Client, vhost string, providers map[string]*registration.Provider, overrides ...pattern.Retry) *app {
	t.Helper()
	policies := registrationtest.Apply(t, mgmt, vhost, overrides...)
	l := openDB(t, "effects.db")
	fx, err := registration.NewEffects(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(name string) *broker.Dialer {
		d, err := broker.NewDialer(s, name)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	db := openDB(t, "app.db").DB()
	stack, err := registration.StartStack(context.Background(), registration.StackConfig{DB: db, Listen: "127.0.0.1:0", Relay: registration.Relay{Dialer: dial("relay")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &app{stack: stack, db: db, fx: fx, cancel: cancel, errs: make(chan error, 8)}
	for _, e := range registration.SideEffects {
		p := providers[e]
		if p == nil {
			p = registration.NewProvider(0, 0, false)
		}
		h, err := fx.Handler(e, p)
		if err != nil {
			t.Fatal(err)
		}
		a.run(func() error {
			return worker.Run(ctx, worker.Config{Queue: e, Retry: policies[e], Prefetch: 5, Dialer: dial("worker " + e), Handler: h})
		})
	}
	t.Cleanup(a.stop)
	return a
}

func (a *app) run(f func() error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := f(); err != nil {
			a.errs <- err
		}
	}()
}

func (a *app) stop() {
	if err := a.stack.Stop(); err != nil {
		a.errs <- err
	}
	a.cancel()
	a.wg.Wait()
}

func (a *app) register(t *testing.T, i int, vip bool) string {
	t.Helper()
	body := fmt.Sprintf(`{"name":"user %d","email":"user%d@example.com","vip":%v}`, i, i, vip)
	resp, err := http.Post(a.stack.URL()+"/register", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out registration.RegisterResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 201 {
		t.Fatalf("register %d: %d %v", i, resp.StatusCode, err)
	}
	return out.UserID
}

// waitExactlyOnce waits until every user has exactly the side effects due.
func (a *app) waitExactlyOnce(t *testing.T, users map[string]bool, what string, within time.Duration) {
	t.Helper()
	brokertest.WaitFor(t, what, within, func() bool {
		tally, _ := a.fx.Count(context.Background())
		return len(exactlyOnce(tally, users)) == 0
	})
}

// exactlyOnce checks every user got one e-mail and one points grant, and
// VIPs (only) one coupon; it returns the problems.
func exactlyOnce(tally registration.Tally, users map[string]bool) []string {
	var problems []string
	for u, vip := range users {
		want := map[string]int{registration.Email: 1, registration.Points: 1, registration.Coupon: 0}
		if vip {
			want[registration.Coupon] = 1
		}
		for effect, n := range want {
			if got := tally[u][effect]; got != n {
				problems = append(problems, fmt.Sprintf("user %s (vip %v): %s %d times, want %d", u, vip, effect, got, n))
			}
		}
	}
	if len(tally) != len(users) {
		problems = append(problems, fmt.Sprintf("side effects for %d users, want %d", len(tally), len(users)))
	}
	return problems
}

func TestEveryRegistrationHasItsSideEffectsExactlyOnce(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	a := startApp(t, env, map[string]*registration.Provider{
		// A flaky provider: retries happen, and still one e-mail per user.
		registration.Email: registration.NewProvider(time.Millisecond, 0.3, false),
	}, pattern.Retry{Queue: registration.Email, MaxAttempts: 12, Backoff: []time.Duration{100 * time.Millisecond}, DLQ: "email.dlq"}) // 0.3^12: no dead letter
	users := map[string]bool{}
	for i := range 60 {
		vip := i%4 == 0
		users[a.register(t, i, vip)] = vip
	}
	// Publish some events a second time, as a relay would after losing a
	// confirm: the ledger must absorb them.
	brokertest.WaitFor(t, "the outbox relayed", 30*time.Second, func() bool {
		st, _ := a.stack.Store.Stats(context.Background())
		return st.Sent == len(users)
	})
	pub, err := broker.NewPublisher(env.Dial(t), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	rows, err := a.db.Query(`SELECT event_id, routing_key, body FROM outbox ORDER BY seq LIMIT 10`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, key string
		var body []byte
		if err := rows.Scan(&id, &key, &body); err != nil {
			t.Fatal(err)
		}
		msg := amqp.Publishing{MessageId: id, DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: body}
		if err := pub.PublishAndWait(context.Background(), registration.Exchange, key, msg); err != nil {
			t.Fatal(err)
		}
	}

	a.waitExactlyOnce(t, users, "every side effect", 60*time.Second)
	// Let duplicates and retries settle, then check nothing happened twice.
	brokertest.WaitFor(t, "queues drained", 30*time.Second, func() bool {
		for _, q := range []string{"email", "points", "coupon", "email.retry.1"} {
			if env.QueueDepth(t, q) != 0 {
				return false
			}
		}
		return true
	})
	a.stop()
	tally, _ := a.fx.Count(context.Background())
	for _, p := range exactlyOnce(tally, users) {
		t.Error(p)
	}
	st, _ := a.stack.Store.Stats(context.Background())
	if st.Pending != 0 || st.Sent != 60 {
		t.Errorf("outbox = %+v, want 60 sent, 0 pending", st)
	}
	for _, q := range []string{"email.dlq", "points.dlq", "coupon.dlq"} {
		if d := env.QueueDepth(t, q); d != 0 {
			t.Errorf("%s holds %d, want 0", q, d)
		}
	}
}

func TestBrokenEmailProviderDeadLettersEveryEmailAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	a := startApp(t, env, map[string]*registration.Provider{registration.Email: registration.NewProvider(0, 1, false)}) // --fail-rate 1
	users := map[string]bool{}
	for i := range 12 {
		users[a.register(t, i, i%3 == 0)] = i%3 == 0
	}
	brokertest.WaitFor(t, "every e-mail in email.dlq", 30*time.Second, func() bool { return env.QueueDepth(t, "email.dlq") == len(users) })
	brokertest.WaitFor(t, "points and coupons", 30*time.Second, func() bool {
		tally, _ := a.fx.Count(context.Background())
		n := 0
		for _, m := range tally {
			n += m[registration.Points]
		}
		return n == len(users)
	})
	a.stop()

	ch := env.Channel(t)
	seen := map[string]bool{}
	for range len(users) {
		m, ok, err := ch.Get("email.dlq", false)
		if err != nil || !ok {
			t.Fatalf("get email.dlq: %v %v", ok, err)
		}
		e, err := registration.DecodeEvent(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		seen[e.UserID] = true
		if got := worker.Attempt(m.Headers); got != 3 {
			t.Errorf("dead letter of %s after attempt %d, want max_attempts 3", e.UserID, got)
		}
		if m.Headers[pattern.HeaderFailureReason] != "provider error (simulated failure)" || m.Headers[pattern.HeaderOriginQueue] != registration.Email {
			t.Errorf("dead letter headers: %v", m.Headers)
		}
		first, _ := time.Parse(time.RFC3339, fmt.Sprint(m.Headers[pattern.HeaderFirstFailedAt]))
		last, _ := time.Parse(time.RFC3339, fmt.Sprint(m.Headers[pattern.HeaderFailedAt]))
		if last.Before(first) {
			t.Errorf("failed-at %v before first-failed-at %v", last, first)
		}
	}
	if len(seen) != len(users) {
		t.Errorf("DLQ holds e-mails of %d distinct users, want %d", len(seen), len(users))
	}
	tally, _ := a.fx.Count(context.Background())
	for u := range users {
		if tally[u][registration.Email] != 0 {
			t.Errorf("user %s got an e-mail from a provider failing every call", u)
		}
	}
	for _, q := range []string{"points.dlq", "coupon.dlq", "email", "email.retry.1", "email.retry.2"} {
		if d := env.QueueDepth(t, q); d != 0 {
			t.Errorf("%s holds %d, want 0", q, d)
		}
	}
}

func TestWorkerDeadLettersABodyThatIsNotJSON(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	a := startApp(t, env, nil)
	pub, err := broker.NewPublisher(env.Dial(t), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.PublishAndWait(context.Background(), registration.Exchange, registration.KeyRegistered, amqp.Publishing{MessageId: "junk", Body: []byte("<html>")}); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "the junk in email.dlq and points.dlq", 20*time.Second, func() bool {
		return env.QueueDepth(t, "email.dlq") == 1 && env.QueueDepth(t, "points.dlq") == 1
	})
	a.stop()
	m, ok, err := env.Channel(t).Get("email.dlq", false)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if r := fmt.Sprint(m.Headers[pattern.HeaderFailureReason]); r == "" || worker.Attempt(m.Headers) != 1 {
		t.Errorf("dead letter reason %q after attempt %d, want a reason after attempt 1", r, worker.Attempt(m.Headers))
	}
}

func TestProducePublishesEveryEventConfirmed(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	registrationtest.Apply(t, env.Mgmt, env.Vhost)
	d, _ := broker.NewDialer(env.Settings(t), "produce test")
	sum, err := registration.Produce(context.Background(), registration.ProduceOptions{Count: 500, VIPRatio: 0.5, Window: 64, Dialer: d})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Confirmed != 500 || sum.Seconds <= 0 || sum.Rate <= 0 || env.QueueDepth(t, registration.Email) != 500 || env.QueueDepth(t, registration.Coupon) != sum.VIP {
		t.Errorf("summary %+v; email holds %d, coupon %d", sum, env.QueueDepth(t, registration.Email), env.QueueDepth(t, registration.Coupon))
	}
}

func TestProduceFailsFastWithoutTheExchange(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	d, _ := broker.NewDialer(env.Settings(t), "produce test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := registration.Produce(ctx, registration.ProduceOptions{Count: 1, Dialer: d})
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Produce without user.events = %v, want a quick error", err)
	}
}

func TestBrokerRestartDuringServeAndConsumeLosesNoRegistration(t *testing.T) {
	t.Parallel()
	node := brokertest.StartNodeWith(t, brokertest.NodeOptions{Management: true})
	slow := func() *registration.Provider { return registration.NewProvider(20*time.Millisecond, 0, false) }
	a := startAppOn(t, node.Settings(t), registrationtest.Mgmt(t, node.MgmtURL()), "/", map[string]*registration.Provider{registration.Email: slow(), registration.Points: slow(), registration.Coupon: slow()})

	users := map[string]bool{}
	for i := range 40 {
		users[a.register(t, i, i%5 == 0)] = i%5 == 0
	}
	brokertest.WaitFor(t, "some side effects before the restart", 30*time.Second, func() bool {
		tally, _ := a.fx.Count(context.Background())
		return len(tally) >= 5
	})
	node.Stop(t)
	// The broker is down: sign-ups still succeed.
	for i := 40; i < 60; i++ {
		users[a.register(t, i, i%5 == 0)] = i%5 == 0
	}
	if st, _ := a.stack.Store.Stats(context.Background()); st.Pending == 0 {
		t.Errorf("no outbox backlog while the broker is down: %+v", st)
	}
	node.Start(t)

	a.waitExactlyOnce(t, users, "every side effect after the restart", 90*time.Second)
	brokertest.WaitFor(t, "the outbox drained", 30*time.Second, func() bool {
		st, _ := a.stack.Store.Stats(context.Background())
		return st.Pending == 0
	})
	a.stop()
	tally, _ := a.fx.Count(context.Background())
	for _, p := range exactlyOnce(tally, users) {
		t.Error(p)
	}
	// Nothing is left behind: with the workers stopped, every queue is
	// empty (unacked deliveries would be back in the ready count).
	for _, q := range []string{"email", "points", "coupon", "email.dlq", "points.dlq", "coupon.dlq"} {
		st, err := node.Channel(t).QueueDeclarePassive(q, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages != 0 {
			t.Errorf("%s holds %d messages after the run, want 0", q, st.Messages)
		}
	}
}

func TestProduceSurvivesABrokerRestart(t *testing.T) {
	t.Parallel()
	node := brokertest.StartNodeWith(t, brokertest.NodeOptions{Management: true})
	registrationtest.Apply(t, registrationtest.Mgmt(t, node.MgmtURL()), "/")
	ch := node.Channel(t)

	// The rate makes the run last 30 s. Once a tenth is confirmed the
	// node is killed (SIGKILL: gone at once, where a clean stop boots
	// rabbitmqctl, which under load took longer than the rest of the run)
	// and started again, so the restart lands mid-run.
	const n, rate = 1500, 50
	d, err := broker.NewDialer(node.Settings(t), "produce restart test")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	connected := 0
	type result struct {
		sum registration.ProduceSummary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := registration.Produce(context.Background(), registration.ProduceOptions{Count: n, Rate: rate, Window: 50, Dialer: d,
			OnEvent: func(e registration.RelayEvent) {
				if e.Kind == "connected" {
					mu.Lock()
					connected++
					mu.Unlock()
				}
			}})
		done <- result{sum, err}
	}()
	brokertest.WaitFor(t, "a tenth of the events confirmed", time.Minute, func() bool {
		q, err := ch.QueueDeclarePassive(registration.Email, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("passive declare %s: %v", registration.Email, err)
		}
		return q.Messages >= n/10
	})
	node.Kill(t)
	node.Start(t)
	var r result
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("produce did not finish within 2 minutes of the restart")
	}
	if r.err != nil || r.sum.Confirmed != n {
		t.Fatalf("produce = %+v, %v; want %d confirmed", r.sum, r.err, n)
	}
	mu.Lock()
	if connected < 2 || r.sum.Reconnects < 1 {
		t.Errorf("connected %d times, %d reconnects: the restart did not happen mid-run", connected, r.sum.Reconnects)
	}
	mu.Unlock()

	// Every event is in the email queue at least once.
	ch = node.Channel(t)
	ids := map[string]bool{}
	for {
		m, ok, err := ch.Get(registration.Email, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		ids[m.MessageId] = true
	}
	if len(ids) != n {
		t.Errorf("email queue holds %d distinct events, want %d", len(ids), n)
	}
}

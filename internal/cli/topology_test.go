package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/iostreams"
)

const exampleTopology = "../../examples/registration/topology.yaml"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type planJSON struct {
	Vhost   string `json:"vhost"`
	Changes []struct {
		Action   string   `json:"action"`
		Kind     string   `json:"kind"`
		Name     string   `json:"name"`
		Details  []string `json:"details"`
		Hint     string   `json:"hint"`
		Messages *int     `json:"messages"`
	} `json:"changes"`
	Summary map[string]int `json:"summary"`
}

func planOf(t *testing.T, env map[string]string, file string, extra ...string) (planJSON, cliResult) {
	t.Helper()
	r := runCLI(t, env, append([]string{"topology", "plan", "-f", file, "-o", "json"}, extra...)...)
	var p planJSON
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
		t.Fatalf("plan -o json: %v\nstdout: %s\nstderr: %s", err, r.Stdout, r.Stderr)
	}
	return p, r
}

// testPublisher publishes with confirms to env's vhost until t ends.
func testPublisher(t *testing.T, env *brokertest.Env) *broker.Publisher {
	t.Helper()
	pub, err := broker.NewPublisher(env.Dial(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return pub
}

func mustRun(t *testing.T, env map[string]string, want int, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, env, args...)
	if r.Code != want {
		t.Fatalf("mqctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, want, r.Stdout, r.Stderr)
	}
	return r
}

func TestTopologyApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	e := env.Environ()

	p, r := planOf(t, e, exampleTopology, "--exit-code")
	// 25 objects and 12 policies: one per work queue and delay queue.
	if r.Code != ExitCondition || p.Summary["create"] != 37 {
		t.Fatalf("plan on an empty vhost: exit %d, summary %v", r.Code, p.Summary)
	}
	mustRun(t, e, 0, "topology", "apply", "-f", exampleTopology)

	p, _ = planOf(t, e, exampleTopology, "--exit-code")
	if len(p.Changes) != 0 || p.Summary["unchanged"] != 37 {
		t.Fatalf("plan after apply: %+v", p)
	}
	r = mustRun(t, e, 0, "topology", "apply", "-f", exampleTopology, "-o", "json")
	var res struct {
		Applied int `json:"applied"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || res.Applied != 0 {
		t.Fatalf("second apply: %v %s", err, r.Stdout)
	}
	if r := mustRun(t, e, 0, "topology", "plan", "-f", exampleTopology); !strings.Contains(r.Stdout, "No changes") {
		t.Errorf("plan table: %s", r.Stdout)
	}

	// The broker reports the queue's type as its only argument, and the
	// pattern's settings as the policy in effect.
	// (The management API names the queue's policy once it has sampled
	// the queue's statistics.)
	var q *rabbithole.DetailedQueueInfo
	brokertest.WaitFor(t, "email's policy in the management API", 15*time.Second, func() bool {
		var err error
		q, err = env.Mgmt.GetQueue(env.Vhost, "email")
		return err == nil && q.Policy != ""
	})
	if !sameJSON(q.Arguments, map[string]any{"x-queue-type": "quorum"}) || q.Policy != "mqctl.email" {
		t.Errorf("email: arguments %v, policy %q", q.Arguments, q.Policy)
	}
	pol, err := env.Mgmt.GetPolicy(env.Vhost, "mqctl.email")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"dead-letter-exchange": "email.dlx", "dead-letter-routing-key": "email",
		"delivery-limit": 10, "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}
	if !sameJSON(map[string]any(pol.Definition), want) {
		t.Errorf("policy mqctl.email = %v, want %v", pol.Definition, want)
	}
	dlq, err := env.Mgmt.GetQueue(env.Vhost, "email.dlq")
	if err != nil || dlq.Type != "classic" || !dlq.Durable {
		t.Errorf("email.dlq: %+v %v", dlq, err)
	}
}

// Every sign-up reaches email and points; only VIP sign-ups reach coupon.
func TestRegistrationTopologyRouting(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	mustRun(t, env.Environ(), 0, "topology", "apply", "-f", exampleTopology)
	pub := testPublisher(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, key := range []string{"user.registered", "user.registered.vip", "user.registered"} {
		if err := pub.PublishAndWait(ctx, "user.events", key, amqp.Publishing{Body: []byte(key), DeliveryMode: amqp.Persistent}); err != nil {
			t.Fatalf("publish %s: %v", key, err)
		}
	}
	for q, want := range map[string]int{"email": 3, "points": 3, "coupon": 1} {
		if got := env.QueueDepth(t, q); got != want {
			t.Errorf("%s holds %d, want %d", q, got, want)
		}
	}
}

func TestTopologyExportThenPlanShowsNoChanges(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	e := env.Environ()
	mustRun(t, e, 0, "topology", "apply", "-f", exampleTopology)
	// Objects mqctl did not create: a classic queue with arguments, an
	// exchange-to-exchange binding, a header binding and a policy.
	ch := env.Channel(t)
	if _, err := ch.QueueDeclare("legacy", true, false, false, false, amqp.Table{"x-max-length": int32(50)}); err != nil {
		t.Fatal(err)
	}
	must(t, ch.ExchangeDeclare("audit", "headers", true, false, false, false, nil))
	must(t, ch.ExchangeBind("audit", "#", "user.events", false, nil))
	must(t, ch.QueueBind("legacy", "", "audit", false, amqp.Table{"x-match": "any", "kind": "vip"}))
	if _, err := env.Mgmt.PutPolicy(env.Vhost, "limit", rabbitholePolicy("^legacy$", "queues", map[string]any{"max-length-bytes": 1000000})); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "exported.yaml")
	mustRun(t, e, 0, "topology", "export", "--out", out)
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "dead_letter: true") || !strings.Contains(string(data), "max_attempts: 4") {
		t.Errorf("export did not recognise the patterns:\n%s", data)
	}
	p, r := planOf(t, e, out, "--exit-code")
	if r.Code != 0 || len(p.Changes) != 0 {
		t.Fatalf("export → plan: exit %d, changes %+v\n%s", r.Code, p.Changes, data)
	}

	// The file names no vhost: applied with a connection to another
	// vhost, it goes there and leaves the source alone.
	if strings.Contains(string(data), "vhost:") {
		t.Errorf("the export names a vhost:\n%s", data)
	}
	other := brokertest.New(t)
	mustRun(t, other.Environ(), 0, "topology", "apply", "-f", out)
	if _, err := other.Mgmt.GetQueue(other.Vhost, "legacy"); err != nil {
		t.Errorf("the exported file did not go to the connection's vhost: %v", err)
	}
	if p, r := planOf(t, e, out, "--exit-code"); r.Code != 0 || len(p.Changes) != 0 {
		t.Errorf("the source vhost changed: %+v", p.Changes)
	}
	r = mustRun(t, e, 0, "topology", "export", "--with-vhost")
	if !strings.Contains(r.Stdout, "vhost: "+env.Vhost) {
		t.Errorf("--with-vhost wrote no vhost:\n%s", r.Stdout)
	}
}

// What RabbitMQ cannot change in place is a migration: plain apply refuses
// it and changes nothing.
func TestTopologyMigrationsLeaveQueueUntouched(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		declare func(ch *amqp.Channel) error
		file    string
		detail  string
	}{
		{"type change", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("orders", true, false, false, false, nil)
			return err
		}, "apiVersion: mqctl/v1\nqueues: [{name: orders, type: quorum}]\n", "type: broker classic, file quorum"},
		{"argument change", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("orders", true, false, false, false, amqp.Table{"x-queue-type": "quorum", "x-max-length": int32(100)})
			return err
		}, "apiVersion: mqctl/v1\nqueues: [{name: orders, arguments: {x-max-length: 200}}]\n", "x-max-length: broker 100, file 200"},
		{"durability change", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("orders", false, false, false, false, nil)
			return err
		}, "apiVersion: mqctl/v1\nqueues: [{name: orders, type: classic}]\n", "durable: broker false, file true"},
		{"pattern settings still in arguments", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("orders", true, false, false, false, amqp.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "orders.dlx"})
			return err
		}, "apiVersion: mqctl/v1\nqueues: [{name: orders, dead_letter: true}]\n", "x-dead-letter-exchange: broker orders.dlx, file (none)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := brokertest.New(t)
			e := env.Environ()
			ch := env.Channel(t)
			if err := c.declare(ch); err != nil && strings.Contains(err.Error(), "transient_nonexcl_queues") {
				// No queue can differ in durability on such a broker;
				// TestTopologyVersionRulesMatchTheBroker covers its refusal
				// of durable: false.
				t.Skipf("this broker denies transient non-exclusive queues: %v", err)
			} else {
				must(t, err)
			}
			// Confirmed publishes: the counts below must be the broker's,
			// not a race with messages still on their way (4.x).
			pub := testPublisher(t, env)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := 0; i < 5; i++ {
				must(t, pub.PublishAndWait(ctx, "", "orders", amqp.Publishing{Body: []byte("m")}))
			}
			before, err := env.Mgmt.GetQueue(env.Vhost, "orders")
			if err != nil {
				t.Fatal(err)
			}
			file := writeFile(t, "t.yaml", c.file)
			p, r := planOf(t, e, file, "--exit-code")
			if r.Code != ExitCondition || p.Summary["migrate"] != 1 || p.Summary["conflict"] != 0 {
				t.Fatalf("plan: exit %d %+v", r.Code, p)
			}
			var hint string
			for _, ch := range p.Changes {
				if ch.Action == "migrate" {
					if !strings.Contains(strings.Join(ch.Details, ";"), c.detail) {
						t.Errorf("migration details %v lack %q", ch.Details, c.detail)
					}
					hint = ch.Hint
				}
			}
			if !strings.Contains(hint, "apply --migrate") || !strings.Contains(hint, " messages to move)") {
				t.Errorf("hint: %q", hint)
			}
			r = mustRun(t, e, ExitCondition, "topology", "apply", "-f", file)
			if !strings.Contains(r.Stderr, "nothing was changed") || !strings.Contains(r.Stderr, "--migrate") {
				t.Errorf("apply stderr: %s", r.Stderr)
			}
			if n := env.QueueDepth(t, "orders"); n != 5 {
				t.Errorf("orders holds %d messages after the refused apply, want 5", n)
			}
			after, err := env.Mgmt.GetQueue(env.Vhost, "orders")
			if err != nil {
				t.Fatal(err)
			}
			if after.Durable != before.Durable || !sameJSON(after.Arguments, before.Arguments) {
				t.Errorf("queue changed: before %+v after %+v", before.Arguments, after.Arguments)
			}
			defs, err := env.Mgmt.ListVhostDefinitions(env.Vhost)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range *defs.Exchanges {
				if strings.HasSuffix(x.Name, ".dlx") {
					t.Errorf("apply created %s despite the pending migration", x.Name)
				}
			}
		})
	}
}

// A retry and dead-letter queue added to a live queue is an in-place
// change: policies carry the settings, the queue keeps its messages, and
// a message the consumer rejects is dead-lettered into the new DLQ.
func TestTopologyPatternAddedToALiveQueueInPlace(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	e := env.Environ()
	ch := env.Channel(t)
	if _, err := ch.QueueDeclare("orders", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	pub := testPublisher(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		must(t, pub.PublishAndWait(ctx, "", "orders", amqp.Publishing{MessageId: fmt.Sprint("m", i), Body: []byte("m")}))
	}
	file := writeFile(t, "t.yaml", "apiVersion: mqctl/v1\nqueues: [{name: orders, dead_letter: true, retry: {max_attempts: 2, backoff: [1s]}}]\n")
	p, r := planOf(t, e, file, "--exit-code")
	if r.Code != ExitCondition || p.Summary["migrate"] != 0 || p.Summary["conflict"] != 0 || p.Summary["create"] == 0 {
		t.Fatalf("plan: exit %d %+v", r.Code, p)
	}
	mustRun(t, e, 0, "topology", "apply", "-f", file)
	if n := env.QueueDepth(t, "orders"); n != 3 {
		t.Fatalf("orders holds %d after apply, want 3", n)
	}
	// The policy is in effect: a rejected message lands in orders.dlq.
	brokertest.WaitFor(t, "the policy on orders", 10*time.Second, func() bool {
		q, err := env.Mgmt.GetQueue(env.Vhost, "orders")
		return err == nil && q.Policy == "mqctl.orders"
	})
	d, ok, err := ch.Get("orders", false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	must(t, d.Reject(false))
	brokertest.WaitFor(t, "the rejected message in orders.dlq", 10*time.Second, func() bool { return env.QueueDepth(t, "orders.dlq") == 1 })
	if ids := brokertest.DrainIDs(t, env, "orders.dlq"); len(ids) != 1 || ids[0] != d.MessageId {
		t.Errorf("orders.dlq holds %v, want [%s]", ids, d.MessageId)
	}
	// An app's own declaration, without arguments beyond the type, is
	// still equivalent.
	if _, err := ch.QueueDeclare("orders", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Errorf("the app's declaration is refused: %v", err)
	}
}

func TestTopologyPruneNeverDeletesANonEmptyQueue(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	e := env.Environ()
	file := writeFile(t, "t.yaml", "apiVersion: mqctl/v1\nqueues: [{name: keep-me}]\n")
	ch := env.Channel(t)
	for _, q := range []string{"full-quorum", "empty-quorum"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ch.QueueDeclare("full-classic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	must(t, ch.ExchangeDeclare("stale", "fanout", true, false, false, false, nil))
	pub := testPublisher(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, q := range []string{"full-quorum", "full-classic"} {
		must(t, pub.PublishAndWait(ctx, "", q, amqp.Publishing{Body: []byte("precious")}))
	}

	// Not on a terminal and no --yes: refused, nothing changed.
	r := mustRun(t, e, ExitUsage, "topology", "apply", "-f", file, "--prune")
	if !strings.Contains(r.Stderr, "--yes") || env.QueueDepth(t, "empty-quorum") != 0 {
		t.Fatalf("stderr: %s", r.Stderr)
	}
	// The management API's counts may still say 0 right after publishing;
	// the exact check before each delete must keep the full queues anyway.
	r = mustRun(t, e, ExitCondition, "topology", "apply", "-f", file, "--prune", "--yes")
	if !strings.Contains(r.Stderr, "full-quorum") || !strings.Contains(r.Stderr, "full-classic") {
		t.Errorf("apply --prune should report the kept queues: %s", r.Stderr)
	}
	for _, q := range []string{"full-quorum", "full-classic"} {
		if n := env.QueueDepth(t, q); n != 1 {
			t.Errorf("%s holds %d, want 1", q, n)
		}
	}
	if _, err := env.Mgmt.GetQueue(env.Vhost, "empty-quorum"); err == nil {
		t.Error("empty-quorum was not pruned")
	}
	if _, err := env.Mgmt.GetExchange(env.Vhost, "stale"); err == nil {
		t.Error("exchange stale was not pruned")
	}
	if _, err := env.Mgmt.GetQueue(env.Vhost, "keep-me"); err != nil {
		t.Errorf("keep-me: %v", err)
	}
}

func TestTopologyConvertsRabbitMQDefinitions(t *testing.T) {
	t.Parallel()
	src := brokertest.New(t)
	dst := brokertest.New(t)
	mustRun(t, src.Environ(), 0, "topology", "apply", "-f", exampleTopology)
	ch := src.Channel(t)
	if _, err := ch.QueueDeclare("legacy", true, false, false, false, amqp.Table{"x-message-ttl": int32(60000)}); err != nil {
		t.Fatal(err)
	}
	must(t, ch.QueueBind("legacy", "user.#", "user.events", false, nil))

	// The definitions document exactly as RabbitMQ exports it.
	resp, err := httpGetDefinitions(src)
	if err != nil {
		t.Fatal(err)
	}
	defsFile := writeFile(t, "definitions.json", resp)
	out := filepath.Join(t.TempDir(), "converted.yaml")
	mustRun(t, nil, 0, "topology", "export", "--from-definitions", defsFile, "--vhost", dst.Vhost, "--out", out)
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "retry:") || !strings.Contains(string(data), "legacy") {
		t.Errorf("converted file:\n%s", data)
	}
	mustRun(t, dst.Environ(), 0, "topology", "validate", "-f", out)
	mustRun(t, dst.Environ(), 0, "topology", "apply", "-f", out)
	if p, r := planOf(t, dst.Environ(), out, "--exit-code"); r.Code != 0 || len(p.Changes) != 0 {
		t.Fatalf("plan after applying the converted file: %+v", p)
	}
	a, err := src.Mgmt.GetQueue(src.Vhost, "legacy")
	if err != nil {
		t.Fatal(err)
	}
	b, err := dst.Mgmt.GetQueue(dst.Vhost, "legacy")
	if err != nil {
		t.Fatal(err)
	}
	// The applied queue names its type (x-queue-type: classic); 4.x also
	// records it on a queue declared without one, 3.x does not: compare
	// types apart.
	delete(a.Arguments, "x-queue-type")
	delete(b.Arguments, "x-queue-type")
	if !sameJSON(a.Arguments, b.Arguments) || a.Type != b.Type || a.Durable != b.Durable {
		t.Errorf("legacy differs: %v %s vs %v %s", a.Arguments, a.Type, b.Arguments, b.Type)
	}
}

func TestTopologyBadInputPointsAtTheLine(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	file := writeFile(t, "bad.yaml", "apiVersion: mqctl/v1\nqueues:\n  - name: q\n    retry: {max_attempts: 3, backoff: [5s, soon]}\n    dead_letter: true\n    colour: red\n")
	for _, cmd := range []string{"validate", "plan", "apply", "show"} {
		r := runCLI(t, env.Environ(), "topology", cmd, "-f", file)
		if r.Code != ExitUsage {
			t.Errorf("%s: exit %d, want 2", cmd, r.Code)
		}
		for _, want := range []string{file + ":4:44: backoff: bad duration \"soon\"", file + ":6:5: unknown key \"colour\""} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("%s stderr lacks %q:\n%s", cmd, want, r.Stderr)
			}
		}
	}
	defs, err := env.Mgmt.ListVhostDefinitions(env.Vhost)
	if err != nil {
		t.Fatal(err)
	}
	if len(*defs.Queues) != 0 {
		t.Errorf("bad input changed the broker: %v", *defs.Queues)
	}
	r := runCLI(t, nil, "topology", "validate", "-f", file, "-o", "json")
	var v struct {
		Valid    bool `json:"valid"`
		Problems []struct {
			Line, Column int
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || v.Valid || len(v.Problems) != 2 || r.Code != ExitUsage {
		t.Errorf("validate -o json: %v %+v exit %d", err, v, r.Code)
	}
}

// The retry/DLQ round trip on the real broker: a message in a delay queue
// comes back onto the work queue after its TTL; a rejected message and a
// message over the delivery limit land in the DLQ.
func TestRetryAndDeadLetterRoundTrip(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	file := writeFile(t, "t.yaml", `apiVersion: mqctl/v1
queues:
  - name: work
    retry: {max_attempts: 3, backoff: [100ms, 200ms]}
    dead_letter: true
    delivery_limit: 2
`)
	mustRun(t, env.Environ(), 0, "topology", "apply", "-f", file)
	pub := testPublisher(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch := env.Channel(t)

	// 1. Delay queue → back to the work queue (default exchange, key work).
	for _, q := range []string{"work.retry.1", "work.retry.2"} {
		must(t, pub.PublishAndWait(ctx, "", q, amqp.Publishing{MessageId: "via-" + q, Body: []byte("x"), DeliveryMode: amqp.Persistent}))
		d := getEventually(ctx, t, ch, "work")
		if d.MessageId != "via-"+q {
			t.Fatalf("work got %q, want via-%s", d.MessageId, q)
		}
		must(t, d.Ack(false))
	}

	// 2. Rejected without requeue → DLQ, with x-death.
	must(t, pub.PublishAndWait(ctx, "", "work", amqp.Publishing{MessageId: "rejected", Body: []byte("x"), DeliveryMode: amqp.Persistent}))
	d := getEventually(ctx, t, ch, "work")
	must(t, d.Reject(false))
	dead := getEventually(ctx, t, ch, "work.dlq")
	if dead.MessageId != "rejected" || !strings.Contains(deathReason(dead), "rejected") {
		t.Fatalf("dlq got %q (death %v)", dead.MessageId, dead.Headers["x-death"])
	}
	must(t, dead.Ack(false))

	// 3. A consumer that hands the message back every time (reject with
	//    requeue: RabbitMQ 4.3 no longer counts nack(requeue) toward the
	//    limit, reject it does) → over the delivery limit → DLQ.
	must(t, pub.PublishAndWait(ctx, "", "work", amqp.Publishing{MessageId: "poison", Body: []byte("x"), DeliveryMode: amqp.Persistent}))
	for i := 0; i < 10; i++ {
		d, ok, err := ch.Get("work", false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if env.QueueDepth(t, "work.dlq") == 1 {
				break
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		must(t, d.Reject(true))
	}
	dead = getEventually(ctx, t, ch, "work.dlq")
	if dead.MessageId != "poison" || !strings.Contains(deathReason(dead), "delivery_limit") {
		t.Fatalf("dlq got %q (death %v)", dead.MessageId, dead.Headers["x-death"])
	}
	must(t, dead.Ack(false))
	if n := env.QueueDepth(t, "work"); n != 0 {
		t.Errorf("work still holds %d", n)
	}
}

func TestTopologyShowAndSchema(t *testing.T) {
	t.Parallel()
	r := mustRun(t, nil, 0, "topology", "show", "-f", exampleTopology)
	for _, want := range []string{"vhost: none in the file (plan and apply use --vhost, else the connection's vhost)", "user.events (topic exchange)", "[user.registered.vip]─▶ coupon", "email.retry.3 (2m)", "email.dlx ─[email]─▶ email.dlq"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.Stdout)
		}
	}
	r = mustRun(t, nil, 0, "topology", "show", "-f", exampleTopology, "-o", "mermaid")
	if !strings.HasPrefix(r.Stdout, "flowchart LR") || !strings.Contains(r.Stdout, `x_user_events -- "user.registered.vip" --> q_coupon`) {
		t.Errorf("mermaid:\n%s", r.Stdout)
	}
	r = mustRun(t, nil, 0, "topology", "schema")
	var s map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil || s["$schema"] == nil {
		t.Errorf("schema: %v", err)
	}
	// -o yaml: the same schema, as YAML.
	r = mustRun(t, nil, 0, "topology", "schema", "-o", "yaml")
	var y map[string]any
	if err := yaml.Unmarshal([]byte(r.Stdout), &y); err != nil || strings.HasPrefix(r.Stdout, "{") || !reflect.DeepEqual(mustJSONRoundTrip(t, y), s) {
		t.Errorf("schema -o yaml is not the JSON schema as YAML (%v):\n%.300s", err, r.Stdout)
	}
	r = runCLIWith(t, func(ios *iostreams.IOStreams) { ios.SetTTY(true, true, true) }, nil, "topology", "validate", "-f", exampleTopology)
	if r.Code != 0 || !strings.Contains(r.Stdout, "is valid") {
		t.Errorf("validate: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
}

// Prune keeps what a queue it keeps needs to dead-letter: its policy,
// DLX, DLQ and delay queue. Proven by rejecting the queue's message after
// the prune: it lands in the DLQ.
func TestTopologyPruneKeepsTheDeadLetterPathOfAQueueInUse(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	e := env.Environ()
	both := writeFile(t, "both.yaml", "apiVersion: mqctl/v1\nqueues:\n  - {name: orders, type: classic, retry: {backoff: [1s], max_attempts: 2}, dead_letter: true}\n  - {name: other}\n")
	mustRun(t, e, 0, "topology", "apply", "-f", both)
	pub := testPublisher(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, pub.PublishAndWait(ctx, "", "orders", amqp.Publishing{Body: []byte("order 1"), MessageId: "order-1"}))

	only := writeFile(t, "only.yaml", "apiVersion: mqctl/v1\nqueues: [{name: other}]\n")
	r := mustRun(t, e, ExitCondition, "topology", "apply", "-f", only, "--prune", "--yes")
	for _, kept := range []string{"orders", "orders.dlq", "orders.retry.1"} {
		if _, err := env.Mgmt.GetQueue(env.Vhost, kept); err != nil {
			t.Errorf("queue %s pruned: %v\n%s", kept, err, r.Stdout)
		}
	}
	if _, err := env.Mgmt.GetExchange(env.Vhost, "orders.dlx"); err != nil {
		t.Errorf("exchange orders.dlx pruned: %v", err)
	}
	if _, err := env.Mgmt.GetPolicy(env.Vhost, "mqctl.orders"); err != nil {
		t.Errorf("policy mqctl.orders pruned: %v", err)
	}
	ch := env.Channel(t)
	d, ok, err := ch.Get("orders", false)
	if err != nil || !ok {
		t.Fatalf("get from orders: %v %v", ok, err)
	}
	must(t, d.Reject(false))
	brokertest.WaitFor(t, "the rejected order in orders.dlq", 30*time.Second, func() bool { return env.QueueDepth(t, "orders.dlq") == 1 })
}

// -f - reads the topology from standard input, as kubectl does; problems
// name it <stdin>, with line and column.
func TestTopologyFileFromStandardInput(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	stdin := func(s string) func(*iostreams.IOStreams) {
		return func(ios *iostreams.IOStreams) { ios.In = strings.NewReader(s) }
	}
	const file = "apiVersion: mqctl/v1\nqueues: [{name: from-stdin, type: classic}]\n"
	if r := runCLIWith(t, stdin(file), env.Environ(), "topology", "validate", "-f", "-"); r.Code != 0 {
		t.Fatalf("validate -f -: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := runCLIWith(t, stdin(file), env.Environ(), "topology", "apply", "-f", "-"); r.Code != 0 {
		t.Fatalf("apply -f -: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if _, err := env.Mgmt.GetQueue(env.Vhost, "from-stdin"); err != nil {
		t.Errorf("apply -f - did not create the queue: %v", err)
	}
	r := runCLIWith(t, stdin("apiVersion: mqctl/v1\nqueues: [{name: q, tpye: classic}]\n"), env.Environ(), "topology", "plan", "-f", "-")
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, "<stdin>:2:") {
		t.Errorf("plan -f - with a typo: exit %d, want 2 naming <stdin>:2:…\n%s", r.Code, r.Stderr)
	}
}

// mustJSONRoundTrip turns v into what encoding/json decodes it to, so YAML
// and JSON decodings compare (numbers as float64).
func mustJSONRoundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The wrong broker is caught: with the AMQP URL of a dead port, or of
// another node, and the management API of the test broker, apply, plan
// and dlq ls refuse (exit 1, naming both addresses), nothing is created on
// either, and doctor fails its same-cluster check.
func TestTopologyRefusesWhenAMQPAndTheManagementAPIAreNotOneBroker(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	file := writeFile(t, "t.yaml", "apiVersion: mqctl/v1\nvhost: "+env.Vhost+"\nqueues: [{name: not-here, type: classic}]\n")
	other := brokertest.StartNodeWith(t, brokertest.NodeOptions{})
	for _, tc := range []struct{ name, url, want string }{
		{"dead port", "amqp://guest:guest@127.0.0.1:1/", "the AMQP node does not answer"},
		{"another node", other.URL(), "not the same broker"},
	} {
		e := map[string]string{"MQCTL_URL": tc.url, "MQCTL_MGMT_URL": env.MgmtURL}
		for _, cmd := range [][]string{{"topology", "apply", "-f", file}, {"topology", "plan", "-f", file}, {"dlq", "ls"}} {
			r := runCLI(t, e, cmd...)
			if r.Code != ExitError || !strings.Contains(r.Stderr, tc.want) || !strings.Contains(r.Stderr, env.MgmtURL) {
				t.Errorf("%s: %v: exit %d, want 1 saying %q and naming %s\n%s", tc.name, cmd, r.Code, tc.want, env.MgmtURL, r.Stderr)
			}
		}
		r := runCLI(t, e, "doctor")
		if r.Code != ExitError || (tc.name == "another node" && !strings.Contains(r.Stdout, "not the same broker")) {
			t.Errorf("%s: doctor: exit %d, want 1 (failing the same-cluster check of another node)\n%s%s", tc.name, r.Code, r.Stdout, r.Stderr)
		}
		if _, err := env.Mgmt.GetQueue(env.Vhost, "not-here"); err == nil {
			t.Fatalf("%s: the queue was created on the management API's broker", tc.name)
		}
	}
}

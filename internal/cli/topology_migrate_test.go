package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/migrate"
)

const migrateFile = `apiVersion: mqctl/v1
exchanges: [{name: orders.x, type: direct}]
queues:
  - name: orders
    type: %s
    bindings: [{exchange: orders.x, routing_key: orders}]
`

// apply --migrate turns a classic queue holding messages into a quorum
// queue; without --yes off a terminal, with --dry-run, and as a plain
// apply, it changes nothing.
func TestTopologyApplyMigrate(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	e := env.Environ()
	e["XDG_STATE_HOME"] = t.TempDir()
	mustRun(t, e, 0, "topology", "apply", "-f", writeFile(t, "classic.yaml", fmt.Sprintf(migrateFile, "classic")))
	pub := testPublisher(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 100 {
		must(t, pub.PublishAndWait(ctx, "orders.x", "orders", amqp.Publishing{MessageId: fmt.Sprint("m", i), DeliveryMode: amqp.Persistent}))
	}
	quorum := writeFile(t, "quorum.yaml", fmt.Sprintf(migrateFile, "quorum"))
	unchanged := func(after string) {
		t.Helper()
		q, err := env.Mgmt.GetQueue(env.Vhost, "orders")
		if err != nil || q.Type != "classic" || env.QueueDepth(t, "orders") != 100 {
			t.Fatalf("after %s: orders %+v, %v, %d messages; want classic with 100", after, q, err, env.QueueDepth(t, "orders"))
		}
		if _, err := env.Mgmt.GetQueue(env.Vhost, "orders.mqctl-migrate"); err == nil {
			t.Fatalf("after %s: the temporary queue exists", after)
		}
	}

	r := mustRun(t, e, 0, "topology", "apply", "-f", quorum, "--migrate", "--dry-run")
	for _, want := range []string{"migrate orders in vhost " + env.Vhost + " (100 messages)", "orders.mqctl-migrate", "Dry run: nothing was changed"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, r.Stdout)
		}
	}
	unchanged("--dry-run")
	r = mustRun(t, e, ExitUsage, "topology", "apply", "-f", quorum, "--migrate")
	if !strings.Contains(r.Stderr, "without --yes") || !strings.Contains(r.Stderr, "orders (100 messages)") || !strings.Contains(r.Stderr, env.Vhost) {
		t.Errorf("refusal without --yes: %s", r.Stderr)
	}
	unchanged("--migrate without --yes")
	r = mustRun(t, e, ExitCondition, "topology", "apply", "-f", quorum)
	if !strings.Contains(r.Stderr, "--migrate") {
		t.Errorf("plain apply: %s", r.Stderr)
	}
	unchanged("a plain apply")

	r = mustRun(t, e, 0, "topology", "apply", "-f", quorum, "--migrate", "--yes", "-o", "json")
	var res struct {
		Plan       planJSON `json:"plan"`
		Migrations []struct {
			Queue     string `json:"queue"`
			MovedOut  int    `json:"moved_out"`
			MovedBack int    `json:"moved_back"`
		} `json:"migrations"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, r.Stdout)
	}
	if len(res.Migrations) != 1 || res.Migrations[0].Queue != "orders" || res.Migrations[0].MovedOut != 100 || res.Migrations[0].MovedBack != 100 || res.Plan.Summary["migrate"] != 1 {
		t.Errorf("result: %+v", res)
	}
	q, err := env.Mgmt.GetQueue(env.Vhost, "orders")
	if err != nil || q.Type != "quorum" {
		t.Fatalf("orders after the migration: %+v, %v", q, err)
	}
	if n := env.QueueDepth(t, "orders"); n != 100 {
		t.Errorf("orders holds %d messages, want 100", n)
	}
	if p, _ := planOf(t, e, quorum, "--exit-code"); len(p.Changes) != 0 {
		t.Errorf("plan after the migration: %+v", p)
	}
}

// A migration that stopped after deleting the old queue (here: its
// declare failed) leaves the messages in the temporary queue and a
// journal: a plain apply refuses while it is there, and apply --migrate
// finishes it although the plan shows the queue as one to create.
func TestTopologyApplyMigrateFinishesAnUnfinishedMigration(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	e := env.Environ()
	state := t.TempDir()
	e["XDG_STATE_HOME"] = state
	mustRun(t, e, 0, "topology", "apply", "-f", writeFile(t, "classic.yaml", fmt.Sprintf(migrateFile, "classic")))
	pub := testPublisher(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 20 {
		must(t, pub.PublishAndWait(ctx, "orders.x", "orders", amqp.Publishing{MessageId: fmt.Sprint("m", i), DeliveryMode: amqp.Persistent}))
	}
	d, err := broker.NewDialer(env.Settings(t), "migrate test")
	must(t, err)
	m := &migrate.Queue{Vhost: env.Vhost, Name: "orders", Type: "quorum", Dialer: d, Mgmt: env.Mgmt, StateDir: state,
		Declare: func(context.Context) error { return errors.New("the import failed") }}
	if _, err := m.Run(ctx); err == nil || !strings.Contains(err.Error(), "safe in orders.mqctl-migrate") {
		t.Fatalf("a migration whose declare fails: %v", err)
	}
	if n := env.QueueDepth(t, "orders.mqctl-migrate"); n != 20 {
		t.Fatalf("the temporary queue holds %d messages, want 20", n)
	}

	quorum := writeFile(t, "quorum.yaml", fmt.Sprintf(migrateFile, "quorum"))
	r := mustRun(t, e, ExitCondition, "topology", "apply", "-f", quorum)
	if !strings.Contains(r.Stderr, "unfinished") || !strings.Contains(r.Stderr, "--migrate") {
		t.Errorf("plain apply during an unfinished migration: %s", r.Stderr)
	}
	if _, err := env.Mgmt.GetQueue(env.Vhost, "orders"); err == nil {
		t.Fatal("the refused apply declared orders")
	}
	mustRun(t, e, 0, "topology", "apply", "-f", quorum, "--migrate", "--yes")
	q, err := env.Mgmt.GetQueue(env.Vhost, "orders")
	if err != nil || q.Type != "quorum" || env.QueueDepth(t, "orders") != 20 {
		t.Fatalf("orders after the rerun: %+v, %v", q, err)
	}
	if _, err := env.Mgmt.GetQueue(env.Vhost, "orders.mqctl-migrate"); err == nil {
		t.Error("the temporary queue is still there")
	}
	if q, err := migrate.Pending(state, env.Vhost); err != nil || len(q) != 0 {
		t.Errorf("journals left: %v %v", q, err)
	}
}

// A topology in the argument style moves to the policy style with
// --migrate: the queue loses its x-dead-letter-* arguments (so apps can
// declare it with durable=True alone) and keeps its messages and its
// dead-lettering, now through the mqctl.<queue> policy.
func TestTopologyApplyMigrateFromArgumentsToPolicies(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	e := env.Environ()
	e["XDG_STATE_HOME"] = t.TempDir()
	const src = "apiVersion: mqctl/v1\n%squeues:\n  - {name: tasks, type: classic, retry: {backoff: [1s], max_attempts: 2}, dead_letter: true}\n"
	mustRun(t, e, 0, "topology", "apply", "-f", writeFile(t, "args.yaml", fmt.Sprintf(src, "defaults: {queue_settings: arguments}\n")))
	pub := testPublisher(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 50 {
		must(t, pub.PublishAndWait(ctx, "", "tasks", amqp.Publishing{MessageId: fmt.Sprint("t", i), DeliveryMode: amqp.Persistent}))
	}
	policies := writeFile(t, "policies.yaml", fmt.Sprintf(src, ""))
	if p, _ := planOf(t, e, policies); p.Summary["migrate"] != 2 {
		t.Fatalf("argument style → policy style: plan %v, want tasks and tasks.retry.1 to migrate", p.Summary)
	}
	mustRun(t, e, 0, "topology", "apply", "-f", policies, "--migrate", "--yes")

	// The management API shows a queue's policy from its statistics,
	// which lag: wait for them.
	for queue, arg := range map[string]string{"tasks": "x-dead-letter-exchange", "tasks.retry.1": "x-message-ttl"} {
		brokertest.WaitFor(t, queue+" under its mqctl policy, without "+arg, 30*time.Second, func() bool {
			q, err := env.Mgmt.GetQueueWithParameters(env.Vhost, queue, nil)
			return err == nil && q.Policy == "mqctl."+queue && q.Arguments[arg] == nil
		})
	}
	if _, err := env.Channel(t).QueueDeclare("tasks", true, false, false, false, nil); err != nil {
		t.Errorf("a plain app declaration after the migration: %v", err)
	}
	if n := env.QueueDepth(t, "tasks"); n != 50 {
		t.Errorf("tasks holds %d, want 50", n)
	}
	ch := env.Channel(t)
	d, ok, err := ch.Get("tasks", false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	must(t, d.Reject(false))
	brokertest.WaitFor(t, "the rejected task in tasks.dlq through the policy", 30*time.Second, func() bool { return env.QueueDepth(t, "tasks.dlq") == 1 })
	if p, r := planOf(t, e, policies, "--exit-code"); r.Code != 0 {
		t.Errorf("plan after the migration: %v", p.Summary)
	}
}

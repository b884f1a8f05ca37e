package topology

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
)

// mgmtBroker is MgmtBroker for env's vhost as the CLI builds it.
func mgmtBroker(t *testing.T, env *brokertest.Env) *MgmtBroker {
	t.Helper()
	r, err := broker.NewMgmtReader(env.Settings(t))
	if err != nil {
		t.Fatal(err)
	}
	return &MgmtBroker{Client: env.Mgmt, Reader: r}
}

// Facts reads what the broker says: no deprecated-features list before
// 3.13 (3.10 answers 406), phases only on 4.0, states from 4.3.
func TestFactsOfTheTestBroker(t *testing.T) {
	env := brokertest.New(t)
	facts, err := mgmtBroker(t, env).Facts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v, ok := ParseVersion(facts.Version)
	if !ok {
		t.Fatalf("version %q", facts.Version)
	}
	qml, listed := facts.Features["queue_master_locator"]
	switch {
	case v.Less(Version{3, 13, 0}):
		if facts.Features != nil {
			t.Errorf("RabbitMQ %s has deprecated features %v", v, facts.Features)
		}
	case v.Less(v4_0):
		// 3.13 lists deprecated features, not this one.
	case v.Less(v4_3):
		if !listed || qml.Phase != "permitted_by_default" {
			t.Errorf("RabbitMQ %s: queue_master_locator %+v", v, qml)
		}
	default:
		if !listed || qml.State == "" {
			t.Errorf("RabbitMQ %s: queue_master_locator %+v, want a state", v, qml)
		}
	}
}

// The read-back after an import, on the real broker: a classic queue with
// x-queue-master-locator is skipped by 4.3's definitions import (HTTP
// 204, nothing created), created by 3.x and 4.0. Apply, run here without
// the version check plan and apply do first, must name the skipped queue;
// where the broker creates it, Apply succeeds.
func TestApplyReadsBackWhatTheImportCreated(t *testing.T) {
	env := brokertest.New(t)
	src := "apiVersion: mqctl/v1\nvhost: " + env.Vhost + "\nqueues:\n  - {name: plain, type: classic}\n  - {name: located, type: classic, arguments: {x-queue-master-locator: min-masters}}\n"
	f := mustParse(t, src)
	b := mgmtBroker(t, env)
	ctx := context.Background()
	facts, err := b.Facts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refused, _ := CheckBroker(f, facts)
	p, err := PlanLive(ctx, b, Expand(f), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Apply(ctx, b, p, nil)
	v, _ := ParseVersion(facts.Version)
	skips := !v.Less(v4_3) && facts.Features["queue_master_locator"].State != "permitted"
	if skips != (len(refused) > 0) {
		t.Errorf("RabbitMQ %s: the version check refuses %v, the broker skips: %t", facts.Version, refused, skips)
	}
	if !skips {
		if err != nil {
			t.Fatalf("RabbitMQ %s: %v", facts.Version, err)
		}
		if _, err := env.Mgmt.GetQueue(env.Vhost, "located"); err != nil {
			t.Errorf("RabbitMQ %s: located: %v", facts.Version, err)
		}
		return
	}
	var ie *ImportError
	if !errors.As(err, &ie) || ie.Err != nil || len(ie.Missing) != 1 || ie.Missing[0].Name != "located" {
		t.Fatalf("RabbitMQ %s: err = %v, want located named as skipped", facts.Version, err)
	}
	if !strings.Contains(ie.Missing[0].Cause, "use x-queue-leader-locator: balanced") || !strings.Contains(err.Error(), "created in the same import: queue plain") {
		t.Errorf("error:\n%v", err)
	}
	if _, err := env.Mgmt.GetQueue(env.Vhost, "located"); err == nil {
		t.Error("the broker has the queue it skipped")
	}
	var er rabbithole.ErrorResponse
	if errors.As(err, &er) {
		t.Errorf("a skip is not an HTTP error: %v", er)
	}
}

// countsOf is a QueueCounter with fixed answers.
type countsOf struct{ messages, consumers int }

func (c countsOf) QueueCounts(context.Context, string) (int, int, error) {
	return c.messages, c.consumers, nil
}

// The exact count decides only in the vhost the counter reaches; a queue
// of another vhost is judged by the management figures alone.
func TestDeleteQueueIfEmptyAsksTheCounterOfItsVhost(t *testing.T) {
	env := brokertest.New(t)
	ch := env.Channel(t)
	for _, q := range []string{"kept", "deleted"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	b := mgmtBroker(t, env)
	b.Counter, b.CounterVhost = countsOf{messages: 2}, env.Vhost
	why, err := b.DeleteQueueIfEmpty(context.Background(), env.Vhost, "kept")
	if err != nil || why != "holds 2 messages, 0 consumers" {
		t.Fatalf("counter of the vhost: refused %q, %v", why, err)
	}
	// Until the management API has sampled the new queue its counts are
	// unknown, and with no counter for its vhost the queue is kept.
	b.CounterVhost = "another"
	brokertest.WaitFor(t, "the queue deleted on the management figures", 30*time.Second, func() bool {
		why, err = b.DeleteQueueIfEmpty(context.Background(), env.Vhost, "deleted")
		if err != nil {
			t.Fatal(err)
		}
		return why == ""
	})
	if _, err := env.Mgmt.GetQueue(env.Vhost, "deleted"); err == nil {
		t.Error("queue still there")
	}
}

// What AppDeclarations promises, on the real broker: a plain declaration
// (durable, no arguments) of each queue of an applied file fails with
// 406 exactly where it says so, and what it says to send instead works.
// On 4.0+ the vhost's default queue type decides for quorum queues.
func TestAppDeclarationsMatchTheBroker(t *testing.T) {
	env := brokertest.New(t)
	b := mgmtBroker(t, env)
	ctx := context.Background()
	f := mustParse(t, `apiVersion: mqctl/v1
vhost: `+env.Vhost+`
queues:
  - {name: tasks.classic, type: classic, retry: {backoff: [1s], max_attempts: 2}, dead_letter: true}
  - {name: tasks.quorum, type: quorum, retry: {backoff: [1s], max_attempts: 2}, dead_letter: true}
  - {name: tasks.capped, type: classic, arguments: {x-max-length: 100}}
`)
	x := Expand(f)
	if _, err := ApplyExpanded(ctx, b, x); err != nil {
		t.Fatal(err)
	}
	facts, err := b.Facts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 3.x accepts a default queue type of quorum and ignores it here.
	for _, want := range []string{"classic", "quorum"} {
		setDefaultQueueType(t, env, want)
		dqt, err := b.DefaultQueueType(ctx, env.Vhost)
		if err != nil {
			t.Fatal(err)
		}
		apps := AppDeclarations(x, facts.Version, dqt)
		if len(apps) != 3 {
			t.Fatalf("app declarations %+v, want the 3 declared queues", apps)
		}
		for _, a := range apps {
			err := declare(t, env, a.Queue, true, nil)
			if a.Plain != (err == nil) {
				t.Errorf("RabbitMQ %s, vhost default %q (read %q): %s plain=%t, but a plain declaration gave %v", facts.Version, want, dqt, a.Queue, a.Plain, err)
			}
			if !a.Plain {
				if err := declare(t, env, a.Queue, a.Durable, a.Arguments); err != nil {
					t.Errorf("%s: the declaration plan advises (durable=%t, %v) failed: %v", a.Queue, a.Durable, a.Arguments, err)
				}
			}
		}
	}
}

// declare declares queue on a channel of its own (a 406 closes it).
func declare(t *testing.T, env *brokertest.Env, queue string, durable bool, args map[string]any) error {
	table := amqp.Table{}
	for k, v := range args {
		if n, ok := v.(uint64); ok { // YAML's unsigned numbers; AMQP tables take signed
			v = int64(n)
		}
		table[k] = v
	}
	ch := env.Channel(t)
	_, err := ch.QueueDeclare(queue, durable, false, false, false, table)
	return err
}

// setDefaultQueueType updates the vhost's default queue type (rabbit-hole
// has no field for it); 3.10 accepts and ignores it.
func setDefaultQueueType(t *testing.T, env *brokertest.Env, typ string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, brokertest.BaseMgmtURL()+"/api/vhosts/"+env.VhostPath(), strings.NewReader(`{"default_queue_type":"`+typ+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("set vhost %s's default queue type: %s", env.Vhost, res.Status)
	}
}

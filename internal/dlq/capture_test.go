package dlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/worker"
)

// TestCaptureDeathHeaders records the headers a real broker gives dead
// letters, one file per story, into testdata/deaths/<version>/, for the
// unit tests of the death model (TestDeathsFromCapturedHeaders). It runs
// only when MQCTL_CAPTURE_DEATHS=1; point MQCTL_TEST_URL/_MGMT_URL at
// another release (scripts/broker-version.sh env 4.0) to capture it:
//
//	MQCTL_CAPTURE_DEATHS=1 go test -count=1 -run TestCaptureDeathHeaders ./internal/dlq/
func TestCaptureDeathHeaders(t *testing.T) {
	if os.Getenv("MQCTL_CAPTURE_DEATHS") != "1" {
		t.Skip("set MQCTL_CAPTURE_DEATHS=1 to capture broker death headers into testdata")
	}
	env := brokertest.New(t)
	ov, err := env.Mgmt.Overview()
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{t: t, env: env, ch: env.Channel(t)}
	c.declare()
	c.replayedThenFailed() // first: it takes its dead letter back from dlq
	c.rejected()
	c.expired()
	c.maxlen()
	c.deliveryLimit()
	c.workerThenDeliveryLimit()
	c.workerDeadLettered()
	c.rejectedTwice()
	dir := filepath.Join("testdata", "deaths", ov.RabbitMQVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "every story in dlq", 30*time.Second, func() bool { return env.QueueDepth(t, "dlq") >= 8 })
	for {
		d, ok, err := c.ch.Get("dlq", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		h, err := dlq.EncodeTable(d.Headers)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.MarshalIndent(h, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, d.MessageId+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type capture struct {
	t   *testing.T
	env *brokertest.Env
	ch  *amqp.Channel
}

func (c *capture) must(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

// declare: every work queue dead-letters through the fanout dlx into dlq,
// except "first", which dead-letters into "second" (through dlx2).
func (c *capture) declare() {
	ch := c.ch
	c.must(ch.ExchangeDeclare("dlx", "fanout", true, false, false, false, nil))
	c.must(ch.ExchangeDeclare("dlx2", "fanout", true, false, false, false, nil))
	c.must(ch.ExchangeDeclare(pattern.DeadLetterExchange("qwork"), "fanout", true, false, false, false, nil))
	toDLX := amqp.Table{"x-dead-letter-exchange": "dlx"}
	for name, args := range map[string]amqp.Table{
		"dlq":           nil,
		"work":          toDLX,
		"small":         {"x-dead-letter-exchange": "dlx", "x-max-length": int32(1)},
		"first":         {"x-dead-letter-exchange": "dlx2"},
		"second":        toDLX,
		"qwork":         {"x-dead-letter-exchange": "dlx", "x-queue-type": "quorum", "x-delivery-limit": int32(1)},
		"qwork.retry.1": {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "qwork", "x-message-ttl": int32(10)},
	} {
		_, err := ch.QueueDeclare(name, true, false, false, false, args)
		c.must(err)
	}
	c.must(ch.QueueBind("dlq", "", "dlx", false, nil))
	c.must(ch.QueueBind("dlq", "", pattern.DeadLetterExchange("qwork"), false, nil))
	c.must(ch.QueueBind("second", "", "dlx2", false, nil))
	c.must(ch.Confirm(false))
}

func (c *capture) publish(exchange, key string, msg amqp.Publishing) {
	c.t.Helper()
	dc, err := c.ch.PublishWithDeferredConfirmWithContext(context.Background(), exchange, key, true, false, msg)
	c.must(err)
	if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
		c.t.Fatalf("publish to %q not confirmed: %v", key, err)
	}
}

// get waits for one message of queue.
func (c *capture) get(queue string) amqp.Delivery {
	c.t.Helper()
	var d amqp.Delivery
	brokertest.WaitFor(c.t, "a message in "+queue, 30*time.Second, func() bool {
		var ok bool
		var err error
		d, ok, err = c.ch.Get(queue, false)
		c.must(err)
		return ok
	})
	return d
}

func msg(id string) amqp.Publishing {
	return amqp.Publishing{MessageId: id, DeliveryMode: 2, ContentType: "application/json", Body: []byte(`{"order":42}`)}
}

func (c *capture) rejected() {
	c.publish("", "work", msg("rejected"))
	c.must(c.get("work").Reject(false))
}

func (c *capture) expired() {
	m := msg("expired")
	m.Expiration = "1"
	c.publish("", "work", m)
}

func (c *capture) maxlen() {
	c.publish("", "small", msg("maxlen"))
	c.publish("", "small", msg("maxlen-kept"))
}

// loopToLimit rejects (requeue) the head of a quorum queue until the
// broker dead-letters it for its delivery limit.
func (c *capture) loopToLimit(queue string) {
	c.t.Helper()
	for range 10 {
		d := c.get(queue)
		c.must(d.Reject(true))
		if c.env.QueueDepth(c.t, queue) == 0 {
			return
		}
	}
	c.t.Fatalf("%s never reached its delivery limit", queue)
}

func (c *capture) deliveryLimit() {
	c.publish("", "qwork", msg("delivery_limit"))
	c.loopToLimit("qwork")
}

var failedAt = time.Now().Add(-time.Hour).Truncate(time.Second)

// workerThenDeliveryLimit is issue 14's story: attempt 1 failed in the
// worker (its headers stamped, through the delay queue), then the message
// looped on requeues until the broker dead-lettered it.
func (c *capture) workerThenDeliveryLimit() {
	r := pattern.Retry{Queue: "qwork", MaxAttempts: 3, Backoff: []time.Duration{10 * time.Millisecond}, DLQ: "dlq"}
	c.publish("", "qwork", msg("worker_then_delivery_limit"))
	d := c.get("qwork")
	dec := r.AfterFailure(1)
	c.publish(dec.Exchange, dec.RoutingKey, worker.Republish(d, dec, "qwork", 1, errors.New("provider unavailable"), failedAt))
	c.must(d.Ack(false))
	c.loopToLimit("qwork")
}

// workerDeadLettered: two attempts failed, the second after the delay
// queue, and the worker published the message to the dead-letter exchange.
func (c *capture) workerDeadLettered() {
	r := pattern.Retry{Queue: "qwork", MaxAttempts: 2, Backoff: []time.Duration{10 * time.Millisecond}, DLQ: "dlq"}
	c.publish("", "qwork", msg("worker_dead_lettered"))
	for attempt := 1; attempt <= 2; attempt++ {
		d := c.get("qwork")
		dec := r.AfterFailure(attempt)
		cause := errors.New("smtp 451 try again later (mx7.example.com)")
		if attempt == 2 {
			cause = errors.New("smtp 550 mailbox u42@example.com unavailable")
		}
		c.publish(dec.Exchange, dec.RoutingKey, worker.Republish(d, dec, "qwork", attempt, cause, time.Now()))
		c.must(d.Ack(false))
	}
}

func (c *capture) rejectedTwice() {
	c.publish("", "first", msg("rejected_twice"))
	c.must(c.get("first").Reject(false))
	c.must(c.get("second").Reject(false))
}

// replayedThenFailed: a broker rejection, replayed by mqctl to its
// origin, then a worker failure that dead-lettered it.
func (c *capture) replayedThenFailed() {
	r := pattern.Retry{Queue: "qwork", MaxAttempts: 1, DLQ: "dlq"}
	c.publish("", "first", msg("replayed_then_failed"))
	c.must(c.get("first").Reject(false))
	d := c.get("second")
	c.must(d.Reject(false))
	d = c.waitFor("dlq", "replayed_then_failed")
	c.publish("", "qwork", dlq.ForReplay(publishing(d), "dlq", time.Now()))
	c.must(d.Ack(false))
	d = c.get("qwork")
	dec := r.AfterFailure(1)
	c.publish(dec.Exchange, dec.RoutingKey, worker.Republish(d, dec, "qwork", 1, errors.New("timeout after 30s calling billing for order 1234"), time.Now()))
	c.must(d.Ack(false))
}

// waitFor takes the message with id from queue, returning others.
func (c *capture) waitFor(queue, id string) amqp.Delivery {
	c.t.Helper()
	for range 50 {
		d := c.get(queue)
		if d.MessageId == id {
			return d
		}
		c.must(d.Nack(false, true))
	}
	c.t.Fatalf("%s never reached %s", id, queue)
	return amqp.Delivery{}
}

func publishing(d amqp.Delivery) amqp.Publishing {
	return amqp.Publishing{Headers: d.Headers, ContentType: d.ContentType, DeliveryMode: d.DeliveryMode,
		MessageId: d.MessageId, Body: d.Body}
}

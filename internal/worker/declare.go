package worker

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/pattern"
)

// Binding binds a work queue to an exchange.
type Binding struct {
	Exchange, RoutingKey string
}

// DeclareRetryQueue declares a work queue and what the retry and
// dead_letter patterns expand to for it (pattern's doc comment): delay
// queues Q.retry.i, exchange Q.dlx, the classic durable DLQ bound to it,
// and Q itself (quorum) with its dead-letter arguments, then binds Q.
//
// A test helper over AMQP (the worker's and the registration tests use it
// with per-test policies); commands declare through the topology package
// (`mqctl topology apply`, `mqctl demo`). It must declare exactly what
// topology.Expand does: registration's
// TestDeclareTopologyAgreesWithTheAppliedFile fails when they drift.
func DeclareRetryQueue(ch *amqp.Channel, r pattern.Retry, bindings ...Binding) error {
	q := r.Queue
	for i := 1; i <= r.Steps(); i++ {
		_, err := ch.QueueDeclare(pattern.DelayQueue(q, i), true, false, false, false, amqp.Table{
			"x-queue-type":              "quorum",
			"x-message-ttl":             r.Backoff[i-1].Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": q,
			"x-dead-letter-strategy":    "at-least-once",
			"x-overflow":                "reject-publish",
		})
		if err != nil {
			return fmt.Errorf("declare delay queue %s: %w", pattern.DelayQueue(q, i), err)
		}
	}
	args := amqp.Table{"x-queue-type": "quorum"}
	if r.DLQ != "" {
		dlx := pattern.DeadLetterExchange(q)
		if err := ch.ExchangeDeclare(dlx, "direct", true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare dead-letter exchange %s: %w", dlx, err)
		}
		if _, err := ch.QueueDeclare(r.DLQ, true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
			return fmt.Errorf("declare dead-letter queue %s: %w", r.DLQ, err)
		}
		if err := ch.QueueBind(r.DLQ, q, dlx, false, nil); err != nil {
			return fmt.Errorf("bind %s to %s: %w", r.DLQ, dlx, err)
		}
		args["x-dead-letter-exchange"] = dlx
		args["x-dead-letter-routing-key"] = q
		args["x-delivery-limit"] = int64(10)
		args["x-dead-letter-strategy"] = "at-least-once"
		args["x-overflow"] = "reject-publish"
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %s: %w", q, err)
	}
	for _, b := range bindings {
		if err := ch.QueueBind(q, b.RoutingKey, b.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind %s to %s with %q: %w", q, b.Exchange, b.RoutingKey, err)
		}
	}
	return nil
}

package registration

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/worker"
)

// DefaultBackoff is the demo topology's retry backoff
// (examples/registration/topology.yaml).
var DefaultBackoff = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute}

// DefaultMaxAttempts is the demo topology's max_attempts.
const DefaultMaxAttempts = 4

// DefaultRetry is a side effect's retry policy in the demo topology.
func DefaultRetry(effect string) pattern.Retry {
	return pattern.Retry{Queue: effect, MaxAttempts: DefaultMaxAttempts, Backoff: DefaultBackoff, DLQ: pattern.DefaultDLQ(effect)}
}

// Bindings is how each side effect's queue binds to Exchange: every
// registration for e-mail and points, VIP registrations for coupons.
func Bindings(effect string) []worker.Binding {
	if effect == Coupon {
		return []worker.Binding{{Exchange: Exchange, RoutingKey: KeyRegisteredVIP}}
	}
	return []worker.Binding{{Exchange: Exchange, RoutingKey: KeyRegistered + ".#"}}
}

// DeclareTopology declares the registration topology with the given
// policies (one per side effect).
//
// STAND-IN for `mqctl topology apply -f examples/registration/topology.yaml`:
// the topology package is written in parallel; the lead replaces this with
// an apply of that file once it lands. Keep the two in agreement.
func DeclareTopology(ch *amqp.Channel, policies map[string]pattern.Retry) error {
	if err := ch.ExchangeDeclare(Exchange, "topic", true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", Exchange, err)
	}
	for _, effect := range SideEffects {
		r, ok := policies[effect]
		if !ok {
			r = DefaultRetry(effect)
		}
		if err := worker.DeclareRetryQueue(ch, r, Bindings(effect)...); err != nil {
			return err
		}
	}
	return nil
}

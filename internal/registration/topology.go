package registration

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/examples"
	"github.com/mqctl/mqctl/internal/pattern"
	"github.com/mqctl/mqctl/internal/topology"
	"github.com/mqctl/mqctl/internal/worker"
)

// Topology returns the demo topology, examples/registration/topology.yaml
// (embedded), parsed and validated, for vhost. When retry.MaxAttempts > 0
// every side effect's retry policy (max_attempts, backoff) is replaced by
// retry's before validation, so the demo can use short backoffs; the
// queues, bindings and DLQs stay the file's.
func Topology(vhost string, retry pattern.Retry) (*topology.File, error) {
	f, err := topology.ParseAndValidate(examples.RegistrationTopologyPath, examples.RegistrationTopology)
	if err != nil {
		return nil, err
	}
	f.Vhost = vhost
	if retry.MaxAttempts > 0 {
		for i := range f.Queues {
			q := &f.Queues[i]
			if q.Retry == nil {
				continue
			}
			q.Retry.MaxAttempts = retry.MaxAttempts
			q.Retry.Backoff = make([]topology.Duration, len(retry.Backoff))
			for j, d := range retry.Backoff {
				q.Retry.Backoff[j] = topology.Duration(d)
			}
		}
		if ps := topology.Validate(f); len(ps) > 0 {
			return nil, fmt.Errorf("demo retry policy (max attempts %d, backoff %v): %w", retry.MaxAttempts, retry.Backoff, ps)
		}
	}
	return f, nil
}

// Policies returns each side effect's retry policy as f declares it.
func Policies(f *topology.File) (map[string]pattern.Retry, error) {
	out := map[string]pattern.Retry{}
	for _, q := range f.Queues {
		out[q.Name] = f.RetryOf(q)
	}
	for _, e := range SideEffects {
		if _, ok := out[e]; !ok {
			return nil, fmt.Errorf("topology %s has no queue %s", f.Name, e)
		}
	}
	return out, nil
}

// ApplyTopology applies f to its vhost on b the way `mqctl topology apply
// -f FILE` does (plan against the live definitions, then import; Apply
// refuses a plan with conflicts), without pruning.
func ApplyTopology(ctx context.Context, b topology.Broker, f *topology.File) (*topology.Result, error) {
	p, err := topology.PlanLive(ctx, b, topology.Expand(f), topology.PlanOptions{})
	if err != nil {
		return nil, fmt.Errorf("plan the demo topology: %w", err)
	}
	res, err := topology.Apply(ctx, b, p, nil)
	if err != nil {
		return nil, fmt.Errorf("apply the demo topology: %w", err)
	}
	return res, nil
}

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
// A test helper over AMQP (the tests' policies differ per side effect);
// `mqctl demo` applies the example file through the topology package
// (ApplyTopology). TestDeclareTopologyAgreesWithTheAppliedFile keeps the
// two in agreement.
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

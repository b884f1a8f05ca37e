package migrate

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/broker"
)

// FencePrefix begins the name of the policy that fences a queue about to
// be deleted (see fence).
const FencePrefix = "mqctl.fence."

// fencePriority is above any priority a file or an operator gives a
// policy in practice: RabbitMQ applies one policy per queue, the highest.
const fencePriority = 1 << 30

// fenceSettle is how long fence waits after the management API shows the
// fence on the queue: the API reads the queue's record, and the queue
// process applies the policy right after. A message the queue still took
// in between is moved out like any other, since the move runs after it.
const fenceSettle = time.Second

// fence makes the old queue refuse every publish before its last move and
// its delete. Unbinding does not stop publishers to the default exchange,
// and RabbitMQ confirms a message routed to a queue in the instant it is
// deleted, then drops it (rabbit_channel settles a deleted queue's
// pending confirms). A policy of the queue's own name, at a priority
// above the others, with max-length 0 and overflow reject-publish, makes
// the broker nack such a publish instead: a publisher with confirms sends
// it again, and after the delete its mandatory publish is returned until
// the new queue exists. The fence keeps the rest of the queue's effective
// policy, so its dead-lettering stays as it was for consumers still on it.
func (r *run) fence(ctx context.Context, queue string) error {
	def := rabbithole.PolicyDefinition{}
	info, err := r.queuePolicy(queue)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return fmt.Errorf("read queue %s before fencing it: %w", queue, err)
	}
	if info.Policy != "" && info.Policy != fenceName(queue) {
		pol, err := r.q.Mgmt.GetPolicy(r.q.Vhost, info.Policy)
		if err != nil && !notFound(err) {
			return fmt.Errorf("read policy %s of queue %s: %w", info.Policy, queue, err)
		}
		if pol != nil {
			maps.Copy(def, pol.Definition)
		}
	}
	def["max-length"] = 0
	def["overflow"] = "reject-publish"
	if _, err := r.q.Mgmt.PutPolicy(r.q.Vhost, fenceName(queue), rabbithole.Policy{
		Pattern: "^" + regexp.QuoteMeta(queue) + "$", ApplyTo: "queues", Priority: fencePriority, Definition: def,
	}); err != nil {
		return fmt.Errorf("fence %s (a policy refusing publishes before its delete): %w", queue, err)
	}
	deadline := time.Now().Add(r.q.Timeout)
	for {
		info, err := r.queuePolicy(queue)
		switch {
		case notFound(err):
			return nil
		case err != nil:
			return fmt.Errorf("read queue %s after fencing it: %w", queue, err)
		case info.Policy == fenceName(queue):
			return broker.Sleep(ctx, fenceSettle)
		case time.Now().After(deadline):
			return fmt.Errorf("the fence policy %s did not reach queue %s within %s", fenceName(queue), queue, r.q.Timeout)
		}
		if err := broker.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// unfence removes the fence: the new queue has the same name, and must
// not be born refusing every publish. It is idempotent.
func (r *run) unfence(queue string) error {
	if _, err := r.q.Mgmt.DeletePolicy(r.q.Vhost, fenceName(queue)); err != nil && !notFound(err) {
		return fmt.Errorf("remove the fence policy %s: %w; until it is gone %s refuses every publish: run the same command again", fenceName(queue), err, queue)
	}
	return nil
}

func fenceName(queue string) string { return FencePrefix + queue }

// queuePolicy reads the name of the policy applied to queue (only that:
// 3.10 sends consumer details rabbit-hole cannot decode).
func (r *run) queuePolicy(queue string) (*rabbithole.DetailedQueueInfo, error) {
	return r.q.Mgmt.GetQueueWithParameters(r.q.Vhost, queue, url.Values{"columns": {"name,policy"}})
}

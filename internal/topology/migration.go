package topology

import (
	"context"
	"fmt"
	"strings"
)

// WithoutMigrations returns the plan apply can execute next to `apply
// --migrate`: every change but the migrations, no change to a
// migration's temporary queue (TempQueue) or its bindings — an extra
// object for the plan, which a prune would delete while it holds the
// bindings of a queue being migrated — and no change to the policy mqctl
// owns for a migrating queue: its new definition is for the new queue
// type, and RabbitMQ 3.x does not apply a policy with a key the queue's
// type does not support (delivery-limit on a classic queue) at all, so
// the old queue would lose its dead-lettering while it is drained.
// DeclareQueue sets that policy with the new queue. The summary is
// counted anew; the plan itself is not changed.
func (p *Plan) WithoutMigrations() *Plan {
	out := &Plan{Vhost: p.Vhost, Prune: p.Prune, Effective: p.Effective, Apps: p.Apps, Changes: []Change{}}
	out.Summary.Unchanged = p.Summary.Unchanged
	migrating := map[string]bool{}
	for _, c := range p.Changes {
		if c.Action == Migrate && c.Kind == KindQueue {
			migrating[OwnedPolicyName(c.Name)] = true
		}
	}
	for _, c := range p.Changes {
		if c.Action == Migrate || c.migrationTemp() || (c.Kind == KindPolicy && migrating[c.Name]) {
			continue
		}
		out.add(c)
	}
	return out
}

// OwnedPolicyName is the name of the policy mqctl composes for queue.
func OwnedPolicyName(queue string) string { return PolicyPrefix + queue }

// OwnedPolicy is the policy mqctl composes for queue in x, if any.
func (x *Expanded) OwnedPolicy(queue string) (DefPolicy, bool) {
	for _, p := range x.Defs.Policies {
		if p.Name == OwnedPolicyName(queue) {
			return p, true
		}
	}
	return DefPolicy{}, false
}

// migrationTemp reports whether c is about a migration's temporary queue
// or a binding to one.
func (c Change) migrationTemp() bool {
	temp := func(name string) bool { return strings.HasSuffix(name, TempQueue("")) }
	switch {
	case c.Kind == KindQueue:
		return temp(c.Name)
	case c.binding != nil:
		return c.binding.DestinationType == "queue" && temp(c.binding.Destination)
	}
	return false
}

// InequivalentQueueError is a queue that exists with other settings than
// the file's, so that declaring it as the file says does nothing: the
// definitions import leaves an existing queue as it is, and an AMQP
// declaration fails with 406 PRECONDITION_FAILED.
type InequivalentQueueError struct {
	Vhost, Queue string
	// Details says what differs, as the plan does.
	Details []string
}

func (e *InequivalentQueueError) Error() string {
	return fmt.Sprintf("queue %s in vhost %s exists with other settings than the file's (%s): PRECONDITION_FAILED; an app may have declared it again", e.Queue, e.Vhost, strings.Join(e.Details, "; "))
}

// DeclareQueue creates queue q in vhost as the file says, with the policy
// mqctl owns for it when there is one (pol; the import sets policies
// before queues), through the broker's definitions import as Apply does,
// and reads the vhost back: the import answers success for a queue that
// exists with other settings and leaves it as it is, so such a queue is
// an *InequivalentQueueError.
func DeclareQueue(ctx context.Context, b Broker, vhost string, q DefQueue, pol *DefPolicy) error {
	defs := &Definitions{Queues: []DefQueue{q}}
	if pol != nil {
		defs.Policies = []DefPolicy{*pol}
	}
	if err := b.Import(ctx, vhost, defs.ForVhost(vhost)); err != nil {
		return fmt.Errorf("declare queue %s in vhost %s: %w", q.Name, vhost, err)
	}
	live, err := b.Definitions(ctx, vhost)
	if err != nil {
		return fmt.Errorf("read back queue %s in vhost %s: %w", q.Name, vhost, err)
	}
	for _, have := range live.Queues {
		if have.Name != q.Name {
			continue
		}
		if diffs, _ := queueDiffs(q, have); len(diffs) > 0 {
			return &InequivalentQueueError{Vhost: vhost, Queue: q.Name, Details: diffs}
		}
		return nil
	}
	return fmt.Errorf("declare queue %s in vhost %s: the broker answered the import with success but has no such queue; its log says why", q.Name, vhost)
}

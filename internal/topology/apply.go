package topology

import (
	"context"
	"fmt"

	"github.com/mqctl/mqctl/internal/fail"
)

// Broker is what plan and apply need from RabbitMQ. MgmtBroker implements
// it over the management API; tests may use anything.
type Broker interface {
	// Definitions reads the vhost's definitions in one call.
	Definitions(ctx context.Context, vhost string) (*Definitions, error)
	// QueueStates reads every queue's message and consumer counts in one call.
	QueueStates(ctx context.Context, vhost string) (map[string]QueueState, error)
	// Import creates or updates the given objects through the broker's
	// definitions import (objects carry their vhost).
	Import(ctx context.Context, defs *Definitions) error
	DeleteBinding(ctx context.Context, vhost string, b DefBinding) error
	DeletePolicy(ctx context.Context, vhost, name string) error
	DeleteExchange(ctx context.Context, vhost, name string) error
	// DeleteQueueIfEmpty deletes the queue only if it holds no message and
	// has no consumer, checked right before the delete; it returns why not
	// otherwise ("" when deleted).
	DeleteQueueIfEmpty(ctx context.Context, vhost, name string) (refused string, err error)
}

// PlanLive reads the broker once (definitions, then queue counts) and
// diffs x against it.
func PlanLive(ctx context.Context, b Broker, x *Expanded, opts PlanOptions) (*Plan, error) {
	live, err := b.Definitions(ctx, x.Vhost)
	if err != nil {
		return nil, err
	}
	// Message counts matter only for queues that conflict or are not in
	// the file; when there are none (the usual plan), skip that list call.
	p := Diff(x, live, nil, opts)
	if !p.needsStates() {
		return p, nil
	}
	states, err := b.QueueStates(ctx, x.Vhost)
	if err != nil {
		return nil, err
	}
	return Diff(x, live, states, opts), nil
}

func (p *Plan) needsStates() bool {
	for _, c := range p.Changes {
		if c.Kind == KindQueue && c.Action != Create {
			return true
		}
	}
	return false
}

// Result is what apply did.
type Result struct {
	Plan    *Plan    `json:"plan"`
	Applied int      `json:"applied"`
	Deleted int      `json:"deleted"`
	Kept    []string `json:"kept,omitempty"`
}

// ImportBatch bounds the objects sent in one definitions import, so a large
// file shows progress and no single request runs into the HTTP timeout.
const ImportBatch = 500

// Apply executes a plan: it refuses while conflicts exist (fail.Condition,
// nothing changed), sends creates and updates through the broker's
// definitions import in dependency order (exchanges, queues, bindings,
// policies), then, for a pruning plan, deletes extra bindings, policies,
// exchanges and finally queues, each queue only if still empty. progress
// is called with the number of objects done (may be nil).
func Apply(ctx context.Context, b Broker, p *Plan, progress func(int)) (*Result, error) {
	if p.HasConflicts() {
		return nil, fail.Conditionf("plan has %d conflict(s); nothing was changed: resolve them as the plan suggests (`mqctl topology plan -f FILE`) and apply again", p.Summary.Conflict)
	}
	if progress == nil {
		progress = func(int) {}
	}
	res := &Result{Plan: p}
	var stages [4][]Change
	for _, c := range p.Changes {
		if c.Action == Create || c.Action == Update {
			stages[kindOrder[c.Kind]] = append(stages[kindOrder[c.Kind]], c)
		}
	}
	for _, stage := range stages {
		for start := 0; start < len(stage); start += ImportBatch {
			batch := stage[start:min(start+ImportBatch, len(stage))]
			defs := &Definitions{Queues: []DefQueue{}, Exchanges: []DefExchange{}, Bindings: []DefBinding{}, Policies: []DefPolicy{}}
			for _, c := range batch {
				switch {
				case c.exchange != nil:
					defs.Exchanges = append(defs.Exchanges, *c.exchange)
				case c.queue != nil:
					defs.Queues = append(defs.Queues, *c.queue)
				case c.binding != nil:
					defs.Bindings = append(defs.Bindings, *c.binding)
				case c.policy != nil:
					defs.Policies = append(defs.Policies, *c.policy)
				}
			}
			if err := b.Import(ctx, defs.ForVhost(p.Vhost)); err != nil {
				return res, fmt.Errorf("import %d %s definition(s) into vhost %s (%d applied before): %w", len(batch), batch[0].Kind, p.Vhost, res.Applied, err)
			}
			res.Applied += len(batch)
			progress(len(batch))
		}
	}

	// Deletes run from the leaves inwards: bindings before the exchanges
	// and queues they connect.
	for _, kind := range []string{KindBinding, KindPolicy, KindExchange, KindQueue} {
		for _, c := range p.Changes {
			if c.Kind != kind || (c.Action != Delete && c.Action != Keep) {
				continue
			}
			if c.Action == Keep {
				res.Kept = append(res.Kept, c.Name)
				continue
			}
			var err error
			switch kind {
			case KindBinding:
				err = b.DeleteBinding(ctx, p.Vhost, *c.binding)
			case KindPolicy:
				err = b.DeletePolicy(ctx, p.Vhost, c.Name)
			case KindExchange:
				err = b.DeleteExchange(ctx, p.Vhost, c.Name)
			case KindQueue:
				var refused string
				refused, err = b.DeleteQueueIfEmpty(ctx, p.Vhost, c.Name)
				if err == nil && refused != "" {
					res.Kept = append(res.Kept, c.Name)
					progress(1)
					continue
				}
			}
			if err != nil {
				return res, fmt.Errorf("prune %s %s: %w", kind, c.Name, err)
			}
			res.Deleted++
			progress(1)
		}
	}
	return res, nil
}

// Work is how many objects Apply will touch (for a progress bar).
func (p *Plan) Work() int {
	n := 0
	for _, c := range p.Changes {
		switch c.Action {
		case Create, Update, Delete, Keep:
			n++
		}
	}
	return n
}

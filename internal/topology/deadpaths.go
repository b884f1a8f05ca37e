package topology

import (
	"context"
	"fmt"
	"slices"

	"github.com/mqctl/mqctl/internal/deadletter"
)

// keptQueues are the queues the plan keeps.
func (p *Plan) keptQueues() []string {
	var out []string
	for _, c := range p.Changes {
		if c.Kind == KindQueue && c.Action == Keep {
			out = append(out, c.Name)
		}
	}
	return out
}

// recheckDeletes asks the broker, right before a prune deletes anything,
// whether each queue it is to delete is still unused (the management
// counts a plan reads lag behind publishes): a queue in use is kept, and
// with it its dead-letter path, before any of that path is deleted.
func (p *Plan) recheckDeletes(ctx context.Context, b Broker) error {
	var inUse []string
	for _, c := range p.Changes {
		if c.Kind != KindQueue || c.Action != Delete {
			continue
		}
		why, err := b.QueueInUse(ctx, p.Vhost, c.Name)
		if err != nil {
			return fmt.Errorf("check queue %s before pruning: %w", c.Name, err)
		}
		if why != "" && p.keep(KindQueue, c.Name, why, why+": never pruned; drain it and prune again") {
			inUse = append(inUse, c.Name)
		}
	}
	if len(inUse) > 0 && p.live != nil {
		p.keepDeadLetterPaths(p.live, inUse)
	}
	return nil
}

// A queue prune keeps because it holds messages still needs its dead-letter
// and retry path: without its policy, dead-letter exchange, DLQ and delay
// queues, the next rejection drops the message. keepDeadLetterPaths turns
// the deletion of any of them into Keep, following the path on the live
// definitions from each kept queue outwards (what its dead letters pass
// through) and inwards (delay queues that dead-letter back onto it).
func (p *Plan) keepDeadLetterPaths(live *Definitions, kept []string) {
	w := newWorld(live)
	todo := slices.Clone(kept)
	seen := map[string]bool{}
	for len(todo) > 0 {
		k := todo[0]
		todo = todo[1:]
		if seen[k] {
			continue
		}
		seen[k] = true
		why := fmt.Sprintf("on the dead-letter or retry path of kept queue %s", k)
		hint := why + ": kept so its dead letters still reach a queue"
		keepQueue := func(q string) {
			if p.keep(KindQueue, q, why, hint) {
				todo = append(todo, q)
			}
		}
		if pol, ok := w.policyOf(k); ok {
			p.keep(KindPolicy, pol.Name, why, hint)
		}
		if ex, rk, ok := w.target(k); ok {
			if ex == "" {
				keepQueue(rk)
			} else {
				p.keep(KindExchange, ex, why, hint)
				for _, b := range w.routes(ex, rk) {
					p.keep(KindBinding, bindingName(b), why, hint)
					keepQueue(b.Destination)
				}
			}
		}
		for _, q := range w.deadLetteringInto(k) {
			keepQueue(q)
		}
	}
}

// keep turns a planned deletion into Keep, saying why; it reports whether
// there was one.
func (p *Plan) keep(kind, name, why, hint string) bool {
	for i := range p.Changes {
		c := &p.Changes[i]
		if c.Kind == kind && c.Name == name && c.Action == Delete {
			c.Action, c.Hint = Keep, hint
			c.Details = append(c.Details, why)
			p.Summary.Delete--
			p.Summary.Keep++
			return true
		}
	}
	return false
}

// world is a vhost's definitions indexed for dead-letter questions.
type world struct {
	queues    map[string]DefQueue
	exchanges map[string]DefExchange
	bindings  []DefBinding
	policies  *policyIndex
}

func newWorld(defs *Definitions) *world {
	w := &world{queues: map[string]DefQueue{}, exchanges: map[string]DefExchange{}, bindings: defs.Bindings, policies: newPolicyIndex(defs.Policies)}
	for _, q := range defs.Queues {
		w.queues[q.Name] = q
	}
	for _, e := range defs.Exchanges {
		w.exchanges[e.Name] = e
	}
	return w
}

func (w *world) policyOf(queue string) (DefPolicy, bool) {
	q, ok := w.queues[queue]
	if !ok {
		return DefPolicy{}, false
	}
	return w.policies.of(queue, q.Type())
}

// target is where the queue's dead letters go, as deadletter reads it
// (each argument wins over the same policy key).
func (w *world) target(queue string) (ex, rk string, ok bool) {
	q, found := w.queues[queue]
	if !found {
		return "", "", false
	}
	dq := deadletter.Queue{Name: queue, Arguments: q.Arguments}
	if pol, ok := w.policyOf(queue); ok {
		dq.Policy = pol.Definition
	}
	ex, rk, _, ok = dq.Target()
	return ex, rk, ok
}

// routes are the exchange's bindings to queues that a dead letter with
// key rk follows ("" keeps each message's own key: every binding).
func (w *world) routes(ex, rk string) []DefBinding {
	typ := w.exchanges[ex].Type
	var out []DefBinding
	for _, b := range w.bindings {
		if b.Source == ex && b.DestinationType == "queue" && (rk == "" || deadletter.Matches(typ, b.RoutingKey, rk)) {
			out = append(out, b)
		}
	}
	return out
}

// deadLetteringInto are the queues whose dead letters go straight back to
// queue through the default exchange: its retry delay queues.
func (w *world) deadLetteringInto(queue string) []string {
	var out []string
	for name := range w.queues {
		if ex, rk, ok := w.target(name); ok && ex == "" && rk == queue {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// deadLetterWarnings names every queue whose dead letters would go
// nowhere once the plan is applied: its dead-letter exchange missing or
// routing the key to no queue, or a delay queue whose queue is gone.
// RabbitMQ drops such dead letters without a word.
func deadLetterWarnings(x *Expanded, live *Definitions, p *Plan) []string {
	w := newWorld(afterApply(x, live, p))
	var out []string
	for _, name := range sortedKeys(w.queues) {
		ex, rk, ok := w.target(name)
		switch {
		case !ok || (ex == "" && rk == ""):
		case ex == "":
			if _, found := w.queues[rk]; !found {
				out = append(out, fmt.Sprintf("queue %s dead-letters to queue %s, which will not exist: its dead letters are dropped", name, rk))
			}
		case !hasExchange(w, ex):
			out = append(out, fmt.Sprintf("queue %s dead-letters to exchange %s, which will not exist: its dead letters are dropped", name, ex))
		case len(w.routes(ex, rk)) == 0 && !w.forwards(ex):
			out = append(out, fmt.Sprintf("queue %s dead-letters to exchange %s with key %q, which no binding routes to a queue: its dead letters are dropped", name, ex, rk))
		}
	}
	return out
}

func hasExchange(w *world, name string) bool {
	_, ok := w.exchanges[name]
	return ok
}

// forwards reports an exchange-to-exchange binding from ex, which the
// check does not follow: it gives no warning rather than a wrong one.
func (w *world) forwards(ex string) bool {
	for _, b := range w.bindings {
		if b.Source == ex && b.DestinationType == "exchange" {
			return true
		}
	}
	return false
}

// afterApply is the vhost once p is applied: the file's objects, and the
// live ones the file does not name and the plan does not delete.
func afterApply(x *Expanded, live *Definitions, p *Plan) *Definitions {
	deleted := map[string]bool{}
	for _, c := range p.Changes {
		if c.Action == Delete {
			deleted[c.Kind+"\x00"+c.Name] = true
		}
	}
	gone := func(kind, name string) bool { return deleted[kind+"\x00"+name] }
	out := &Definitions{
		Queues:    slices.Clone(x.Defs.Queues),
		Exchanges: slices.Clone(x.Defs.Exchanges),
		Bindings:  slices.Clone(x.Defs.Bindings),
		Policies:  slices.Clone(x.Defs.Policies),
	}
	for _, q := range live.Queues {
		if _, inFile := x.Queues[q.Name]; !inFile && !gone(KindQueue, q.Name) {
			out.Queues = append(out.Queues, q)
		}
	}
	for _, e := range live.Exchanges {
		if _, inFile := x.Exchanges[e.Name]; !inFile && !gone(KindExchange, e.Name) {
			out.Exchanges = append(out.Exchanges, e)
		}
	}
	for _, pol := range live.Policies {
		if _, inFile := x.Policies[pol.Name]; !inFile && !gone(KindPolicy, pol.Name) {
			out.Policies = append(out.Policies, pol)
		}
	}
	inFile := map[string]bool{}
	for _, b := range x.Defs.Bindings {
		inFile[b.Key()] = true
	}
	for _, b := range live.Bindings {
		if !inFile[b.Key()] && !gone(KindBinding, bindingName(b)) {
			out.Bindings = append(out.Bindings, b)
		}
	}
	return out
}

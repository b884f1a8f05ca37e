package topology

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// A queue prune keeps because it holds messages keeps its whole
// dead-letter and retry path, in both styles: its policy, its DLX and the
// binding to its DLQ, the DLQ (empty), and its delay queue and that
// queue's policy. Other extras are still deleted.
func TestPruneKeepsTheDeadLetterPathOfAKeptQueue(t *testing.T) {
	for _, src := range []string{planBase, planArgs} {
		live := liveFrom(t, src)
		live.Queues = append(live.Queues, DefQueue{Name: "stray", Vhost: "v", Durable: true})
		file := "apiVersion: mqctl/v1\nvhost: v\nqueues: [{name: other}]\n"
		states := map[string]QueueState{"q": {Messages: 5}, "q.dlq": {}, "q.retry.1": {}, "stray": {}}
		p := Diff(Expand(mustParse(t, file)), live, states, PlanOptions{Prune: true})

		deleted := map[string]bool{}
		for _, c := range p.Changes {
			if c.Action == Delete {
				deleted[c.Kind+" "+c.Name] = true
			}
		}
		if !deleted["queue stray"] || !deleted["exchange e"] {
			t.Errorf("deletes %v, want stray and e still deleted", deleted)
		}
		for _, keep := range []string{"queue q.dlq", "queue q.retry.1", "exchange q.dlx"} {
			if deleted[keep] {
				t.Errorf("%s deleted while q holds messages; changes: %v", keep, deleted)
			}
		}
		if strings.Contains(src, "queue_settings: arguments") {
			// p is the one policy RabbitMQ applies to q: q keeps it.
			if deleted["policy p"] {
				t.Error("policy p of kept queue q deleted")
			}
			continue
		}
		// mqctl.q, composed from p, is what applies to q: p can go.
		if !deleted["policy p"] {
			t.Error("policy p kept, though mqctl.q is the one applied to q")
		}
		for _, keep := range []string{"policy mqctl.q", "policy mqctl.q.retry.1"} {
			if deleted[keep] {
				t.Errorf("%s deleted while q holds messages", keep)
			}
		}
		if len(p.Warnings) != 0 {
			t.Errorf("warnings %v for a path kept whole", p.Warnings)
		}
	}
}

// Plan warns of a dead-letter path that goes nowhere once applied.
func TestPlanWarnsOfBrokenDeadLetterPaths(t *testing.T) {
	file := `apiVersion: mqctl/v1
vhost: v
exchanges: [{name: dlx, type: direct}]
queues:
  - {name: a}
  - {name: b}
policies:
  - {name: to-missing, pattern: ^a$, apply_to: queues, definition: {dead-letter-exchange: missing}}
  - {name: to-unbound, pattern: ^b$, apply_to: queues, definition: {dead-letter-exchange: dlx, dead-letter-routing-key: b}}
`
	p := Diff(Expand(mustParse(t, file)), &Definitions{}, nil, PlanOptions{})
	if len(p.Warnings) != 2 || !strings.Contains(p.Warnings[0], "queue a dead-letters to exchange missing, which will not exist") ||
		!strings.Contains(p.Warnings[1], `queue b dead-letters to exchange dlx with key "b", which no binding routes to a queue`) {
		t.Errorf("warnings %q", p.Warnings)
	}
	if p := Diff(Expand(mustParse(t, planBase)), &Definitions{}, nil, PlanOptions{}); len(p.Warnings) != 0 {
		t.Errorf("warnings %q for the pattern's own path", p.Warnings)
	}
}

// The plan's counts lag behind publishes: a queue found in use only by
// the re-check right before the deletes is kept with its whole path.
func TestApplyRechecksAndKeepsThePathOfAQueueFoundInUse(t *testing.T) {
	live := liveFrom(t, planBase)
	file := "apiVersion: mqctl/v1\nvhost: v\nqueues: [{name: other}]\n"
	states := map[string]QueueState{"q": {}, "q.dlq": {}, "q.retry.1": {}}
	p := Diff(Expand(mustParse(t, file)), live, states, PlanOptions{Prune: true})
	r := &recorder{inUse: map[string]string{"q": "holds 1 messages, 0 consumers"}}
	res, err := Apply(context.Background(), r, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range r.calls {
		for _, path := range []string{"q.dlx", "mqctl.q", "queue q"} {
			if strings.HasPrefix(call, "delete") && strings.Contains(call, path) {
				t.Errorf("%s: part of the path of q, which is in use", call)
			}
		}
	}
	if !slices.Contains(res.Kept, "q") || !slices.Contains(res.Kept, "q.dlq") || !slices.Contains(res.Kept, "q.retry.1") {
		t.Errorf("kept %v", res.Kept)
	}
}

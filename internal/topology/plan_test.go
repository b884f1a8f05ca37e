package topology

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const planBase = `apiVersion: mqctl/v1
vhost: v
exchanges: [{name: e, type: topic}]
queues:
  - name: q
    bindings: [{exchange: e, routing_key: k}]
    retry: {max_attempts: 2, backoff: [1s]}
    dead_letter: true
policies:
  - {name: p, pattern: ^q$, apply_to: queues, definition: {max-length: 5}}
`

// planArgs is planBase with the patterns' settings in queue arguments.
var planArgs = strings.Replace(planBase, "vhost: v\n", "vhost: v\ndefaults: {queue_settings: arguments}\n", 1)

func findPolicy(d *Definitions, name string) *DefPolicy {
	for i := range d.Policies {
		if d.Policies[i].Name == name {
			return &d.Policies[i]
		}
	}
	return nil
}

// liveFrom simulates what the management API reports after an apply: the
// definitions JSON, numbers as float64.
func liveFrom(t *testing.T, src string) *Definitions {
	t.Helper()
	x := Expand(mustParse(t, src))
	b, _ := json.Marshal(x.Defs)
	var d Definitions
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func TestDiff(t *testing.T) {
	type want struct {
		action Action
		kind   string
		name   string
		detail string // substring of details or hint
	}
	cases := []struct {
		name   string
		file   string
		live   func(*Definitions)
		states map[string]QueueState
		prune  bool
		want   []want
		sum    Summary
	}{
		{name: "empty broker creates everything", file: planBase, live: func(d *Definitions) { *d = Definitions{} },
			sum: Summary{Create: 10}},
		{name: "in sync", file: planBase, sum: Summary{Unchanged: 10}},
		{name: "policy update", file: planBase, live: func(d *Definitions) { findPolicy(d, "p").Definition = map[string]any{"max-length": 9.0} },
			want: []want{{Update, KindPolicy, "p", "definition: broker"}}},
		{name: "missing binding is created", file: planBase, live: func(d *Definitions) { d.Bindings = d.Bindings[1:] },
			want: []want{{Create, KindBinding, "e → queue q [k]", ""}}},
		{name: "type change is a migration", file: planBase,
			live:   func(d *Definitions) { findQueue(d, "q").Arguments["x-queue-type"] = "classic" },
			states: map[string]QueueState{"q": {Messages: 7}},
			want:   []want{{Migrate, KindQueue, "q", "(7 messages to move)"}, {Migrate, KindQueue, "q", "apply --migrate"}},
			sum:    Summary{Migrate: 1, Unchanged: 9}},
		{name: "durability change is a migration", file: planBase,
			live: func(d *Definitions) { findQueue(d, "q").Durable = false },
			want: []want{{Migrate, KindQueue, "q", "durable: broker false, file true"}}},
		{name: "a backoff change is a policy update", file: planBase,
			live: func(d *Definitions) { findPolicy(d, "mqctl.q.retry.1").Definition["message-ttl"] = 2000.0 },
			want: []want{{Update, KindPolicy, "mqctl.q.retry.1", `"message-ttl":2000`}},
			sum:  Summary{Update: 1, Unchanged: 9}},
		{name: "a backoff change in arguments is a migration", file: planArgs,
			live: func(d *Definitions) { findQueue(d, "q.retry.1").Arguments["x-message-ttl"] = 2000.0 },
			want: []want{{Migrate, KindQueue, "q.retry.1", "x-message-ttl: broker 2000, file 1000"}}},
		{name: "settings in arguments move to policies by migration", file: planBase,
			live: func(d *Definitions) { *d = *liveFrom(t, planArgs) },
			want: []want{{Migrate, KindQueue, "q", "argument x-dead-letter-exchange: broker q.dlx, file (none)"},
				{Migrate, KindQueue, "q.retry.1", "argument x-message-ttl: broker 1000, file (none)"},
				{Create, KindPolicy, "mqctl.q", ""}, {Create, KindPolicy, "mqctl.q.retry.1", ""}},
			sum: Summary{Create: 2, Migrate: 2, Unchanged: 6}},
		{name: "an argument the broker lacks can also come from a policy", file: strings.Replace(planBase, "    dead_letter: true\n", "    dead_letter: true\n    arguments: {x-max-length: 10}\n", 1),
			live: func(d *Definitions) { delete(findQueue(d, "q").Arguments, "x-max-length") },
			want: []want{{Migrate, KindQueue, "q", "without moving messages: remove those arguments from the file's queue and add a policy {pattern: \"^q$\", apply_to: queues, definition: {max-length: 10}}"}}},
		{name: "classic queue without x-queue-type matches", file: strings.Replace(planBase, "    dead_letter: true\n", "    dead_letter: true\n    type: classic\n", 1),
			live: func(d *Definitions) {
				delete(findQueue(d, "q").Arguments, "x-queue-type")
				delete(findQueue(d, "q.dlq").Arguments, "x-queue-type")
			},
			sum: Summary{Unchanged: 10}},
		{name: "exchange type change", file: planBase, live: func(d *Definitions) { d.Exchanges[0].Type = "direct" },
			want: []want{{Conflict, KindExchange, "e", "type: broker direct, file topic"}}},
		{name: "extras are reported, not pending", file: planBase,
			live: func(d *Definitions) {
				d.Queues = append(d.Queues, DefQueue{Name: "old", Durable: true})
				d.Exchanges = append(d.Exchanges, DefExchange{Name: "amq.topic", Type: "topic"}, DefExchange{Name: "x", Type: "direct"})
			},
			want: []want{{Extra, KindQueue, "old", "not in the file"}, {Extra, KindExchange, "x", ""}},
			sum:  Summary{Extra: 2, Unchanged: 10}},
		{name: "prune keeps queues with messages or consumers", file: planBase, prune: true,
			live: func(d *Definitions) {
				d.Queues = append(d.Queues, DefQueue{Name: "full"}, DefQueue{Name: "busy"}, DefQueue{Name: "empty"}, DefQueue{Name: "unknown"})
			},
			states: map[string]QueueState{"full": {Messages: 3}, "busy": {Consumers: 1}, "empty": {}},
			want: []want{{Keep, KindQueue, "full", "holds 3 messages"}, {Keep, KindQueue, "busy", "1 consumers"},
				{Delete, KindQueue, "empty", ""}, {Keep, KindQueue, "unknown", "unknown"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := Expand(mustParse(t, c.file))
			live := liveFrom(t, c.file)
			if c.live != nil {
				c.live(live)
			}
			p := Diff(x, live, c.states, PlanOptions{Prune: c.prune})
			if c.sum != (Summary{}) && p.Summary != c.sum {
				t.Errorf("summary = %+v, want %+v", p.Summary, c.sum)
			}
			for _, w := range c.want {
				found := false
				for _, ch := range p.Changes {
					if ch.Action == w.action && ch.Kind == w.kind && ch.Name == w.name &&
						(strings.Contains(strings.Join(ch.Details, ";"), w.detail) || strings.Contains(ch.Hint, w.detail)) {
						found = true
					}
				}
				if !found {
					js, _ := json.MarshalIndent(p.Changes, "", " ")
					t.Errorf("no %s %s %q with %q in\n%s", w.action, w.kind, w.name, w.detail, js)
				}
			}
		})
	}
}

func TestPlanJSONIsStable(t *testing.T) {
	x := Expand(mustParse(t, planBase))
	a, _ := json.Marshal(Diff(x, &Definitions{}, nil, PlanOptions{}))
	b, _ := json.Marshal(Diff(x, &Definitions{}, nil, PlanOptions{}))
	if string(a) != string(b) {
		t.Fatal("plan JSON differs between runs")
	}
	for _, key := range []string{`"action"`, `"kind"`, `"name"`, `"summary"`, `"vhost"`, `"unchanged"`} {
		if !strings.Contains(string(a), key) {
			t.Errorf("plan JSON lacks %s", key)
		}
	}
}

// A file that brings the vhost over manyPolicies policies is warned of,
// with the way out; the same queues with their settings as arguments, or
// a smaller file, are not.
func TestPlanWarnsOfThousandsOfPolicies(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: mqctl/v1\nvhost: v\nqueues:\n")
	for i := range manyPolicies/3 + 1 {
		fmt.Fprintf(&b, "  - {name: q%05d, retry: {max_attempts: 3, backoff: [5s, 30s]}, dead_letter: true}\n", i)
	}
	src := b.String()
	warned := func(src string) bool {
		p := Diff(Expand(mustParse(t, src)), &Definitions{}, nil, PlanOptions{})
		for _, w := range p.Warnings {
			if strings.Contains(w, "policies") && strings.Contains(w, "queue_settings: arguments") {
				return true
			}
		}
		return false
	}
	if !warned(src) {
		t.Errorf("%d work queues with retry (3 policies each): no warning", manyPolicies/3+1)
	}
	if warned(strings.Replace(src, "vhost: v\n", "vhost: v\ndefaults: {queue_settings: arguments}\n", 1)) {
		t.Error("queue_settings: arguments makes no policies, yet the plan warns")
	}
	if warned(src[:strings.LastIndex(src[:len(src)-1], "\n")+1]) {
		t.Errorf("%d policies: warned, want no warning at or below %d", manyPolicies, manyPolicies)
	}
}

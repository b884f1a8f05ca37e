package topology

import (
	"os"
	"reflect"
	"testing"
)

func mustParse(t testing.TB, src string) *File {
	t.Helper()
	f, err := ParseAndValidate("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return f
}

func findQueue(d *Definitions, name string) *DefQueue {
	for i := range d.Queues {
		if d.Queues[i].Name == name {
			return &d.Queues[i]
		}
	}
	return nil
}

// The expansion is the contract with the consumer library and the dlq
// tools (internal/pattern): names and arguments must be exactly these.
func TestExpandFollowsPatternContract(t *testing.T) {
	f := mustParse(t, `apiVersion: mqctl/v1
vhost: v
exchanges: [{name: e, type: topic}]
queues:
  - name: q
    bindings: [{exchange: e, routing_key: k}]
    retry: {max_attempts: 4, backoff: [5s, 30s]}
    dead_letter: true
  - name: c
    type: classic
    dead_letter: c.dead
`)
	x := Expand(f)
	want := map[string]map[string]any{
		"q": {"x-queue-type": "quorum", "x-dead-letter-exchange": "q.dlx", "x-dead-letter-routing-key": "q",
			"x-delivery-limit": int64(10), "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"},
		"q.retry.1": {"x-queue-type": "quorum", "x-message-ttl": int64(5000), "x-dead-letter-exchange": "",
			"x-dead-letter-routing-key": "q", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"},
		"q.retry.2": {"x-queue-type": "quorum", "x-message-ttl": int64(30000), "x-dead-letter-exchange": "",
			"x-dead-letter-routing-key": "q", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"},
		"q.dlq":  {"x-queue-type": "classic"},
		"c":      {"x-queue-type": "classic", "x-dead-letter-exchange": "c.dlx", "x-dead-letter-routing-key": "c"},
		"c.dead": {"x-queue-type": "classic"},
	}
	if len(x.Defs.Queues) != len(want) {
		t.Fatalf("got %d queues, want %d: %+v", len(x.Defs.Queues), len(want), x.Defs.Queues)
	}
	for name, args := range want {
		q := findQueue(&x.Defs, name)
		if q == nil {
			t.Fatalf("queue %s missing", name)
		}
		if !reflect.DeepEqual(q.Arguments, args) || !q.Durable || q.Vhost != "v" {
			t.Errorf("queue %s: got %+v, want args %v durable", name, q, args)
		}
	}
	ex := map[string]string{}
	for _, e := range x.Defs.Exchanges {
		ex[e.Name] = e.Type
	}
	if !reflect.DeepEqual(ex, map[string]string{"e": "topic", "q.dlx": "direct", "c.dlx": "direct"}) {
		t.Errorf("exchanges: %v", ex)
	}
	keys := map[string]bool{}
	for _, b := range x.Defs.Bindings {
		keys[b.Source+">"+b.Destination+"["+b.RoutingKey+"]"] = true
	}
	if !reflect.DeepEqual(keys, map[string]bool{"e>q[k]": true, "q.dlx>q.dlq[q]": true, "c.dlx>c.dead[c]": true}) {
		t.Errorf("bindings: %v", keys)
	}
	if r := f.RetryOf(f.Queues[0]); r.Steps() != 2 || r.AfterFailure(3).RoutingKey != "q.retry.2" || !r.AfterFailure(4).DeadLetter {
		t.Errorf("retry contract: %+v", r)
	}
}

func TestExpandDeliveryLimit(t *testing.T) {
	f := mustParse(t, "apiVersion: mqctl/v1\nqueues: [{name: q, dead_letter: true, delivery_limit: 3}]\n")
	if got := findQueue(&Expand(f).Defs, "q").Arguments["x-delivery-limit"]; got != int64(3) {
		t.Errorf("x-delivery-limit = %v", got)
	}
}

// Export must fold the expansion back into the same file, so export →
// plan shows no changes.
func TestExportRoundTrip(t *testing.T) {
	srcs := map[string]string{
		"example": "",
		"mixed": `apiVersion: mqctl/v1
vhost: v
exchanges: [{name: e, type: headers}, {name: f, type: fanout, durable: false}]
queues:
  - name: a
    bindings: [{exchange: e, arguments: {x-match: any, kind: vip}}]
    retry: {max_attempts: 3, backoff: [1s, 1m]}
    dead_letter: a.dead
    delivery_limit: 5
  - name: b
    type: classic
    arguments: {x-max-length: 100}
    retry: {max_attempts: 2, backoff: [1500ms]}
    dead_letter: true
  - name: plain
bindings:
  - {source: e, destination: f, destination_type: exchange, routing_key: r}
policies:
  - {name: p, pattern: ^a$, apply_to: queues, priority: 2, definition: {max-length: 5}}
`,
	}
	ex, err := os.ReadFile("../../examples/registration/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srcs["example"] = string(ex)
	for name, src := range srcs {
		t.Run(name, func(t *testing.T) {
			f := mustParse(t, src)
			x := Expand(f)
			out, err := Marshal(Export(x.Vhost, &x.Defs))
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseAndValidate("export.yaml", out)
			if err != nil {
				t.Fatalf("exported file is invalid: %v\n%s", err, out)
			}
			p := Diff(Expand(back), &x.Defs, nil, PlanOptions{})
			if p.Pending() || p.Summary.Extra > 0 {
				t.Fatalf("export → plan has changes: %+v\n%s", p.Changes, out)
			}
		})
	}
}

package topology

import (
	"maps"
	"os"
	"reflect"
	"regexp"
	"strings"
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

const contractFile = `apiVersion: mqctl/v1
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
policies:
  - {name: cap, pattern: "^(q|c)$", apply_to: queues, priority: 4, definition: {max-length: 1000}}
`

// The patterns' settings, as policy keys, per queue of contractFile.
var contractSettings = map[string]map[string]any{
	"q": {"dead-letter-exchange": "q.dlx", "dead-letter-routing-key": "q",
		"delivery-limit": int64(10), "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"},
	"q.retry.1": {"message-ttl": int64(5000), "dead-letter-exchange": "",
		"dead-letter-routing-key": "q", "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"},
	"q.retry.2": {"message-ttl": int64(30000), "dead-letter-exchange": "",
		"dead-letter-routing-key": "q", "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"},
	"c": {"dead-letter-exchange": "c.dlx", "dead-letter-routing-key": "c"},
}

var contractTypes = map[string]string{"q": "quorum", "q.retry.1": "quorum", "q.retry.2": "quorum", "q.dlq": "classic", "c": "classic", "c.dead": "classic"}

// The expansion is the contract with the consumer library and the dlq
// tools (internal/pattern): names and settings must be exactly these. With
// queue settings in policies (the default) a queue's arguments are its type
// alone, so an app may declare it with `durable=True`; the settings are one
// policy per queue that also carries the file's policy it outranks.
func TestExpandFollowsPatternContract(t *testing.T) {
	f := mustParse(t, contractFile)
	x := Expand(f)
	if len(x.Defs.Queues) != len(contractTypes) {
		t.Fatalf("got %d queues, want %d: %+v", len(x.Defs.Queues), len(contractTypes), x.Defs.Queues)
	}
	for name, typ := range contractTypes {
		q := findQueue(&x.Defs, name)
		if q == nil {
			t.Fatalf("queue %s missing", name)
		}
		if !reflect.DeepEqual(q.Arguments, map[string]any{"x-queue-type": typ}) || !q.Durable || q.Vhost != "v" {
			t.Errorf("queue %s: got %+v, want only x-queue-type %s, durable", name, q, typ)
		}
	}
	pols := map[string]DefPolicy{}
	for _, p := range x.Defs.Policies {
		pols[p.Name] = p
	}
	if len(pols) != len(contractSettings)+1 {
		t.Errorf("policies: %+v", x.Defs.Policies)
	}
	for q, keys := range contractSettings {
		p, ok := pols[PolicyPrefix+q]
		if !ok {
			t.Errorf("no policy for %s", q)
			continue
		}
		want := maps.Clone(keys)
		wantPriority := 0
		if q == "q" || q == "c" { // matched by the file's policy "cap"
			want["max-length"] = pols["cap"].Definition["max-length"]
			wantPriority = 5
		}
		if !reflect.DeepEqual(p.Definition, want) || p.Pattern != "^"+regexp.QuoteMeta(q)+"$" || p.ApplyTo != "queues" || p.Priority != wantPriority || p.Vhost != "v" {
			t.Errorf("policy for %s: %+v, want definition %v priority %d", q, p, want, wantPriority)
		}
		if e := x.Effective[q]; e.Policy != p.Name || !reflect.DeepEqual(e.Definition, want) {
			t.Errorf("effective policy of %s: %+v", q, e)
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

// queue_settings: arguments writes the same settings as x-arguments and
// composes no policy.
func TestExpandSettingsInArguments(t *testing.T) {
	x := Expand(mustParse(t, strings.Replace(contractFile, "vhost: v\n", "vhost: v\ndefaults: {queue_settings: arguments}\n", 1)))
	for name, typ := range contractTypes {
		want := map[string]any{"x-queue-type": typ}
		for k, v := range contractSettings[name] {
			want["x-"+k] = v
		}
		if q := findQueue(&x.Defs, name); q == nil || !reflect.DeepEqual(q.Arguments, want) {
			t.Errorf("queue %s: got %+v, want args %v", name, q, want)
		}
	}
	if len(x.Defs.Policies) != 1 || x.Defs.Policies[0].Name != "cap" {
		t.Errorf("policies: %+v", x.Defs.Policies)
	}
	if e := x.Effective["q"]; e.Policy != "cap" {
		t.Errorf("effective policy of q: %+v", e)
	}
}

func TestExpandDeliveryLimit(t *testing.T) {
	f := mustParse(t, "apiVersion: mqctl/v1\nqueues: [{name: q, dead_letter: true, delivery_limit: 3}]\n")
	if got := Expand(f).Effective["q"].Definition["delivery-limit"]; got != int64(3) {
		t.Errorf("delivery-limit = %v", got)
	}
}

func TestOwnPolicyNamesAreRefused(t *testing.T) {
	_, err := ParseAndValidate("t.yaml", []byte("apiVersion: mqctl/v1\nqueues: [{name: q, dead_letter: true}]\npolicies:\n  - {name: mqctl.q, pattern: ^q$, definition: {max-length: 1}}\n"))
	if err == nil || !strings.Contains(err.Error(), `t.yaml:4:6: policy "mqctl.q": the name of the policy mqctl composes for queue "q"`) {
		t.Errorf("err = %v", err)
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
	for name, src := range maps.Clone(srcs) {
		if strings.Contains(src, "\ndefaults:\n") {
			srcs[name+" in arguments"] = strings.Replace(src, "\ndefaults:\n", "\ndefaults:\n  queue_settings: arguments\n", 1)
		} else {
			srcs[name+" in arguments"] = strings.Replace(src, "apiVersion: mqctl/v1\n", "apiVersion: mqctl/v1\ndefaults: {queue_settings: arguments}\n", 1)
		}
	}
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
			if back.Defaults.QueueSettings != f.Defaults.QueueSettings {
				t.Errorf("exported queue_settings %q, want %q", back.Defaults.QueueSettings, f.Defaults.QueueSettings)
			}
		})
	}
}

// The index finds the policy RabbitMQ applies: exact-name patterns by
// name, the others by their regexp, the highest priority first, apply-to
// respected; a pattern like ^a.b$ is not taken for the name "a.b".
func TestPolicyIndexMatchesAsTheBrokerDoes(t *testing.T) {
	ix := newPolicyIndex([]DefPolicy{
		{Name: "all", Pattern: ".*", Priority: 0},
		{Name: "mqctl.email", Pattern: "^" + regexp.QuoteMeta("email") + "$", Priority: 1},
		{Name: "dots", Pattern: "^a.b$", Priority: 5},
		{Name: "quorum-only", Pattern: "^q$", Priority: 9, ApplyTo: "quorum_queues"},
		{Name: "bad", Pattern: "(", Priority: 99},
	})
	for _, tc := range []struct{ queue, typ, want string }{
		{"email", Classic, "mqctl.email"},
		{"points", Classic, "all"},
		{"a.b", Classic, "dots"},
		{"axb", Classic, "dots"},
		{"q", Classic, "all"},
		{"q", Quorum, "quorum-only"},
	} {
		if p, ok := ix.of(tc.queue, tc.typ); !ok || p.Name != tc.want {
			t.Errorf("%s (%s): %q %v, want %q", tc.queue, tc.typ, p.Name, ok, tc.want)
		}
	}
	if name, ok := exactName(`^email\.dlq$`); !ok || name != "email.dlq" {
		t.Errorf("exactName of a quoted name: %q %v", name, ok)
	}
}

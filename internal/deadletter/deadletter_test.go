package deadletter

import (
	"reflect"
	"testing"
)

func args(ex, key string) map[string]any {
	m := map[string]any{"x-dead-letter-exchange": ex}
	if key != "" {
		m["x-dead-letter-routing-key"] = key
	}
	return m
}

// testGraph: the retry pattern for email, a policy DLX for points, a
// hand-made pattern for coupon (by name) and billing (by Q.dlx), a topic
// DLX for audit, a dead-letter setting that routes nowhere (lost), an
// orphaned DLQ (gone.dlq), a DLQ by name whose queue dead-letters
// elsewhere (legacy.dlq), and a queue bound to a .dlx with another key.
func testGraph() *Graph {
	q := func(name string, a, p map[string]any) Queue {
		return Queue{Vhost: "v", Name: name, Arguments: a, Policy: p}
	}
	return New(
		[]Queue{
			q("email", args("email.dlx", "email"), nil),
			q("email.retry.1", args("", "email"), nil),
			q("email.dlq", nil, nil),
			q("points", nil, map[string]any{"dead-letter-exchange": "graveyard"}),
			q("points.dead", nil, nil),
			q("coupon", nil, nil),
			q("coupon.dlq", nil, nil),
			q("billing", nil, nil),
			q("billing-failures", nil, nil),
			q("audit", args("dead.topic", "audit.failed"), nil),
			q("audit.failures", nil, nil),
			q("other.failures", nil, nil),
			q("lost", args("nowhere", ""), nil),
			q("back", args("", ""), nil),
			q("gone.dlq", nil, nil),
			q("legacy", args("", "legacy-dead"), nil),
			q("legacy-dead", nil, nil),
			q("legacy.dlq", nil, nil),
		},
		[]Exchange{
			{Vhost: "v", Name: "email.dlx", Type: "direct"}, {Vhost: "v", Name: "graveyard", Type: "fanout"},
			{Vhost: "v", Name: "dead.topic", Type: "topic"}, {Vhost: "v", Name: "billing.dlx", Type: "direct"},
		},
		[]Binding{
			{Vhost: "v", Source: "email.dlx", Queue: "email.dlq", RoutingKey: "email"},
			{Vhost: "v", Source: "email.dlx", Queue: "other.failures", RoutingKey: "not-email"},
			{Vhost: "v", Source: "graveyard", Queue: "points.dead", RoutingKey: "whatever"},
			{Vhost: "v", Source: "graveyard", Queue: "points", RoutingKey: "loop"},
			{Vhost: "v", Source: "dead.topic", Queue: "audit.failures", RoutingKey: "audit.#"},
			{Vhost: "v", Source: "dead.topic", Queue: "other.failures", RoutingKey: "billing.*"},
			{Vhost: "v", Source: "billing.dlx", Queue: "billing-failures", RoutingKey: "billing"},
		},
	)
}

func TestLinksAndRoles(t *testing.T) {
	g := testGraph()
	for _, c := range []struct {
		queue string
		link  *Link
		role  Role
	}{
		{"email", &Link{SourceArguments, "email.dlx", "email", []string{"email.dlq"}}, RoleWork},
		{"email.retry.1", nil, RoleRetry},
		{"email.dlq", nil, RoleDLQ},
		// A fanout routes to every bound queue but the origin itself.
		{"points", &Link{SourcePolicy, "graveyard", "", []string{"points.dead"}}, RoleWork},
		{"points.dead", nil, RoleDLQ},
		{"coupon", &Link{SourcePattern, "coupon.dlx", "coupon", []string{"coupon.dlq"}}, RoleWork},
		{"billing", &Link{SourcePattern, "billing.dlx", "billing", []string{"billing-failures"}}, RoleWork},
		{"billing-failures", nil, RoleDLQ},
		{"audit", &Link{SourceArguments, "dead.topic", "audit.failed", []string{"audit.failures"}}, RoleWork},
		{"other.failures", nil, RoleWork}, // bound to email.dlx, but not with key email
		{"lost", &Link{SourceArguments, "nowhere", "", []string{}}, RoleWork},
		{"back", nil, RoleWork}, // back under its own key: no DLQ
		{"gone.dlq", nil, RoleDLQ},
		{"legacy", &Link{SourceArguments, "", "legacy-dead", []string{"legacy-dead"}}, RoleWork},
		{"legacy.dlq", nil, RoleDLQ},
		{"not-listed", nil, RoleWork},
	} {
		if l, r := g.Link("v", c.queue), g.Role("v", c.queue); !reflect.DeepEqual(l, c.link) || r != c.role {
			t.Errorf("%s: link %+v role %s; want %+v %s", c.queue, l, r, c.link, c.role)
		}
	}
}

func TestDLQsAreTheLinksTargetsAndTheNamed(t *testing.T) {
	got := testGraph().DLQs()
	want := []DLQ{
		{"v", "audit.failures", []string{"audit"}, []Source{SourceArguments}},
		{"v", "billing-failures", []string{"billing"}, []Source{SourcePattern}},
		{"v", "coupon.dlq", []string{"coupon"}, []Source{SourcePattern}},
		{"v", "email.dlq", []string{"email"}, []Source{SourceArguments, SourcePattern}},
		// An orphan, and a DLQ by name whose queue dead-letters elsewhere:
		// DLQs, but nobody's.
		{"v", "gone.dlq", []string{}, []Source{SourcePattern}},
		{"v", "legacy-dead", []string{"legacy"}, []Source{SourceArguments}},
		{"v", "legacy.dlq", []string{}, []Source{SourcePattern}},
		{"v", "points.dead", []string{"points"}, []Source{SourcePolicy}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DLQs\n%+v\nwant\n%+v", got, want)
	}
	// Every DLQ has role dlq and every origin links to it: backlog's rows
	// and dlq ls's list are one answer.
	g := testGraph()
	for _, d := range got {
		if g.Role(d.Vhost, d.Name) != RoleDLQ {
			t.Errorf("%s: role %s", d.Name, g.Role(d.Vhost, d.Name))
		}
		for _, o := range d.Origins {
			if l := g.Link(d.Vhost, o); l == nil || !reflect.DeepEqual(l.Queues, []string{d.Name}) {
				t.Errorf("%s: origin %s links to %+v", d.Name, o, l)
			}
		}
	}
}

func TestSettingKeysResolveOneByOne(t *testing.T) {
	// As in RabbitMQ, each key of an argument wins over the policy's, and
	// a policy key fills in what the arguments lack.
	for _, c := range []struct {
		name         string
		args, policy map[string]any
		ex, key      string
		src          Source
	}{
		{"arguments", args("a", "k"), map[string]any{"dead-letter-exchange": "p", "dead-letter-routing-key": "pk"}, "a", "k", SourceArguments},
		{"policy", nil, map[string]any{"dead-letter-exchange": "p", "dead-letter-routing-key": "pk"}, "p", "pk", SourcePolicy},
		{"argument exchange, policy key", args("a", ""), map[string]any{"dead-letter-routing-key": "pk"}, "a", "pk", SourceArguments},
		{"policy exchange, argument key", map[string]any{"x-dead-letter-routing-key": "k"}, map[string]any{"dead-letter-exchange": "p"}, "p", "k", SourcePolicy},
	} {
		ex, key, src, ok := (&Queue{Arguments: c.args, Policy: c.policy}).Target()
		if !ok || ex != c.ex || key != c.key || src != c.src {
			t.Errorf("%s: %q %q %s %v", c.name, ex, key, src, ok)
		}
	}
	if _, _, _, ok := (&Queue{Arguments: map[string]any{"x-dead-letter-routing-key": "k"}}).Target(); ok {
		t.Error("a routing key alone is no dead-letter setting")
	}
}

func TestVhostsStayApart(t *testing.T) {
	g := New(
		[]Queue{{Vhost: "a", Name: "q", Arguments: args("", "q.dead")}, {Vhost: "b", Name: "q.dead"}},
		nil, nil)
	if l := g.Link("a", "q"); l == nil || len(l.Queues) != 0 {
		t.Errorf("a/q links across vhosts: %+v", l)
	}
	if d := g.DLQs(); len(d) != 0 {
		t.Errorf("DLQs %+v", d)
	}
}

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		typ, binding, key string
		ok                bool
	}{
		{"topic", "a.#", "a", true}, {"topic", "a.#", "a.b.c", true}, {"topic", "#", "", true}, {"topic", "*.b", "a.b", true},
		{"topic", "*.b", "a.c", false}, {"topic", "a.*", "a", false}, {"topic", "#.c", "a.b.c", true}, {"topic", "a.#.c", "a.c", true}, {"topic", "a.#.c", "a.x.y.c", true},
		{"topic", "a", "b", false}, {"topic", "user.registered.#", "user.registered.vip", true}, {"topic", "user.*", "user.registered.vip", false},
		{"direct", "x", "x", true}, {"direct", "x", "y", false},
		{"fanout", "x", "y", true}, {"headers", "x", "y", true}, {"x-consistent-hash", "1", "y", true},
		// No key: the message keeps its own, which may match any binding.
		{"direct", "x", "", true},
	} {
		if got := Matches(c.typ, c.binding, c.key); got != c.ok {
			t.Errorf("Matches(%s, %q, %q) = %v", c.typ, c.binding, c.key, got)
		}
	}
}

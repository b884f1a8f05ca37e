package deadletter

import (
	"cmp"
	"slices"
	"strings"

	"github.com/mqctl/mqctl/internal/pattern"
)

type key struct{ vhost, name string }

// Graph is the dead-letter linkage of one read of queues, exchanges and
// bindings: each queue's link and role, and the DLQs with their origins.
// It does not change once built.
type Graph struct {
	queues    map[key]bool
	exchanges map[key]string // type
	bindings  map[key][]Binding
	links     map[key]*Link
	roles     map[key]Role
	dlqs      map[key]*DLQ
}

// New links every queue to its dead-letter queue(s).
//
// A queue with a dead-letter exchange (argument or policy) is linked to the
// queues that exchange routes its dead-letter routing key to (any bound
// queue when it has none: the message keeps its own key). A queue without
// one is linked by mqctl's pattern: to the queues Q.dlx routes key Q to,
// else to Q.dlq. A retry delay queue is linked to nothing (role retry).
//
// A DLQ is a queue some link lands in, or a queue mqctl's naming makes
// one (named X.dlq, or routed to from X.dlx with key X) even when nothing
// dead-letters into it now: a DLQ whose origin queue was deleted still
// holds dead letters someone must look at.
func New(queues []Queue, exchanges []Exchange, bindings []Binding) *Graph {
	g := &Graph{
		queues:    make(map[key]bool, len(queues)),
		exchanges: make(map[key]string, len(exchanges)),
		bindings:  map[key][]Binding{},
		links:     map[key]*Link{},
		roles:     make(map[key]Role, len(queues)),
		dlqs:      map[key]*DLQ{},
	}
	for _, q := range queues {
		g.queues[key{q.Vhost, q.Name}] = true
	}
	for _, e := range exchanges {
		g.exchanges[key{e.Vhost, e.Name}] = e.Type
	}
	for _, b := range bindings {
		k := key{b.Vhost, b.Source}
		g.bindings[k] = append(g.bindings[k], b)
	}
	for i := range queues {
		q := &queues[i]
		k := key{q.Vhost, q.Name}
		l, role := g.link(q)
		g.roles[k] = role
		if l == nil {
			continue
		}
		g.links[k] = l
		for _, d := range l.Queues {
			g.addDLQ(q.Vhost, d, q.Name, l.Source)
		}
	}
	g.addNamedDLQs(queues, exchanges)
	for k := range g.dlqs {
		g.roles[k] = RoleDLQ
	}
	return g
}

// Link is where the queue's dead letters go; nil when it has no
// dead-letter route (or is not in the graph).
func (g *Graph) Link(vhost, queue string) *Link { return g.links[key{vhost, queue}] }

// Role is what the queue is for; RoleWork for a queue not in the graph.
func (g *Graph) Role(vhost, queue string) Role {
	if r, ok := g.roles[key{vhost, queue}]; ok {
		return r
	}
	return RoleWork
}

// DLQs lists the dead-letter queues, by vhost and name. A queue that a
// link names but the queue list lacks (bound after it was read) is left
// out until the next read.
func (g *Graph) DLQs() []DLQ {
	out := make([]DLQ, 0, len(g.dlqs))
	for _, d := range g.dlqs {
		slices.Sort(d.Origins)
		slices.SortFunc(d.FoundBy, func(a, b Source) int {
			return cmp.Compare(slices.Index(sources, a), slices.Index(sources, b))
		})
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b DLQ) int {
		return cmp.Or(cmp.Compare(a.Vhost, b.Vhost), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// addDLQ records that origin ("" for none) dead-letters into queue,
// found by src.
func (g *Graph) addDLQ(vhost, queue, origin string, src Source) {
	k := key{vhost, queue}
	if !g.queues[k] {
		return
	}
	d := g.dlqs[k]
	if d == nil {
		d = &DLQ{Vhost: vhost, Name: queue, Origins: []string{}}
		g.dlqs[k] = d
	}
	if origin != "" && !slices.Contains(d.Origins, origin) {
		d.Origins = append(d.Origins, origin)
	}
	if !slices.Contains(d.FoundBy, src) {
		d.FoundBy = append(d.FoundBy, src)
	}
}

// dlxSuffix and dlqSuffix are what mqctl's pattern appends to a queue's
// name for its dead-letter exchange and queue.
var (
	dlxSuffix = pattern.DeadLetterExchange("")
	dlqSuffix = pattern.DefaultDLQ("")
)

// addNamedDLQs adds the DLQs by mqctl's naming: queues named X.dlq, and
// the queues X.dlx routes key X to.
func (g *Graph) addNamedDLQs(queues []Queue, exchanges []Exchange) {
	for _, q := range queues {
		if strings.HasSuffix(q.Name, dlqSuffix) {
			g.addDLQ(q.Vhost, q.Name, "", SourcePattern)
		}
	}
	for _, e := range exchanges {
		if origin, ok := strings.CutSuffix(e.Name, dlxSuffix); ok {
			for _, d := range without(g.route(e.Vhost, e.Name, origin), origin) {
				g.addDLQ(e.Vhost, d, "", SourcePattern)
			}
		}
	}
}

// link finds q's dead-letter route and its role before DLQs are known.
func (g *Graph) link(q *Queue) (*Link, Role) {
	if ex, rk, src, ok := q.Target(); ok {
		if isDelayQueue(q.Name, ex, rk) {
			return nil, RoleRetry
		}
		if ex == "" && rk == "" {
			return nil, RoleWork // back under its own routing key: no DLQ to name
		}
		return &Link{Source: src, Exchange: ex, RoutingKey: rk, Queues: without(g.route(q.Vhost, ex, rk), q.Name)}, RoleWork
	}
	// mqctl's pattern without the setting (e.g. declared by hand).
	dlx := pattern.DeadLetterExchange(q.Name)
	if _, ok := g.exchanges[key{q.Vhost, dlx}]; ok {
		if qs := without(g.route(q.Vhost, dlx, q.Name), q.Name); len(qs) > 0 {
			return &Link{Source: SourcePattern, Exchange: dlx, RoutingKey: q.Name, Queues: qs}, RoleWork
		}
	}
	if dlq := pattern.DefaultDLQ(q.Name); g.queues[key{q.Vhost, dlq}] {
		return &Link{Source: SourcePattern, Exchange: dlx, RoutingKey: q.Name, Queues: []string{dlq}}, RoleWork
	}
	return nil, RoleWork
}

// route returns the queues exchange ex in vhost delivers key to, each
// once. The default exchange ("") routes to the queue the key names.
// Exchange-to-exchange bindings are not followed.
func (g *Graph) route(vhost, ex, routingKey string) []string {
	if ex == "" {
		if routingKey != "" && g.queues[key{vhost, routingKey}] {
			return []string{routingKey}
		}
		return nil
	}
	typ := g.exchanges[key{vhost, ex}]
	var out []string
	seen := map[string]bool{}
	for _, b := range g.bindings[key{vhost, ex}] {
		if !seen[b.Queue] && Matches(typ, b.RoutingKey, routingKey) {
			seen[b.Queue] = true
			out = append(out, b.Queue)
		}
	}
	return out
}

// without returns names less name, never nil.
func without(names []string, name string) []string {
	out := []string{}
	for _, n := range names {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

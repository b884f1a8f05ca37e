package backlog

import (
	"regexp"
	"strings"

	"github.com/mqctl/mqctl/internal/pattern"
)

// LinkSource says how a queue was linked to its dead-letter queue.
type LinkSource string

// How a DLQ link was found, strongest first.
const (
	// LinkArguments: the queue's x-dead-letter-exchange argument.
	LinkArguments LinkSource = "arguments"
	// LinkPolicy: a policy's dead-letter-exchange key.
	LinkPolicy LinkSource = "policy"
	// LinkPattern: no dead-letter setting, but mqctl's naming pattern
	// (Q.dlx bound to a queue with key Q, or a queue named Q.dlq).
	LinkPattern LinkSource = "pattern"
)

// Role is what a queue is for.
type Role string

// Queue roles.
const (
	RoleWork  Role = "work"  // an ordinary queue, consumed by an application
	RoleRetry Role = "retry" // a delay queue of the retry pattern (Q.retry.N back onto Q)
	RoleDLQ   Role = "dlq"   // another queue dead-letters into it
)

// Link is a queue's dead-letter route and where it lands.
type Link struct {
	Source     LinkSource `json:"source"`
	Exchange   string     `json:"exchange"`
	RoutingKey string     `json:"routing_key"`
	// Queues are the queues the exchange routes the key to (usually one).
	Queues []string `json:"queues"`
}

type qkey struct{ vhost, name string }

// topologyIndex answers routing questions about one snapshot.
type topologyIndex struct {
	queues    map[qkey]*QueueStat
	exchanges map[qkey]string // type
	bindings  map[qkey][]Binding
}

func newIndex(s Snapshot) *topologyIndex {
	ix := &topologyIndex{
		queues:    make(map[qkey]*QueueStat, len(s.Queues)),
		exchanges: make(map[qkey]string, len(s.Exchanges)),
		bindings:  map[qkey][]Binding{},
	}
	for i := range s.Queues {
		q := &s.Queues[i]
		ix.queues[qkey{q.Vhost, q.Name}] = q
	}
	for _, e := range s.Exchanges {
		ix.exchanges[qkey{e.Vhost, e.Name}] = e.Type
	}
	for _, b := range s.Bindings {
		k := qkey{b.Vhost, b.Source}
		ix.bindings[k] = append(ix.bindings[k], b)
	}
	return ix
}

// route returns the queues exchange ex in vhost delivers key to. An empty
// key means "the message's own routing key", unknown here: every queue bound
// to the exchange is a possible destination.
func (ix *topologyIndex) route(vhost, ex, key string) []string {
	if ex == "" { // the default exchange routes to the queue named by the key
		if _, ok := ix.queues[qkey{vhost, key}]; ok && key != "" {
			return []string{key}
		}
		return nil
	}
	typ := ix.exchanges[qkey{vhost, ex}]
	var out []string
	seen := map[string]bool{}
	for _, b := range ix.bindings[qkey{vhost, ex}] {
		match := true
		if key != "" {
			switch typ {
			case "direct":
				match = b.RoutingKey == key
			case "topic":
				match = topicMatch(b.RoutingKey, key)
			}
			// fanout, headers and plugin types: any binding may receive it.
		}
		if match && !seen[b.Queue] {
			seen[b.Queue] = true
			out = append(out, b.Queue)
		}
	}
	return out
}

// topicMatch reports whether a topic binding pattern matches a routing key.
func topicMatch(pattern, key string) bool {
	return topicWords(strings.Split(pattern, "."), strings.Split(key, "."))
}

func topicWords(p, k []string) bool {
	if len(p) == 0 {
		return len(k) == 0
	}
	if p[0] == "#" {
		for i := 0; i <= len(k); i++ {
			if topicWords(p[1:], k[i:]) {
				return true
			}
		}
		return false
	}
	if len(k) == 0 || (p[0] != "*" && p[0] != k[0]) {
		return false
	}
	return topicWords(p[1:], k[1:])
}

func stringSetting(args map[string]any, key string) (string, bool) {
	v, ok := args[key]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

// deadLetterSetting returns the queue's dead-letter exchange and routing
// key. As in RabbitMQ, a queue argument wins over a policy key.
func deadLetterSetting(q *QueueStat) (ex, key string, src LinkSource, ok bool) {
	if ex, ok = stringSetting(q.Arguments, "x-dead-letter-exchange"); ok {
		src = LinkArguments
	} else if ex, ok = stringSetting(q.Policy, "dead-letter-exchange"); ok {
		src = LinkPolicy
	} else {
		return "", "", "", false
	}
	if key, ok = stringSetting(q.Arguments, "x-dead-letter-routing-key"); !ok {
		key, _ = stringSetting(q.Policy, "dead-letter-routing-key")
	}
	return ex, key, src, true
}

var retryName = regexp.MustCompile(`^(.+)\.retry\.[0-9]+$`)

// link finds q's dead-letter queue(s). A retry delay queue (Q.retry.N
// dead-lettering back onto Q) is not linked: Q is its next stop, not a DLQ.
func (ix *topologyIndex) link(q *QueueStat) (*Link, Role) {
	if ex, key, src, ok := deadLetterSetting(q); ok {
		if m := retryName.FindStringSubmatch(q.Name); m != nil && ex == "" && key == m[1] {
			return nil, RoleRetry
		}
		if ex == "" && key == "" {
			return nil, RoleWork // back to its own routing key: no DLQ to name
		}
		l := &Link{Source: src, Exchange: ex, RoutingKey: key, Queues: without(ix.route(q.Vhost, ex, key), q.Name)}
		return l, RoleWork
	}
	// mqctl's pattern without the arguments (e.g. declared by hand).
	dlx := pattern.DeadLetterExchange(q.Name)
	if _, ok := ix.exchanges[qkey{q.Vhost, dlx}]; ok {
		if qs := without(ix.route(q.Vhost, dlx, q.Name), q.Name); len(qs) > 0 {
			return &Link{Source: LinkPattern, Exchange: dlx, RoutingKey: q.Name, Queues: qs}, RoleWork
		}
	}
	if dlq := pattern.DefaultDLQ(q.Name); ix.queues[qkey{q.Vhost, dlq}] != nil {
		return &Link{Source: LinkPattern, Exchange: dlx, RoutingKey: q.Name, Queues: []string{dlq}}, RoleWork
	}
	return nil, RoleWork
}

func without(names []string, name string) []string {
	out := names[:0:0]
	for _, n := range names {
		if n != name {
			out = append(out, n)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// Package deadletter is mqctl's one model of dead-letter linkage: which
// queue dead-letters into which, through which exchange and routing key,
// set by the queue's arguments, a policy, or mqctl's naming pattern. It
// answers from a vhost's queues, exchanges and bindings as the management
// API lists them (backlog's reader feeds it), so `backlog` and `dlq ls`,
// which both ask it, cannot disagree about what is a DLQ and whose.
package deadletter

import "regexp"

// Queue is what linkage reads of a queue.
type Queue struct {
	Vhost, Name string
	// Arguments are the queue's x-arguments.
	Arguments map[string]any
	// Policy is the definition of the policy applied to the queue.
	Policy map[string]any
}

// Exchange is an exchange's name and type.
type Exchange struct {
	Vhost, Name, Type string
}

// Binding is a binding whose destination is a queue.
type Binding struct {
	Vhost, Source, Queue, RoutingKey string
}

// Source says how a queue's dead-letter route, or a DLQ, was found.
type Source string

// How dead-lettering is found, strongest first.
const (
	// SourceArguments: the queue's x-dead-letter-exchange argument.
	SourceArguments Source = "arguments"
	// SourcePolicy: a policy's dead-letter-exchange key.
	SourcePolicy Source = "policy"
	// SourcePattern: mqctl's naming (Q.dlx bound to a queue with key Q,
	// or a queue named Q.dlq), for a queue without a dead-letter setting
	// or a DLQ nothing dead-letters into now.
	SourcePattern Source = "pattern"
)

// sources is the order FoundBy lists sources in.
var sources = []Source{SourceArguments, SourcePolicy, SourcePattern}

// Role is what a queue is for.
type Role string

// Queue roles.
const (
	RoleWork  Role = "work"  // an ordinary queue, consumed by an application
	RoleRetry Role = "retry" // a delay queue of the retry pattern (Q.retry.N back onto Q)
	RoleDLQ   Role = "dlq"   // a dead-letter queue (see Graph.DLQs)
)

// Link is a queue's dead-letter route and where it lands. Its JSON is
// part of `mqctl backlog -o json`.
type Link struct {
	Source     Source `json:"source"`
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
	// Queues are the queues the exchange routes the key to (usually one).
	Queues []string `json:"queues"`
}

// DLQ is a queue that receives dead letters.
type DLQ struct {
	Vhost, Name string
	// Origins are the queues whose dead letters land here, sorted; empty
	// for a DLQ by name alone whose origin is gone or dead-letters
	// elsewhere.
	Origins []string
	// FoundBy lists every way it is known as a DLQ, strongest first: the
	// origins' link sources, and SourcePattern where mqctl's naming says
	// so too.
	FoundBy []Source
}

// Target returns the queue's dead-letter exchange and routing key; ok is
// false when it has none. As in RabbitMQ, each key of a queue argument
// wins over the same key of a policy; src says where the exchange was set.
func (q *Queue) Target() (ex, rk string, src Source, ok bool) {
	if ex, ok = stringKey(q.Arguments, "x-dead-letter-exchange"); ok {
		src = SourceArguments
	} else if ex, ok = stringKey(q.Policy, "dead-letter-exchange"); ok {
		src = SourcePolicy
	} else {
		return "", "", "", false
	}
	if rk, ok = stringKey(q.Arguments, "x-dead-letter-routing-key"); !ok {
		rk, _ = stringKey(q.Policy, "dead-letter-routing-key")
	}
	return ex, rk, src, true
}

func stringKey(m map[string]any, name string) (string, bool) {
	s, ok := m[name].(string)
	return s, ok
}

var retryName = regexp.MustCompile(`^(.+)\.retry\.[0-9]+$`)

// isDelayQueue recognises a retry delay queue Q.retry.N that dead-letters
// back onto Q through the default exchange: Q is its next stop, not a DLQ.
func isDelayQueue(name, ex, rk string) bool {
	m := retryName.FindStringSubmatch(name)
	return m != nil && ex == "" && rk == m[1]
}

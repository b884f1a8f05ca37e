package topology

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Action classifies a change in a plan.
type Action string

// Plan actions.
const (
	// Create: the object is missing on the broker.
	Create Action = "create"
	// Update: the object exists and can be changed in place (policies).
	Update Action = "update"
	// Conflict: the object exists with a property RabbitMQ cannot change
	// and mqctl cannot migrate (an exchange's type, durability or
	// arguments; a stream); apply refuses.
	Conflict Action = "conflict"
	// Migrate: the queue exists with a type, durability or x-arguments
	// RabbitMQ cannot change in place; `apply --migrate` re-creates it
	// without losing a message, plain apply refuses.
	Migrate Action = "migrate"
	// Extra: on the broker but not in the file; kept.
	Extra Action = "extra"
	// Delete: an extra object apply --prune deletes.
	Delete Action = "delete"
	// Keep: an extra queue --prune will not delete because it holds
	// messages or has consumers.
	Keep Action = "keep"
)

// Object kinds.
const (
	KindExchange = "exchange"
	KindQueue    = "queue"
	KindBinding  = "binding"
	KindPolicy   = "policy"
)

// QueueState is what the broker reports about a queue's use.
type QueueState struct {
	Messages  int `json:"messages"`
	Consumers int `json:"consumers"`
}

// Change is one difference between the file and the broker.
type Change struct {
	Action  Action   `json:"action"`
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	Role    Role     `json:"role,omitempty"`
	Owner   string   `json:"owner,omitempty"`
	Details []string `json:"details,omitempty"`
	// Hint says what to do instead, for conflicts and kept queues.
	Hint string `json:"hint,omitempty"`
	// Messages is the queue's message count when the broker reported one.
	Messages *int `json:"messages,omitempty"`

	queue    *DefQueue
	exchange *DefExchange
	binding  *DefBinding
	policy   *DefPolicy
}

// Plan is the classified difference between an expanded file and a vhost.
type Plan struct {
	Vhost   string   `json:"vhost"`
	Changes []Change `json:"changes"`
	Summary Summary  `json:"summary"`
	// Prune is true when extra objects were classified for deletion.
	Prune bool `json:"prune"`
	// Effective is, per queue of the file, the one policy RabbitMQ will
	// apply to it once the plan is applied, and that policy's definition.
	Effective map[string]EffectivePolicy `json:"effective_policies,omitempty"`
	// Apps says, per queue declared in the file, whether an app's plain
	// declaration (durable=True, no arguments) is equivalent on this
	// broker, and what to send if not; set by the caller that knows the
	// broker (see AppDeclarations).
	Apps []AppDeclaration `json:"app_declarations,omitempty"`
	// Warnings are dead-letter paths that go nowhere once applied.
	Warnings []string `json:"warnings,omitempty"`
	// Retime are the delay queues whose delay changes: RabbitMQ fixes a
	// message's expiry when it is enqueued, so apply queues their waiting
	// messages again (see migrate.Queue.Retime).
	Retime []string `json:"retime,omitempty"`

	// live are the definitions a pruning plan was made from, for the
	// re-check before deletes (recheckDeletes).
	live *Definitions
}

// Summary counts changes by action.
type Summary struct {
	Create    int `json:"create"`
	Update    int `json:"update"`
	Conflict  int `json:"conflict"`
	Migrate   int `json:"migrate"`
	Extra     int `json:"extra"`
	Delete    int `json:"delete"`
	Keep      int `json:"keep"`
	Unchanged int `json:"unchanged"`
}

// Pending reports whether applying the plan would change something (or
// cannot, because of conflicts). Extra objects count only under prune.
func (p *Plan) Pending() bool {
	s := p.Summary
	return s.Create+s.Update+s.Conflict+s.Migrate+s.Delete > 0
}

// HasConflicts reports whether apply must refuse.
func (p *Plan) HasConflicts() bool { return p.Summary.Conflict > 0 }

// PlanOptions adjusts the diff.
type PlanOptions struct {
	// Prune classifies extra objects as Delete (or Keep for queues in use).
	Prune bool
}

// Diff compares the expanded file with live definitions (of the same
// vhost) and the queues' states. It is pure: no broker calls.
func Diff(x *Expanded, live *Definitions, states map[string]QueueState, opts PlanOptions) *Plan {
	d := newDiffer(live, states)
	d.p = &Plan{Vhost: x.Vhost, Prune: opts.Prune, Changes: []Change{}, Effective: x.Effective}
	d.exchanges(x)
	d.queues(x)
	d.bindings(x)
	d.policies(x)
	// What is left on the broker is not in the file.
	d.extras(opts.Prune)
	if opts.Prune {
		d.p.live = live
		d.p.keepDeadLetterPaths(live, d.p.keptQueues())
	}
	d.p.Warnings = deadLetterWarnings(x, live, d.p)
	if w := policyCountWarning(x, live); w != "" {
		d.p.Warnings = append(d.p.Warnings, w)
	}
	sortChanges(d.p.Changes)
	return d.p
}

// manyPolicies is the count of policies in a vhost above which a plan
// warns. RabbitMQ writes and applies each policy on its own and matches
// every queue it creates against all of the vhost's policies: on the
// 2-core machine (3.10.8) 1,000 policies took 17.6 s to import, 5,000
// took 141 s, and 300 queues took 5.8× as long to create among 5,000
// policies as in a vhost without any.
const manyPolicies = 3000

// policyCountWarning warns when the vhost would hold more than
// manyPolicies policies after apply: with queue_settings: policies each
// work queue brings three (its own and one per retry delay queue).
func policyCountWarning(x *Expanded, live *Definitions) string {
	names := map[string]bool{}
	for _, p := range x.Defs.Policies {
		names[p.Name] = true
	}
	for _, p := range live.Policies {
		names[p.Name] = true
	}
	if len(names) <= manyPolicies {
		return ""
	}
	return fmt.Sprintf("vhost %s will hold %d policies: RabbitMQ writes each on its own and matches every new queue against all of them, so apply takes the broker time that grows faster than the count (1,000 policies imported in 18 s, 5,000 in 141 s on a 2-core node); for thousands of work queues `defaults: {queue_settings: arguments}` sets mqctl's settings as queue arguments instead (apps must then declare them too), or split the queues over vhosts", x.Vhost, len(names))
}

// differ holds one Diff's state: the live objects not yet matched with
// the file, keyed by name (bindings by Key), and the plan being built.
type differ struct {
	p      *Plan
	states map[string]QueueState
	ex     map[string]DefExchange
	q      map[string]DefQueue
	b      map[string]DefBinding
	pol    map[string]DefPolicy
}

func newDiffer(live *Definitions, states map[string]QueueState) *differ {
	d := &differ{states: states, ex: map[string]DefExchange{}, q: map[string]DefQueue{}, b: map[string]DefBinding{}, pol: map[string]DefPolicy{}}
	for _, e := range live.Exchanges {
		if managedExchange(e.Name) {
			d.ex[e.Name] = e
		}
	}
	for _, q := range live.Queues {
		d.q[q.Name] = q
	}
	for _, b := range live.Bindings {
		if b.Source != "" {
			d.b[b.Key()] = b
		}
	}
	for _, pol := range live.Policies {
		d.pol[pol.Name] = pol
	}
	return d
}

// msgs is a queue's message count, nil when the broker reported none.
func (d *differ) msgs(name string) *int {
	if s, ok := d.states[name]; ok {
		n := s.Messages
		return &n
	}
	return nil
}

func (d *differ) exchanges(x *Expanded) {
	for i := range x.Defs.Exchanges {
		want := x.Defs.Exchanges[i]
		o := x.Exchanges[want.Name]
		c := Change{Kind: KindExchange, Name: want.Name, Role: o.Role, Owner: o.Owner, exchange: &x.Defs.Exchanges[i]}
		have, ok := d.ex[want.Name]
		delete(d.ex, want.Name)
		if !ok {
			c.Action, c.Details = Create, []string{"type " + want.Type}
			d.p.add(c)
			continue
		}
		if diffs := exchangeDiffs(want, have); len(diffs) > 0 {
			c.Action, c.Details = Conflict, diffs
			c.Hint = "RabbitMQ cannot change an existing exchange's type, durability or arguments. Exchanges hold no messages: either keep the broker's settings in the file, or declare the exchange under a new name and move the bindings and publishers to it; deleting and re-declaring it drops its bindings and makes publishes unroutable in between, so mqctl never does that for you."
			d.p.add(c)
			continue
		}
		d.p.Summary.Unchanged++
	}
}

func (d *differ) queues(x *Expanded) {
	for i := range x.Defs.Queues {
		want := x.Defs.Queues[i]
		o := x.Queues[want.Name]
		c := Change{Kind: KindQueue, Name: want.Name, Role: o.Role, Owner: o.Owner, queue: &x.Defs.Queues[i]}
		have, ok := d.q[want.Name]
		delete(d.q, want.Name)
		if !ok {
			c.Action, c.Details = Create, []string{queueSummary(want)}
			d.p.add(c)
			continue
		}
		diffs, addable := queueDiffs(want, have)
		if len(diffs) == 0 {
			d.p.Summary.Unchanged++
			continue
		}
		c.Action, c.Details, c.Messages = Migrate, diffs, d.msgs(want.Name)
		c.Hint = queueMigrationHint(want, have, addable, c.Messages)
		if want.Type() == Stream || have.Type() == Stream {
			// A stream's messages are not consumed and acked: they
			// cannot be moved out and back like a queue's.
			c.Action = Conflict
			c.Hint = queueConflictHint(want, have, addable, c.Messages)
		}
		d.p.add(c)
	}
}

func (d *differ) bindings(x *Expanded) {
	for i := range x.Defs.Bindings {
		want := x.Defs.Bindings[i]
		if _, ok := d.b[want.Key()]; ok {
			delete(d.b, want.Key())
			d.p.Summary.Unchanged++
			continue
		}
		d.p.add(Change{Action: Create, Kind: KindBinding, Name: bindingName(want), binding: &x.Defs.Bindings[i]})
	}
}

func (d *differ) policies(x *Expanded) {
	for i := range x.Defs.Policies {
		want := x.Defs.Policies[i]
		c := Change{Kind: KindPolicy, Name: want.Name, policy: &x.Defs.Policies[i]}
		have, ok := d.pol[want.Name]
		delete(d.pol, want.Name)
		switch {
		case !ok:
			c.Action, c.Details = Create, []string{fmt.Sprintf("pattern %s apply-to %s", want.Pattern, want.ApplyTo)}
		case policyDiffs(want, have) != nil:
			c.Action, c.Details = Update, policyDiffs(want, have)
			if q, ok := strings.CutPrefix(want.Name, PolicyPrefix); ok && x.Queues[q].Role == RoleDelay &&
				!sameValue(want.Definition["message-ttl"], have.Definition["message-ttl"]) {
				d.p.Retime = append(d.p.Retime, q)
				c.Details = append(c.Details, "the messages waiting in "+q+" are queued again to wait the new delay")
			}
		default:
			d.p.Summary.Unchanged++
			continue
		}
		d.p.add(c)
	}
}

// extras classifies the live objects the file does not name: Extra, or
// under prune Delete — except a queue not known to be empty and unused,
// which is kept.
func (d *differ) extras(prune bool) {
	extra := func(c Change) {
		c.Action = Extra
		if prune {
			c.Action = Delete
		}
		d.p.add(c)
	}
	for _, name := range sortedKeys(d.ex) {
		e := d.ex[name]
		extra(Change{Kind: KindExchange, Name: name, Details: []string{"not in the file"}, exchange: &e})
	}
	for _, name := range sortedKeys(d.q) {
		q := d.q[name]
		c := Change{Kind: KindQueue, Name: name, Details: []string{"not in the file"}, Messages: d.msgs(name), queue: &q}
		if !prune {
			extra(c)
			continue
		}
		st, known := d.states[name]
		switch {
		case !known:
			c.Action, c.Hint = Keep, "its message count is unknown; mqctl deletes only queues it knows to be empty"
		case st.Messages > 0 || st.Consumers > 0:
			c.Action = Keep
			c.Hint = fmt.Sprintf("holds %d messages and has %d consumers: never pruned; drain it (or move its messages with a shovel) and prune again", st.Messages, st.Consumers)
		default:
			c.Action = Delete
		}
		d.p.add(c)
	}
	for _, k := range sortedKeys(d.b) {
		b := d.b[k]
		extra(Change{Kind: KindBinding, Name: bindingName(b), Details: []string{"not in the file"}, binding: &b})
	}
	for _, name := range sortedKeys(d.pol) {
		pol := d.pol[name]
		extra(Change{Kind: KindPolicy, Name: name, Details: []string{"not in the file"}, policy: &pol})
	}
}

func (p *Plan) add(c Change) {
	switch c.Action {
	case Create:
		p.Summary.Create++
	case Update:
		p.Summary.Update++
	case Conflict:
		p.Summary.Conflict++
	case Migrate:
		p.Summary.Migrate++
	case Extra:
		p.Summary.Extra++
	case Delete:
		p.Summary.Delete++
	case Keep:
		p.Summary.Keep++
	}
	p.Changes = append(p.Changes, c)
}

var kindOrder = map[string]int{KindExchange: 0, KindQueue: 1, KindBinding: 2, KindPolicy: 3}
var actionOrder = map[Action]int{Conflict: 0, Migrate: 1, Create: 2, Update: 3, Delete: 4, Keep: 5, Extra: 6}

func sortChanges(cs []Change) {
	sort.SliceStable(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if actionOrder[a.Action] != actionOrder[b.Action] {
			return actionOrder[a.Action] < actionOrder[b.Action]
		}
		if kindOrder[a.Kind] != kindOrder[b.Kind] {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		return a.Name < b.Name
	})
}

// managedExchange is false for the default exchange and RabbitMQ's own amq.*.
func managedExchange(name string) bool {
	return name != "" && !strings.HasPrefix(name, "amq.")
}

func bindingName(b DefBinding) string {
	s := fmt.Sprintf("%s → %s %s", b.Source, b.DestinationType, b.Destination)
	if b.RoutingKey != "" {
		s += " [" + b.RoutingKey + "]"
	}
	if len(b.Arguments) > 0 {
		s += " " + canonical(b.Arguments)
	}
	return s
}

func queueSummary(q DefQueue) string {
	s := q.Type()
	if !q.Durable {
		s += ", transient"
	}
	if q.AutoDelete {
		s += ", auto-delete"
	}
	var parts []string
	for _, k := range sortedKeys(q.Arguments) {
		if k == "x-queue-type" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, q.Arguments[k]))
	}
	if len(parts) > 0 {
		s += ", " + strings.Join(parts, " ")
	}
	return s
}

func exchangeDiffs(want, have DefExchange) []string {
	d := fieldDiff(nil, "type", have.Type, want.Type)
	d = fieldDiff(d, "durable", have.Durable, want.Durable)
	d = fieldDiff(d, "auto_delete", have.AutoDelete, want.AutoDelete)
	d = fieldDiff(d, "internal", have.Internal, want.Internal)
	return append(d, argDiffs(want.Arguments, have.Arguments, nil)...)
}

// fieldDiff appends "name: broker X, file Y" to d when the values differ.
func fieldDiff[T comparable](d []string, name string, have, want T) []string {
	if have != want {
		d = append(d, fmt.Sprintf("%s: broker %v, file %v", name, have, want))
	}
	return d
}

// queueDiffs lists what differs; addable lists arguments the file adds that
// the broker's queue lacks (a policy can add those to a live queue).
func queueDiffs(want, have DefQueue) (d []string, addable []string) {
	d = fieldDiff(d, "type", have.Type(), want.Type())
	d = fieldDiff(d, "durable", have.Durable, want.Durable)
	d = fieldDiff(d, "auto_delete", have.AutoDelete, want.AutoDelete)
	skip := map[string]bool{"x-queue-type": true}
	for _, k := range sortedKeys(want.Arguments) {
		if _, ok := have.Arguments[k]; !ok && !skip[k] {
			addable = append(addable, k)
		}
	}
	return append(d, argDiffs(want.Arguments, have.Arguments, skip)...), addable
}

func argDiffs(want, have map[string]any, skip map[string]bool) []string {
	var d []string
	for _, k := range sortedKeys(union(want, have)) {
		if skip[k] {
			continue
		}
		w, inWant := want[k]
		h, inHave := have[k]
		switch {
		case inWant && !inHave:
			d = append(d, fmt.Sprintf("argument %s: broker (none), file %v", k, w))
		case !inWant && inHave:
			d = append(d, fmt.Sprintf("argument %s: broker %v, file (none)", k, h))
		case !sameValue(w, h):
			d = append(d, fmt.Sprintf("argument %s: broker %v, file %v", k, h, w))
		}
	}
	return d
}

// policyKeys maps queue x-arguments to the policy keys that can set the
// same thing on a live queue.
var policyKeys = map[string]string{
	"x-message-ttl": "message-ttl", "x-expires": "expires", "x-max-length": "max-length",
	"x-max-length-bytes": "max-length-bytes", "x-overflow": "overflow",
	"x-dead-letter-exchange": "dead-letter-exchange", "x-dead-letter-routing-key": "dead-letter-routing-key",
	"x-delivery-limit": "delivery-limit", "x-dead-letter-strategy": "dead-letter-strategy",
	"x-queue-mode": "queue-mode", "x-max-in-memory-length": "max-in-memory-length",
}

// MigrationSteps are what `apply --migrate` does to re-create a queue.
func MigrationSteps(queue string) []string {
	tmp := TempQueue(queue)
	return []string{
		fmt.Sprintf("declare %s with %s's bindings", tmp, queue),
		fmt.Sprintf("unbind %s, so new messages land in %s", queue, tmp),
		fmt.Sprintf("move %s's messages to %s (confirmed before each ack)", queue, tmp),
		fmt.Sprintf("fence %s (a policy that nacks publishes to it, so publishers to the default exchange send again), move what is left, delete it once empty (checked again first)", queue),
		fmt.Sprintf("declare %s as the file says and bind it", queue),
		fmt.Sprintf("unbind %s, move its messages back, delete it", tmp),
	}
}

// TempQueue names the queue a migration keeps a queue's messages in.
func TempQueue(queue string) string { return queue + ".mqctl-migrate" }

func queueMigrationHint(want, have DefQueue, addable []string, messages *int) string {
	held := ""
	if messages != nil {
		held = fmt.Sprintf(" (%d messages to move)", *messages)
	}
	hint := fmt.Sprintf("RabbitMQ cannot change this in place: `mqctl topology apply --migrate` re-creates %q without losing a message%s: %s.",
		want.Name, held, strings.Join(MigrationSteps(want.Name), "; "))
	if alt := policyAlternative(want, have, addable); alt != "" {
		hint += " Or, without moving messages: " + alt + "."
	}
	return hint
}

// queueConflictHint is for a stream, which a migration cannot move.
func queueConflictHint(want, have DefQueue, addable []string, messages *int) string {
	held := ""
	if messages != nil && *messages > 0 {
		held = fmt.Sprintf(" The stream holds %d messages: never delete it to resolve this.", *messages)
	}
	safe := fmt.Sprintf("keep the broker's settings in the file, or declare a new stream (e.g. %s.v2), move the publishers to it and let the consumers finish the old one", want.Name)
	if alt := policyAlternative(want, have, addable); alt != "" {
		safe = alt + "; or " + safe
	}
	return "RabbitMQ cannot change a stream's type, durability or arguments, and its messages cannot be moved out and back. Safe route: " + safe + "." + held
}

// policyAlternative is the policy that sets on the live queue what the file
// adds as arguments, when only such arguments differ ("" otherwise):
// arguments the live queue lacks can come from a policy, arguments it
// already has are fixed (they win over a policy).
func policyAlternative(want, have DefQueue, addable []string) string {
	if want.Type() != have.Type() || want.Durable != have.Durable || want.AutoDelete != have.AutoDelete || len(addable) == 0 {
		return ""
	}
	for _, k := range sortedKeys(union(want.Arguments, have.Arguments)) {
		if k == "x-queue-type" || sameValue(want.Arguments[k], have.Arguments[k]) {
			continue
		}
		if !slices.Contains(addable, k) || policyKeys[k] == "" {
			return ""
		}
	}
	var defs []string
	for _, k := range addable {
		if pk := policyKeys[k]; pk != "" && !sameValue(want.Arguments[k], have.Arguments[k]) {
			defs = append(defs, fmt.Sprintf("%s: %v", pk, want.Arguments[k]))
		}
	}
	return fmt.Sprintf("remove those arguments from the file's queue and add a policy {pattern: %q, apply_to: queues, definition: {%s}}",
		"^"+regexp.QuoteMeta(want.Name)+"$", strings.Join(defs, ", "))
}

func union(a, b map[string]any) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

func policyDiffs(want, have DefPolicy) []string {
	d := fieldDiff(nil, "pattern", have.Pattern, want.Pattern)
	d = fieldDiff(d, "apply-to", have.ApplyTo, want.ApplyTo)
	d = fieldDiff(d, "priority", have.Priority, want.Priority)
	if !sameValue(want.Definition, have.Definition) {
		d = append(d, fmt.Sprintf("definition: broker %s, file %s", canonical(have.Definition), canonical(want.Definition)))
	}
	return d
}

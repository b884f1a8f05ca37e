package topology

import (
	"context"
	"errors"
	"fmt"
	"strings"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/fail"
)

// Broker is what plan and apply need from RabbitMQ. MgmtBroker implements
// it over the management API; tests may use anything.
type Broker interface {
	// Definitions reads the vhost's definitions in one call.
	Definitions(ctx context.Context, vhost string) (*Definitions, error)
	// QueueStates reads every queue's message and consumer counts in one call.
	QueueStates(ctx context.Context, vhost string) (map[string]QueueState, error)
	// Import creates or updates the given objects of vhost through the
	// broker's definitions import (the objects carry their vhost too).
	Import(ctx context.Context, vhost string, defs *Definitions) error
	DeleteBinding(ctx context.Context, vhost string, b DefBinding) error
	DeletePolicy(ctx context.Context, vhost, name string) error
	DeleteExchange(ctx context.Context, vhost, name string) error
	// DeleteQueueIfEmpty deletes the queue only if it holds no message and
	// has no consumer, checked right before the delete; it returns why not
	// otherwise ("" when deleted).
	DeleteQueueIfEmpty(ctx context.Context, vhost, name string) (refused string, err error)
	// QueueInUse says why the queue must not be deleted (messages,
	// consumers, counts unknown), "" when it may be, by the same checks.
	QueueInUse(ctx context.Context, vhost, name string) (why string, err error)
}

// PlanLive reads the broker once (definitions, then queue counts) and
// diffs x against it.
func PlanLive(ctx context.Context, b Broker, x *Expanded, opts PlanOptions) (*Plan, error) {
	live, err := b.Definitions(ctx, x.Vhost)
	if err != nil {
		return nil, err
	}
	// Message counts matter only for queues that conflict or are not in
	// the file; when there are none (the usual plan), skip that list call.
	p := Diff(x, live, nil, opts)
	if !p.needsStates() {
		return p, nil
	}
	states, err := b.QueueStates(ctx, x.Vhost)
	if err != nil {
		return nil, err
	}
	return Diff(x, live, states, opts), nil
}

// ApplyExpanded plans x against the live vhost and applies the plan, as
// `mqctl topology apply` does without --prune: Apply refuses a plan with
// conflicts or migrations and changes nothing.
func ApplyExpanded(ctx context.Context, b Broker, x *Expanded) (*Result, error) {
	p, err := PlanLive(ctx, b, x, PlanOptions{})
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return Apply(ctx, b, p, nil)
}

func (p *Plan) needsStates() bool {
	for _, c := range p.Changes {
		if c.Kind == KindQueue && c.Action != Create {
			return true
		}
	}
	return false
}

// Result is what apply did.
type Result struct {
	Plan    *Plan `json:"plan"`
	Applied int   `json:"applied"`
	Deleted int   `json:"deleted"`
	// DeletedObjects names what a prune deleted ("queue email.old"), in
	// the order it went, for the audit trail.
	DeletedObjects []string `json:"deleted_objects,omitempty"`
	Kept           []string `json:"kept,omitempty"`
	// KeptWhy says, per kept queue, why it was not deleted.
	KeptWhy map[string]string `json:"kept_why,omitempty"`
	// Retimed counts, per delay queue of Plan.Retime, the waiting
	// messages queued again to wait the new delay (set by the caller).
	Retimed map[string]int `json:"retimed,omitempty"`
}

func (r *Result) keep(name, why string) {
	r.Kept = append(r.Kept, name)
	if r.KeptWhy == nil {
		r.KeptWhy = map[string]string{}
	}
	r.KeptWhy[name] = why
}

// ImportBatch bounds the objects sent in one definitions import, so a large
// file shows progress and no single request runs into the HTTP timeout.
const ImportBatch = 500

// Apply executes a plan: it refuses while conflicts or migrations exist
// (fail.Condition, nothing changed), sends creates and updates through the
// broker's definitions import in dependency order (policies, exchanges,
// queues, bindings), then, for a pruning plan, deletes extra bindings, policies,
// exchanges and finally queues, each queue only if still empty. progress
// is called with the number of objects done (may be nil).
//
// After each import Apply reads the vhost's definitions back (one read)
// and checks that every object it sent is there: an import can answer
// success and skip an object (RabbitMQ 4.3 does so for a queue with a
// denied x-queue-master-locator). A skipped object, or an import the
// broker refused, stops Apply with an *ImportError that says what the
// broker created and what it did not: an import is not atomic.
func Apply(ctx context.Context, b Broker, p *Plan, progress func(int)) (*Result, error) {
	if p.HasConflicts() {
		return nil, fail.Conditionf("plan has %d conflict(s); nothing was changed: resolve them as the plan suggests (`mqctl topology plan -f FILE`) and apply again", p.Summary.Conflict)
	}
	if p.Summary.Migrate > 0 {
		return nil, fail.Conditionf("plan has %d queue(s) to migrate; nothing was changed: `mqctl topology apply --migrate` re-creates them without losing a message", p.Summary.Migrate)
	}
	if progress == nil {
		progress = func(int) {}
	}
	res := &Result{Plan: p}
	// Policies go first, so a queue is born with the dead-letter settings
	// of the policy mqctl composed for it: a message rejected in between
	// would otherwise be dropped.
	applyOrder := map[string]int{KindPolicy: 0, KindExchange: 1, KindQueue: 2, KindBinding: 3}
	var stages [4][]Change
	for _, c := range p.Changes {
		if c.Action == Create || c.Action == Update {
			stages[applyOrder[c.Kind]] = append(stages[applyOrder[c.Kind]], c)
		}
	}
	for _, stage := range stages {
		if len(stage) == 0 {
			continue
		}
		if err := importStage(ctx, b, p.Vhost, stage, res.Applied, progress); err != nil {
			var ie *ImportError
			if errors.As(err, &ie) {
				res.Applied += len(ie.Created)
			}
			return res, err
		}
		res.Applied += len(stage)
	}

	if err := p.recheckDeletes(ctx, b); err != nil {
		return res, err
	}
	// Deletes run from the leaves inwards: bindings before the exchanges
	// and queues they connect.
	for _, kind := range []string{KindBinding, KindPolicy, KindExchange, KindQueue} {
		for _, c := range p.Changes {
			if c.Kind != kind || (c.Action != Delete && c.Action != Keep) {
				continue
			}
			if c.Action == Keep {
				if kind == KindQueue {
					res.keep(c.Name, strings.Join(c.Details, "; "))
				}
				progress(1)
				continue
			}
			var err error
			switch kind {
			case KindBinding:
				err = b.DeleteBinding(ctx, p.Vhost, *c.binding)
			case KindPolicy:
				err = b.DeletePolicy(ctx, p.Vhost, c.Name)
			case KindExchange:
				err = b.DeleteExchange(ctx, p.Vhost, c.Name)
			case KindQueue:
				var refused string
				refused, err = b.DeleteQueueIfEmpty(ctx, p.Vhost, c.Name)
				if err == nil && refused != "" {
					res.keep(c.Name, refused)
					progress(1)
					continue
				}
			}
			if err != nil {
				return res, fmt.Errorf("prune %s %s: %w", kind, c.Name, err)
			}
			res.Deleted++
			res.DeletedObjects = append(res.DeletedObjects, kind+" "+c.Name)
			progress(1)
		}
	}
	return res, nil
}

// Work is how many objects Apply will touch (for a progress bar).
func (p *Plan) Work() int {
	n := 0
	for _, c := range p.Changes {
		switch c.Action {
		case Create, Update, Delete, Keep:
			n++
		}
	}
	return n
}

// ImportError is a definitions import that did not create everything it
// was sent: the broker refused it (Err set), or answered success and
// skipped objects. It says what this import created anyway, read back
// from the broker.
type ImportError struct {
	Vhost string
	// Kind is the kind of the batch's objects; Sent how many it held.
	Kind string
	Sent int
	// Err is the broker's error; nil when it answered success.
	Err error
	// Created are the batch's objects found on the broker afterwards.
	Created []string
	// Missing are the batch's objects not found, each with its likely
	// cause.
	Missing []MissingObject
	// AppliedBefore counts the objects earlier imports of this apply
	// created or updated.
	AppliedBefore int
	// ReadBackErr is set when the definitions could not be read back, so
	// Created and Missing are unknown.
	ReadBackErr error
	// Cut marks an import whose request ran out of time (ErrImportCut):
	// Created and Missing are what the broker had done when it was read
	// back, and it may still be creating the rest.
	Cut bool
	// checked is set once Created and Missing are known.
	checked bool
}

// MissingObject is an object an import did not create.
type MissingObject struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Cause string `json:"cause"`
}

func (e *ImportError) Unwrap() error { return e.Err }

// Context says which import failed, for wrapping e.Err alone.
func (e *ImportError) Context() string {
	return fmt.Sprintf("import %d %s definition(s) into vhost %s (%d object(s) applied by earlier imports)", e.Sent, e.Kind, e.Vhost, e.AppliedBefore)
}

func (e *ImportError) Error() string {
	var b strings.Builder
	if e.Err != nil {
		fmt.Fprintf(&b, "import of %d %s definition(s) into vhost %s failed: %s", e.Sent, e.Kind, e.Vhost, errorText(e.Err))
		switch {
		case e.ReadBackErr != nil:
			fmt.Fprintf(&b, "\nwhat it created before failing is unknown: reading the definitions back failed too (%v)", e.ReadBackErr)
		case !e.checked:
			fmt.Fprintf(&b, "\nwhat it created before failing is unknown")
		case e.Cut:
			fmt.Fprintf(&b, "\nread back right after: the broker had created %d of them so far", len(e.Created))
			if len(e.Missing) > 0 {
				fmt.Fprintf(&b, "; %d not yet (%s) — wait until it is done, then `mqctl topology plan` shows what is left; a larger --import-timeout lets apply wait for it", len(e.Missing), listed(missingNames(e.Missing), 5))
			}
		case len(e.Created) > 0:
			fmt.Fprintf(&b, "\nthe broker still created %d of them: %s", len(e.Created), listed(e.Created, 20))
		default:
			fmt.Fprintf(&b, "\nthe broker created none of them")
		}
		if len(e.Missing) > 0 && !e.Cut {
			fmt.Fprintf(&b, "\nnot created: %s", listed(missingNames(e.Missing), 20))
		}
	} else {
		fmt.Fprintf(&b, "the broker answered the import of %d %s definition(s) into vhost %s with success but did not create %d of them:", e.Sent, e.Kind, e.Vhost, len(e.Missing))
		for _, m := range e.Missing {
			fmt.Fprintf(&b, "\n  %s %s: %s", m.Kind, m.Name, m.Cause)
		}
		if len(e.Created) > 0 {
			fmt.Fprintf(&b, "\ncreated in the same import: %s", strings.Join(e.Created, ", "))
		}
	}
	fmt.Fprintf(&b, "\n%d object(s) were applied by earlier imports; an apply is not atomic: fix the cause, then `mqctl topology plan` shows what is left and `mqctl topology apply` does the rest", e.AppliedBefore)
	return b.String()
}

func missingNames(ms []MissingObject) []string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Kind + " " + m.Name
	}
	return names
}

// listed joins the first n names and says how many more there are: an
// import of thousands must not make an error of thousands of names.
func listed(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

// errorText is a broker error without rabbit-hole's "Error 400 (bad_request):".
func errorText(err error) string {
	var er rabbithole.ErrorResponse
	if errors.As(err, &er) {
		if er.Message == "" {
			return fmt.Sprintf("HTTP %d: %s", er.StatusCode, BrokerText(er.Reason))
		}
		return fmt.Sprintf("HTTP %d %s: %s", er.StatusCode, er.Message, BrokerText(er.Reason))
	}
	return err.Error()
}

// exclusiveLister is what MgmtBroker adds for explaining a skipped queue.
type exclusiveLister interface {
	ExclusiveQueues(ctx context.Context, vhost string) (map[string]bool, error)
}

// importStage imports the objects of one kind in batches of ImportBatch
// (a progress step and a bounded request each), stopping at the first
// batch that fails, then reads the vhost back once to check that every
// object sent is there (for an update: as the file says). One read per
// kind, not per batch: reading back a vhost of thousands of objects costs
// the broker about what importing five hundred does.
func importStage(ctx context.Context, b Broker, vhost string, stage []Change, appliedBefore int, progress func(int)) error {
	var importErr error
	sent := stage
	for start := 0; start < len(stage); start += ImportBatch {
		batch := stage[start:min(start+ImportBatch, len(stage))]
		if importErr = b.Import(ctx, vhost, definitionsOf(batch).ForVhost(vhost)); importErr != nil {
			sent = stage[:start+len(batch)]
			break
		}
		progress(len(batch))
	}
	return checkImport(ctx, b, vhost, sent, importErr, appliedBefore)
}

func definitionsOf(changes []Change) *Definitions {
	defs := &Definitions{}
	for _, c := range changes {
		switch {
		case c.exchange != nil:
			defs.Exchanges = append(defs.Exchanges, *c.exchange)
		case c.queue != nil:
			defs.Queues = append(defs.Queues, *c.queue)
		case c.binding != nil:
			defs.Bindings = append(defs.Bindings, *c.binding)
		case c.policy != nil:
			defs.Policies = append(defs.Policies, *c.policy)
		}
	}
	return defs
}

// checkImport reads the vhost back after the import of sent ended with
// importErr (nil: success) and says what the broker created and what not.
// An import the broker refused, or whose request was cut (it goes on
// server-side), is read back too; only one that got no answer at all
// leaves the broker's state unknown.
func checkImport(ctx context.Context, b Broker, vhost string, sent []Change, importErr error, appliedBefore int) error {
	if importErr != nil && ctx.Err() != nil {
		return importErr
	}
	e := &ImportError{Vhost: vhost, Kind: sent[0].Kind, Sent: len(sent), Err: importErr, AppliedBefore: appliedBefore,
		Cut: errors.Is(importErr, ErrImportCut)}
	if importErr != nil && !e.Cut {
		if k, ok := fail.KindOf(importErr); ok && k == fail.Auth {
			e.checked = true // refused before anything was done
			return e
		}
		var er rabbithole.ErrorResponse
		if !errors.As(importErr, &er) {
			return e // no answer: the broker's state is not knowable now
		}
	}
	live, err := b.Definitions(ctx, vhost)
	if err != nil {
		if importErr == nil {
			return fmt.Errorf("read back the %d %s definition(s) just imported into vhost %s: %w", len(sent), sent[0].Kind, vhost, err)
		}
		e.ReadBackErr = err
		return e
	}
	idx := indexLive(live)
	e.checked = true
	for _, c := range sent {
		if idx.has(c) {
			e.Created = append(e.Created, describe(c))
		} else {
			e.Missing = append(e.Missing, MissingObject{Kind: c.Kind, Name: c.Name})
		}
	}
	if importErr == nil && len(e.Missing) == 0 {
		return nil
	}
	if importErr == nil {
		var exclusive map[string]bool
		if l, ok := b.(exclusiveLister); ok && sent[0].Kind == KindQueue {
			exclusive, _ = l.ExclusiveQueues(ctx, vhost)
		}
		byName := map[string]Change{}
		for _, c := range sent {
			byName[c.Kind+"\x00"+c.Name] = c
		}
		for i, m := range e.Missing {
			e.Missing[i].Cause = skipCause(byName[m.Kind+"\x00"+m.Name], exclusive, idx)
		}
	}
	return e
}

func describe(c Change) string { return c.Kind + " " + c.Name }

// liveIndex answers "is this change's object on the broker now".
type liveIndex struct {
	exchanges, queues, bindings map[string]bool
	policies                    map[string]DefPolicy
}

func indexLive(d *Definitions) liveIndex {
	idx := liveIndex{exchanges: map[string]bool{}, queues: map[string]bool{}, bindings: map[string]bool{}, policies: map[string]DefPolicy{}}
	for _, e := range d.Exchanges {
		idx.exchanges[e.Name] = true
	}
	for _, q := range d.Queues {
		idx.queues[q.Name] = true
	}
	for _, b := range d.Bindings {
		idx.bindings[b.Key()] = true
	}
	for _, p := range d.Policies {
		idx.policies[p.Name] = p
	}
	return idx
}

func (idx liveIndex) has(c Change) bool {
	switch {
	case c.exchange != nil:
		return idx.exchanges[c.exchange.Name]
	case c.queue != nil:
		return idx.queues[c.queue.Name]
	case c.binding != nil:
		return idx.bindings[c.binding.Key()]
	case c.policy != nil:
		have, ok := idx.policies[c.policy.Name]
		return ok && policyDiffs(*c.policy, have) == nil
	}
	return false
}

// skipCause is the likely reason an import answered success without
// creating c's object.
func skipCause(c Change, exclusive map[string]bool, idx liveIndex) string {
	const generic = "the broker skipped it without an error; its log says why"
	switch {
	case c.queue != nil:
		q := c.queue
		if exclusive[q.Name] {
			return "a queue of that name exists as another connection's exclusive queue (definitions do not list those); close that connection or rename the queue in the file"
		}
		if v, ok := q.Arguments["x-queue-master-locator"]; ok {
			return fmt.Sprintf("likely denied by the broker's deprecated-feature settings (queue_master_locator, denied by default from RabbitMQ 4.3); use x-queue-leader-locator: %s instead", LeaderLocatorFor(v))
		}
		if !q.Durable {
			return "likely denied by the broker's deprecated-feature settings (transient_nonexcl_queues); make the queue durable"
		}
		if ttl, ok := asInt(q.Arguments["x-expires"]); ok {
			return fmt.Sprintf("it has x-expires %d ms: unused, it may have expired before the check; otherwise the broker skipped it without an error, and its log says why", ttl)
		}
	case c.binding != nil:
		bd := c.binding
		if bd.DestinationType == "queue" && !idx.queues[bd.Destination] {
			return fmt.Sprintf("its destination queue %s does not exist", bd.Destination)
		}
		if bd.DestinationType == "exchange" && !idx.exchanges[bd.Destination] {
			return fmt.Sprintf("its destination exchange %s does not exist", bd.Destination)
		}
		if !idx.exchanges[bd.Source] && managedExchange(bd.Source) {
			return fmt.Sprintf("its source exchange %s does not exist", bd.Source)
		}
	case c.policy != nil:
		if _, ok := idx.policies[c.policy.Name]; ok {
			return "the policy exists but the broker kept its old settings; its log says why"
		}
	}
	return generic
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/migrate"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/topology"
)

// TopologyApplyOptions is what `mqctl topology apply` needs.
type TopologyApplyOptions struct {
	IO      *iostreams.IOStreams
	Connect func() (topologyTarget, error)

	// StateDir is where migrations keep their journals.
	StateDir func() (string, error)
	// MigrationDeps reaches what a migration needs in a vhost.
	MigrationDeps func(vhost string) (migrationDeps, error)
	// Settings give the broker of the audit record of a prune or a
	// migration; Audit is where it goes.
	Settings func() (config.Settings, error)
	Audit    auditTrail

	File    string
	Vhost   string
	Prune   bool
	Migrate bool
	DryRun  bool
	Yes     bool
	Format  output.Format
	// ImportTimeout bounds each definitions import (0: 30 s plus 20 ms
	// per object and 200 ms per quorum queue or stream, at least --timeout).
	ImportTimeout time.Duration
}

// topologyApplyLong is `mqctl topology apply --help`.
const topologyApplyLong = `Plan (see ` + "`mqctl topology plan`" + `), then execute: creates and updates go to the
broker's own definitions import for the vhost (POST /api/definitions/{vhost})
in dependency order — policies, exchanges, queues, bindings — in batches of
500 objects. Applying the same file again changes nothing.

Each import is bounded by --import-timeout (default: 30 s plus 20 ms per
object, 200 ms per quorum queue or stream, which starts a replicated log, and
100 ms per policy; at least --timeout), not by --timeout: a busy broker takes seconds for
a few hundred objects, and it goes on with an import whose request was cut.
After a cut, apply reads the vhost back and says what the broker had created
so far, then exits 1.

Conflicts: apply refuses and changes nothing (exit 3); the plan says what to
do instead.

Broker versions: a setting the broker would refuse (e.g. x-queue-master-locator
where the broker denies that deprecated feature, as 4.3 does by default;
x-queue-version: 1 on 4.3; ha-* policy keys on 4.0+) stops apply before any
import, naming file:line:column (exit 2); see ` + "`mqctl topology plan --help`" + `.

After the imports of each kind, apply reads the vhost's definitions back (one
read) and checks that every object it sent is there: the broker's import can answer
success and skip an object (4.3 does so for a queue with a denied
x-queue-master-locator, every version for a queue whose name another
connection holds as an exclusive queue). A skipped object, or an import the
broker refused (HTTP 400), stops apply with exit 1, naming what was created and
what was not: an import is not atomic, so what came before the failure stays.

--prune also deletes objects that are not in the file (bindings, policies,
exchanges, then queues), after confirmation (--yes when not on a terminal).
A prune that deletes, and every --migrate, appends one JSON line naming each
object deleted or queue migrated to the audit trail (--audit-log, default
$XDG_STATE_HOME/mqctl/audit.jsonl; ` + "`mqctl dlq history`" + ` shows it); a trail
that cannot be written refuses them (exit 2) before anything changes.
A queue is never deleted while it holds messages or has consumers: the counts
are checked again right before each delete (quorum queues do not support
if-empty), and such queues are kept and reported (exit 3).

--migrate re-creates the queues whose type, durability or x-arguments RabbitMQ
cannot change in place (the plan's "migrate" changes), without losing a message
while producers keep publishing. After confirmation (naming each queue, its
message count and the vhost; --yes when not on a terminal, else exit 2 and
nothing changed) apply first makes every other change, then, queue by queue:
declares QUEUE.mqctl-migrate (durable, the new type, no other argument) with
the queue's bindings, unbinds the queue, moves its messages there (each
publish confirmed, mandatory, properties and headers kept, the original acked
only after the confirm), fences it (policy mqctl.fence.QUEUE: max-length 0 with
overflow reject-publish, so the broker nacks publishes to it), moves what is
left, deletes it once empty (checked over AMQP and with a management sample
taken after the move; classic queues are deleted with if-empty and moved again
when a message slipped in), removes the fence, declares the queue as the file
says together with its mqctl.QUEUE policy (the new policy may hold keys the old
queue type does not take, and RabbitMQ 3.x then applies none of it, so it waits
for the new queue), binds it, unbinds the temporary queue and moves the
messages back, then deletes the temporary queue. A queue an app declared again in between
(its own queue_declare) is treated as the old one again, up to 5 times.

Ordering and what apps see: messages published during the migration go to the
temporary queue and come back after the old ones, so a queue's FIFO order is
not kept across the switch. Consumers get a basic.cancel when the old queue
is deleted and must consume again (mqctl's worker does, with its backoff).
Publishers to the default exchange (routing key = queue name) reach the old
queue until it is deleted (nacked while it is fenced), and nothing for a moment
after: they must publish with mandatory and confirms and retry a nacked or
returned message. Even so, RabbitMQ confirms a message that reaches the queue
in the milliseconds its process takes to terminate and drops it (seen on 3.10:
up to one message at 150 msg/s per delete), so pause
such publishers, or publish through an exchange bound to the queue, while a
migration runs; publishes through exchanges are never lost. Delivery is at least
once: a message published while both queues are bound reaches both, and the
result counts messages a killed run may have moved twice (possible_duplicates).

A killed or failed migration leaves a journal under
$XDG_STATE_HOME/mqctl/migrate; run the same command again and it goes on from
where it was (the journal names the queue and its bindings, the broker shows
the rest). While a journal is there, apply without --migrate refuses (exit 3).

--dry-run prints the plan and, per queue to migrate, its message count and the
steps, and changes nothing.

Least permissions: the administrator tag (the definitions import requires it;
without it apply exits 4 and changes nothing). An apply with nothing to change
needs only what plan needs. --migrate also needs configure, write and read on
the queue and its temporary queue, and write on the default exchange.`

// NewCmdTopologyApply builds `mqctl topology apply`.
func NewCmdTopologyApply(f *Factory, runF func(*TopologyApplyOptions) error) *cobra.Command {
	opts := &TopologyApplyOptions{IO: f.IO,
		StateDir: func() (string, error) { return stateHome(f.Env, "the migration journal", "") }, MigrationDeps: defaultMigrationDeps(f),
		Settings: settingsOf(f), Audit: auditTrail{Env: f.Env}}
	opts.Connect = defaultTopologyConnect(f, &opts.ImportTimeout)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Plan, then create and update the file's objects on the broker",
		Long:  topologyApplyLong,
		Example: `  mqctl topology apply -f examples/registration/topology.yaml
  mqctl topology apply -f topology.yaml --prune --yes
  mqctl topology apply -f topology.yaml --migrate --dry-run
  mqctl topology apply -f topology.yaml --migrate --yes -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if opts.ImportTimeout < 0 {
				return fail.Usagef("--import-timeout must not be negative")
			}
			if runF != nil {
				return runF(opts)
			}
			return topologyApplyRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "topology file (YAML; - reads standard input)")
	cmd.Flags().StringVar(&opts.Vhost, "vhost", "", "vhost to apply to (default: the file's vhost, else the connection's)")
	cmd.Flags().BoolVar(&opts.Prune, "prune", false, "delete objects not in the file (never a queue holding messages)")
	cmd.Flags().BoolVar(&opts.Migrate, "migrate", false, "re-create queues RabbitMQ cannot change in place, moving their messages")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print the plan and each migration's steps; change nothing")
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation before pruning or migrating")
	opts.Audit.register(cmd.Flags())
	cmd.Flags().DurationVar(&opts.ImportTimeout, "import-timeout", 0, "bound on each definitions import (default: 30s plus 20ms per object, 200ms per quorum queue or stream, 100ms per policy, at least --timeout)")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
	return cmd
}

type applyView struct {
	*topology.Result
}

func (v applyView) RenderText(w io.Writer, s *output.Styles) error {
	p := v.Plan
	if len(p.Changes) == 0 {
		_, err := fmt.Fprintf(w, "No changes: vhost %s already matches the file (%d objects).\n", p.Vhost, p.Summary.Unchanged)
		return err
	}
	if err := (planView{p}).RenderText(w, s); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s applied %d, deleted %d", s.OK.Render("✓"), v.Applied, v.Deleted)
	if len(v.Kept) > 0 {
		fmt.Fprintf(w, ", kept %d (%s)", len(v.Kept), strings.Join(v.Kept, ", "))
	}
	fmt.Fprintln(w)
	for _, q := range slices.Sorted(maps.Keys(v.Retimed)) {
		fmt.Fprintf(w, "%s queued the %d messages waiting in %s again, to wait its new delay\n", s.OK.Render("✓"), v.Retimed[q], q)
	}
	return nil
}

func topologyApplyRun(ctx context.Context, opts *TopologyApplyOptions) error {
	p, x, t, err := planExpanded(ctx, opts.IO, opts.Connect, opts.File, opts.Vhost, opts.Prune, true)
	if err != nil {
		return err
	}
	if p.HasConflicts() {
		if err := output.Print(opts.IO, opts.Format, planView{p}); err != nil {
			return err
		}
		return fail.Conditionf("refusing to apply: %d conflict(s) with the broker; nothing was changed (see the plan above for the safe route)", p.Summary.Conflict)
	}
	migs, err := migrationsOf(opts, p, x)
	if err != nil {
		return err
	}
	if len(migs) > 0 || opts.DryRun {
		return topologyMigrateRun(ctx, opts, p, t, migs)
	}
	res, err := applyPlan(ctx, opts, t, p)
	if err != nil {
		return err
	}
	var view any = applyView{res}
	if opts.Migrate {
		// The same -o json shape as with migrations.
		view = migrateView{Result: res, Migrations: []*migrate.Result{}}
	}
	if err := output.Print(opts.IO, opts.Format, view); err != nil {
		return err
	}
	return keptError(res)
}

// applyPlan confirms the deletes of a pruning plan, then applies it with
// a progress bar.
func applyPlan(ctx context.Context, opts *TopologyApplyOptions, t topologyTarget, p *topology.Plan) (*topology.Result, error) {
	if p.Summary.Delete > 0 {
		if err := opts.Audit.check(); err != nil {
			return nil, err
		}
		if err := Confirm(opts.IO, opts.Yes, fmt.Sprintf("delete %d objects not in %s from vhost %s", p.Summary.Delete, opts.File, p.Vhost)); err != nil {
			return nil, err
		}
	}
	bar := output.NewProgress(opts.IO, int64(p.Work()), "apply")
	res, err := topology.Apply(ctx, t.Broker, p, bar.Add)
	bar.Finish()
	if p.Summary.Delete > 0 && res != nil {
		recordTopology(opts, pruneEntry(opts.File, p.Vhost, res, err), err)
	}
	if err != nil {
		return res, applyError(t, err)
	}
	return res, retime(ctx, opts, p, res)
}

// retime queues the messages waiting in the delay queues whose delay the
// apply changed again, so they wait the new delay instead of the one they
// were enqueued with.
func retime(ctx context.Context, opts *TopologyApplyOptions, p *topology.Plan, res *topology.Result) error {
	if len(p.Retime) == 0 {
		return nil
	}
	if opts.MigrationDeps == nil {
		return errors.New("internal: apply without MigrationDeps")
	}
	deps, err := opts.MigrationDeps(p.Vhost)
	if err != nil {
		return err
	}
	res.Retimed = map[string]int{}
	for _, q := range p.Retime {
		n, err := (&migrate.Queue{Vhost: p.Vhost, Name: q, Dialer: deps.Dialer, User: deps.User}).Retime(ctx)
		if err != nil {
			return fmt.Errorf("the delay of %s changed, but its waiting messages could not all be queued again to wait the new one (none is lost; run the same command again to retry): %w", q, err)
		}
		res.Retimed[q] = n
	}
	return nil
}

// keptError is the exit 3 of a prune that kept queues.
func keptError(res *topology.Result) error {
	if len(res.Kept) > 0 {
		kept := make([]string, len(res.Kept))
		for i, q := range res.Kept {
			kept[i] = q
			if why := res.KeptWhy[q]; why != "" {
				kept[i] += " (" + why + ")"
			}
		}
		return fail.Conditionf("pruned partially: kept %d queue(s) that hold messages, have consumers or carry their dead letters: %s", len(res.Kept), strings.Join(kept, ", "))
	}
	return nil
}

// applyError explains a failed apply. An import the broker answered
// (other than 403) already says what it did; a refused or unreachable API
// gets the usual hints.
func applyError(t topologyTarget, err error) error {
	var ie *topology.ImportError
	if errors.As(err, &ie) {
		var er rabbithole.ErrorResponse
		if ie.Err == nil || (errors.As(ie.Err, &er) && er.StatusCode != http.StatusForbidden) {
			return err
		}
		return t.Explain(ie.Context(), ie.Err)
	}
	if _, ok := fail.KindOf(err); ok {
		return err
	}
	return t.Explain("apply topology", err)
}

// pruneEntry is the audit record of a prune: each object deleted, each
// queue kept and why.
func pruneEntry(file, vhost string, res *topology.Result, err error) audit.Entry {
	e := audit.Entry{Command: "topology prune", Vhost: vhost, Selection: "-f " + shellQuote(file) + " --prune",
		Counts: map[string]int{}, Outcome: audit.OutcomeOf(err, len(res.Kept) > 0)}
	for _, o := range res.DeletedObjects {
		e.Items = append(e.Items, audit.Item{ID: o, Status: "deleted"})
	}
	for _, q := range res.Kept {
		e.Items = append(e.Items, audit.Item{ID: topology.KindQueue + " " + q, Status: "kept", Reason: res.KeptWhy[q]})
	}
	for _, it := range e.Items {
		e.Counts[it.Status]++
	}
	return e
}

// recordTopology appends a prune's or migration's record; a trail that
// cannot be written is a warning (the change is made).
func recordTopology(opts *TopologyApplyOptions, e audit.Entry, runErr error) {
	var s config.Settings
	if opts.Settings != nil {
		var err error
		if s, err = opts.Settings(); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "warning: not recorded in the audit trail: %v\n", err)
			return
		}
	}
	if err := opts.Audit.record(s, e, runErr); err != nil {
		fmt.Fprintf(opts.IO.ErrOut, "warning: %s\n", s.Redactor.Redact(err.Error()))
	}
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/migrate"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/topology"
)

// migrationDeps is what migrating a queue needs besides the topology
// broker: AMQP connections to the plan's vhost, the management client,
// the user mqctl connects as, and where journals go.
type migrationDeps struct {
	Dialer   *broker.Dialer
	Mgmt     *rabbithole.Client
	User     string
	StateDir string
	// stateErr says why there is no StateDir: only a migration needs one
	// (its journal), not retiming a delay queue.
	stateErr error
}

// defaultMigrationDeps reaches the broker of f's settings, in vhost
// (which may differ from the connection's: a file names its own).
func defaultMigrationDeps(f *Factory) func(vhost string) (migrationDeps, error) {
	return func(vhost string) (migrationDeps, error) {
		s, err := f.Settings()
		if err != nil {
			return migrationDeps{}, err
		}
		dir, stateErr := stateHome(f.Env, "the migration journal", "")
		s, user, err := inVhost(s, vhost)
		if err != nil {
			return migrationDeps{}, err
		}
		d, err := broker.NewDialer(s, "mqctl topology apply --migrate")
		if err != nil {
			return migrationDeps{}, err
		}
		mgmt, err := f.Mgmt()
		if err != nil {
			return migrationDeps{}, err
		}
		return migrationDeps{Dialer: d, Mgmt: mgmt, User: user, StateDir: dir, stateErr: stateErr}, nil
	}
}

// inVhost points the settings' AMQP URLs at vhost and returns the user
// they connect as.
func inVhost(s config.Settings, vhost string) (config.Settings, string, error) {
	urls := make([]string, len(s.AMQPURLs))
	user := ""
	for i, u := range s.AMQPURLs {
		uri, err := amqp.ParseURI(u)
		if err != nil {
			return s, "", fail.Usagef("AMQP URL %s: %v", s.Redactor.Redact(u), err)
		}
		uri.Vhost = vhost
		urls[i] = uri.String()
		if i == 0 {
			user = uri.Username
		}
	}
	s.AMQPURLs, s.Vhost = urls, vhost
	return s, user, nil
}

// stateHome is $XDG_STATE_HOME, else ~/.local/state.
//
// It is the one place mqctl resolves its state directory (journals, the
// audit trail, the record of published files); what names the file for
// the error, and orFlag the flag that places it instead, if any.
func stateHome(env config.LookupEnv, what, orFlag string) (string, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	if dir, ok := env("XDG_STATE_HOME"); ok && dir != "" {
		return dir, nil
	}
	home, ok := env("HOME")
	if !ok || home == "" {
		hint := ""
		if orFlag != "" {
			hint = ", or pass " + orFlag
		}
		return "", fail.Usagef("cannot place %s: set HOME or XDG_STATE_HOME%s", what, hint)
	}
	return filepath.Join(home, ".local", "state"), nil
}

// queueMigration is one queue apply --migrate re-creates.
type queueMigration struct {
	Queue string `json:"queue"`
	// Messages is the queue's count when the plan was made, if known.
	Messages *int `json:"messages,omitempty"`
	// Unfinished is set when an earlier run left its journal: this run
	// goes on from there.
	Unfinished bool     `json:"unfinished"`
	Steps      []string `json:"steps"`
	def        topology.DefQueue
	// policy is the policy mqctl owns for the queue, set with the new
	// queue (see topology.Plan.WithoutMigrations).
	policy *topology.DefPolicy
}

// migrationsOf lists the queues to migrate: the plan's, and those an
// earlier run did not finish (the plan may show them as unchanged or
// missing). Without --migrate or --dry-run, a state directory that cannot
// be placed (or none in the options) only means no journal can be there.
func migrationsOf(opts *TopologyApplyOptions, p *topology.Plan, x *topology.Expanded) ([]queueMigration, error) {
	var pending []string
	dir, err := "", fail.Usagef("no state directory for migration journals")
	if opts.StateDir != nil {
		dir, err = opts.StateDir()
	}
	if err == nil {
		pending, err = migrate.Pending(dir, p.Vhost)
	}
	if err != nil && (opts.Migrate || opts.DryRun) {
		return nil, err
	}
	defs := map[string]topology.DefQueue{}
	for _, q := range x.Defs.Queues {
		defs[q.Name] = q
	}
	var migs []queueMigration
	seen := map[string]bool{}
	for _, c := range p.Changes {
		if c.Action == topology.Migrate && c.Kind == topology.KindQueue {
			migs = append(migs, queueMigration{Queue: c.Name, Messages: c.Messages, Steps: topology.MigrationSteps(c.Name), def: defs[c.Name]})
			seen[c.Name] = true
		}
	}
	for i := range migs {
		migs[i].Unfinished = slices.Contains(pending, migs[i].Queue)
	}
	for _, q := range pending {
		if seen[q] {
			continue
		}
		def, ok := defs[q]
		if !ok {
			return nil, fail.Conditionf("queue %s in vhost %s has an unfinished migration (journal %s) but is not in %s; nothing was changed: apply the file that started it with --migrate to finish it",
				q, p.Vhost, migrate.JournalPath(dir, p.Vhost, q), opts.File)
		}
		migs = append(migs, queueMigration{Queue: q, Unfinished: true, Steps: topology.MigrationSteps(q), def: def})
	}
	for i := range migs {
		if pol, ok := x.OwnedPolicy(migs[i].Queue); ok {
			migs[i].policy = &pol
		}
	}
	return migs, nil
}

// topologyMigrateRun is apply with queues to migrate (or --dry-run):
// refuse without --migrate, confirm, apply the rest of the plan, then
// migrate queue by queue.
func topologyMigrateRun(ctx context.Context, opts *TopologyApplyOptions, p *topology.Plan, t topologyTarget, migs []queueMigration) error {
	if !opts.Migrate && !opts.DryRun {
		if err := output.Print(opts.IO, opts.Format, planView{p}); err != nil {
			return err
		}
		if p.Summary.Migrate == 0 {
			return fail.Conditionf("refusing to apply: the migration of %s in vhost %s is unfinished; nothing was changed: run the same command with --migrate to finish it", migrationNames(migs), p.Vhost)
		}
		return fail.Conditionf("refusing to apply: %d queue(s) need a migration; nothing was changed: `mqctl topology apply --migrate` re-creates them without losing a message (see the plan above)", len(migs))
	}
	if opts.MigrationDeps == nil {
		return errors.New("internal: apply --migrate without MigrationDeps")
	}
	deps, err := opts.MigrationDeps(p.Vhost)
	if err != nil {
		return err
	}
	if deps.stateErr != nil {
		return deps.stateErr
	}
	if err := exactCounts(ctx, deps, p, migs); err != nil {
		return err
	}
	if opts.DryRun {
		return output.Print(opts.IO, opts.Format, dryRunView{Plan: p, DryRun: true, Migrations: migs})
	}
	if opts.Format == output.Table {
		// What the confirmation is about; -o json has it in the result.
		if err := output.Print(opts.IO, opts.Format, planView{p}); err != nil {
			return err
		}
	}
	if err := opts.Audit.check(); err != nil {
		return err
	}
	if err := Confirm(opts.IO, opts.Yes, migrateAction(p.Vhost, migs)); err != nil {
		return err
	}
	res, err := applyPlan(ctx, opts, t, p.WithoutMigrations())
	if err != nil {
		return err
	}
	results, merr := runMigrations(ctx, opts, t, deps, p.Vhost, migs)
	recordTopology(opts, migrateEntry(opts.File, p.Vhost, migs, results, merr), merr)
	res.Plan = p
	if err := output.Print(opts.IO, opts.Format, migrateView{Result: res, Migrations: results}); err != nil {
		return err
	}
	if merr != nil {
		return merr
	}
	return keptError(res)
}

// exactCounts reads each queue's ready count over AMQP (a passive
// declare) for the dry run and the confirmation: the plan's come from the
// management API, up to 5 s old. The plan's table shows them too.
func exactCounts(ctx context.Context, deps migrationDeps, p *topology.Plan, migs []queueMigration) error {
	for i := range migs {
		n, _, err := deps.Dialer.QueueCounts(ctx, migs[i].Queue)
		if errors.Is(err, broker.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read the message count of %s in vhost %s: %w", migs[i].Queue, p.Vhost, err)
		}
		migs[i].Messages = &n
		for j, c := range p.Changes {
			if c.Action == topology.Migrate && c.Kind == topology.KindQueue && c.Name == migs[i].Queue {
				p.Changes[j].Messages = &n
			}
		}
	}
	return nil
}

func migrationNames(migs []queueMigration) string {
	names := make([]string, len(migs))
	for i, m := range migs {
		names[i] = m.Queue
	}
	return strings.Join(names, ", ")
}

// migrateAction is what the user confirms: each queue and its messages.
func migrateAction(vhost string, migs []queueMigration) string {
	parts := make([]string, len(migs))
	for i, m := range migs {
		switch {
		case m.Unfinished:
			parts[i] = m.Queue + " (unfinished: goes on from its journal)"
		case m.Messages != nil:
			parts[i] = fmt.Sprintf("%s (%d messages)", m.Queue, *m.Messages)
		default:
			parts[i] = m.Queue + " (message count unknown)"
		}
	}
	return fmt.Sprintf("migrate %d queue(s) in vhost %s: %s", len(migs), vhost, strings.Join(parts, ", "))
}

// runMigrations migrates the queues one after the other, each with a
// progress bar of the messages it moves (out and back).
func runMigrations(ctx context.Context, opts *TopologyApplyOptions, t topologyTarget, deps migrationDeps, vhost string, migs []queueMigration) ([]*migrate.Result, error) {
	results := []*migrate.Result{}
	for _, m := range migs {
		total := int64(-1)
		if m.Messages != nil && *m.Messages > 0 {
			total = 2 * int64(*m.Messages)
		}
		bar := output.NewProgress(opts.IO, total, "migrate "+m.Queue)
		def, pol := m.def, m.policy
		q := &migrate.Queue{
			Vhost: vhost, Name: m.Queue, Type: def.Type(),
			Dialer: deps.Dialer, Mgmt: deps.Mgmt, User: deps.User, StateDir: deps.StateDir,
			Declare: func(ctx context.Context) error { return topology.DeclareQueue(ctx, t.Broker, vhost, def, pol) },
			OnEvent: func(e migrate.Event) {
				if e.Moved > 0 {
					bar.Add(e.Moved)
					return
				}
				t.Logf("migrate %s: %s %s", e.Queue, e.Step, e.Detail)
			},
		}
		r, err := q.Run(ctx)
		bar.Finish()
		if r != nil {
			results = append(results, r)
		}
		if err != nil {
			return results, fmt.Errorf("migrate queue %s in vhost %s: %w", m.Queue, vhost, err)
		}
	}
	return results, nil
}

// dryRunView is apply --dry-run: the plan and each migration's steps.
type dryRunView struct {
	Plan       *topology.Plan   `json:"plan"`
	DryRun     bool             `json:"dry_run"`
	Migrations []queueMigration `json:"migrations"`
}

func (v dryRunView) RenderText(w io.Writer, s *output.Styles) error {
	if err := (planView{v.Plan}).RenderText(w, s); err != nil {
		return err
	}
	for _, m := range v.Migrations {
		held := "message count unknown"
		if m.Messages != nil {
			held = fmt.Sprintf("%d messages", *m.Messages)
		}
		fmt.Fprintf(w, "\n%s %s in vhost %s (%s):\n", s.ForLevel(output.LevelWarn).Render("migrate"), m.Queue, v.Plan.Vhost, held)
		if m.Unfinished {
			fmt.Fprintf(w, "  an earlier run did not finish: --migrate goes on from its journal\n")
		}
		for i, step := range m.Steps {
			fmt.Fprintf(w, "  %d. %s\n", i+1, step)
		}
	}
	_, err := fmt.Fprintf(w, "\nDry run: nothing was changed.\n")
	return err
}

// migrateView is the result of apply --migrate: what apply did, and per
// migrated queue the messages moved each way.
type migrateView struct {
	*topology.Result
	Migrations []*migrate.Result `json:"migrations"`
}

func (v migrateView) RenderText(w io.Writer, s *output.Styles) error {
	if len(v.Migrations) == 0 {
		return applyView{v.Result}.RenderText(w, s)
	}
	fmt.Fprintf(w, "\n%s applied %d, deleted %d", s.OK.Render("✓"), v.Applied, v.Deleted)
	if len(v.Kept) > 0 {
		fmt.Fprintf(w, ", kept %d (%s)", len(v.Kept), strings.Join(v.Kept, ", "))
	}
	fmt.Fprintln(w)
	rows := make([][]string, len(v.Migrations))
	for i, m := range v.Migrations {
		rows[i] = []string{m.Queue, fmt.Sprint(m.MessagesAtStart), fmt.Sprint(m.MovedOut), fmt.Sprint(m.MovedBack),
			fmt.Sprint(m.PossibleDuplicates), fmt.Sprint(m.Runs), fmt.Sprintf("%.1fs", m.Seconds)}
	}
	return output.WriteTable(w, s, output.TableData{
		Headers: []string{"migrated queue", "messages at start", "moved out", "moved back", "possible duplicates", "runs", "took"},
		Rows:    rows,
		Columns: map[string]output.Column{"migrated queue": {Keep: true}},
		Footer:  "Migrations in vhost " + v.Plan.Vhost + ": " + fmt.Sprint(len(v.Migrations)) + " queue(s); consumers must consume the new queues again",
	})
}

// migrateEntry is the audit record of apply --migrate: each queue
// migrated (or not) and the messages moved out and back.
func migrateEntry(file, vhost string, migs []queueMigration, results []*migrate.Result, err error) audit.Entry {
	e := audit.Entry{Command: "topology migrate", Vhost: vhost, Selection: "-f " + shellQuote(file) + " --migrate",
		Counts: map[string]int{}}
	done := map[string]*migrate.Result{}
	for _, r := range results {
		done[r.Queue] = r
	}
	partial := false
	for i, m := range migs {
		it := audit.Item{ID: m.Queue, Destination: m.Queue, Status: "migrated"}
		r := done[m.Queue]
		switch {
		case r != nil && (err == nil || i < len(results)-1):
			e.Counts["moved_out"] += r.MovedOut
			e.Counts["moved_back"] += r.MovedBack
		case r != nil:
			it.Status, it.Reason = "failed", fmt.Sprintf("moved out %d, back %d before the failure; run the same command again to go on", r.MovedOut, r.MovedBack)
		default:
			it.Status, partial = "not_started", true
		}
		e.Counts[it.Status]++
		e.Items = append(e.Items, it)
	}
	e.Outcome = audit.OutcomeOf(err, partial)
	return e
}

package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/topology"
)

// TopologyPlanOptions is what `mqctl topology plan` needs.
type TopologyPlanOptions struct {
	IO      *iostreams.IOStreams
	Connect func() (topologyTarget, error)

	File     string
	Vhost    string
	ExitCode bool
	Prune    bool
	Format   output.Format
}

// NewCmdTopologyPlan builds `mqctl topology plan`.
func NewCmdTopologyPlan(f *Factory, runF func(*TopologyPlanOptions) error) *cobra.Command {
	opts := &TopologyPlanOptions{IO: f.IO, Connect: defaultTopologyConnect(f, nil)}
	cmd := &cobra.Command{
		Use:   "plan -f FILE",
		Short: "Compare a topology file with the broker and classify every change",
		Long: `Expand the file's patterns and compare the result with the vhost's live
definitions (one GET /api/definitions/{vhost} and one GET /api/queues/{vhost}
for message counts). Every difference is classified:

  create    missing on the broker; apply declares it
  update    exists and can change in place (policies); apply changes it
  conflict  exists with a type, durability or x-argument RabbitMQ cannot change;
            the plan says the safe route (a policy where RabbitMQ allows one,
            otherwise a new name and a migration) — never deleting a queue
            that holds messages. apply refuses while conflicts exist.
  extra     on the broker but not in the file; kept (with --prune: delete,
            or keep for queues that hold messages or have consumers)

Comparison is against what the management API reports, because RabbitMQ
silently ignores some redeclared arguments.

--exit-code: exit 3 when changes are pending (create, update, conflict,
delete), 0 when the broker matches the file — for CI.

Broker versions: when the file holds a setting whose fate depends on the
RabbitMQ version (x-queue-master-locator, x-queue-version: 1, x-queue-mode,
durable: false, ha-* and similar policy keys), plan reads the broker's version
(GET /api/overview) and deprecated features (GET /api/deprecated-features,
3.13+). A setting this broker refuses is an error naming file:line:column
(exit 2); a deprecated setting it still accepts is a warning on stderr.

Least permissions: the monitoring or management tag and read access to the
vhost. (GET /api/definitions/{vhost} wants the administrator tag; without it
plan reads the vhost's queues, exchanges, bindings and policies lists.)`,
		Example: `  mqctl topology plan -f examples/registration/topology.yaml
  mqctl topology plan -f topology.yaml --exit-code -o json
  mqctl topology plan -f topology.yaml --prune`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return topologyPlanRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "topology file (YAML; - reads standard input)")
	cmd.Flags().StringVar(&opts.Vhost, "vhost", "", "vhost to compare with (default: the file's vhost, else the connection's)")
	cmd.Flags().BoolVar(&opts.ExitCode, "exit-code", false, "exit 3 when changes are pending")
	cmd.Flags().BoolVar(&opts.Prune, "prune", false, "show which objects not in the file apply --prune would delete")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
	return cmd
}

func topologyPlanRun(ctx context.Context, opts *TopologyPlanOptions) error {
	p, _, err := planFile(ctx, opts.IO, opts.Connect, opts.File, opts.Vhost, opts.Prune, false)
	if err != nil {
		return err
	}
	if err := output.Print(opts.IO, opts.Format, planView{p}); err != nil {
		return err
	}
	if opts.ExitCode && p.Pending() {
		return fail.Conditionf("plan has pending changes (%s)", summaryText(p.Summary))
	}
	return nil
}

// planView renders a plan: a table of changes, then what to do about
// conflicts and kept queues.
type planView struct{ *topology.Plan }

func summaryText(s topology.Summary) string {
	migrate := ""
	if s.Migrate > 0 {
		migrate = fmt.Sprintf("%d to migrate, ", s.Migrate)
	}
	return fmt.Sprintf("%d to create, %d to update, %s%d conflicts, %d to delete, %d kept, %d extra on the broker, %d unchanged",
		s.Create, s.Update, migrate, s.Conflict, s.Delete, s.Keep, s.Extra, s.Unchanged)
}

func (v planView) Table() output.TableData {
	rows := make([][]string, len(v.Changes))
	for i, c := range v.Changes {
		name := c.Name
		if c.Owner != "" {
			name += " (" + string(c.Role) + " of " + c.Owner + ")"
		}
		details := strings.Join(c.Details, "; ")
		if c.Messages != nil && (c.Action == topology.Conflict || c.Action == topology.Migrate || c.Action == topology.Keep || c.Action == topology.Extra || c.Action == topology.Delete) {
			details += fmt.Sprintf("; %d messages", *c.Messages)
		}
		rows[i] = []string{string(c.Action), c.Kind, name, details}
	}
	return output.TableData{
		Headers: []string{"action", "kind", "name", "details"},
		Rows:    rows,
		Columns: map[string]output.Column{"name": {Keep: true}, "details": {Min: 24}},
		CellLevel: func(row, col int) output.Level {
			if col != 0 {
				return output.LevelNone
			}
			switch v.Changes[row].Action {
			case topology.Create, topology.Update:
				return output.LevelOK
			case topology.Conflict:
				return output.LevelError
			case topology.Delete, topology.Keep, topology.Migrate:
				return output.LevelWarn
			}
			return output.LevelMuted
		},
		Footer: "Plan for vhost " + v.Vhost + ": " + summaryText(v.Summary),
	}
}

func (v planView) RenderText(w io.Writer, s *output.Styles) error {
	if len(v.Changes) == 0 {
		if _, err := fmt.Fprintf(w, "No changes: vhost %s matches the file (%d objects unchanged).\n", v.Vhost, v.Summary.Unchanged); err != nil {
			return err
		}
		return v.renderNotes(w, s)
	}
	if err := output.WriteTable(w, s, v.Table()); err != nil {
		return err
	}
	for _, c := range v.Changes {
		if c.Hint == "" {
			continue
		}
		fmt.Fprintf(w, "\n%s %s %s: %s\n", s.ForLevel(levelOf(c.Action)).Render(string(c.Action)), c.Kind, c.Name, strings.Join(c.Details, "; "))
		fmt.Fprintf(w, "  → %s\n", c.Hint)
	}
	if err := v.renderEffective(w, s); err != nil {
		return err
	}
	return v.renderNotes(w, s)
}

// renderNotes warns of dead-letter paths that go nowhere and of app
// declarations that will fail; both matter even when nothing changes.
func (v planView) renderNotes(w io.Writer, s *output.Styles) error {
	for _, warning := range v.Warnings {
		fmt.Fprintf(w, "\n%s %s", s.ForLevel(output.LevelWarn).Render("warning:"), warning)
	}
	if len(v.Warnings) > 0 {
		fmt.Fprintln(w)
	}
	return v.renderApps(w, s)
}

// renderApps names the queues an app cannot declare with durable=True
// alone on this broker, and what the app must send instead.
func (v planView) renderApps(w io.Writer, s *output.Styles) error {
	var plain []string
	var fail []topology.AppDeclaration
	for _, a := range v.Apps {
		if a.Plain {
			plain = append(plain, a.Queue)
		} else {
			fail = append(fail, a)
		}
	}
	if len(fail) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\n%s\n", s.Bold.Render("App declarations (queue_declare with durable=True and no arguments):"))
	if len(plain) > 0 {
		fmt.Fprintf(w, "  equivalent: %s\n", strings.Join(plain, ", "))
	}
	for _, a := range fail {
		fmt.Fprintf(w, "  %s %s: %s\n", s.ForLevel(output.LevelWarn).Render("406"), a.Queue, a.Why)
		fmt.Fprintf(w, "    → declare it with durable=%s, arguments %s, or passively (passive=True)\n", pyBool(a.Durable), argsText(a.Arguments))
		if a.Alternative != "" {
			fmt.Fprintf(w, "    → or %s\n", a.Alternative)
		}
	}
	return nil
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// argsText writes arguments as an app would pass them: {'x-queue-type': 'quorum'}.
func argsText(args map[string]any) string {
	keys := slices.Sorted(maps.Keys(args))
	parts := make([]string, len(keys))
	for i, k := range keys {
		if str, ok := args[k].(string); ok {
			parts[i] = fmt.Sprintf("'%s': '%s'", k, str)
		} else {
			parts[i] = fmt.Sprintf("'%s': %v", k, args[k])
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// renderEffective lists, when the plan touches queues or policies, the
// policy each of the file's queues will have: RabbitMQ applies only one,
// so this is what a queue really gets besides its arguments.
func (v planView) renderEffective(w io.Writer, s *output.Styles) error {
	touched := false
	for _, c := range v.Changes {
		if (c.Kind == topology.KindQueue || c.Kind == topology.KindPolicy) && c.Action != topology.Extra {
			touched = true
		}
	}
	if !touched || len(v.Effective) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\n%s\n", s.Bold.Render("Policy in effect per queue (one applies; the queue's own arguments win over it):"))
	names := slices.Sorted(maps.Keys(v.Effective))
	width := 0
	for _, q := range names {
		width = max(width, len(q))
	}
	for _, q := range names {
		e := v.Effective[q]
		keys := slices.Sorted(maps.Keys(e.Definition))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s=%v", k, e.Definition[k])
		}
		if _, err := fmt.Fprintf(w, "  %-*s  %s  %s\n", width, q, e.Policy, strings.Join(parts, " ")); err != nil {
			return err
		}
	}
	return nil
}

func levelOf(a topology.Action) output.Level {
	if a == topology.Conflict {
		return output.LevelError
	}
	return output.LevelWarn
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/topology"
)

// TopologyApplyOptions is what `mqctl topology apply` needs.
type TopologyApplyOptions struct {
	IO      *iostreams.IOStreams
	Connect func() (topologyTarget, error)

	File   string
	Vhost  string
	Prune  bool
	Yes    bool
	Format output.Format
}

// NewCmdTopologyApply builds `mqctl topology apply`.
func NewCmdTopologyApply(f *Factory, runF func(*TopologyApplyOptions) error) *cobra.Command {
	opts := &TopologyApplyOptions{IO: f.IO, Connect: defaultTopologyConnect(f)}
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Plan, then create and update the file's objects on the broker",
		Long: `Plan (see ` + "`mqctl topology plan`" + `), then execute: creates and updates go to the
broker's own definitions import (POST /api/definitions) in dependency order —
exchanges, queues, bindings, policies — in batches of 500 objects. Applying the
same file again changes nothing.

Conflicts: apply refuses and changes nothing (exit 3); the plan says what to
do instead.

Broker versions: a setting the broker would refuse (e.g. x-queue-master-locator
where the broker denies that deprecated feature, as 4.3 does by default;
x-queue-version: 1 on 4.3; ha-* policy keys on 4.0+) stops apply before any
import, naming file:line:column (exit 2); see ` + "`mqctl topology plan --help`" + `.

After each import, apply reads the vhost's definitions back (one read) and
checks that every object it sent is there: the broker's import can answer
success and skip an object (4.3 does so for a queue with a denied
x-queue-master-locator, every version for a queue whose name another
connection holds as an exclusive queue). A skipped object, or an import the
broker refused (HTTP 400), stops apply with exit 1, naming what was created and
what was not: an import is not atomic, so what came before the failure stays.

--prune also deletes objects that are not in the file (bindings, policies,
exchanges, then queues), after confirmation (--yes when not on a terminal).
A queue is never deleted while it holds messages or has consumers: the counts
are checked again right before each delete (quorum queues do not support
if-empty), and such queues are kept and reported (exit 3).

Least permissions: the administrator tag (the definitions import requires it;
without it apply exits 4 and changes nothing). An apply with nothing to change
needs only what plan needs.`,
		Example: `  mqctl topology apply -f examples/registration/topology.yaml
  mqctl topology apply -f topology.yaml --prune --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return topologyApplyRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "topology file (YAML)")
	cmd.Flags().StringVar(&opts.Vhost, "vhost", "", "vhost to apply to (default: the file's vhost, else the connection's)")
	cmd.Flags().BoolVar(&opts.Prune, "prune", false, "delete objects not in the file (never a queue holding messages)")
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation before pruning")
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
	_, err := fmt.Fprintln(w)
	return err
}

func topologyApplyRun(ctx context.Context, opts *TopologyApplyOptions) error {
	p, t, err := planFile(ctx, opts.IO.ErrOut, opts.Connect, opts.File, opts.Vhost, opts.Prune, true)
	if err != nil {
		return err
	}
	if p.HasConflicts() {
		if err := output.Print(opts.IO, opts.Format, planView{p}); err != nil {
			return err
		}
		return fail.Conditionf("refusing to apply: %d conflict(s) with the broker; nothing was changed (see the plan above for the safe route)", p.Summary.Conflict)
	}
	if p.Summary.Migrate > 0 {
		if err := output.Print(opts.IO, opts.Format, planView{p}); err != nil {
			return err
		}
		return fail.Conditionf("refusing to apply: %d queue(s) need a migration; nothing was changed: `mqctl topology apply --migrate` re-creates them without losing a message (see the plan above)", p.Summary.Migrate)
	}
	if p.Summary.Delete > 0 {
		if err := Confirm(opts.IO, opts.Yes, fmt.Sprintf("delete %d objects not in %s from vhost %s", p.Summary.Delete, opts.File, p.Vhost)); err != nil {
			return err
		}
	}
	bar := output.NewProgress(opts.IO, int64(p.Work()), "apply")
	res, err := topology.Apply(ctx, t.Broker, p, bar.Add)
	bar.Finish()
	if err != nil {
		return applyError(t, err)
	}
	if err := output.Print(opts.IO, opts.Format, applyView{res}); err != nil {
		return err
	}
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

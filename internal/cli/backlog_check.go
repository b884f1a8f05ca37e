package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// BacklogCheckOptions is what `mqctl backlog check` needs.
type BacklogCheckOptions struct {
	IO     *iostreams.IOStreams
	Format output.Format
	backlogRead
	Limits backlog.Limits
}

// NewCmdBacklogCheck builds `mqctl backlog check`; scope holds the flags
// of the parent `backlog` command (--all-vhosts). runF replaces the work
// in tests.
func NewCmdBacklogCheck(f *Factory, scope *backlogScope, runF func(*BacklogCheckOptions) error) *cobra.Command {
	opts := &BacklogCheckOptions{IO: f.IO, backlogRead: backlogRead{Settings: f.Settings, MgmtReader: newMgmtReader}}
	var maxReady, maxUnacked, maxDLQ, minConsumers int
	var maxAge time.Duration
	cmd := &cobra.Command{
		Use:   "check [GLOB…]",
		Short: "Fail (exit 3) when a queue's backlog, DLQ, consumers or message age exceed limits",
		Long: `Check the queues matching the GLOBs (all when none) against limits, for CI
steps and cron. Exit 0 when every limit holds; exit 3 with one line per
violation on stdout (a JSON verdict with -o json). A GLOB that matches no
queue is a violation too, so a typo cannot make the gate pass.

  --max-ready N       ready messages per work queue
  --max-unacked N     unacknowledged messages per work queue
  --min-consumers N   consumers per work queue
  --max-dlq N         messages in each dead-letter queue linked from a matched
                      queue, and in each matched DLQ (see mqctl backlog --help)
  --max-age DUR       age of the oldest ready message of a work queue

Ready, unacked, consumer and age limits apply to work queues only: DLQs and
retry delay queues (Q.retry.N) hold messages and have no consumer by design.

--max-age reads the management API's head_message_timestamp: the timestamp
property of the message at the head of the queue. RabbitMQ reports it for
classic queues only, and only when publishers set the timestamp property
(mqctl's producers do). Where it is unavailable (quorum and stream queues,
messages without a timestamp) the limit is not checked and a note on stderr
says which queue and why; --require-age makes that a violation instead.
A queue with no ready message passes.

With only --max-ready, --max-unacked and --max-dlq, the queue list is read
as queue totals (disable_stats=true&enable_queue_totals=true): the broker
skips its statistics database (about half its CPU for that read) and gives
the counts from the queues themselves. --min-consumers and --max-age need
consumers and head timestamps, which only the statistics give: with either,
the list is read with statistics, whose figures are the management API's
5-second samples. A limit whose figure the API does not give is not passed: it fails with a "cannot evaluate"
line naming the queue and the limit (in JSON a violation with "unknown": true
and "actual": -1). That happens with management metrics collection off:
message counts are then read as queue totals, so --max-ready, --max-unacked
and --max-dlq still work, but consumers and the oldest message's age are
unknown, so --min-consumers and --max-age (classic queues) cannot be
evaluated. mqctl doctor tells whether collection is off.

Least permissions: a user with the monitoring tag (or management tag and
read access to the vhost).`,
		Example: `  mqctl backlog check --max-ready 1000 --max-dlq 0 --min-consumers 1
  mqctl backlog check 'email*' --max-age 10m -o json
  mqctl backlog check --all-vhosts --max-unacked 500`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			fl := cmd.Flags()
			l := &opts.Limits
			for _, c := range []struct {
				name string
				v    int
				dst  **int
			}{
				{"max-ready", maxReady, &l.MaxReady},
				{"max-unacked", maxUnacked, &l.MaxUnacked},
				{"max-dlq", maxDLQ, &l.MaxDLQ},
				{"min-consumers", minConsumers, &l.MinConsumers},
			} {
				if !fl.Changed(c.name) {
					continue
				}
				if c.v < 0 {
					return fail.Usagef("--%s must not be negative", c.name)
				}
				v := c.v
				*c.dst = &v
			}
			if fl.Changed("max-age") {
				if maxAge <= 0 {
					return fail.Usagef("--max-age must be a positive duration such as 10m")
				}
				l.MaxAge = &maxAge
			}
			if l.MaxReady == nil && l.MaxUnacked == nil && l.MaxDLQ == nil && l.MinConsumers == nil && l.MaxAge == nil {
				return fail.Usagef("give at least one limit: --max-ready, --max-unacked, --max-dlq, --min-consumers or --max-age")
			}
			if l.RequireAge && l.MaxAge == nil {
				return fail.Usagef("--require-age needs --max-age")
			}
			opts.AllVhosts, opts.PageSize, opts.Globs = scope.AllVhosts, scope.PageSize, args
			if runF != nil {
				return runF(opts)
			}
			return backlogCheckRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&maxReady, "max-ready", 0, "most ready messages a work queue may hold")
	fl.IntVar(&maxUnacked, "max-unacked", 0, "most unacknowledged messages a work queue may hold")
	fl.IntVar(&maxDLQ, "max-dlq", 0, "most messages a dead-letter queue may hold")
	fl.IntVar(&minConsumers, "min-consumers", 0, "fewest consumers a work queue may have")
	fl.DurationVar(&maxAge, "max-age", 0, "oldest ready message's greatest age (classic queues, timestamped messages)")
	fl.BoolVar(&opts.Limits.RequireAge, "require-age", false, "with --max-age, fail where the age is unknown instead of noting it")
	return cmd
}

// checkView prints a verdict: one line per violation, or an ok line.
type checkView struct {
	backlog.Verdict
	allVhosts bool
}

// RenderText writes one line per violation: "queue: what (limit) [check]".
func (v checkView) RenderText(w io.Writer, s *output.Styles) error {
	for _, x := range v.Violations {
		line := fmt.Sprintf("%s: %s [%s]", v.queue(x.Vhost, x.Queue), x.Message, x.Check)
		if _, err := fmt.Fprintln(w, s.Error.Render(line)); err != nil {
			return err
		}
	}
	return nil
}

func (v checkView) queue(vhost, name string) string {
	if v.allVhosts {
		return vhost + "/" + name
	}
	return name
}

func backlogCheckRun(ctx context.Context, opts *BacklogCheckOptions) error {
	// No rates: no gate reads them, and the broker is spared that work.
	// Without a consumers or age gate not even statistics are read: the
	// queue totals hold every figure the other gates need.
	r, err := opts.open(backlog.SortName, backlog.HTTPSource{NoRates: true, QueueTotals: !opts.Limits.NeedStatistics()})
	if err != nil {
		return err
	}
	rep, unmatched, err := r.read(ctx)
	if err != nil {
		return err
	}
	verdict := backlog.Evaluate(rep, opts.Limits, unmatched)
	view := checkView{Verdict: verdict, allVhosts: opts.AllVhosts}
	if opts.Format != output.Table {
		if err := output.Print(opts.IO, opts.Format, verdict); err != nil {
			return err
		}
	} else {
		for _, u := range verdict.Unchecked {
			fmt.Fprintf(opts.IO.ErrOut, "note: %s: --max-age not checked: %s\n", view.queue(u.Vhost, u.Queue), u.Reason)
		}
		if verdict.OK {
			s := output.NewStyles(opts.IO, opts.IO.Out)
			_, err := fmt.Fprintln(opts.IO.Out, s.OK.Render(fmt.Sprintf("ok: %s checked, every limit holds", plural(verdict.Checked, "queue"))))
			return err
		}
		if err := output.Print(opts.IO, opts.Format, view); err != nil {
			return err
		}
	}
	if !verdict.OK {
		unknown := 0
		for _, x := range verdict.Violations {
			if x.Unknown {
				unknown++
			}
		}
		if unknown > 0 {
			return fail.Conditionf("backlog check failed: %s in %s checked, %d of them limits that cannot be evaluated because the management API gives no figure; run `mqctl doctor` to see whether metrics collection is off",
				plural(len(verdict.Violations), "violation"), plural(verdict.Checked, "queue"), unknown)
		}
		return fail.Conditionf("backlog check failed: %s in %s checked", plural(len(verdict.Violations), "violation"), plural(verdict.Checked, "queue"))
	}
	return nil
}

package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQReplayOptions is what `mqctl dlq replay` needs.
type DLQReplayOptions struct {
	f          *Factory
	Format     output.Format
	Queue      string
	Select     selectionFlags
	To         string
	MaxReplays int
	Force      bool
	DryRun     bool
	Limit      int
	Rate       float64
	Window     int
	Journal    string
	Yes        bool
	// BlockedTimeout bounds a wait while the broker blocks publishing.
	BlockedTimeout time.Duration
}

// NewCmdDLQReplay builds `mqctl dlq replay`.
func NewCmdDLQReplay(f *Factory, runF func(*DLQReplayOptions) error) *cobra.Command {
	opts := &DLQReplayOptions{f: f}
	cmd := &cobra.Command{
		Use:   "replay QUEUE (--from FILE | --id ID… | --all)",
		Short: "Republish exactly the selected dead letters to the queue they died in",
		Long: `Republish exactly the selected dead letters to the queue they died in: the
default exchange with routing key = the origin queue (from mqctl's
mqctl-origin-queue header, else x-death), never the original exchange, which
would hand them to every other bound queue again. --to QUEUE overrides.

Each publish uses confirms and mandatory; the dead letter is acked only after
a positive confirm without a return. Messages not selected, the ones that
arrived after the command started, and any that fail stay in the DLQ in
their order. Body, properties and headers are kept, except the death
headers (x-death, x-first-death-*, mqctl-origin-queue, mqctl-failure-reason,
mqctl-failed-at, mqctl-first-failed-at, mqctl-attempt): they move into one new
entry of the mqctl-death-history header, and mqctl-replay-count goes up by
one. A message replayed --max-replays times already is skipped unless --force.

A journal (--journal; default under $XDG_STATE_HOME/mqctl/replay) records
publishes and acks: if a run is killed, the next run reports the messages it
had published but not yet acked and now replays again (possible_duplicates,
at most the confirm --window per killed run; after several killed runs the
first one that finishes reports them all). Consumers must tolerate such
duplicates.

While the broker blocks publishing (a memory or disk alarm) the replay says
so on stderr and waits, acking nothing it has not seen confirmed, and
resumes by itself when the alarm clears; a block longer than
--blocked-timeout stops it with exit 1 (nothing lost: what was not confirmed
stays in the DLQ, the journal reports possible duplicates on the next run).

--window (default 1024, like the shovel's prefetch of 1000) bounds the
publishes awaiting their confirm; mqctl holds up to about three windows of
messages in memory, so lower it for very large messages.

Asks for confirmation on a terminal; refuses without --yes otherwise (exit 2,
nothing changed). Exit 3 when some selected message was skipped, failed or
not found.

Least permissions: read on the DLQ and write on the default exchange (the
write pattern must match amq.default), which publishes to any queue by name;
--dry-run needs read only. Without write the first publish is refused: exit 4,
every message stays in the DLQ.`,
		Example: `  mqctl dlq replay email.dlq --from checked.jsonl --dry-run
  mqctl dlq replay email.dlq --from checked.jsonl --yes
  mqctl dlq replay email.dlq --id 7f3a9c --to email-manual --yes
  mqctl dlq replay email.dlq --all --rate 200 --yes -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			opts.Queue = args[0]
			if opts.MaxReplays < 0 || opts.Limit < 0 || opts.Rate < 0 || opts.Window < 1 {
				return fail.Usagef("--max-replays, --limit and --rate must not be negative, --window at least 1")
			}
			if err := checkBlockedTimeout(opts.BlockedTimeout); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return dlqReplayRun(cmd.Context(), opts)
		},
	}
	opts.Select.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&opts.To, "to", "", "replay into this queue instead of each message's origin queue")
	fl.IntVar(&opts.MaxReplays, "max-replays", 3, "skip messages already replayed this many times")
	fl.BoolVar(&opts.Force, "force", false, "replay even messages above --max-replays")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "show what would move; change nothing")
	fl.IntVar(&opts.Limit, "limit", 0, "replay at most this many messages (0: no limit)")
	fl.Float64Var(&opts.Rate, "rate", 0, "at most this many messages per second (0: unlimited)")
	fl.IntVar(&opts.Window, "window", 1024, "publishes awaiting their confirm at once")
	fl.StringVar(&opts.Journal, "journal", "", "replay journal file (default under $XDG_STATE_HOME/mqctl/replay)")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	addBlockedTimeoutFlag(fl, &opts.BlockedTimeout)
	return cmd
}

// reportView renders a replay or purge report.
type reportView struct {
	*dlq.Report
	verb string
}

func (v reportView) RenderText(w io.Writer, s *output.Styles) error {
	var rows [][]string
	levels := []output.Level{}
	shown := 0
	for _, o := range v.Outcomes {
		if o.Status == dlq.StatusReplayed || o.Status == dlq.StatusPurged {
			continue
		}
		if shown++; shown > 200 {
			continue
		}
		rows = append(rows, []string{o.ID, o.Status, dash(o.Destination), o.Reason})
		switch o.Status {
		case dlq.StatusFailed:
			levels = append(levels, output.LevelError)
		case dlq.StatusSkipped:
			levels = append(levels, output.LevelWarn)
		default:
			levels = append(levels, output.LevelNone)
		}
	}
	for _, id := range v.NotFound {
		if shown++; shown > 200 {
			continue
		}
		rows = append(rows, []string{id, "not_found", "-", "no such message in the queue when the command started"})
		levels = append(levels, output.LevelWarn)
	}
	if len(rows) > 0 {
		footer := ""
		if shown > 200 {
			footer = fmt.Sprintf("… %d more rows (see -o json)", shown-200)
		}
		t := output.TableData{Headers: []string{"id", "status", "destination", "reason"}, Rows: rows,
			RowLevel: func(r int) output.Level { return levels[r] }, Footer: footer}
		if err := output.WriteTable(w, s, t); err != nil {
			return err
		}
	}
	var b strings.Builder
	if v.DryRun {
		n := 0
		for _, o := range v.Outcomes {
			if o.Status == dlq.StatusWouldReplay || o.Status == dlq.StatusWouldPurge {
				n++
			}
		}
		fmt.Fprintf(&b, "dry run: would %s %d", v.verb, n)
	} else {
		done := map[string]string{"replay": "replayed", "purge": "purged"}[v.verb]
		fmt.Fprintf(&b, "%s %d", done, v.Replayed+v.Purged)
	}
	fmt.Fprintf(&b, ", skipped %d, failed %d, not found %d; %d message(s) in %s at start, %d read",
		v.Skipped, v.Failed, len(v.NotFound), v.Depth, v.Queue, v.Scanned)
	if v.Archive != "" {
		fmt.Fprintf(&b, "; archive %s", v.Archive)
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}

func dlqReplayRun(ctx context.Context, opts *DLQReplayOptions) error {
	f := opts.f
	sel, what, err := opts.Select.parse()
	if err != nil {
		return err
	}
	if !opts.DryRun {
		if err := Confirm(f.IO, opts.Yes, fmt.Sprintf("replay %s %s", what, opts.Queue)); err != nil {
			return err
		}
	}
	s, err := f.Settings()
	if err != nil {
		return err
	}
	var journal *dlq.Journal
	if !opts.DryRun {
		path := opts.Journal
		if path == "" {
			if path, err = defaultJournal(f, s.Vhost, opts.Queue); err != nil {
				return err
			}
		}
		if journal, err = dlq.OpenJournal(path); err != nil {
			return err
		}
	}
	src, err := dial(ctx, f, "mqctl dlq replay (consumer)")
	if err != nil {
		journal.Close(false)
		return err
	}
	defer src.Close()
	dst, err := dial(ctx, f, "mqctl dlq replay (publisher)")
	if err != nil {
		journal.Close(false)
		return err
	}
	defer dst.Close()
	progress := output.NewProgress(f.IO, int64(max(sel.Size(), -1)), "replaying "+opts.Queue)
	log := newLineLog(f.IO.ErrOut, s.Redactor, "dlq replay")
	ctx = broker.WithBlockedPolicy(ctx, boundedBlockedPolicy(log, opts.BlockedTimeout))
	rep, runErr := dlq.Replay(ctx, src, dst, dlq.ReplayOptions{
		Queue: opts.Queue, Selection: sel, To: opts.To, MaxReplays: opts.MaxReplays, Force: opts.Force,
		DryRun: opts.DryRun, Limit: opts.Limit, Rate: opts.Rate, Window: opts.Window,
		Journal: journal, Progress: progress,
	})
	progress.Finish()
	if jerr := journal.Close(runErr == nil); jerr != nil && runErr == nil {
		runErr = jerr
	}
	runErr, _ = blockedGaveUp(runErr, opts.BlockedTimeout)
	return finishReport(f, opts.Format, rep, runErr, "replay")
}

// finishReport prints a replay or purge report (also after an error, so
// the user sees what did happen) and picks the exit code.
func finishReport(f *Factory, format output.Format, rep *dlq.Report, runErr error, verb string) error {
	if rep == nil {
		return runErr
	}
	if len(rep.PossibleDuplicates) > 0 {
		fmt.Fprintf(f.IO.ErrOut, "warning: %d message(s) were published by an earlier, interrupted run and replayed again; their origin queue may hold them twice: %s\n",
			len(rep.PossibleDuplicates), strings.Join(rep.PossibleDuplicates, ", "))
	}
	var v any = rep
	if format == output.Table {
		v = reportView{Report: rep, verb: verb}
	}
	if err := output.Print(f.IO, format, v); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return runErr
	}
	if rep.Partial() {
		return fail.Conditionf("%s finished partially: %d skipped, %d failed, %d not found", verb, rep.Skipped, rep.Failed, len(rep.NotFound))
	}
	return nil
}

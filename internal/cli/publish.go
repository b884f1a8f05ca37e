package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// PublishOptions is what `mqctl publish` needs.
type PublishOptions struct {
	IO *iostreams.IOStreams
	// Settings give the redactor of stderr lines.
	Settings func() (config.Settings, error)
	Dial     dialFunc
	Format   output.Format
	From     string
	To       string
	Window   int
	// BlockedTimeout bounds a wait while the broker blocks publishing.
	BlockedTimeout time.Duration
}

// NewCmdPublish builds `mqctl publish`.
func NewCmdPublish(f *Factory, runF func(*PublishOptions) error) *cobra.Command {
	opts := &PublishOptions{IO: f.IO, Settings: settingsOf(f), Dial: dialer(f)}
	cmd := &cobra.Command{
		Use:   "publish --from FILE.jsonl [--to QUEUE]",
		Short: "Publish archived or exported dead letters back, identically",
		Long: `Publish the messages of a JSONL file written by ` + "`mqctl dlq export`" + ` or
` + "`mqctl dlq purge`" + ` back to the queue each died in (default exchange, routing key
= origin queue), or to --to QUEUE, with confirms and mandatory.

Body, properties and headers are the recorded ones, with their AMQP types;
as in a replay, the death headers move into mqctl-death-history and
mqctl-replay-count goes up by one. The whole file is checked first: a bad
line (reported as FILE:LINE) publishes nothing. Exit 3 when some message
was returned or refused by the broker.

While the broker blocks publishing (a memory or disk alarm) mqctl says so
on stderr and waits; a block longer than --blocked-timeout ends the run with
exit 1 (nothing lost: run it again once the alarm cleared; what was
confirmed before may then arrive twice).

Least permissions: write on the default exchange (the write pattern must
match amq.default). Without it the broker refuses the first publish: exit 4.`,
		Example: `  mqctl publish --from email.dlq.purged.20260501T101500Z.jsonl
  mqctl publish --from checked.jsonl --to email-staging -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if opts.Window < 1 {
				return fail.Usagef("--window must be at least 1")
			}
			if err := checkBlockedTimeout(opts.BlockedTimeout); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return publishRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.From, "from", "", "JSONL file written by mqctl dlq export or mqctl dlq purge")
	cmd.Flags().StringVar(&opts.To, "to", "", "publish every message to this queue instead of its origin queue")
	cmd.Flags().IntVar(&opts.Window, "window", 256, "publishes awaiting their confirm at once")
	addBlockedTimeoutFlag(cmd.Flags(), &opts.BlockedTimeout)
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

type publishView struct{ *dlq.PublishReport }

func (v publishView) Table() output.TableData {
	rows := make([][]string, len(v.Failed))
	for i, p := range v.Failed {
		rows[i] = []string{fmt.Sprintf("%s:%d", v.File, p.Line), p.ID, p.Reason}
	}
	return output.TableData{
		Headers: []string{"line", "id", "failed"},
		Rows:    rows,
		Footer:  fmt.Sprintf("published %d, failed %d from %s", v.Published, len(v.Failed), v.File),
	}
}

func publishRun(ctx context.Context, opts *PublishOptions) error {
	open := func() (io.ReadCloser, error) { return os.Open(opts.From) }
	// The whole file is checked before anything connects: a bad file is
	// exit 2 whether or not the broker is up.
	if err := dlq.CheckRecords(open, opts.From, opts.To); err != nil {
		return err
	}
	conn, err := opts.Dial(ctx, "mqctl publish")
	if err != nil {
		return err
	}
	defer conn.Close()
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	log := newLineLog(opts.IO.ErrOut, s.Redactor, "publish")
	ctx = broker.WithBlockedPolicy(ctx, boundedBlockedPolicy(log, opts.BlockedTimeout))
	progress := output.NewProgress(opts.IO, -1, "publishing")
	rep, runErr := dlq.PublishRecords(ctx, conn, open, opts.From,
		dlq.PublishOptions{To: opts.To, Window: opts.Window, Progress: progress, Checked: true})
	progress.Finish()
	runErr, _ = blockedGaveUp(runErr, opts.BlockedTimeout)
	if rep == nil {
		return runErr
	}
	if err := output.Print(opts.IO, opts.Format, publishView{rep}); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return runErr
	}
	if len(rep.Failed) > 0 {
		return fail.Conditionf("publish finished partially: %d of %d failed", len(rep.Failed), rep.Published+len(rep.Failed))
	}
	return nil
}

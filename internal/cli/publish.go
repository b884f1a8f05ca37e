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
	// Settings give the redactor of stderr lines, and the broker and
	// vhost of the audit record.
	Settings func() (config.Settings, error)
	// Env places the record of published files ($XDG_STATE_HOME).
	Env    config.LookupEnv
	Dial   dialFunc
	Audit  auditTrail
	Format output.Format
	From   string
	To     string
	Window int
	// Force publishes a file that was published before.
	Force bool
	// BlockedTimeout bounds a wait while the broker blocks publishing.
	BlockedTimeout time.Duration
}

// NewCmdPublish builds `mqctl publish`.
func NewCmdPublish(f *Factory, runF func(*PublishOptions) error) *cobra.Command {
	opts := &PublishOptions{IO: f.IO, Settings: settingsOf(f), Env: f.Env, Dial: dialer(f), Audit: auditTrail{Env: f.Env}}
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

mqctl remembers each file it published (by the SHA-256 of its content,
under $XDG_STATE_HOME/mqctl/published/) and refuses to publish the same
content again (exit 2, saying when and how many), which would put every
message back twice, unless --force. Every publish appends one JSON line to
the audit trail (--audit-log; see ` + "`mqctl dlq history`" + `) with each message's
id, body SHA-256 and destination; a trail that cannot be written refuses the
publish (exit 2) before anything is sent.

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
	cmd.Flags().BoolVar(&opts.Force, "force", false, "publish a file again that was published before")
	opts.Audit.register(cmd.Flags())
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
		Columns: map[string]output.Column{"line": {Keep: true}, "id": {Keep: true}, "failed": {Min: 20}},
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
	ledger, err := publishedPath(opts)
	if err != nil {
		return err
	}
	if err := refusePublishedAgain(ledger, opts); err != nil {
		return err
	}
	if err := opts.Audit.check(); err != nil {
		return err
	}
	spool, err := opts.Audit.spool(false)
	if err != nil {
		return err
	}
	defer spool.Remove()
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	conn, err := opts.Dial(ctx, "mqctl publish")
	if err != nil {
		return err
	}
	defer conn.Close()
	log := newLineLog(opts.IO.ErrOut, s.Redactor, "publish")
	ctx = broker.WithBlockedPolicy(ctx, boundedBlockedPolicy(log, opts.BlockedTimeout))
	progress := output.NewProgress(opts.IO, -1, "publishing")
	rep, runErr := dlq.PublishRecords(ctx, conn, open, opts.From,
		dlq.PublishOptions{To: opts.To, Window: opts.Window, Progress: progress, Checked: true, Spool: spool})
	progress.Finish()
	runErr, _ = blockedGaveUp(runErr, opts.BlockedTimeout)
	if rep == nil {
		return runErr
	}
	if rep.Published > 0 {
		p := dlq.Published{File: opts.From, SHA256: ledger.sum, At: time.Now().UTC(), Broker: brokerAddress(s),
			Vhost: s.Vhost, To: opts.To, Published: rep.Published, Failed: len(rep.Failed)}
		if err := dlq.WritePublished(ledger.path, p); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "warning: published, but not recorded as published (a second publish of %s will not be refused): %v\n", opts.From, err)
		}
	}
	selection := "--from " + shellQuote(opts.From)
	if opts.To != "" {
		selection += " --to " + shellQuote(opts.To)
	}
	if err := opts.Audit.record(s, rep.Audit("publish", selection, runErr), runErr); err != nil {
		fmt.Fprintf(opts.IO.ErrOut, "warning: %s\n", s.Redactor.Redact(err.Error()))
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

// publishLedger is where the record of one file's publish is kept.
type publishLedger struct{ sum, path string }

// publishedPath places the record of the file's publish under
// $XDG_STATE_HOME/mqctl/published, by the SHA-256 of its content.
func publishedPath(opts *PublishOptions) (publishLedger, error) {
	sum, err := dlq.FileSHA256(opts.From)
	if err != nil {
		return publishLedger{}, fail.Usagef("read %s: %v", opts.From, err)
	}
	dir, err := stateHome(opts.Env, "the record of published files", "")
	if err != nil {
		return publishLedger{}, err
	}
	return publishLedger{sum: sum, path: dlq.PublishedPath(dir, sum)}, nil
}

// refusePublishedAgain refuses a file whose content was published
// before, unless --force.
func refusePublishedAgain(l publishLedger, opts *PublishOptions) error {
	prev, err := dlq.ReadPublished(l.path)
	if err != nil {
		return fmt.Errorf("read the record of published files: %w", err)
	}
	if prev == nil || opts.Force {
		return nil
	}
	to := "their origin queues"
	if prev.To != "" {
		to = prev.To
	}
	return fail.Usagef("%s was published already on %s: %s to %s in vhost %s (%d failed); publishing it again would put every message back twice. Pass --force to publish it anyway",
		opts.From, prev.At.Local().Format(time.RFC3339), messages(prev.Published), to, prev.Vhost, prev.Failed)
}

package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQListOptions is what `mqctl dlq ls` needs.
type DLQListOptions struct {
	IO       *iostreams.IOStreams
	Settings func() (config.Settings, error)
	// MgmtReader opens the management API for s (broker.NewMgmtReader).
	MgmtReader func(config.Settings) (backlog.Getter, error)
	// Dialer returns an AMQP dialer whose connections are named name, for
	// the peek.
	Dialer func(name string) (*broker.Dialer, error)
	Format output.Format
	Peek   int
}

// NewCmdDLQList builds `mqctl dlq ls`; runF replaces the work in tests.
func NewCmdDLQList(f *Factory, runF func(*DLQListOptions) error) *cobra.Command {
	opts := &DLQListOptions{IO: f.IO, Settings: f.Settings, MgmtReader: newMgmtReader, Dialer: f.Dialer}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List dead-letter queues with depth, origin queues, top reasons and oldest death",
		Long: `List every dead-letter queue of the vhost: queues that another queue's
x-dead-letter-exchange (argument or policy) routes to, and queues named by
mqctl's pattern (bound to an "X.dlx" exchange with key X, or named "X.dlq"),
the latter even when no queue dead-letters into them now. These are the
queues ` + "`mqctl backlog`" + ` shows with role dlq, with the same origins.

Depth comes from the management API (sampled every 5 s). With management
metrics collection off the API lists queues without counts; the depth is then
read as queue totals, and where even those are missing it shows as "unknown"
(null in -o json), never as 0. Top reasons and the
oldest death come from a non-destructive peek at the first --peek messages of
each DLQ (see ` + "`mqctl dlq --help`" + `); --peek 0 skips it.

Least permissions: the monitoring tag, and read on the DLQs for the peek.`,
		Example: `  mqctl dlq ls
  mqctl dlq ls --peek 0 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return dlqListRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Peek, "peek", 100, "messages to peek at per DLQ for reasons and oldest death (0: none)")
	return cmd
}

type dlqListView struct {
	DLQs []dlq.DLQ `json:"dlqs"`
}

func (v dlqListView) Table() output.TableData {
	rows := make([][]string, len(v.DLQs))
	for i, d := range v.DLQs {
		var reasons []string
		for _, r := range d.TopReasons {
			reasons = append(reasons, fmt.Sprintf("%s (%d)", r.Reason, r.Count))
		}
		oldest := "-"
		if d.OldestDeath != nil {
			oldest = *d.OldestDeath
		}
		note := d.Warning
		if d.PeekError != "" {
			note = strings.TrimSpace(note + " peek failed: " + d.PeekError)
		}
		rows[i] = []string{d.Name, d.Type, count(d.Messages), strings.Join(d.Origins, ", "), strings.Join(reasons, ", "), oldest, note}
	}
	return output.TableData{
		Headers: []string{"dlq", "type", "messages", "origins", "top reasons", "oldest death", "note"},
		Rows:    rows,
		Columns: map[string]output.Column{
			"dlq":          {Keep: true},
			"type":         {Drop: 3},
			"oldest death": {Keep: true, Drop: 2},
			"origins":      {Min: 10, Drop: 1},
			"top reasons":  {Min: 16},
			"note":         {Min: 16},
		},
		RowLevel: func(row int) output.Level {
			switch {
			case v.DLQs[row].Warning != "" || v.DLQs[row].PeekError != "" || v.DLQs[row].Messages == nil:
				return output.LevelWarn
			case *v.DLQs[row].Messages > 0:
				return output.LevelError
			}
			return output.LevelNone
		},
	}
}

func dlqListRun(ctx context.Context, opts *DLQListOptions) error {
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	// One reader for every request: with several management APIs, the
	// one that answered is tried first by the next request, so a dead API
	// costs one timeout, not one per request.
	api, err := opts.MgmtReader(s)
	if err != nil {
		return err
	}
	var d *broker.Dialer
	if opts.Peek > 0 {
		// Peeking reads the DLQs over AMQP: the AMQP node must be the
		// management API's broker, or the reasons shown would be another
		// broker's queues of the same names.
		if d, err = opts.Dialer("mqctl dlq ls"); err != nil {
			return err
		}
		if err := broker.SameCluster(ctx, s, d, broker.ReaderClusterName(api)); err != nil {
			return fmt.Errorf("%w (`--peek 0` lists from the management API alone)", err)
		}
	}
	dlqs, err := dlq.Discover(ctx, backlog.HTTPSource{API: api, NoRates: true}, s.Vhost)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return broker.MgmtVhostError(s, s.Vhost, "find the dead-letter queues of vhost "+strconv.Quote(s.Vhost), err)
	}
	dial := func(ctx context.Context) (*amqp.Connection, error) { return d.Dial(ctx) }
	if err := dlq.PeekReasons(ctx, dial, dlqs, opts.Peek, s.Redactor.Redact); err != nil {
		return err
	}
	view := dlqListView{DLQs: dlqs}
	if err := output.Print(opts.IO, opts.Format, view); err != nil {
		return err
	}
	if opts.Format == output.Table && slices.ContainsFunc(dlqs, func(d dlq.DLQ) bool { return d.Messages == nil }) {
		fmt.Fprintln(opts.IO.ErrOut, "note: the management API reports no message counts for some DLQs, not even as queue totals: their depth shows as unknown, not 0; `mqctl doctor` tells whether metrics collection is off")
	}
	return nil
}

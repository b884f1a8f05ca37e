package cli

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQListOptions is what `mqctl dlq ls` needs.
type DLQListOptions struct {
	f      *Factory
	Format output.Format
	Peek   int
}

// NewCmdDLQList builds `mqctl dlq ls`.
func NewCmdDLQList(f *Factory, runF func(*DLQListOptions) error) *cobra.Command {
	opts := &DLQListOptions{f: f}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List dead-letter queues with depth, origin queues, top reasons and oldest death",
		Long: `List every dead-letter queue of the vhost: queues that another queue's
x-dead-letter-exchange (argument or policy) routes to, and queues named by
mqctl's pattern (bound to an "X.dlx" exchange, or named "X.dlq").

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
	f := opts.f
	s, err := f.Settings()
	if err != nil {
		return err
	}
	// One reader for every request: with several management APIs, the
	// one that answered is tried first by the next request, so a dead API
	// costs one timeout, not one per request.
	api, err := broker.NewMgmtReader(s)
	if err != nil {
		return err
	}
	vhost := url.PathEscape(s.Vhost)
	var t dlq.Topology
	for _, r := range []struct {
		what, path string
		columns    string
		into       any
	}{
		{"list queues", "queues/" + vhost, "name,vhost,type,arguments,policy", &t.Queues},
		{"list exchanges", "exchanges/" + vhost, "name,vhost,type", &t.Exchanges},
		{"list bindings", "bindings/" + vhost, "", &t.Bindings},
		{"list policies", "policies/" + vhost, "", &t.Policies},
	} {
		var q url.Values
		if r.columns != "" {
			q = url.Values{"columns": {r.columns}}
		}
		if err := api.GetJSON(ctx, r.path, q, r.into); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return broker.MgmtError(s, r.what, err)
		}
	}
	if t.Depths, err = queueDepths(ctx, s, api); err != nil {
		return err
	}
	view := dlqListView{DLQs: dlq.Find(t)}
	if opts.Peek > 0 && len(view.DLQs) > 0 {
		conn, err := dial(ctx, f, "mqctl dlq ls")
		if err != nil {
			return err
		}
		defer conn.Close()
		for i := range view.DLQs {
			d := &view.DLQs[i]
			if d.Type == "quorum" || d.Type == "stream" {
				// Peeking a quorum queue counts toward its delivery limit.
				d.PeekError = "not peeked (" + d.Type + ")"
				continue
			}
			var recs []dlq.Record
			_, err := dlq.Peek(ctx, conn, d.Name, opts.Peek, func(r dlq.Record) error {
				r.Body = nil
				recs = append(recs, r)
				return nil
			})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				d.PeekError = s.Redactor.Redact(err.Error())
				if conn.IsClosed() {
					if conn, err = dial(ctx, f, "mqctl dlq ls"); err != nil {
						return err
					}
					defer conn.Close()
				}
			}
			d.Summarise(recs)
		}
	}
	if err := output.Print(f.IO, opts.Format, view); err != nil {
		return err
	}
	if opts.Format == output.Table {
		for _, d := range view.DLQs {
			if d.Messages == nil {
				fmt.Fprintln(f.IO.ErrOut, "note: the management API reports no message counts for some DLQs, not even as queue totals: their depth shows as unknown, not 0; `mqctl doctor` tells whether metrics collection is off")
				break
			}
		}
	}
	return nil
}

// queueDepths reads every queue's message count through backlog's
// reader, which falls back to queue totals when management metrics
// collection is off; a queue whose count is still missing is left out.
func queueDepths(ctx context.Context, s config.Settings, api backlog.Getter) (map[string]int, error) {
	qs, err := backlog.FetchQueues(ctx, backlog.HTTPSource{API: api, NoRates: true}, s.Vhost, backlog.MaxPageSize)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, broker.MgmtError(s, "read queue depths", err)
	}
	out := make(map[string]int, len(qs))
	for _, q := range qs {
		if q.Ready != nil && q.Unacked != nil {
			out[q.Name] = *q.Ready + *q.Unacked
		}
	}
	return out, nil
}

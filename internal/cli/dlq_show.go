package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQShowOptions is what `mqctl dlq show` needs.
type DLQShowOptions struct {
	IO      *iostreams.IOStreams
	Dial    dialFunc
	Format  output.Format
	Queue   string
	Limit   int
	Preview int
}

// NewCmdDLQShow builds `mqctl dlq show`.
func NewCmdDLQShow(f *Factory, runF func(*DLQShowOptions) error) *cobra.Command {
	opts := &DLQShowOptions{IO: f.IO, Dial: dialer(f)}
	cmd := &cobra.Command{
		Use:   "show QUEUE",
		Short: "Show dead letters without consuming them: id, origin, reason, deaths, headers, body",
		Long: `Show the first --limit messages of a dead-letter queue without consuming
them: per message its id, origin queue, reason (rejected, expired, maxlen,
delivery_limit from x-death; "failed" with the consumer's error from mqctl's
headers), death count, first death time, routing keys, headers and a body
preview (text, or hex for binary bodies). -o json gives the full records,
body in base64.

The messages are read with the peek method of ` + "`mqctl dlq --help`" + ` and all
returned to the queue, in order, when the command ends.

Least permissions: read on the queue.`,
		Example: `  mqctl dlq show email.dlq
  mqctl dlq show email.dlq --limit 200 -o json | jq '.messages[].death.reason'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := parseQueueArgs(f, args, &opts.Format, &opts.Queue); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return dlqShowRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Limit, "limit", 20, "show at most this many messages, oldest first (0: all)")
	cmd.Flags().IntVar(&opts.Preview, "preview", 60, "body preview length in bytes (table)")
	return cmd
}

type shownMessage struct {
	dlq.Record
	BodyPreview string `json:"body_preview"`
}

type dlqShowView struct {
	Queue    string         `json:"queue"`
	Depth    int            `json:"depth"`
	Shown    int            `json:"shown"`
	Messages []shownMessage `json:"messages"`
}

func (v dlqShowView) Table() output.TableData {
	rows := make([][]string, len(v.Messages))
	for i, m := range v.Messages {
		first := "-"
		if m.Death.FirstDeathAt != nil {
			first = m.Death.FirstDeathAt.Format(time.RFC3339)
		}
		keys := strings.Join(m.Death.RoutingKeys, ",")
		if keys == "" {
			keys = m.RoutingKey
		}
		rows[i] = []string{m.ID, dash(m.Death.OriginQueue), dlq.ReasonText(m.Death), fmt.Sprint(m.Death.Count), first, keys, headerSummary(m.Properties.Headers), m.BodyPreview}
	}
	return output.TableData{
		Headers: []string{"id", "origin", "reason", "deaths", "first death", "routing keys", "headers", "body"},
		Rows:    rows,
		Footer:  fmt.Sprintf("%d of %d message(s) in %s shown; none consumed", v.Shown, v.Depth, v.Queue),
	}
}

// headerSummary lists non-death headers as k=v for the table.
func headerSummary(h map[string]dlq.Value) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		if k == "x-death" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-") {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := strings.Trim(string(h[k].Value), `"`)
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		parts[i] = k + "=" + v
	}
	return strings.Join(parts, " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dlqShowRun(ctx context.Context, opts *DLQShowOptions) error {
	conn, err := opts.Dial(ctx, "mqctl dlq show")
	if err != nil {
		return err
	}
	defer conn.Close()
	view := dlqShowView{Queue: opts.Queue, Messages: []shownMessage{}}
	res, err := dlq.Peek(ctx, conn, opts.Queue, opts.Limit, func(r dlq.Record) error {
		view.Messages = append(view.Messages, shownMessage{Record: r, BodyPreview: dlq.BodyPreview(r.Body, opts.Preview)})
		return nil
	})
	if err != nil {
		return err
	}
	view.Depth, view.Shown = res.Depth, res.Read
	return output.Print(opts.IO, opts.Format, view)
}

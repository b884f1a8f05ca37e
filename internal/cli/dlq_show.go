package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQShowOptions is what `mqctl dlq show` needs.
type DLQShowOptions struct {
	IO   *iostreams.IOStreams
	Dial dialFunc
	// Linkage checks that Queue is a dead-letter queue before any message
	// is read; Force reads it anyway.
	Linkage linkageFunc
	Force   bool
	Format  output.Format
	Queue   string
	Limit   int
	Preview int
	// LimitSet says --limit was given: grouping reads every message
	// unless it was.
	LimitSet bool
	// GroupBy, when set, shows groups instead of messages.
	GroupBy *dlq.GroupBy
	Where   string
	Groups  []string
	Now     func() time.Time
}

// NewCmdDLQShow builds `mqctl dlq show`.
func NewCmdDLQShow(f *Factory, runF func(*DLQShowOptions) error) *cobra.Command {
	opts := &DLQShowOptions{IO: f.IO, Dial: dialer(f), Linkage: linkageOf(f), Now: time.Now}
	var groupBy []string
	var allGroups bool
	cmd := &cobra.Command{
		Use:               "show QUEUE",
		Short:             "Show dead letters, or groups of them, without consuming them",
		Long:              dlqShowLong,
		Example:           dlqShowExample,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeDLQs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := parseQueueArgs(f, args, &opts.Format, &opts.Queue); err != nil {
				return err
			}
			if err := opts.parseGrouping(groupBy, allGroups, cmd.Flags().Changed("group-by")); err != nil {
				return err
			}
			if opts.Limit < 0 {
				return fail.Usagef("--limit must not be negative")
			}
			opts.LimitSet = cmd.Flags().Changed("limit")
			if runF != nil {
				return runF(opts)
			}
			return dlqShowRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&opts.Limit, "limit", 20, "show at most this many messages, oldest first (0: all); with groups, read at most this many (default: all)")
	fl.IntVar(&opts.Preview, "preview", 60, "body preview length in bytes (table)")
	fl.StringSliceVar(&groupBy, "group-by", nil, "show groups by these fields, any of origin,reason,error")
	fl.BoolVar(&allGroups, "groups", false, "show groups by origin, reason and error (--group-by origin,reason,error)")
	registerFilterFlags(cmd, &opts.Where, &opts.Groups)
	fl.BoolVar(&opts.Force, "force", false, "read even a queue that is not a dead-letter queue")
	return cmd
}

// parseGrouping reads --group-by and --groups.
func (o *DLQShowOptions) parseGrouping(fields []string, all, byGiven bool) error {
	switch {
	case all && byGiven:
		return fail.Usagef("--groups is --group-by origin,reason,error: give one of them")
	case all:
		o.GroupBy = &dlq.GroupAll
	case byGiven:
		g, err := dlq.ParseGroupBy(fields)
		if err != nil {
			return err
		}
		o.GroupBy = &g
	}
	return nil
}

const dlqShowLong = `Show the messages of a dead-letter queue without consuming them: per
message its id, origin queue, reason, deaths, first and last death, routing
keys, headers and a body preview (text, or hex for binary bodies). -o json
gives the full records, body in base64, with death.history: every death in
order, newest last.

The reason shown is the newest death. mqctl reads a message's whole story
and orders it by time: the broker's deaths (x-death, newest first, with a
count per queue and reason, or the x-first/last-death-* headers), the
consumer's failure (mqctl-failure-reason, -failed-at, -attempt,
-origin-queue), and the lives before each replay (mqctl-death-history). So
a message that failed in a worker, then looped on requeues until the broker
dead-lettered it for its delivery limit, shows delivery_limit, with the
worker's error after it; a message replayed and failed again shows its new
failure, and the old one after it. Passes through retry delay queues
(Q.retry.N, expired) are part of the story, not deaths.

Groups: --group-by origin,reason,error (any of them) or --groups (all three)
shows one row per group instead: its key, count, the fields, the oldest
and newest death of its messages and a sample id (-o json:
{"groups":[{"key","origin","reason","error","count","first_death",
"last_death","sample_ids"}]}). Grouping reads every message (not only
--limit of them, unless --limit is given) and keeps counters and a few ids
per group, never bodies. A group's key selects it in show, export, replay
and purge: --group KEY.

Errors that differ only in ids, numbers and times share a group; before
grouping, ` + dlq.NormalizeRules + `.

--where EXPR selects the messages for which an expr expression
(expr-lang.org) is true; it is checked when the command starts, and an
unknown field or a syntax error exits 2 naming the position. Fields:
` + dlq.WhereFields + `.

The messages are read with the peek method of ` + "`mqctl dlq --help`" + ` and all
returned to the queue, in order, when the command ends. A queue that is not a
dead-letter queue (nothing dead-letters into it and mqctl's naming does not
make it one; ` + "`mqctl dlq ls`" + ` lists the DLQs) is refused (exit 2) before a
message is read, unless --force; a quorum DLQ is read with a warning, as
every read raises its messages' x-delivery-count.

-o json and -o yaml write each message as it is read, so any --limit (0:
all) runs in the same memory; the counts (depth, read, shown) follow the
messages. The table shows at most the first 1,000 messages (its footer says
so); -o json and ` + "`mqctl dlq export`" + ` have them all.

Least permissions: read on the queue.`

const dlqShowExample = `  mqctl dlq show email.dlq
  mqctl dlq show email.dlq --limit 200 -o json | jq '.messages[].death.reason'
  mqctl dlq show email.dlq --groups
  mqctl dlq show email.dlq --group-by reason,error -o json
  mqctl dlq show email.dlq --where 'error contains "timeout" && age > duration("1h")'
  mqctl dlq show email.dlq --where 'headers.tenant == "acme" && body.order.total > 100'
  mqctl dlq show email.dlq --group 3fa2c9d1 --limit 5`

type shownMessage struct {
	dlq.Record
	BodyPreview string `json:"body_preview"`
}

type dlqShowView struct {
	Queue    string         `json:"queue"`
	Depth    int            `json:"depth"`
	Read     int            `json:"read"`
	Shown    int            `json:"shown"`
	Messages []shownMessage `json:"messages"`
	// capped says the table stopped at maxTableRows of a larger --limit.
	capped bool
}

func (v dlqShowView) Table() output.TableData {
	rows := make([][]string, len(v.Messages))
	for i, m := range v.Messages {
		keys := strings.Join(m.Death.RoutingKeys, ",")
		if keys == "" {
			keys = m.RoutingKey
		}
		rows[i] = []string{m.ID, dash(m.Death.OriginQueue), reasonWithHistory(m.Death), fmt.Sprint(m.Death.Deaths),
			timeText(m.Death.FirstDeathAt), timeText(m.Death.LastDeathAt), keys, headerSummary(m.Properties.Headers), m.BodyPreview}
	}
	footer := fmt.Sprintf("%d of %d message(s) in %s shown; none consumed", v.Shown, v.Depth, v.Queue)
	if v.Read != v.Shown {
		footer = fmt.Sprintf("%d of %d message(s) in %s shown (%d read); none consumed", v.Shown, v.Depth, v.Queue, v.Read)
	}
	if v.capped {
		footer += fmt.Sprintf("; the table stops at %s rows: -o json or `mqctl dlq export` has them all", thousands(maxTableRows))
	}
	return output.TableData{
		Headers: []string{"id", "origin", "reason", "deaths", "first death", "last death", "routing keys", "headers", "body"},
		Rows:    rows,
		// On a terminal: the id, which replay and purge select by, is never
		// cut; the reason is cut, never hidden; -o json has everything.
		Columns: map[string]output.Column{
			"id":           {Keep: true},
			"reason":       {Min: 20},
			"headers":      {Min: 12, Drop: 9},
			"first death":  {Keep: true, Drop: 8},
			"routing keys": {Min: 8, Drop: 7},
			"deaths":       {Drop: 6},
			"body":         {Min: 12, Drop: 5},
			"origin":       {Min: 8, Drop: 4},
			"last death":   {Keep: true, Drop: 3},
		},
		Footer: footer,
	}
}

// reasonWithHistory is the newest death's reason, and the death before
// it when there is one: what a human needs to see that a delivery_limit
// followed a worker's error, or that a replayed message failed before.
func reasonWithHistory(d dlq.Death) string {
	text := dlq.ReasonText(d)
	var deaths []dlq.DeathEvent
	for _, e := range d.History {
		if !e.Retry {
			deaths = append(deaths, e)
		}
	}
	if len(deaths) < 2 {
		return text
	}
	last, prev := deaths[len(deaths)-1], deaths[len(deaths)-2]
	if prev.Life != last.Life {
		return fmt.Sprintf("%s (before replay %d: %s)", text, last.Life, eventText(prev))
	}
	return fmt.Sprintf("%s (after %s)", text, eventText(prev))
}

func eventText(e dlq.DeathEvent) string {
	if e.Error == "" {
		return e.Reason
	}
	msg := e.Error
	if len(msg) > 40 {
		msg = msg[:40] + "…"
	}
	return "failed: " + msg
}

func timeText(t *dlq.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// headerSummary lists non-death headers as k=v for the table: the death
// headers are in the reason, deaths and death time columns already.
func headerSummary(h map[string]dlq.Value) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		if dlq.IsDeathHeader(k) {
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

// dlqGroupsView renders groups of dead letters.
type dlqGroupsView struct {
	Queue    string      `json:"queue"`
	Depth    int         `json:"depth"`
	Read     int         `json:"read"`
	Selected int         `json:"selected"`
	GroupBy  string      `json:"group_by"`
	Groups   []dlq.Group `json:"groups"`
	by       dlq.GroupBy
}

func (v dlqGroupsView) Table() output.TableData {
	headers := []string{"key", "count"}
	for _, f := range []struct {
		on   bool
		name string
	}{{v.by.Origin, "origin"}, {v.by.Reason, "reason"}, {v.by.Error, "error"}} {
		if f.on {
			headers = append(headers, f.name)
		}
	}
	headers = append(headers, "first death", "last death", "sample id")
	rows := make([][]string, len(v.Groups))
	for i, g := range v.Groups {
		row := []string{g.Key, fmt.Sprint(g.Count)}
		for _, f := range []*string{g.Origin, g.Reason, g.Error} {
			if f != nil {
				row = append(row, dash(*f))
			}
		}
		sample := "-"
		if len(g.SampleIDs) > 0 {
			sample = g.SampleIDs[0]
		}
		rows[i] = append(row, timeText(g.FirstDeath), timeText(g.LastDeath), sample)
	}
	return output.TableData{
		Headers: headers, Rows: rows,
		// On a terminal: the key is typed back into --group and the sample
		// id into --id, so neither is cut; reason and error are cut,
		// never hidden.
		Columns: map[string]output.Column{
			"key":         {Keep: true},
			"reason":      {Min: 12},
			"error":       {Min: 16},
			"first death": {Keep: true, Drop: 4},
			"sample id":   {Keep: true, Drop: 3},
			"origin":      {Min: 8, Drop: 2},
			"last death":  {Keep: true, Drop: 1},
		},
		Footer: fmt.Sprintf("%d group(s) of %d message(s); %d of %d read in %s, none consumed; `--group KEY` selects a group",
			len(v.Groups), v.Selected, v.Read, v.Depth, v.Queue),
	}
}

func dlqShowRun(ctx context.Context, opts *DLQShowOptions) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	filter, err := dlq.NewFilter(opts.Where, opts.Groups, opts.Now())
	if err != nil {
		return err
	}
	if _, err := guardDLQ(ctx, opts.IO, opts.Linkage, opts.Queue, opts.Force); err != nil {
		return err
	}
	conn, err := opts.Dial(ctx, "mqctl dlq show")
	if err != nil {
		return err
	}
	defer conn.Close()
	var view any
	switch {
	case opts.GroupBy != nil:
		view, err = showGroups(ctx, conn, opts, filter)
	case opts.Format != output.Table:
		err = streamMessages(ctx, conn, opts, filter)
		warnFilter(opts.IO, filter)
		return err
	default:
		view, err = showMessages(ctx, conn, opts, filter)
	}
	warnFilter(opts.IO, filter)
	if err != nil {
		return err
	}
	return output.Print(opts.IO, opts.Format, view)
}

func showGroups(ctx context.Context, conn *amqp.Connection, opts *DLQShowOptions, filter *dlq.Filter) (any, error) {
	limit := 0
	if opts.LimitSet {
		limit = opts.Limit
	}
	res, err := dlq.GroupQueue(ctx, conn, opts.Queue, limit, *opts.GroupBy, filter)
	return dlqGroupsView{Queue: opts.Queue, Depth: res.Depth, Read: res.Read, Selected: res.Selected,
		GroupBy: opts.GroupBy.String(), Groups: res.Groups, by: *opts.GroupBy}, err
}

// maxTableRows bounds the table view: a table is for a person, and
// holding its rows grows with every one; -o json and -o yaml stream every
// message asked for.
const maxTableRows = 1000

// showMessages reads until --limit messages were selected (without a
// filter that is the first --limit), at most maxTableRows of them, for
// the table.
func showMessages(ctx context.Context, conn *amqp.Connection, opts *DLQShowOptions, filter *dlq.Filter) (any, error) {
	view := dlqShowView{Queue: opts.Queue, Messages: []shownMessage{}}
	want := opts.Limit
	if want == 0 || want > maxTableRows {
		want, view.capped = maxTableRows, true
	}
	limit := want
	if filter != nil {
		limit = 0
	}
	res, err := dlq.PeekSelected(ctx, conn, opts.Queue, limit, filter, func(r dlq.Record) error {
		view.Messages = append(view.Messages, shownMessage{Record: r, BodyPreview: dlq.BodyPreview(r.Body, opts.Preview)})
		if len(view.Messages) >= want {
			return dlq.ErrStopPeek
		}
		return nil
	})
	view.Depth, view.Read, view.Shown = res.Depth, res.Read, len(view.Messages)
	view.capped = view.capped && view.Shown == maxTableRows
	return view, err
}

// streamMessages writes the -o json or -o yaml document of the messages
// as they are read, one record at a time: its memory does not grow with
// --limit. The counts follow the messages. A read that fails after the
// first message still ends the document, then reports the error.
func streamMessages(ctx context.Context, conn *amqp.Connection, opts *DLQShowOptions, filter *dlq.Filter) error {
	doc, err := output.NewListWriter(opts.IO.Out, opts.Format, struct {
		Queue string `json:"queue"`
	}{opts.Queue}, "messages")
	if err != nil {
		return err
	}
	limit := opts.Limit
	if filter != nil {
		limit = 0
	}
	shown := 0
	res, err := dlq.PeekSelected(ctx, conn, opts.Queue, limit, filter, func(r dlq.Record) error {
		if err := doc.Add(shownMessage{Record: r, BodyPreview: dlq.BodyPreview(r.Body, opts.Preview)}); err != nil {
			return fmt.Errorf("write the messages: %w", err)
		}
		if shown++; opts.Limit > 0 && shown >= opts.Limit {
			return dlq.ErrStopPeek
		}
		return nil
	})
	if err != nil && shown == 0 {
		return err
	}
	tail := struct {
		Depth int `json:"depth"`
		Read  int `json:"read"`
		Shown int `json:"shown"`
	}{res.Depth, res.Read, shown}
	if eerr := doc.End(tail); err == nil {
		err = eerr
	}
	return err
}

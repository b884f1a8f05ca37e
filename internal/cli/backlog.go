package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/deadletter"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// backlogRead is where `backlog` and `backlog check` read, and which
// queues.
type backlogRead struct {
	Settings func() (config.Settings, error)
	// MgmtReader opens the management API for s (broker.NewMgmtReader).
	MgmtReader func(config.Settings) (backlog.Getter, error)
	AllVhosts  bool
	PageSize   int
	Globs      []string
}

// backlogScope holds the flags `backlog` shares with `backlog check`.
type backlogScope struct {
	AllVhosts bool
	PageSize  int
}

// newMgmtReader is broker.NewMgmtReader as MgmtReader options want it.
func newMgmtReader(s config.Settings) (backlog.Getter, error) { return broker.NewMgmtReader(s) }

// backlogReader reads reports for one run of a command.
type backlogReader struct {
	src     backlog.Source
	query   backlog.Query
	explain func(error) error
	// api names the management API read, for the table's footer.
	api string
}

// open resolves the settings and opens the management API once: one
// reader for every request and refresh, so with several APIs the one that
// answered is tried first next time. read says how to read the queue list
// (its API is set here).
func (b backlogRead) open(key backlog.SortKey, read backlog.HTTPSource) (*backlogReader, error) {
	s, err := b.Settings()
	if err != nil {
		return nil, err
	}
	api, err := b.MgmtReader(s)
	if err != nil {
		return nil, err
	}
	read.API = api
	q := backlog.Query{Vhost: s.Vhost, Globs: b.Globs, Sort: key, PageSize: b.PageSize}
	where := "vhost " + strconv.Quote(s.Vhost)
	if b.AllVhosts {
		q.Vhost, where = "", "all vhosts"
	}
	return &backlogReader{
		api:   s.MgmtURL,
		src:   read,
		query: q,
		explain: func(err error) error {
			if !b.AllVhosts {
				return broker.MgmtVhostError(s, s.Vhost, "read the backlog of "+where, err)
			}
			return broker.MgmtError(s, "read the backlog of "+where, err)
		},
	}, nil
}

// read takes one snapshot and builds the report; it also returns the
// globs that matched no queue.
func (r *backlogReader) read(ctx context.Context) (backlog.Report, []string, error) {
	rep, unmatched, err := backlog.Read(ctx, r.src, r.query)
	if err != nil {
		if ctx.Err() != nil {
			return backlog.Report{}, nil, ctx.Err()
		}
		return backlog.Report{}, nil, r.explain(err)
	}
	return rep, unmatched, nil
}

// BacklogOptions is what `mqctl backlog` needs.
type BacklogOptions struct {
	IO     *iostreams.IOStreams
	Format output.Format
	backlogRead
	Sort backlog.SortKey
	// Watch is the refresh interval; 0 prints once.
	Watch time.Duration
	// Count stops a watch after that many refreshes; 0 runs until interrupted.
	Count int
}

// defaultWatch is the refresh interval of a bare --watch: the management
// API's own sampling interval, so every refresh can show new figures.
const defaultWatch = 5 * time.Second

// NewCmdBacklog builds `mqctl backlog` and its `check` subcommand; runF
// replaces the work in tests.
func NewCmdBacklog(f *Factory, runF func(*BacklogOptions) error) *cobra.Command {
	return newCmdBacklog(f, runF, nil)
}

// newCmdBacklog is NewCmdBacklog with checkRunF for `backlog check`, which
// shares the parent's persistent flags.
func newCmdBacklog(f *Factory, runF func(*BacklogOptions) error, checkRunF func(*BacklogCheckOptions) error) *cobra.Command {
	scope := &backlogScope{}
	opts := &BacklogOptions{IO: f.IO, backlogRead: backlogRead{Settings: f.Settings, MgmtReader: newMgmtReader}}
	var sortKey, watch string
	cmd := &cobra.Command{
		Use:   "backlog [GLOB…]",
		Short: "Show what is piling up: depth, consumers, rates and DLQ per queue",
		Long: `Show every queue of the vhost (or of all vhosts) whose name matches a GLOB
(* any characters, ? one; no GLOB = all): type, ready and unacknowledged
messages, consumers, publish and deliver rates, the age of the oldest ready
message where the broker reports it, the depth of its dead-letter queue, and
for quorum queues the leader and members online. Sorted by ready messages
(--sort). The summary line counts queues, messages and DLQ messages.

A queue's DLQ is found through its x-dead-letter-exchange and
x-dead-letter-routing-key arguments (or a policy's dead-letter-exchange),
following the bindings of that exchange; without them, through mqctl's
pattern (Q.dlx bound to a queue with key Q, or a queue named Q.dlq). Retry
delay queues (Q.retry.N) are shown with role "retry" and no DLQ. A queue
named X.dlq, or bound to X.dlx with key X, has role "dlq" even when no
queue dead-letters into it now; mqctl dlq ls lists the same DLQs.

Warnings: a work queue with ready messages and no consumer, a non-empty DLQ,
a quorum queue with fewer members online than a majority, a queue not running.

Figures come from the management API, which samples every 5 seconds.
With management metrics collection off (management_agent.disable_metrics_collector
on 3.x; the deprecated feature management_metrics_collection on 4.x) the API
lists queues without figures: backlog then reads the message counts as queue
totals (disable_stats=true&enable_queue_totals=true), and shows what is still
missing (consumers, rates, the oldest message's age; counts where even totals
are absent) as "unknown" in the table and null in -o json, never as 0. A note
on stderr says so; mqctl doctor tells whether collection is off. Unknown
figures sort last; a summary total is null when a count in it is unknown
(summary.counts_unknown says for how many queues), and such a queue carries
the warning "counts unknown".

--watch [INTERVAL] refreshes (default 5s) until Ctrl-C: in place with trend
arrows and sparklines of ready messages on a terminal, as repeated snapshots
otherwise (-o json prints one document per refresh). Write --watch=10s, or
--watch 10s as the first argument.

Reads /api/queues in one request with column selection, beside one bindings
and one exchanges read, so thousands of queues stay fast. A list the broker
cannot send within --timeout (tens of thousands of queues) is read again with
2 ms more per queue and exchange the broker holds (GET /api/overview), and in
pages of 500 if the broker cuts that read short too.

Least permissions: a user with the monitoring tag (or management tag and
read access to the vhost).`,
		Example: `  mqctl backlog
  mqctl backlog 'email*' 'points*' --sort unacked
  mqctl backlog --all-vhosts -o json
  mqctl backlog --watch 2s
  mqctl backlog check --max-ready 1000 --max-dlq 0 --min-consumers 1`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if opts.Sort, err = backlog.ParseSort(sortKey); err != nil {
				return fail.Usagef("--sort: %v", err)
			}
			if cmd.Flags().Changed("watch") {
				// `--watch 10s`: pflag cannot give an optional value after a
				// space, so the interval arrives as the first argument.
				if watch == defaultWatch.String() && len(args) > 0 {
					if d, err := time.ParseDuration(args[0]); err == nil {
						watch, args = d.String(), args[1:]
					}
				}
				if opts.Watch, err = time.ParseDuration(watch); err != nil || opts.Watch <= 0 {
					return fail.Usagef("--watch %q: want a positive duration such as 5s", watch)
				}
			}
			if opts.Count < 0 {
				return fail.Usagef("--count must not be negative")
			}
			if opts.Count > 0 && opts.Watch == 0 {
				return fail.Usagef("--count needs --watch")
			}
			opts.AllVhosts, opts.PageSize, opts.Globs = scope.AllVhosts, scope.PageSize, args
			if runF != nil {
				return runF(opts)
			}
			return backlogRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sortKey, "sort", string(backlog.SortReady), "sort by ready, unacked, messages, consumers, publish_rate, deliver_rate, dlq or name")
	fl.StringVar(&watch, "watch", "", "refresh every INTERVAL until interrupted (bare --watch: 5s)")
	fl.Lookup("watch").NoOptDefVal = defaultWatch.String()
	fl.IntVar(&opts.Count, "count", 0, "with --watch, stop after this many refreshes (0: until interrupted)")
	pf := cmd.PersistentFlags()
	pf.BoolVar(&scope.AllVhosts, "all-vhosts", false, "every vhost the user can see, not just the configured one")
	pf.IntVar(&scope.PageSize, "page-size", 0, "queues per management API page (1-500; 0: the whole list in one read, pages only if it is cut short twice)")
	_ = pf.MarkHidden("page-size")
	_ = cmd.RegisterFlagCompletionFunc("sort", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		keys := make([]string, len(backlog.SortKeys))
		for i, k := range backlog.SortKeys {
			keys[i] = string(k)
		}
		return keys, cobra.ShellCompDirectiveNoFileComp
	})
	cmd.AddCommand(NewCmdBacklogCheck(f, scope, checkRunF))
	return cmd
}

func backlogRun(ctx context.Context, opts *BacklogOptions) error {
	r, err := opts.open(opts.Sort, backlog.HTTPSource{})
	if err != nil {
		return err
	}
	if opts.Watch == 0 {
		rep, _, err := r.read(ctx)
		if err != nil {
			return err
		}
		if err := output.Print(opts.IO, opts.Format, backlogView{Report: rep, API: r.api}); err != nil {
			return err
		}
		if note := figuresNote(rep); note != "" && opts.Format == output.Table {
			fmt.Fprintln(opts.IO.ErrOut, note)
		}
		return nil
	}
	return backlogWatch(ctx, opts, r)
}

// backlogWatch refreshes until ctx ends (Ctrl-C: a clean stop, exit 0) or
// Count refreshes were shown. A failed first read ends it; later
// operational failures are reported on stderr and retried.
func backlogWatch(ctx context.Context, opts *BacklogOptions, r *backlogReader) error {
	hist := backlog.NewHistory(20)
	inPlace := opts.Format == output.Table && opts.IO.IsStdoutTTY()
	timer := time.NewTimer(0)
	defer timer.Stop()
	shown := 0
	noted := false
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		rep, _, err := r.read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A slow or restarting broker should not end a watch; refused
			// credentials will not get better by retrying.
			if k, _ := fail.KindOf(err); k == fail.Auth || k == fail.Usage || n == 1 {
				return err
			}
			fmt.Fprintf(opts.IO.ErrOut, "%s refresh failed, retrying in %s: %v\n", time.Now().UTC().Format(time.RFC3339), opts.Watch, err)
			timer.Reset(opts.Watch)
			continue
		}
		hist.Record(rep)
		view := backlogView{Report: rep, History: hist, Fancy: opts.IO.ColorEnabled(), API: r.api}
		if err := writeWatchFrame(opts.IO, opts.Format, inPlace, opts.Watch, view); err != nil {
			return err
		}
		// Once: a note every refresh would scroll a piped watch away.
		if note := figuresNote(rep); note != "" && opts.Format == output.Table && !noted {
			noted = true
			fmt.Fprintln(opts.IO.ErrOut, note)
		}
		if shown++; opts.Count > 0 && shown >= opts.Count {
			return nil
		}
		timer.Reset(opts.Watch)
	}
}

func writeWatchFrame(ios *iostreams.IOStreams, f output.Format, inPlace bool, every time.Duration, v backlogView) error {
	if f != output.Table {
		return output.Print(ios, f, v)
	}
	stamp := v.Report.Taken.UTC().Format(time.RFC3339)
	if inPlace {
		// Home the cursor and clear the screen: a plain redraw.
		s := output.NewStyles(ios, ios.Out)
		fmt.Fprint(ios.Out, "\x1b[H\x1b[2J")
		fmt.Fprintln(ios.Out, s.Title.Render("mqctl backlog")+s.Muted.Render(fmt.Sprintf(" · every %s · %s · Ctrl-C to stop", every, stamp)))
	} else {
		fmt.Fprintf(ios.Out, "# %s\n", stamp)
	}
	if err := output.Print(ios, f, v); err != nil {
		return err
	}
	if !inPlace {
		fmt.Fprintln(ios.Out)
	}
	return nil
}

// backlogView renders a report; with a History it adds a trend column.
// Its JSON is the report's, field for field.
type backlogView struct {
	backlog.Report
	History *backlog.History `json:"-"`
	// Fancy allows arrows and sparklines (a colour terminal); plain output
	// shows the signed change instead.
	Fancy bool `json:"-"`
	// API is the management API the figures come from, named in the
	// footer: a wrong --mgmt-url shows at a glance.
	API string `json:"-"`
}

func (v backlogView) footer() string {
	if v.API == "" {
		return summaryLine(v.Summary)
	}
	return summaryLine(v.Summary) + " (management API " + v.API + ")"
}

func (v backlogView) Table() output.TableData {
	headers := []string{"queue", "type", "ready"}
	if v.History != nil {
		headers = append(headers, "trend")
	}
	headers = append(headers, "unacked", "consumers", "pub/s", "deliver/s", "oldest", "dlq", "quorum", "warnings")
	rows := make([][]string, len(v.Queues))
	for i, r := range v.Queues {
		name := r.Name
		if v.Vhost == "" {
			name = r.Vhost + "/" + r.Name
		}
		if r.Role != deadletter.RoleWork {
			name += " (" + string(r.Role) + ")"
		}
		row := []string{name, r.Type, count(r.Ready)}
		if v.History != nil {
			row = append(row, v.trend(r))
		}
		row = append(row, count(r.Unacked), count(r.Consumers),
			rate(r.PublishRate), rate(r.DeliverRate), age(r.OldestMessageAgeSeconds),
			dlqCell(r), quorumCell(r), warningsCell(r.Warnings))
		rows[i] = row
	}
	col := func(name string) int {
		for i, h := range headers {
			if h == name {
				return i
			}
		}
		return -1
	}
	ready, dlq, quorum, warn := col("ready"), col("dlq"), col("quorum"), col("warnings")
	return output.TableData{
		Headers: headers,
		Rows:    rows,
		Columns: backlogColumns,
		Footer:  v.footer(),
		CellLevel: func(row, c int) output.Level {
			r := v.Queues[row]
			switch {
			case c == ready && hasWarning(r, backlog.WarnNoConsumer):
				return output.LevelError
			case c == ready && r.Ready == nil:
				return output.LevelWarn
			case c == dlq && hasWarning(r, backlog.WarnDLQNotEmpty):
				return output.LevelWarn
			case c == quorum && hasWarning(r, backlog.WarnBelowQuorum):
				return output.LevelError
			case c == warn && len(r.Warnings) > 0:
				return output.LevelWarn
			case c == 0 && len(r.Warnings) > 0:
				return output.LevelWarn
			case c == 0 && r.Role != deadletter.RoleWork:
				return output.LevelMuted
			}
			return output.LevelNone
		},
	}
}

// backlogColumns fit the table to a terminal: a queue's name is never
// cut; what a reader of a backlog misses least goes first (rates, type,
// then figures the warnings column sums up: no consumer, below quorum),
// what says where messages pile up (ready, dlq, warnings) last or never.
var backlogColumns = map[string]output.Column{
	"queue":     {Keep: true},
	"pub/s":     {Drop: 9},
	"deliver/s": {Drop: 8},
	"type":      {Drop: 7},
	"consumers": {Drop: 6},
	"quorum":    {Min: 8, Drop: 5},
	"oldest":    {Drop: 4},
	"unacked":   {Drop: 3},
	// A sparkline cut short would lose its newest samples.
	"trend": {Keep: true, Drop: 2},
	// "email.dlq 3": cut, it keeps the count.
	"dlq":      {Min: 12, CutStart: true, Drop: 1},
	"warnings": {Min: 16},
}

func (v backlogView) trend(r backlog.Row) string {
	if r.Ready == nil {
		return "-"
	}
	if v.Fancy {
		return v.History.Arrow(r) + " " + v.History.Sparkline(r)
	}
	return fmt.Sprintf("%+d", v.History.Delta(r))
}

func hasWarning(r backlog.Row, w backlog.Warning) bool {
	for _, x := range r.Warnings {
		if x == w {
			return true
		}
	}
	return false
}

// unknown is how a table shows a figure the management API did not give
// (JSON: null).
const unknown = "unknown"

func count(n *int) string {
	if n == nil {
		return unknown
	}
	return strconv.Itoa(*n)
}

func rate(r *float64) string {
	if r == nil {
		return unknown
	}
	return strconv.FormatFloat(*r, 'f', 1, 64)
}

func age(sec *float64) string {
	if sec == nil {
		return "-"
	}
	d := time.Duration(*sec) * time.Second
	switch {
	case d < time.Hour:
		return d.String()
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// plural is "1 queue", "2 queues".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func dlqCell(r backlog.Row) string {
	if len(r.DLQs) == 0 {
		return "-"
	}
	parts := make([]string, len(r.DLQs))
	for i, d := range r.DLQs {
		parts[i] = d.Name + " " + count(d.Messages)
	}
	return strings.Join(parts, ", ")
}

func quorumCell(r backlog.Row) string {
	if r.Type != "quorum" {
		return "-"
	}
	leader := r.Leader
	if leader == "" {
		leader = "no leader"
	}
	return fmt.Sprintf("%d/%d %s", r.MembersOnline, len(r.Members), leader)
}

func warningsCell(ws []backlog.Warning) string {
	if len(ws) == 0 {
		return ""
	}
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = strings.ReplaceAll(string(w), "_", " ")
	}
	return strings.Join(s, ", ")
}

func summaryLine(s backlog.Summary) string {
	msgs := "messages unknown"
	if s.Messages != nil {
		msgs = plural(*s.Messages, "message")
	}
	if s.Ready != nil && s.Unacked != nil {
		msgs += fmt.Sprintf(" (%d ready, %d unacked)", *s.Ready, *s.Unacked)
	} else {
		msgs += fmt.Sprintf(" (counts unknown for %s)", plural(s.CountsUnknown, "queue"))
	}
	dlq := "DLQ messages unknown"
	if s.DLQMessages != nil {
		dlq = plural(*s.DLQMessages, "DLQ message")
	}
	return fmt.Sprintf("%s, %s, %s, %s with warnings", plural(s.Queues, "queue"), msgs, dlq, plural(s.Warnings, "queue"))
}

// figuresNote explains unknown figures, for stderr under a table; "" when
// every figure is known.
func figuresNote(rep backlog.Report) string {
	var noStats, noCounts int
	for _, r := range rep.Queues {
		if r.Consumers == nil {
			noStats++
		}
		if r.Messages == nil {
			noCounts++
		}
	}
	switch {
	case noStats == 0 && noCounts == 0:
		return ""
	case noCounts == 0:
		return fmt.Sprintf("note: the management API reports no statistics for %s (management metrics collection off, or not sampled yet): "+
			"message counts come from queue totals; consumers and rates are unknown. `mqctl doctor` tells whether collection is off", plural(noStats, "queue"))
	}
	return fmt.Sprintf("note: the management API reports no message counts for %s, not even as queue totals (of %s without statistics): "+
		"they show as unknown, not 0. `mqctl doctor` tells whether metrics collection is off", plural(noCounts, "queue"), plural(noStats, "queue"))
}

package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQHistoryOptions is what `mqctl dlq history` needs: the trail, and
// no broker.
type DLQHistoryOptions struct {
	IO     *iostreams.IOStreams
	Audit  auditTrail
	Format output.Format
	Queue  string
	Vhost  string
	Since  time.Duration
	Limit  int
	Now    func() time.Time
}

// NewCmdDLQHistory builds `mqctl dlq history`.
func NewCmdDLQHistory(f *Factory, runF func(*DLQHistoryOptions) error) *cobra.Command {
	opts := &DLQHistoryOptions{IO: f.IO, Audit: auditTrail{Env: f.Env}, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show the audit trail: every replay, purge, publish and prune, who and what",
		Long: `Show the audit trail, oldest first and newest last: one row per command that
moved or deleted messages or objects (dlq replay, dlq purge, publish,
topology prune, topology migrate) with its time, OS user, vhost, queue, the
selection as it was given, the counts by result and the outcome (ok,
partial, failed).

The trail is the JSONL file those commands append to: --audit-log, default
$XDG_STATE_HOME/mqctl/audit.jsonl (~/.local/state/mqctl/audit.jsonl), mode
0600. Each line also holds the broker address (never a password), every
message's id and body SHA-256, and the destinations; -o json prints the
entries as they are stored ({"entries":[…]}). No broker is needed.

--queue and --vhost keep the entries of one queue or vhost, --since keeps
those of the last DURATION, --limit N the last N.`,
		Example: `  mqctl dlq history
  mqctl dlq history --queue email.dlq --since 24h
  mqctl dlq history --limit 1 -o json | jq '.entries[0].items[] | [.id, .body_sha256, .status]'
  mqctl dlq history --audit-log /var/log/mqctl/audit.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Format, err = f.Format(); err != nil {
				return err
			}
			if opts.Limit < 0 || opts.Since < 0 {
				return fail.Usagef("--limit and --since must not be negative")
			}
			if runF != nil {
				return runF(opts)
			}
			return dlqHistoryRun(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Audit.Path, "audit-log", "", "audit trail to read (default $XDG_STATE_HOME/mqctl/audit.jsonl)")
	fl.StringVar(&opts.Queue, "queue", "", "only entries of this queue")
	fl.StringVar(&opts.Vhost, "vhost", "", "only entries of this vhost")
	fl.DurationVar(&opts.Since, "since", 0, "only entries of the last `DURATION` (e.g. 24h; 0: all)")
	fl.IntVar(&opts.Limit, "limit", 0, "only the last N entries (0: all)")
	return cmd
}

// dlqHistoryView is the trail's entries, as stored.
type dlqHistoryView struct {
	Entries []audit.Entry `json:"entries"`
	file    string
}

func (v dlqHistoryView) Table() output.TableData {
	rows := make([][]string, len(v.Entries))
	for i, e := range v.Entries {
		rows[i] = []string{e.Time.Format(time.RFC3339), e.User, e.Command, e.Vhost, dash(e.Queue), dash(e.Selection), countsText(e.Counts), e.Outcome}
	}
	return output.TableData{
		Headers: []string{"time", "user", "command", "vhost", "queue", "selection", "counts", "outcome"},
		Rows:    rows,
		Columns: map[string]output.Column{
			"time":      {Keep: true},
			"queue":     {Keep: true},
			"outcome":   {Keep: true},
			"selection": {Min: 12, Drop: 1},
			"counts":    {Min: 12},
			"vhost":     {Drop: 2},
			"user":      {Drop: 3},
		},
		RowLevel: func(r int) output.Level {
			switch v.Entries[r].Outcome {
			case audit.Failed:
				return output.LevelError
			case audit.Partial:
				return output.LevelWarn
			}
			return output.LevelNone
		},
		Footer: fmt.Sprintf("%d entries of %s; -o json shows each message's id, body hash and destination", len(v.Entries), v.file),
	}
}

// countsText is "replayed 3, skipped 1", in a fixed order.
func countsText(c map[string]int) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, c[k])
	}
	return dash(strings.Join(parts, ", "))
}

func dlqHistoryRun(opts *DLQHistoryOptions) error {
	path, err := opts.Audit.file()
	if err != nil {
		return err
	}
	entries, err := audit.Read(path)
	if err != nil {
		return fail.Usagef("read the audit trail: %v", err)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	kept := FilterHistory(entries, opts.Queue, opts.Vhost, opts.Since, opts.Limit, now())
	return output.Print(opts.IO, opts.Format, dlqHistoryView{Entries: kept, file: path})
}

// FilterHistory keeps the entries of queue and vhost ("" for any) of the
// last since (0 for all), then the last limit of them (0 for all), oldest
// first.
func FilterHistory(entries []audit.Entry, queue, vhost string, since time.Duration, limit int, now time.Time) []audit.Entry {
	kept := []audit.Entry{}
	for _, e := range entries {
		if (queue != "" && e.Queue != queue) || (vhost != "" && e.Vhost != vhost) || (since > 0 && e.Time.Before(now.Add(-since))) {
			continue
		}
		kept = append(kept, e)
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Time.Before(kept[j].Time) })
	if limit > 0 && len(kept) > limit {
		kept = kept[len(kept)-limit:]
	}
	return kept
}

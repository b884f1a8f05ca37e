package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/browse"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQBrowseOptions is what `mqctl dlq browse` needs.
type DLQBrowseOptions struct {
	IO *iostreams.IOStreams
	// Settings give the vhost (journal, audit) and the broker of the
	// audit record.
	Settings func() (config.Settings, error)
	// Env places the replay journal (XDG_STATE_HOME, HOME).
	Env     config.LookupEnv
	Dial    dialFunc
	Linkage linkageFunc
	Audit   auditTrail
	Queue   string
	Force   bool
	// MaxReplays skips, on replay, messages replayed this often already.
	MaxReplays int
	// ArchiveDir holds the archives purges write.
	ArchiveDir string
	Now        func() time.Time
}

const dlqBrowseLong = `A terminal UI for the human check of a dead-letter queue: its groups (by
origin, reason and normalised error, the keys of ` + "`mqctl dlq show --groups`" + `),
then the messages of a group, then one message in full: its deaths in order
(oldest first, newest last, across replays), properties, headers, and the body
as indented JSON when it is JSON, else as a hex dump.

Mark messages (space) or whole groups (a), then replay (r) or purge (p) the
marked set. Nothing changes before that: the queue is read the way
` + "`mqctl dlq show`" + ` reads it (see ` + "`mqctl dlq --help`" + `) and every message goes back.
r and p first show a confirmation with the number of messages and each
destination: the queues a replay sends them to, with the ones replay's guard
rails would leave in the DLQ (replayed --max-replays times already, an origin
that does not dead-letter here), or the archive a purge writes. y goes ahead,
n or esc cancels.

Replay and purge are ` + "`mqctl dlq replay`" + ` and ` + "`mqctl dlq purge`" + ` with --id
for exactly the marked ids: publisher confirms, the dead letter acked only
after its confirm, the replay journal; each purged message archived and
flushed to disk before it leaves the queue (QUEUE.purged.TIMESTAMP.jsonl in
--archive-dir). Each appends one line to the audit trail (--audit-log), with
the selection "browse: N marked (group KEY)". The queue is read again after
each.

The queue is read in the background with progress; the browser keeps a
summary per message and the full message only for the first ones that fit in
16 MiB, so it stays responsive at 100,000 dead letters; a message beyond is
read again from the queue when opened. While it reads, the messages it has
read are invisible to other consumers, and replay and purge wait for the read
to end.

Keys: ↑/↓ or k/j move, pgup/pgdn, g/G first/last, enter opens, esc or
backspace goes back, space marks, a marks the group, u unmarks all, r
replays, p purges, ? shows every key, q quits.

It needs a terminal: with stdout not a terminal it exits 2; use
` + "`mqctl dlq show QUEUE --groups`" + ` and ` + "`-o json`" + ` in scripts.`

// NewCmdDLQBrowse builds `mqctl dlq browse`.
func NewCmdDLQBrowse(f *Factory, runF func(*DLQBrowseOptions) error) *cobra.Command {
	opts := &DLQBrowseOptions{IO: f.IO, Settings: settingsOf(f), Env: f.Env, Dial: dialer(f), Linkage: linkageOf(f),
		Audit: auditTrail{Env: f.Env}, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "browse QUEUE",
		Short: "Browse dead letters in a terminal UI; mark, then replay or purge the marked",
		Long:  dlqBrowseLong,
		Example: `  mqctl dlq browse email.dlq
  mqctl dlq browse email.dlq --archive-dir /var/lib/mqctl/archives --audit-log /var/log/mqctl-audit.jsonl`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeDLQs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Queue = args[0]
			if opts.MaxReplays < 0 {
				return fail.Usagef("--max-replays must not be negative")
			}
			if runF != nil {
				return runF(opts)
			}
			return dlqBrowseRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&opts.MaxReplays, "max-replays", 3, "on replay, skip messages already replayed this many times")
	fl.StringVar(&opts.ArchiveDir, "archive-dir", ".", "directory of the archives purges write")
	fl.BoolVar(&opts.Force, "force", false, "browse even a queue that is not a dead-letter queue")
	opts.Audit.register(fl)
	return cmd
}

func dlqBrowseRun(ctx context.Context, opts *DLQBrowseOptions) error {
	if !opts.IO.IsStdoutTTY() {
		return fail.Usagef("dlq browse is a terminal UI and stdout is not a terminal; use `mqctl dlq show %s --groups` (or -o json) instead", opts.Queue)
	}
	src, err := newBrowseSource(ctx, opts)
	if err != nil {
		return err
	}
	m := browse.New(src, browse.Options{Queue: opts.Queue,
		Styles: browse.NewStyles(output.NewStyles(opts.IO, opts.IO.Out)), Width: opts.IO.TerminalWidth()})
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(opts.IO.In), tea.WithOutput(opts.IO.Out), tea.WithAltScreen())
	_, runErr := p.Run()
	m.Close()
	for _, line := range m.Log() {
		fmt.Fprintln(opts.IO.ErrOut, "dlq browse: "+line)
	}
	switch {
	case runErr != nil:
		return fmt.Errorf("dlq browse: %w", runErr)
	case m.LoadErr() != nil:
		return fmt.Errorf("dlq browse: read %s: %w", opts.Queue, m.LoadErr())
	case m.Partial():
		return fail.Conditionf("some marked messages were not moved (see above, and `mqctl dlq history`)")
	}
	return nil
}

// Bounds of what the browser keeps of messages in full.
const (
	browseBodyMax    = 64 << 10 // bytes of one body shown
	browseKeepBudget = 16 << 20 // bytes of full messages kept from a read
)

// browseSource is the browser's view of one DLQ: reads, replays and
// purges go through package dlq exactly as the dlq commands do.
type browseSource struct {
	opts     *DLQBrowseOptions
	settings config.Settings
	origins  []string // from the linkage; nil when unknown
	journal  string
	// turn lets one reader of the queue at a time in: each holds the
	// queue's only (exclusive) consumer.
	turn chan struct{}

	mu   sync.Mutex
	kept map[string]browse.Detail
	used int
}

// newBrowseSource makes the checks a dlq command makes before it reads
// (the queue is a DLQ, the audit trail and the journal can be written)
// while the terminal is still a terminal, so warnings and refusals print
// as usual.
func newBrowseSource(ctx context.Context, opts *DLQBrowseOptions) (*browseSource, error) {
	s, err := opts.Settings()
	if err != nil {
		return nil, err
	}
	if err := opts.Audit.check(); err != nil {
		return nil, err
	}
	journal, err := defaultJournal(opts.Env, s.Vhost, opts.Queue)
	if err != nil {
		return nil, err
	}
	link, err := guardDLQ(ctx, opts.IO, opts.Linkage, opts.Queue, opts.Force)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &browseSource{opts: opts, settings: s, origins: link.Origins, journal: journal,
		turn: make(chan struct{}, 1), kept: map[string]browse.Detail{}}, nil
}

func (b *browseSource) take(ctx context.Context) error {
	select {
	case b.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *browseSource) give() { <-b.turn }

// Load reads the queue with the peek method, keeping the first messages
// whole within browseKeepBudget.
func (b *browseSource) Load(ctx context.Context, emit func(browse.Batch) error) error {
	if err := b.take(ctx); err != nil {
		return err
	}
	defer b.give()
	b.mu.Lock()
	b.kept, b.used = map[string]browse.Detail{}, 0
	b.mu.Unlock()
	conn, err := b.opts.Dial(ctx, "mqctl dlq browse")
	if err != nil {
		return err
	}
	defer conn.Close()
	total, err := dlq.Depth(conn, b.opts.Queue)
	if err != nil {
		return err
	}
	batch := browse.Batch{Total: total}
	if err := emit(batch); err != nil {
		return err
	}
	res, err := dlq.Peek(ctx, conn, b.opts.Queue, 0, func(r dlq.Record) error {
		batch.Messages = append(batch.Messages, b.message(r))
		batch.Read++
		b.keep(r)
		if len(batch.Messages) < 500 {
			return nil
		}
		if err := emit(batch); err != nil {
			return err
		}
		batch.Messages = nil
		return nil
	})
	if err != nil {
		return err
	}
	batch.Total = res.Depth
	if res.Read < res.Depth {
		batch.Total = res.Read // the queue was shorter by the time it was read
	}
	return emit(batch)
}

// keep holds r whole while the budget lasts.
func (b *browseSource) keep(r dlq.Record) {
	b.mu.Lock()
	full := b.used >= browseKeepBudget
	b.mu.Unlock()
	if full {
		return // past the budget, not even worth converting
	}
	d := browseDetail(r)
	// What Go spends on it, roughly: the data plus the headers of its
	// strings, slices and map entry.
	size := len(d.ID) + len(d.Body) + 256
	for _, f := range d.Headers {
		size += len(f.Name) + len(f.Value) + 64
	}
	for _, f := range d.Properties {
		size += len(f.Name) + len(f.Value) + 64
	}
	for _, e := range d.Deaths {
		size += len(e.Queue) + len(e.Reason) + len(e.Error) + len(e.ErrorClass) + 160
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.used+size > browseKeepBudget:
		b.used = browseKeepBudget // full: the rest are read again when opened
	case b.kept[r.ID].ID == "":
		b.kept[r.ID], b.used = d, b.used+size
	}
}

func (b *browseSource) message(r dlq.Record) browse.Message {
	d := r.Death
	origin, reason, errText := dlq.GroupAll.Values(d)
	m := browse.Message{ID: r.ID, GroupKey: dlq.GroupAll.Key(d), Origin: origin, Reason: reason, Error: errText,
		Cause: dlq.ReasonText(d), Deaths: d.Deaths, Destination: r.Destination(""), Replays: r.ReplayCount, Size: r.BodySize}
	if d.LastDeathAt != nil {
		m.LastDeath = d.LastDeathAt.Time
	}
	m.Hold = b.hold(m)
	return m
}

// hold is why replay would leave m in the queue, as dlq.Replay decides.
func (b *browseSource) hold(m browse.Message) string {
	switch {
	case m.Replays >= int64(b.opts.MaxReplays):
		return fmt.Sprintf("replayed %d time(s) already (--max-replays %d)", m.Replays, b.opts.MaxReplays)
	case m.Destination == "":
		return "no origin queue in its headers"
	case m.Destination == b.opts.Queue:
		return "its origin is this queue itself"
	case b.origins != nil && !slices.Contains(b.origins, m.Destination):
		return fmt.Sprintf("claims origin %s, which does not dead-letter into %s", m.Destination, b.opts.Queue)
	}
	return ""
}

// Detail is the message kept from the read, else read again.
func (b *browseSource) Detail(ctx context.Context, id string) (browse.Detail, error) {
	b.mu.Lock()
	d, ok := b.kept[id]
	b.mu.Unlock()
	if ok {
		return d, nil
	}
	if err := b.take(ctx); err != nil {
		return browse.Detail{}, err
	}
	defer b.give()
	conn, err := b.opts.Dial(ctx, "mqctl dlq browse")
	if err != nil {
		return browse.Detail{}, err
	}
	defer conn.Close()
	r, found, err := dlq.PeekID(ctx, conn, b.opts.Queue, id)
	switch {
	case err != nil:
		return browse.Detail{}, err
	case !found:
		return browse.Detail{}, fmt.Errorf("%s is no longer in %s", id, b.opts.Queue)
	}
	return browseDetail(r), nil
}

// browseDetail is a record as the message view shows it.
func browseDetail(r dlq.Record) browse.Detail {
	d := browse.Detail{ID: r.ID, Body: r.Body, BodySize: r.BodySize}
	if len(d.Body) > browseBodyMax {
		d.Body = d.Body[:browseBodyMax]
	}
	d.Body = slices.Clone(d.Body) // not the delivery's buffer, which may be larger
	for _, e := range r.Death.History {
		x := browse.Death{Queue: e.Queue, Reason: e.Reason, Error: e.Error, ErrorClass: e.ErrorClass,
			Count: e.Count, Life: e.Life, Retry: e.Retry}
		if e.Time != nil {
			x.Time = e.Time.Time
		}
		d.Deaths = append(d.Deaths, x)
	}
	p := r.Properties
	for _, f := range []browse.Field{
		{Name: "content_type", Value: p.ContentType}, {Name: "content_encoding", Value: p.ContentEncoding},
		{Name: "delivery_mode", Value: nonZero(p.DeliveryMode)}, {Name: "priority", Value: nonZero(p.Priority)},
		{Name: "message_id", Value: p.MessageID}, {Name: "correlation_id", Value: p.CorrelationID},
		{Name: "type", Value: p.Type}, {Name: "app_id", Value: p.AppID}, {Name: "user_id", Value: p.UserID},
		{Name: "reply_to", Value: p.ReplyTo}, {Name: "expiration", Value: p.Expiration},
		{Name: "exchange", Value: r.Exchange}, {Name: "routing_key", Value: r.RoutingKey},
	} {
		if f.Value != "" {
			d.Properties = append(d.Properties, f)
		}
	}
	if p.Timestamp != nil {
		d.Properties = append(d.Properties, browse.Field{Name: "timestamp", Value: p.Timestamp.UTC().Format(time.RFC3339)})
	}
	names := make([]string, 0, len(p.Headers))
	for k := range p.Headers {
		if dlq.IsDeathHeader(k) {
			d.HiddenHeaders++
			continue
		}
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		d.Headers = append(d.Headers, browse.Field{Name: k, Value: headerText(p.Headers[k])})
	}
	return d
}

func nonZero(n uint8) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

// headerText is a header's value as text: a string as it is, anything
// else as its JSON, cut at 200 bytes.
func headerText(v dlq.Value) string {
	var s string
	if json.Unmarshal(v.Value, &s) != nil {
		s = string(v.Value)
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Replay is `dlq replay --id …` for exactly the marked ids.
func (b *browseSource) Replay(ctx context.Context, sel browse.Selection) (browse.Result, error) {
	if err := b.take(ctx); err != nil {
		return browse.Result{}, err
	}
	defer b.give()
	spool, err := b.opts.Audit.spool(false)
	if err != nil {
		return browse.Result{}, err
	}
	defer spool.Remove()
	rep, err := b.replay(ctx, sel, spool)
	return b.finish("dlq replay", sel, rep, err)
}

func (b *browseSource) replay(ctx context.Context, sel browse.Selection, spool *dlq.Spool) (*dlq.Report, error) {
	journal, err := dlq.OpenJournal(b.journal)
	if err != nil {
		return nil, err
	}
	var rep *dlq.Report
	src, err := b.opts.Dial(ctx, "mqctl dlq browse (consumer)")
	if err == nil {
		defer src.Close()
		dst, derr := b.opts.Dial(ctx, "mqctl dlq browse (publisher)")
		if err = derr; err == nil {
			defer dst.Close()
			rep, err = dlq.Replay(ctx, src, dst, dlq.ReplayOptions{
				Queue: b.opts.Queue, Selection: dlq.SelectIDs(sel.IDs), MaxReplays: b.opts.MaxReplays,
				Window: 1024, Journal: journal, Origins: b.origins, Spool: spool,
			})
		}
	}
	if jerr := journal.Close(err == nil); jerr != nil && err == nil {
		err = jerr
	}
	return rep, err
}

// Purge is `dlq purge --id …` for exactly the marked ids, archiving to
// archive.
func (b *browseSource) Purge(ctx context.Context, sel browse.Selection, archive string) (browse.Result, error) {
	if err := b.take(ctx); err != nil {
		return browse.Result{}, err
	}
	defer b.give()
	spool, err := b.opts.Audit.spool(false)
	if err != nil {
		return browse.Result{}, err
	}
	defer spool.Remove()
	rep, err := b.purge(ctx, sel, archive, spool)
	return b.finish("dlq purge", sel, rep, err)
}

func (b *browseSource) purge(ctx context.Context, sel browse.Selection, archive string, spool *dlq.Spool) (*dlq.Report, error) {
	conn, err := b.opts.Dial(ctx, "mqctl dlq browse")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	a, err := dlq.OpenArchive(archive)
	if err != nil {
		return nil, err
	}
	rep, err := dlq.Purge(ctx, conn, dlq.PurgeOptions{Queue: b.opts.Queue, Selection: dlq.SelectIDs(sel.IDs),
		Archive: a, Batch: 512, Spool: spool})
	if cerr := a.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if st, serr := os.Stat(archive); rep != nil && rep.Purged == 0 && serr == nil && st.Size() == 0 {
		os.Remove(archive) // a purge that removed nothing leaves no archive
		rep.Archive = ""
	}
	return rep, err
}

// PurgeArchive is QUEUE.purged.TIMESTAMP.jsonl in --archive-dir.
func (b *browseSource) PurgeArchive() string {
	p := filepath.Join(b.opts.ArchiveDir, dlq.ArchivePath(b.opts.Queue, b.opts.Now()))
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// finish records the act in the audit trail and sums it up for the
// status line.
func (b *browseSource) finish(command string, sel browse.Selection, rep *dlq.Report, runErr error) (browse.Result, error) {
	e := audit.Entry{Command: command, Queue: b.opts.Queue, Selection: sel.String(), Outcome: audit.Failed}
	if rep != nil {
		e = rep.Audit(command, sel.String(), runErr)
	}
	res := browse.Result{Summary: reportSummary(command, rep, b.opts.Queue)}
	if rep != nil {
		res.Partial = rep.Partial()
	}
	if err := b.opts.Audit.record(b.settings, e, runErr); err != nil {
		res.Summary += "; warning: " + b.settings.Redactor.Redact(err.Error())
	}
	if runErr != nil {
		runErr = fmt.Errorf("%s", b.settings.Redactor.Redact(runErr.Error()))
	}
	return res, runErr
}

// reportSummary is one line of what a replay or purge did: counts, and
// where the messages went.
func reportSummary(command string, rep *dlq.Report, queue string) string {
	if rep == nil {
		return ""
	}
	var parts []string
	switch {
	case command == "dlq purge" && rep.Archive != "":
		parts = append(parts, fmt.Sprintf("purged %s from %s into %s", messages(rep.Purged), queue, rep.Archive))
	case command == "dlq purge":
		parts = append(parts, fmt.Sprintf("purged %s from %s", messages(rep.Purged), queue))
	default:
		moved := rep.Moved()
		to := make([]string, len(moved))
		for i, m := range moved {
			to[i] = fmt.Sprintf("%s (%s)", m.Destination, thousands(m.Count))
		}
		text := fmt.Sprintf("replayed %s from %s", messages(rep.Replayed), queue)
		if len(to) > 0 {
			text += " to " + strings.Join(to, ", ")
		}
		parts = append(parts, text)
	}
	for _, c := range []struct {
		n    int
		what string
	}{{rep.Skipped, "skipped"}, {rep.Failed, "failed"}, {len(rep.NotFound), "no longer in the queue"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", thousands(c.n), c.what))
		}
	}
	return strings.Join(parts, "; ")
}

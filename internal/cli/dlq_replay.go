package cli

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQReplayOptions is what `mqctl dlq replay` needs.
type DLQReplayOptions struct {
	IO *iostreams.IOStreams
	// Settings give the vhost (the journal is per vhost and queue) and
	// the redactor of stderr lines.
	Settings func() (config.Settings, error)
	// Env places the default journal (XDG_STATE_HOME, HOME).
	Env  config.LookupEnv
	Dial dialFunc
	// Linkage checks that Queue is a dead-letter queue and names its
	// origins, before any message is read.
	Linkage    linkageFunc
	Audit      auditTrail
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
	// Via is how the messages move: client, shovel or auto.
	Via string
	// Outcomes lists every message's outcome in the report, the
	// replayed ones too.
	Outcomes bool
	// BlockedTimeout bounds a wait while the broker blocks publishing.
	BlockedTimeout time.Duration
}

const dlqReplayLong = `Republish exactly the selected dead letters to the queue they died in: the
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

Guard rails: QUEUE must be a dead-letter queue (some queue dead-letters into
it, by arguments or policy, or mqctl's naming makes it one: the queues
` + "`mqctl dlq ls`" + ` lists); any other queue is refused (exit 2) before a message is
read, unless --force. A message whose claimed origin (mqctl-origin-queue,
else x-death) is not one of the DLQ's origins is skipped, with the reason,
unless --to or --force. --dry-run also looks up every destination (a passive
declare) and reports "would fail: queue X does not exist" for a message the
default exchange could not route. Reading a quorum DLQ raises its messages'
x-delivery-count: mqctl warns.

-o json reports the counts (a dry run's would_replay among them), and the
outcome of each message a human must see: skipped, failed, would_fail, the
first 5,000 of them (outcomes_truncated counts the rest); not_found lists
the ids not found; outcomes_omitted counts the replayed (or, on a dry run,
would_replay) ones left out. --outcomes lists every message's outcome, the
replayed ones too, held in memory until the report is printed (at 100,000
messages most of the report's size). Without it, mqctl's memory does not
grow with the number of messages.

Every replay that is not a dry run appends one JSON line to the audit trail
(--audit-log, default $XDG_STATE_HOME/mqctl/audit.jsonl): who, where, the
selection as given, each message's id, body SHA-256, destination and
result; ` + "`mqctl dlq history`" + ` shows it. Until the line is written the
outcomes wait in a temporary file (0600, in $TMPDIR), removed afterwards. A trail that cannot be written refuses
the replay (exit 2) before anything moves.

Selecting: --from FILE (an export a human checked), --id ID (repeatable; a
unique start of an id is enough: 7f3a9c selects sha256:7f3a9c…; a start that
several ids share exits 2 listing them, before anything moves), or --all;
--where EXPR and --group KEY narrow any of them, or alone select among every
message. --where takes an expr expression over the fields listed in
` + "`mqctl dlq show --help`" + ` (origin, reason, error, deaths, age, headers, body, …);
--group takes a key from ` + "`mqctl dlq show --groups`" + `. Both are decided per
message as it is read, so exactly the messages they select when the replay
reads them move; messages that arrive after it started are never read.

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

--via shovel (or --via auto) hands the move to a broker shovel where that is
safe: the selection is the whole DLQ or its first --limit messages, the DLQ
is a classic queue into which exactly one queue dead-letters (the
dead-letter linkage says so), no --to, --rate or selection by id, file,
--where or --group, the shovel plugin is enabled (rabbitmq_shovel and
rabbitmq_shovel_management), the user may create shovels (policymaker or
administrator), and the check, a dry run that reads every selected message
first, found each one going back to that queue (none held back by
--max-replays, none from a foreign origin). mqctl then creates a dynamic
shovel (ack on confirm, src-delete-after = the number checked), so the
broker moves exactly the checked messages, in order, and removes the
shovel; mqctl shows progress, and on an interrupt or a shovel failure it
deletes the shovel, counts what moved from the head of the DLQ, and reports
the up to --window messages the shovel held unacked as possible duplicates.
A shovel moves a message unchanged: its x-death stays, and the shovel's
x-shovelled entry counts as a replay for --max-replays. No message crosses
mqctl's connection twice, which pays where mqctl runs far from the broker;
next to it, mqctl's own move (--via client, the default) is faster, since
the shovel path reads every message for the check first (measured: 0.84x
against 0.65x of the management UI's unchecked move). --via auto falls back
to mqctl's move when a shovel cannot; --via shovel refuses then (exit 2,
nothing moved). The report says which path ran and why.

--window (default 1024, like the shovel's prefetch of 1000) bounds the
publishes awaiting their confirm (a shovel's prefetch); mqctl holds up to about three windows of
messages in memory, so lower it for very large messages.

Asks for confirmation on a terminal, stating how many messages go where
(counted by a dry run first); refuses without --yes otherwise (exit 2,
nothing changed). Exit 3 when some selected message was skipped, failed or
not found (on a dry run: would be skipped or fail).

Least permissions: read on the DLQ and write on the default exchange (the
write pattern must match amq.default), which publishes to any queue by name;
--dry-run needs read only. Without write the first publish is refused: exit 4,
every message stays in the DLQ.`

// NewCmdDLQReplay builds `mqctl dlq replay`.
func NewCmdDLQReplay(f *Factory, runF func(*DLQReplayOptions) error) *cobra.Command {
	opts := &DLQReplayOptions{IO: f.IO, Settings: settingsOf(f), Env: f.Env, Dial: dialer(f), Linkage: linkageOf(f),
		Audit: auditTrail{Env: f.Env}}
	cmd := &cobra.Command{
		Use:   "replay QUEUE (--from FILE | --id ID… | --all | --where EXPR | --group KEY)",
		Short: "Republish exactly the selected dead letters to the queue they died in",
		Long:  dlqReplayLong,
		Example: `  mqctl dlq replay email.dlq --from checked.jsonl --dry-run
  mqctl dlq replay email.dlq --from checked.jsonl --yes
  mqctl dlq replay email.dlq --id 7f3a9c --to email-manual --yes
  mqctl dlq replay email.dlq --all --rate 200 --yes -o json
  mqctl dlq replay email.dlq --where 'error contains "timeout" && age > duration("1h")' --dry-run
  mqctl dlq show email.dlq --groups && mqctl dlq replay email.dlq --group 3fa2c9d1 --yes`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeDLQs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := parseQueueArgs(f, args, &opts.Format, &opts.Queue); err != nil {
				return err
			}
			if opts.MaxReplays < 0 || opts.Limit < 0 || opts.Rate < 0 || opts.Window < 1 {
				return fail.Usagef("--max-replays, --limit and --rate must not be negative, --window at least 1")
			}
			if !slices.Contains([]string{"auto", "client", "shovel"}, opts.Via) {
				return fail.Usagef("--via must be auto, client or shovel, not %q", opts.Via)
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
	fl.BoolVar(&opts.Force, "force", false, "replay even messages above --max-replays or from a foreign origin, and from a queue that is not a DLQ")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "show what would move; change nothing")
	fl.IntVar(&opts.Limit, "limit", 0, "replay at most this many messages (0: no limit)")
	fl.Float64Var(&opts.Rate, "rate", 0, "at most this many messages per second (0: unlimited)")
	fl.IntVar(&opts.Window, "window", 1024, "publishes awaiting their confirm at once")
	fl.StringVar(&opts.Journal, "journal", "", "replay journal file (default under $XDG_STATE_HOME/mqctl/replay)")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	fl.StringVar(&opts.Via, "via", "client", "how the messages move: client (mqctl), shovel (a broker shovel; refuse if it cannot be done safely) or auto (a shovel where safe, else mqctl)")
	fl.BoolVar(&opts.Outcomes, "outcomes", false, "list every message's outcome in -o json, the replayed ones too")
	opts.Audit.register(fl)
	addBlockedTimeoutFlag(fl, &opts.BlockedTimeout)
	return cmd
}

func dlqReplayRun(ctx context.Context, opts *DLQReplayOptions) error {
	sel, what, err := opts.Select.parse(time.Now())
	if err != nil {
		return err
	}
	if !opts.DryRun {
		if err := refuseUnlessPrompting(opts.IO, opts.Yes, fmt.Sprintf("replay %s %s", what, opts.Queue)); err != nil {
			return err
		}
		if err := opts.Audit.check(); err != nil {
			return err
		}
	}
	s, err := opts.Settings()
	if err != nil {
		return err
	}
	spool, err := opts.Audit.spool(opts.DryRun)
	if err != nil {
		return err
	}
	defer spool.Remove()
	journal, err := openReplayJournal(opts, s.Vhost)
	if err != nil {
		return err
	}
	rep, runErr := replay(ctx, opts, s, sel, journal, spool)
	if jerr := journal.Close(runErr == nil); jerr != nil && runErr == nil {
		runErr = jerr
	}
	runErr, _ = blockedGaveUp(runErr, opts.BlockedTimeout)
	warnFilter(opts.IO, sel.Filter)
	if rep != nil && !opts.DryRun {
		if err := opts.Audit.record(s, rep.Audit("dlq replay", opts.Select.text(opts.Limit), runErr), runErr); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "warning: %s\n", s.Redactor.Redact(err.Error()))
		}
	}
	return finishReport(opts.IO, opts.Format, rep, runErr, "replay")
}

// openReplayJournal opens the journal of a replay that publishes (nil on
// a dry run), before anything connects: a journal that cannot be placed
// is a usage error whether or not the broker is up.
func openReplayJournal(opts *DLQReplayOptions, vhost string) (*dlq.Journal, error) {
	if opts.DryRun {
		return nil, nil
	}
	path := opts.Journal
	if path == "" {
		var err error
		if path, err = defaultJournal(opts.Env, vhost, opts.Queue); err != nil {
			return nil, err
		}
	}
	return dlq.OpenJournal(path)
}

// replay connects twice, the consumer apart from the publisher: a broker
// alarm blocks a connection that publishes, and with it any ack sent on
// that connection.
func replay(ctx context.Context, opts *DLQReplayOptions, s config.Settings, sel *dlq.Selection, journal *dlq.Journal, spool *dlq.Spool) (*dlq.Report, error) {
	link, err := guardDLQ(ctx, opts.IO, opts.Linkage, opts.Queue, opts.Force)
	if err != nil {
		return nil, err
	}
	src, err := opts.Dial(ctx, "mqctl dlq replay (consumer)")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if err := sel.ResolveIDs(ctx, src, opts.Queue); err != nil {
		return nil, err
	}
	dst, err := opts.Dial(ctx, "mqctl dlq replay (publisher)")
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	ro := dlq.ReplayOptions{
		Queue: opts.Queue, Selection: sel, To: opts.To, MaxReplays: opts.MaxReplays, Force: opts.Force,
		DryRun: opts.DryRun, Limit: opts.Limit, Rate: opts.Rate, Window: opts.Window,
		Journal: journal, Origins: link.Origins, Spool: spool, AllOutcomes: opts.Outcomes,
	}
	path := shovelPath{why: opts.shovelRefusal(sel, link)}
	if path.why == "" {
		path.api, err = broker.NewMgmtReader(s)
		if err == nil {
			path.why, err = dlq.ShovelsEnabled(ctx, path.api, s.Vhost)
		}
		if err != nil {
			path.why = "the management API did not answer: " + s.Redactor.Redact(err.Error())
		}
	}
	var preview *dlq.Report
	if path.why == "" || (!opts.DryRun && !opts.Yes) {
		// The check: a dry run reads the selected messages. It is what
		// the prompt states, and what a shovel may move.
		// A shovel that may run moves what the check spooled, in order.
		p := ro
		p.Selection, p.DryRun, p.Journal, p.Rate, p.Spool = sel.Clone(), true, nil, 0, nil
		p.AllOutcomes = opts.DryRun && opts.Outcomes
		if path.why == "" && !opts.DryRun {
			if p.Spool, err = opts.Audit.spool(false); err != nil {
				return nil, err
			}
			defer p.Spool.Remove()
		}
		progress := output.NewProgress(opts.IO, -1, "checking "+opts.Queue)
		p.Progress = progress
		preview, err = dlq.Replay(ctx, src, dst, p)
		progress.Finish()
		if err != nil {
			return nil, err
		}
		if path.why == "" {
			path.why = shovelCheck(preview, link.Origins[0])
		}
	}
	if opts.Via == "shovel" && path.why != "" {
		return nil, fail.Usagef("--via shovel: a shovel cannot replay this: %s; nothing moved", path.why)
	}
	if opts.DryRun {
		if path.why == "" {
			return withPath(preview, dlq.PathShovel, shovelReason(link.Origins[0])), nil
		}
		rep, err := dlq.Replay(ctx, src, dst, ro)
		return withPath(rep, dlq.PathClient, path.why), err
	}
	if !opts.Yes {
		how := ""
		if path.why == "" {
			how = " through a broker shovel"
		}
		if err := Confirm(opts.IO, false, replayPrompt(preview)+how); err != nil {
			return nil, err
		}
	}
	if path.why == "" {
		return shovelReplay(ctx, opts, s, path.api, src, preview, link.Origins[0], journal, spool)
	}
	progress := output.NewProgress(opts.IO, -1, "replaying "+opts.Queue)
	defer progress.Finish()
	ro.Progress = progress
	log := newLineLog(opts.IO.ErrOut, s.Redactor, "dlq replay")
	ctx = broker.WithBlockedPolicy(ctx, boundedBlockedPolicy(log, opts.BlockedTimeout))
	rep, err := dlq.Replay(ctx, src, dst, ro)
	return withPath(rep, dlq.PathClient, path.why), err
}

// shovelPath is the decision between a replay by mqctl and one by a
// broker shovel: why is "" when a shovel may move the messages.
type shovelPath struct {
	why string
	api *broker.MgmtReader
}

// shovelRefusal is why the selection may not go through a shovel, as far
// as the flags and the dead-letter linkage tell ("" when they allow it):
// a shovel moves the head of a queue, unchanged, to one queue.
func (opts *DLQReplayOptions) shovelRefusal(sel *dlq.Selection, link dlq.Linkage) string {
	switch {
	case opts.Via == "client":
		return "--via client"
	case !sel.All || sel.Filter != nil:
		return "the selection is by id, file, filter or group, not the whole DLQ or its first --limit messages"
	case opts.To != "":
		return "--to is given"
	case opts.Rate > 0:
		return "--rate paces each publish"
	case link.Origins == nil:
		return "the dead-letter linkage of " + opts.Queue + " is unknown (no management API)"
	case len(link.Origins) != 1:
		return fmt.Sprintf("%d queues dead-letter into %s (%s): each message goes back to its own", len(link.Origins), opts.Queue, strings.Join(link.Origins, ", "))
	case link.Type != "classic":
		return fmt.Sprintf("%s is a %s queue; a shovel replay needs a classic DLQ, which keeps the order of the messages the check returns", opts.Queue, cmp.Or(link.Type, "unknown"))
	}
	return ""
}

// shovelCheck is why the checked messages may not go through a shovel
// ("" when every one goes to origin): a shovel cannot skip a message
// the loop guard holds back, nor send one elsewhere.
func shovelCheck(checked *dlq.Report, origin string) string {
	// The outcomes kept are the ones a human must see: skipped or failing.
	for _, o := range checked.Outcomes {
		if o.Status != dlq.StatusWouldReplay || o.Destination != origin {
			return fmt.Sprintf("message %s %s (%s): a shovel cannot leave it out", o.ID, o.Status, cmp.Or(o.Reason, "to "+o.Destination))
		}
	}
	if checked.Skipped+checked.Failed > 0 {
		return fmt.Sprintf("%d message(s) skipped or failing: a shovel cannot leave them out", checked.Skipped+checked.Failed)
	}
	if checked.WouldReplay == 0 {
		return "nothing to move"
	}
	for _, m := range checked.Moved() {
		if m.Destination != origin {
			return fmt.Sprintf("%d message(s) would go to %s, not %s: a shovel cannot send them elsewhere", m.Count, m.Destination, origin)
		}
	}
	return ""
}

func shovelReason(origin string) string {
	return "the whole DLQ (or its first --limit messages) goes back to its one origin, " + origin + ", and the shovel plugin is enabled"
}

func withPath(rep *dlq.Report, path, why string) *dlq.Report {
	if rep != nil {
		rep.Path, rep.PathReason = path, why
	}
	return rep
}

// shovelReplay hands the checked messages to a broker shovel, with
// progress; an interrupt removes the shovel.
func shovelReplay(ctx context.Context, opts *DLQReplayOptions, s config.Settings, api *broker.MgmtReader, src *amqp.Connection, checked *dlq.Report, origin string, journal *dlq.Journal, spool *dlq.Spool) (*dlq.Report, error) {
	fmt.Fprintf(opts.IO.ErrOut, "note: replaying through a broker shovel: %s\n", shovelReason(origin))
	progress := output.NewProgress(opts.IO, int64(checked.WouldReplay), "replaying "+opts.Queue+" (shovel)")
	defer progress.Finish()
	rep, err := dlq.ShovelReplay(ctx, api, src, dlq.ShovelReplayOptions{
		Vhost: s.Vhost, Checked: checked, Dest: origin, Prefetch: opts.Window, Progress: progress, Journal: journal, Spool: spool,
	})
	return withPath(rep, dlq.PathShovel, shovelReason(origin)), err
}

// replayPrompt is the question before a replay, from its dry run: how
// many messages go to which queue, and what will not move.
func replayPrompt(rep *dlq.Report) string {
	moved := rep.Moved()
	sort.SliceStable(moved, func(i, j int) bool {
		a, b := moved[i], moved[j]
		return a.Count > b.Count || (a.Count == b.Count && a.Destination < b.Destination)
	})
	parts := make([]string, len(moved))
	for i, m := range moved {
		parts[i] = fmt.Sprintf("%s (%s)", m.Destination, thousands(m.Count))
	}
	q := fmt.Sprintf("replay %s of %s", messages(rep.WouldReplay), rep.Queue)
	if len(parts) > 0 {
		q += " to " + joinAnd(parts)
	}
	if notMoving := rep.Skipped + rep.Failed; notMoving > 0 {
		q += fmt.Sprintf(" (%s selected will not move: skipped or failing; see --dry-run)", thousands(notMoving))
	}
	return q
}

// joinAnd joins a, b and c.
func joinAnd(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

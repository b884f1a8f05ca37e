package cli

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// NewCmdDLQ builds `mqctl dlq` and its subcommands.
func NewCmdDLQ(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "See, export, replay and purge dead letters after a human has checked them",
		Long: `Dead-letter queues after a human has checked them: list them (ls), look
inside without consuming (show, export, or browse: a terminal UI), then move
exactly the checked messages back to the queue they died in (replay) or
remove exactly those (purge, archiving each message first).

How mqctl reads a DLQ without consuming it: one exclusive consumer with
manual acknowledgements reads the messages the queue held when the command
started (its depth by a passive declare bounds the read, so messages that
arrive later are never touched) and acknowledges only the messages it was
told to remove; closing the channel returns every other one to the queue. On
a classic queue a returned message goes back to its old position, so order
is kept; its redelivered flag is set. Limits:
  - while a command runs, the messages it has read are invisible to other
    consumers, and no other consumer can attach (exclusive);
  - the broker's consumer timeout (default 30 min) closes a channel that holds
    unacknowledged messages longer; they return to the queue and the command
    fails, so a DLQ too big to read in 30 min needs --limit;
  - on a quorum DLQ every peek counts toward its delivery limit (4.x sets 20 by
    default) and can drop messages: mqctl's DLQs are classic queues.

Guard rails: show, export, replay and purge refuse a queue that is not a
dead-letter queue (nothing dead-letters into it and mqctl's naming does not
make it one: the queues ` + "`mqctl dlq ls`" + ` lists) before reading a message, unless
--force; without the management API only the name is checked (X.dlq). Every
replay, purge and publish is appended to an audit trail: ` + "`mqctl dlq history`" + `.

Identity of a message: its message_id, else "sha256:" and a hash of its body
and properties (death headers left out, so the id survives a replay).

Why a message died is its newest death, from the broker's x-death and
mqctl's failure headers merged in time order; --groups groups the messages
by origin, reason and error; --where EXPR and --group KEY select on show,
export, replay and purge (see ` + "`mqctl dlq show --help`" + `).`,
		Example: `  mqctl dlq ls
  mqctl dlq show email.dlq --limit 20
  mqctl dlq show email.dlq --groups
  mqctl dlq browse email.dlq
  mqctl dlq replay email.dlq --group 3fa2c9d1 --dry-run
  mqctl dlq export email.dlq --out checked.jsonl
  mqctl dlq replay email.dlq --from checked.jsonl --yes
  mqctl dlq purge email.dlq --id 0b5c… --yes`,
	}
	cmd.AddCommand(
		NewCmdDLQList(f, nil),
		NewCmdDLQShow(f, nil),
		NewCmdDLQExport(f, nil),
		NewCmdDLQReplay(f, nil),
		NewCmdDLQPurge(f, nil),
		NewCmdDLQBrowse(f, nil),
		NewCmdDLQHistory(f, nil),
	)
	return cmd
}

// dialFunc opens one AMQP connection named name (the name shows in the
// management UI). Commands hold one instead of the Factory, so a test can
// give them a dialer that fails, or that must not be called.
type dialFunc func(ctx context.Context, name string) (*amqp.Connection, error)

// dialer is the Factory's AMQP dialer as a dialFunc; Dial bounds each
// node's attempt by the timeout, so a frozen first node still leaves time
// for the next.
func dialer(f *Factory) dialFunc {
	return func(ctx context.Context, name string) (*amqp.Connection, error) {
		d, err := f.Dialer(name)
		if err != nil {
			return nil, err
		}
		return d.Dial(ctx)
	}
}

// settingsOf hands out the Factory's settings, resolved when first
// asked for (a command that fails on its flags never reads them).
func settingsOf(f *Factory) func() (config.Settings, error) {
	return func() (config.Settings, error) { return f.Settings() }
}

// parseQueueArgs reads what every dlq subcommand on one queue takes
// alike: -o, and the queue from its one argument.
func parseQueueArgs(f *Factory, args []string, format *output.Format, queue *string) error {
	var err error
	if *format, err = f.Format(); err != nil {
		return err
	}
	*queue = args[0]
	return nil
}

// selectionFlags are replay's and purge's ways to name messages: one of
// --from, --id, --all, narrowed by --where and --group; --where or
// --group alone select among every message.
type selectionFlags struct {
	From   string
	IDs    []string
	All    bool
	Where  string
	Groups []string
}

func (s *selectionFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&s.From, "from", "", "JSONL file (from dlq export) listing the checked messages: one message per line, by id")
	fl.StringArrayVar(&s.IDs, "id", nil, "id, or unique start of an id, of a message to select (repeatable): every message with that id")
	fl.BoolVar(&s.All, "all", false, "select every message the queue holds when the command starts")
	registerFilterFlags(cmd, &s.Where, &s.Groups)
}

// registerFilterFlags adds --where and --group, which show and export
// take too.
func registerFilterFlags(cmd *cobra.Command, where *string, groups *[]string) {
	fl := cmd.Flags()
	fl.StringVar(where, "where", "", "select only messages for which the expr expression `EXPR` is true (fields: see mqctl dlq show --help)")
	fl.StringArrayVar(groups, "group", nil, "select only messages of the group with this `KEY`, as dlq show --groups prints it (repeatable)")
}

func (s *selectionFlags) parse(now time.Time) (*dlq.Selection, string, error) {
	n := 0
	for _, set := range []bool{s.From != "", len(s.IDs) > 0, s.All} {
		if set {
			n++
		}
	}
	filtered := s.Where != "" || len(s.Groups) > 0
	if n > 1 || (n == 0 && !filtered) {
		return nil, "", fail.Usagef("give exactly one of --from FILE, --id ID or --all, or select with --where EXPR or --group KEY alone")
	}
	filter, err := dlq.NewFilter(s.Where, s.Groups, now)
	if err != nil {
		return nil, "", err
	}
	sel, what, err := s.base()
	if err != nil {
		return nil, "", err
	}
	sel.Filter = filter
	prep := "in"
	if s.From != "" {
		prep = "from"
	}
	return sel, what + filterText(s.Where, s.Groups) + " " + prep, nil
}

// base is the selection by --from, --id or --all (all when none: the
// filter alone selects).
func (s *selectionFlags) base() (*dlq.Selection, string, error) {
	switch {
	case len(s.IDs) > 0:
		for _, id := range s.IDs {
			if strings.TrimSpace(id) == "" {
				return nil, "", fail.Usagef("--id: empty id")
			}
		}
		return dlq.SelectIDs(s.IDs), fmt.Sprintf("the messages with %d given id(s)", len(s.IDs)), nil
	case s.From != "":
		sel, err := dlq.ReadSelection(s.From)
		if err != nil {
			return nil, "", err
		}
		return sel, fmt.Sprintf("the %d message(s) listed in %s", sel.Size(), s.From), nil
	case s.All:
		return dlq.SelectAll(), "every message", nil
	}
	return dlq.SelectAll(), "the messages", nil
}

// filterText says what --where and --group narrow a selection to, for
// prompts.
func filterText(where string, groups []string) string {
	var parts []string
	if where != "" {
		parts = append(parts, fmt.Sprintf("matching --where %q", where))
	}
	if len(groups) > 0 {
		parts = append(parts, "of group "+strings.Join(groups, ", "))
	}
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, " and ")
}

// warnFilter tells on stderr how many messages a --where expression
// failed on (they were not selected).
func warnFilter(ios *iostreams.IOStreams, f *dlq.Filter) {
	if f == nil || f.Failed == 0 {
		return
	}
	fmt.Fprintf(ios.ErrOut, "warning: --where could not be evaluated on %d message(s), which were not selected; first: %v\n", f.Failed, f.FirstFailure)
}

// defaultJournal is where replay keeps its journal for a vhost and queue:
// under $XDG_STATE_HOME (default ~/.local/state), see dlq.JournalPath.
func defaultJournal(env config.LookupEnv, vhost, queue string) (string, error) {
	dir, err := stateHome(env, "the replay journal", "--journal FILE")
	if err != nil {
		return "", err
	}
	return dlq.JournalPath(dir, vhost, queue), nil
}

// linkageFunc answers what the dead-letter model says about a queue (see
// dlq.Linkage). Commands hold one instead of the Factory, so a test can
// answer without a broker.
type linkageFunc func(ctx context.Context, queue string) (dlq.Linkage, error)

// linkageOf asks the management API (one snapshot of the vhost, the model
// `dlq ls` and `backlog` use); when it does not answer, or does not list
// the queue, it falls back on what AMQP shows (mqctl's X.dlq naming), and
// the answer says so.
func linkageOf(f *Factory) linkageFunc {
	return func(ctx context.Context, queue string) (dlq.Linkage, error) {
		s, err := f.Settings()
		if err != nil {
			return dlq.Linkage{}, err
		}
		var why string
		api, err := newMgmtReader(s)
		if err == nil {
			var l dlq.Linkage
			l, err = dlq.DiscoverLinkage(ctx, backlog.HTTPSource{API: api, NoRates: true}, s.Vhost, queue)
			switch {
			case ctx.Err() != nil:
				return l, ctx.Err()
			case err == nil && l.Listed:
				return l, nil
			case err == nil:
				why = fmt.Sprintf("the management API does not list %s in vhost %s", queue, s.Vhost)
			}
		}
		if why == "" {
			why = "the management API did not answer (" + s.Redactor.Redact(err.Error()) + ")"
		}
		d, err := f.Dialer("mqctl dlq (check)")
		if err != nil {
			return dlq.Linkage{}, err
		}
		conn, err := d.Dial(ctx)
		if err != nil {
			return dlq.Linkage{}, err
		}
		defer conn.Close()
		exists, err := dlq.QueueExists(conn, queue)
		if err != nil {
			return dlq.Linkage{}, err
		}
		if !exists {
			return dlq.Linkage{}, fail.Usagef("queue %q not found in this vhost; `mqctl dlq ls` lists the dead-letter queues", queue)
		}
		return dlq.NamedLinkage(conn, queue, why)
	}
}

// guardDLQ is the check every dlq command on one queue makes before it
// reads a single message: a queue that is not a dead-letter queue is
// refused (exit 2) unless force, and reading a quorum DLQ is warned
// about. A nil linkage checks nothing (tests that stop before a broker).
func guardDLQ(ctx context.Context, ios *iostreams.IOStreams, linkage linkageFunc, queue string, force bool) (dlq.Linkage, error) {
	if linkage == nil {
		return dlq.Linkage{Queue: queue}, nil
	}
	l, err := linkage(ctx, queue)
	if err != nil {
		return l, err
	}
	if err := l.Refusal(); err != nil {
		if !force {
			return l, err
		}
		fmt.Fprintf(ios.ErrOut, "warning: --force: reading %s although it is not a dead-letter queue (%s)\n", queue, strings.TrimSuffix(l.DeadLettersTo, "."))
	} else if l.Note != "" {
		fmt.Fprintf(ios.ErrOut, "note: %s\n", l.Note)
	}
	if w := l.QuorumWarning(); w != "" {
		fmt.Fprintln(ios.ErrOut, "warning: "+w)
	}
	return l, nil
}

// text is the selection as the user gave it, for the audit trail:
// the selecting flags (and --limit), shell-quoted where needed. It holds
// flags only, never a connection setting, so never a secret.
func (s *selectionFlags) text(limit int) string {
	var parts []string
	if s.From != "" {
		parts = append(parts, "--from "+shellQuote(s.From))
	}
	for _, id := range s.IDs {
		parts = append(parts, "--id "+shellQuote(id))
	}
	if s.All {
		parts = append(parts, "--all")
	}
	if s.Where != "" {
		parts = append(parts, "--where "+shellQuote(s.Where))
	}
	for _, g := range s.Groups {
		parts = append(parts, "--group "+shellQuote(g))
	}
	if limit > 0 {
		parts = append(parts, "--limit "+strconv.Itoa(limit))
	}
	return strings.Join(parts, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:=@%+,-]+$`)

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// thousands writes n with thousands separators: 1,966.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// messages is "1 message" or "1,966 messages".
func messages(n int) string {
	if n == 1 {
		return "1 message"
	}
	return thousands(n) + " messages"
}

// refuseUnlessPrompting refuses a destructive run that may not ask (no
// terminal, no --yes) before anything connects; action says what was
// refused.
func refuseUnlessPrompting(ios *iostreams.IOStreams, yes bool, action string) error {
	if yes || ios.CanPrompt() {
		return nil
	}
	return Confirm(ios, false, action)
}

package cli

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQPurgeOptions is what `mqctl dlq purge` needs.
type DLQPurgeOptions struct {
	IO        *iostreams.IOStreams
	Dial      dialFunc
	Format    output.Format
	Queue     string
	Select    selectionFlags
	Archive   string
	NoArchive bool
	DryRun    bool
	Limit     int
	Yes       bool
	now       func() time.Time
}

// NewCmdDLQPurge builds `mqctl dlq purge`.
func NewCmdDLQPurge(f *Factory, runF func(*DLQPurgeOptions) error) *cobra.Command {
	opts := &DLQPurgeOptions{IO: f.IO, Dial: dialer(f), now: time.Now}
	cmd := &cobra.Command{
		Use:   "purge QUEUE (--from FILE | --id ID… | --all | --where EXPR | --group KEY)",
		Short: "Remove exactly the selected dead letters, archiving each first",
		Long: `Remove exactly the selected dead letters: messages not selected, and the
ones that arrived after the command started, stay in the queue in their order.

Each removed message is appended to an archive JSONL file (same format as
` + "`mqctl dlq export`" + `) and the file fsynced before the message is acked, so a
purge is never the end of a message's story: ` + "`mqctl publish --from ARCHIVE`" + `
puts the messages back. --no-archive drops them for good.

Selecting is as in ` + "`mqctl dlq replay`" + `: --from FILE, --id ID (a unique start
of an id is enough; an ambiguous one exits 2 listing the ids, before any
archive is written), --all, narrowed by --where EXPR and --group KEY, which
also select alone (fields and keys: ` + "`mqctl dlq show --help`" + `).

Asks for confirmation on a terminal; refuses without --yes otherwise (exit 2,
nothing changed). Exit 3 when a selected message was not found or failed.

Least permissions: read on the queue. RabbitMQ has no separate permission for
removing messages: whoever may consume from a DLQ may purge it (deny read on
it to prevent that); the archive still keeps what was removed.`,
		Example: `  mqctl dlq purge email.dlq --from checked.jsonl --yes
  mqctl dlq purge email.dlq --all --archive email-dlq-2026-05.jsonl --yes
  mqctl dlq purge email.dlq --id 7f3a9c --no-archive --yes
  mqctl dlq purge email.dlq --where 'reason == "expired" && age > duration("168h")' --yes
  mqctl dlq purge email.dlq --group 3fa2c9d1 --dry-run`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeDLQs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := parseQueueArgs(f, args, &opts.Format, &opts.Queue); err != nil {
				return err
			}
			if opts.NoArchive && opts.Archive != "" {
				return fail.Usagef("--archive and --no-archive exclude each other")
			}
			if opts.Limit < 0 {
				return fail.Usagef("--limit must not be negative")
			}
			if runF != nil {
				return runF(opts)
			}
			return dlqPurgeRun(cmd.Context(), opts)
		},
	}
	opts.Select.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&opts.Archive, "archive", "", "archive file to append removed messages to (default QUEUE.purged.TIMESTAMP.jsonl)")
	fl.BoolVar(&opts.NoArchive, "no-archive", false, "do not archive the removed messages (they are gone for good)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "show what would be removed; change nothing")
	fl.IntVar(&opts.Limit, "limit", 0, "remove at most this many messages (0: no limit)")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func dlqPurgeRun(ctx context.Context, opts *DLQPurgeOptions) error {
	sel, what, err := opts.Select.parse(opts.now())
	if err != nil {
		return err
	}
	if !opts.DryRun {
		action := fmt.Sprintf("remove %s %s", what, opts.Queue)
		if opts.NoArchive {
			action += " without archiving them"
		}
		if err := Confirm(opts.IO, opts.Yes, action); err != nil {
			return err
		}
	}
	var conn *amqp.Connection
	if len(opts.Select.IDs) > 0 {
		// Resolve id prefixes before an archive exists: an ambiguous one
		// stops the purge with nothing written.
		if conn, err = opts.Dial(ctx, "mqctl dlq purge"); err != nil {
			return err
		}
		defer conn.Close()
		if err := sel.ResolveIDs(ctx, conn, opts.Queue); err != nil {
			return err
		}
	}
	archive, err := openPurgeArchive(opts)
	if err != nil {
		return err
	}
	if archive != nil {
		defer archive.Close()
	}
	if conn == nil {
		if conn, err = opts.Dial(ctx, "mqctl dlq purge"); err != nil {
			return err
		}
		defer conn.Close()
	}
	progress := output.NewProgress(opts.IO, int64(max(sel.Size(), -1)), "purging "+opts.Queue)
	rep, runErr := dlq.Purge(ctx, conn, dlq.PurgeOptions{
		Queue: opts.Queue, Selection: sel, Archive: archive, DryRun: opts.DryRun, Limit: opts.Limit,
		Batch: 512, Progress: progress,
	})
	progress.Finish()
	warnFilter(opts.IO, sel.Filter)
	return finishReport(opts.IO, opts.Format, rep, runErr, "purge")
}

// openPurgeArchive opens the archive of a purge that removes and keeps
// (nil on a dry run or with --no-archive).
func openPurgeArchive(opts *DLQPurgeOptions) (*dlq.Archive, error) {
	if opts.DryRun || opts.NoArchive {
		return nil, nil
	}
	path := opts.Archive
	if path == "" {
		path = dlq.ArchivePath(opts.Queue, opts.now())
	}
	return dlq.OpenArchive(path)
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQPurgeOptions is what `mqctl dlq purge` needs.
type DLQPurgeOptions struct {
	IO *iostreams.IOStreams
	// Settings give the broker and vhost of the audit record.
	Settings func() (config.Settings, error)
	Dial     dialFunc
	// Linkage checks that Queue is a dead-letter queue before any message
	// is read.
	Linkage   linkageFunc
	Audit     auditTrail
	Force     bool
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
	opts := &DLQPurgeOptions{IO: f.IO, Settings: settingsOf(f), Dial: dialer(f), Linkage: linkageOf(f),
		Audit: auditTrail{Env: f.Env}, now: time.Now}
	cmd := &cobra.Command{
		Use:   "purge QUEUE (--from FILE | --id ID… | --all | --where EXPR | --group KEY)",
		Short: "Remove exactly the selected dead letters, archiving each first",
		Long: `Remove exactly the selected dead letters: messages not selected, and the
ones that arrived after the command started, stay in the queue in their order.

Each removed message is appended to an archive JSONL file (same format as
` + "`mqctl dlq export`" + `) and the file fsynced before the message is acked, so a
purge is never the end of a message's story: ` + "`mqctl publish --from ARCHIVE`" + `
puts the messages back. --no-archive drops them for good. A purge that
removed nothing leaves no archive file behind.

Selecting is as in ` + "`mqctl dlq replay`" + `: --from FILE, --id ID (a unique start
of an id is enough; an ambiguous one exits 2 listing the ids, before any
archive is written), --all, narrowed by --where EXPR and --group KEY, which
also select alone (fields and keys: ` + "`mqctl dlq show --help`" + `).

Asks for confirmation on a terminal, stating how many messages go and to
which archive (counted by a dry run first); refuses without --yes otherwise
(exit 2, nothing changed). Exit 3 when a selected message was not found or
failed.

QUEUE must be a dead-letter queue (see ` + "`mqctl dlq replay --help`" + `): any other
queue is refused (exit 2) before a message is read, unless --force. Every
purge that is not a dry run appends one JSON line to the audit trail
(--audit-log; see ` + "`mqctl dlq history`" + `), with each removed message's id and
body SHA-256; a trail that cannot be written refuses the purge (exit 2).

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
	fl.BoolVar(&opts.Force, "force", false, "purge even a queue that is not a dead-letter queue")
	opts.Audit.register(fl)
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
		if err := refuseUnlessPrompting(opts.IO, opts.Yes, action); err != nil {
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
	rep, runErr := purge(ctx, opts, sel, spool)
	warnFilter(opts.IO, sel.Filter)
	if rep != nil && !opts.DryRun {
		if err := opts.Audit.record(s, rep.Audit("dlq purge", opts.Select.text(opts.Limit), runErr), runErr); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "warning: %s\n", s.Redactor.Redact(err.Error()))
		}
	}
	return finishReport(opts.IO, opts.Format, rep, runErr, "purge")
}

// purge checks the queue, resolves id prefixes and asks (all before an
// archive exists: a refusal writes nothing), then purges.
func purge(ctx context.Context, opts *DLQPurgeOptions, sel *dlq.Selection, spool *dlq.Spool) (*dlq.Report, error) {
	if _, err := guardDLQ(ctx, opts.IO, opts.Linkage, opts.Queue, opts.Force); err != nil {
		return nil, err
	}
	conn, err := opts.Dial(ctx, "mqctl dlq purge")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := sel.ResolveIDs(ctx, conn, opts.Queue); err != nil {
		return nil, err
	}
	path := purgeArchivePath(opts)
	po := dlq.PurgeOptions{Queue: opts.Queue, Selection: sel, DryRun: opts.DryRun, Limit: opts.Limit, Batch: 512, Spool: spool}
	if !opts.DryRun && !opts.Yes {
		preview := po
		preview.Selection, preview.DryRun, preview.Spool = sel.Clone(), true, nil
		progress := output.NewProgress(opts.IO, -1, "counting "+opts.Queue)
		preview.Progress = progress
		rep, err := dlq.Purge(ctx, conn, preview)
		progress.Finish()
		if err != nil {
			return nil, err
		}
		if err := Confirm(opts.IO, false, purgePrompt(rep, path)); err != nil {
			return nil, err
		}
	}
	if path != "" {
		_, statErr := os.Stat(path)
		created := errors.Is(statErr, fs.ErrNotExist)
		if po.Archive, err = dlq.OpenArchive(path); err != nil {
			return nil, err
		}
		defer func() {
			po.Archive.Close()
			// A purge that removed nothing leaves no empty archive.
			if created && emptyFile(path) {
				os.Remove(path)
			}
		}()
	}
	progress := output.NewProgress(opts.IO, -1, "purging "+opts.Queue)
	po.Progress = progress
	rep, err := dlq.Purge(ctx, conn, po)
	progress.Finish()
	if rep != nil && rep.Purged == 0 && path != "" {
		rep.Archive = ""
	}
	return rep, err
}

// purgePrompt is the question before a purge, from its dry run.
func purgePrompt(rep *dlq.Report, archive string) string {
	q := fmt.Sprintf("remove %s of %s", messages(rep.WouldPurge), rep.Queue)
	if archive == "" {
		return q + " for good, without archiving them"
	}
	return q + ", archiving them to " + archive
}

func emptyFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Size() == 0
}

// purgeArchivePath is the archive of a purge that removes and keeps (""
// on a dry run or with --no-archive): --archive, else
// QUEUE.purged.TIMESTAMP.jsonl in the working directory.
func purgeArchivePath(opts *DLQPurgeOptions) string {
	if opts.DryRun || opts.NoArchive {
		return ""
	}
	if opts.Archive != "" {
		return opts.Archive
	}
	return dlq.ArchivePath(opts.Queue, opts.now())
}

package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// DLQExportOptions is what `mqctl dlq export` needs.
type DLQExportOptions struct {
	IO   *iostreams.IOStreams
	Dial dialFunc
	// Linkage checks that Queue is a dead-letter queue before any message
	// is read; Force reads it anyway.
	Linkage linkageFunc
	Force   bool
	Format  output.Format
	Queue   string
	Out     string
	Where   string
	Groups  []string
}

// NewCmdDLQExport builds `mqctl dlq export`.
func NewCmdDLQExport(f *Factory, runF func(*DLQExportOptions) error) *cobra.Command {
	opts := &DLQExportOptions{IO: f.IO, Dial: dialer(f), Linkage: linkageOf(f)}
	cmd := &cobra.Command{
		Use:   "export QUEUE --out FILE.jsonl",
		Short: "Write every dead letter to a JSONL file, losslessly, without consuming",
		Long: `Write every message of a dead-letter queue to a JSONL file, one message per
line, without consuming any (the peek method of ` + "`mqctl dlq --help`" + `).

Each line is lossless: body in base64, every property, every header with its
AMQP type ({"type": "int64", "value": 3}; types bool, int8, uint8, int16,
uint16, int32, uint32, int64, float32, float64, decimal, string, bytes,
timestamp, array, table, void), plus the id, the death summary (origin queue,
reason, count, first and last death) and the replay count.

This file is what a human checks: delete the lines of the messages that must
not move, then pass it to ` + "`mqctl dlq replay --from`" + ` or ` + "`mqctl dlq purge --from`" + `;
those take the message content from the queue and use the file only for the
ids. ` + "`mqctl publish --from`" + ` publishes the file's content itself.

--where EXPR and --group KEY write only the messages they select (see
` + "`mqctl dlq show --help`" + ` for the fields and the group keys); every message is
still read, and none is consumed. Such a file is a ready selection for
replay --from or purge --from.

The file is written as FILE.partial and renamed when complete; an existing
FILE is never overwritten (exit 2), a FILE.partial a killed export left is
replaced, and a FILE whose directory does not exist is exit 2 before the
queue is read.

A queue that is not a dead-letter queue is refused (exit 2) before a message
is read, unless --force (see ` + "`mqctl dlq show --help`" + `).

Least permissions: read on the queue.`,
		Example: `  mqctl dlq export email.dlq --out email-dlq.jsonl
  jq -r '.death.reason' email-dlq.jsonl | sort | uniq -c
  mqctl dlq export email.dlq --out timeouts.jsonl --where 'error contains "timeout" && age > duration("1h")'
  mqctl dlq export email.dlq --out group.jsonl --group 3fa2c9d1`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeDLQs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := parseQueueArgs(f, args, &opts.Format, &opts.Queue); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return dlqExportRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Out, "out", "", "file to write (JSONL; must not exist)")
	_ = cmd.MarkFlagRequired("out")
	registerFilterFlags(cmd, &opts.Where, &opts.Groups)
	cmd.Flags().BoolVar(&opts.Force, "force", false, "export even a queue that is not a dead-letter queue")
	return cmd
}

type dlqExportView struct {
	Queue    string `json:"queue"`
	File     string `json:"file"`
	Depth    int    `json:"depth"`
	Read     int    `json:"read"`
	Exported int    `json:"exported"`
}

func (v dlqExportView) Table() output.TableData {
	footer := "no message was consumed"
	if v.Read != v.Exported {
		footer = fmt.Sprintf("%d of the %d message(s) read were selected; no message was consumed", v.Exported, v.Read)
	}
	return output.TableData{
		Headers: []string{"queue", "file", "exported"},
		Columns: map[string]output.Column{"queue": {Keep: true}, "file": {Keep: true}},
		Rows:    [][]string{{v.Queue, v.File, fmt.Sprint(v.Exported)}},
		Footer:  footer,
	}
}

func dlqExportRun(ctx context.Context, opts *DLQExportOptions) error {
	filter, err := dlq.NewFilter(opts.Where, opts.Groups, time.Now())
	if err != nil {
		return err
	}
	if _, err := guardDLQ(ctx, opts.IO, opts.Linkage, opts.Queue, opts.Force); err != nil {
		return err
	}
	conn, err := opts.Dial(ctx, "mqctl dlq export")
	if err != nil {
		return err
	}
	defer conn.Close()
	progress := output.NewProgress(opts.IO, -1, "exporting "+opts.Queue)
	res, err := dlq.Export(ctx, conn, opts.Queue, opts.Out, filter, progress)
	progress.Finish()
	warnFilter(opts.IO, filter)
	if err != nil {
		return err
	}
	return output.Print(opts.IO, opts.Format, dlqExportView{Queue: opts.Queue, File: opts.Out, Depth: res.Depth, Read: res.Read, Exported: res.Selected})
}

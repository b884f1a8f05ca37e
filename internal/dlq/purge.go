package dlq

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// PurgeOptions configure Purge.
type PurgeOptions struct {
	Queue     string
	Selection *Selection
	// Archive receives every removed message before its ack; nil means
	// --no-archive.
	Archive *Archive
	DryRun  bool
	Limit   int
	// Batch is how many messages share one fsync and then get acked.
	Batch    int
	Progress Progress
}

// Purge removes exactly the selected messages present at the start.
// Each is written to the archive, and the archive fsynced, before the
// message is acked; the rest stay in the queue in their order.
func Purge(ctx context.Context, conn *amqp.Connection, o PurgeOptions) (*Report, error) {
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	o.Batch = max(o.Batch, 1)
	sc, err := openScanner(ctx, conn, o.Queue, 2*o.Batch+64)
	if err != nil {
		return nil, err
	}
	defer sc.close()
	rep := &Report{Queue: o.Queue, Depth: sc.Total, DryRun: o.DryRun, Outcomes: []Outcome{}}
	if o.Archive != nil {
		rep.Archive = o.Archive.Path
	}
	type pending struct {
		tag uint64
		out int
	}
	var batch []pending
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if o.Archive != nil {
			if err := o.Archive.Sync(); err != nil {
				for _, p := range batch {
					rep.Outcomes[p.out].Status, rep.Outcomes[p.out].Reason = StatusFailed, "archive not written; message kept"
					rep.Failed++
				}
				batch = batch[:0]
				return err
			}
		}
		for _, p := range batch {
			sc.ack(p.tag)
		}
		err := sc.flushAcks()
		for _, p := range batch {
			out := &rep.Outcomes[p.out]
			if err != nil {
				out.Status, out.Reason = StatusFailed, "archived, but the ack did not reach the broker: it stays in the queue"
				rep.Failed++
				continue
			}
			out.Status = StatusPurged
			rep.Purged++
		}
		o.Progress.Add(len(batch))
		batch = batch[:0]
		return err
	}
	// closed is always ready: next returns scanWoke when no delivery is
	// waiting, which is when a batch is worth syncing.
	closed := make(chan struct{})
	close(closed)
	taken := map[string]bool{}
	selected := 0
	scanned := true
	var runErr error
	for {
		if len(batch) >= o.Batch {
			if runErr = flush(); runErr != nil {
				break
			}
		}
		if o.Limit > 0 && selected >= o.Limit {
			scanned = sc.seen >= sc.Total
			break
		}
		var wake <-chan struct{}
		if len(batch) > 0 {
			wake = closed
		}
		d, gen, st, err := sc.next(ctx, wake)
		if err != nil {
			runErr = err
			break
		}
		if st == scanDone {
			break
		}
		if st == scanWoke {
			if runErr = flush(); runErr != nil {
				break
			}
			continue
		}
		rep.Scanned++
		rec, err := FromDelivery(o.Queue, d)
		if err != nil || !o.Selection.Take(rec.ID) {
			if runErr = sc.hold(gen); runErr != nil {
				break
			}
			continue
		}
		taken[rec.ID] = true
		selected++
		out := Outcome{ID: rec.ID, ReplayCount: rec.ReplayCount}
		if o.DryRun {
			out.Status = StatusWouldPurge
			rep.Outcomes = append(rep.Outcomes, out)
			if runErr = sc.hold(gen); runErr != nil {
				break
			}
			continue
		}
		if o.Archive != nil {
			if err := o.Archive.Write(rec); err != nil {
				runErr = err
				break
			}
		}
		rep.Outcomes = append(rep.Outcomes, out)
		batch = append(batch, pending{tag: d.DeliveryTag, out: len(rep.Outcomes) - 1})
	}
	if err := flush(); err != nil && runErr == nil {
		runErr = err
	}
	if scanned && runErr == nil {
		rep.NotFound = o.Selection.Untaken(taken)
	}
	if rep.NotFound == nil {
		rep.NotFound = []string{}
	}
	if err := sc.close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("return unselected messages to %q: %w", o.Queue, err)
	}
	return rep, runErr
}

package dlq

import (
	"context"

	"github.com/mqctl/mqctl/internal/audit"
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
	Batch int
	// Progress hears of every message read, out of the depth at the start.
	Progress Progress
	// Spool, when not nil, receives every outcome for the audit trail
	// (the caller removes it); AllOutcomes keeps every outcome in the
	// report's Outcomes too, the purged ones included.
	Spool       *Spool
	AllOutcomes bool
}

// Purge removes exactly the selected messages present at the start.
// Each is written to the archive, and the archive fsynced, before the
// message is acked; the rest stay in the queue in their order.
func Purge(ctx context.Context, conn *amqp.Connection, o PurgeOptions) (*Report, error) {
	o.Batch = max(o.Batch, 1)
	s, err := openSweep(ctx, conn, o.Queue, 2*o.Batch+64, o.Selection, o.Limit,
		sweepReport{dryRun: o.DryRun, every: o.AllOutcomes, spool: o.Spool}, o.Progress)
	if err != nil {
		return nil, err
	}
	defer s.sc.close()
	if o.Archive != nil {
		s.rep.Archive = o.Archive.Path
	}
	return s.rep, runSweep(ctx, s, &purger{sweep: s, o: o})
}

// purger is the mover of a purge: it archives each selected message and
// acks a batch of them after the fsync that covers it.
type purger struct {
	*sweep
	o PurgeOptions
	// batch are the messages archived since the last fsync.
	batch []archived
}

type archived struct {
	tag uint64
	out Outcome
}

func (p *purger) read(d amqp.Delivery) (Record, string, error) {
	r, err := FromDelivery(p.o.Queue, d)
	return r, r.ID, err
}

func (p *purger) move(_ context.Context, d amqp.Delivery, _ int, r Record) (verdict, error) {
	out := Outcome{ID: r.ID, ReplayCount: r.ReplayCount, BodySHA256: audit.BodyHash(d.Body)}
	if p.o.DryRun {
		out.Status = StatusWouldPurge
		p.rep.Record(out)
		return staysCounted, nil
	}
	if p.o.Archive != nil {
		if err := p.o.Archive.Write(r); err != nil {
			return stays, err
		}
	}
	p.batch = append(p.batch, archived{tag: d.DeliveryTag, out: out})
	return moving, nil
}

func (p *purger) full() bool { return len(p.batch) >= p.o.Batch }

func (p *purger) wake() <-chan struct{} {
	if len(p.batch) > 0 {
		return fired
	}
	return nil
}

func (p *purger) settle(context.Context, bool) error { return p.flush() }

func (p *purger) finish(_ context.Context, runErr error) error {
	if err := p.flush(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// flush fsyncs the archive, then acks the batch: a message leaves the
// queue only once its archived copy is on disk.
func (p *purger) flush() error {
	if len(p.batch) == 0 {
		return nil
	}
	defer func() { p.batch = p.batch[:0] }()
	if p.o.Archive != nil {
		if err := p.o.Archive.Sync(); err != nil {
			for _, a := range p.batch {
				a.out.Status, a.out.Reason = StatusFailed, "archive not written; message kept"
				p.rep.Record(a.out)
			}
			return err
		}
	}
	for _, a := range p.batch {
		p.ack(a.tag, a.out)
	}
	return p.sendAcks(StatusPurged, "archived, but the ack did not reach the broker: it stays in the queue")
}

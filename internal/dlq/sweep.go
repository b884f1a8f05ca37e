package dlq

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A sweep is the scan replay and purge share: it reads once each message
// the queue held when it started (see scanner), hands the selected ones
// to a mover, leaves every other one where it is, and stops early at
// --limit. It keeps what both report alike: depth, messages read, the
// selected ids the queue did not hold, and the acks of the messages whose
// copy is safe.
type sweep struct {
	sc    *scanner
	rep   *Report
	sel   *Selection
	limit int // selected messages to take at most; 0: no limit
	// taken holds the ids a message was selected by, for NotFound: only
	// a selection by id has ids to miss (see Selection.Untaken), so a
	// whole-queue or filtered run keeps none.
	taken    map[string]bool
	selected int
	// acked are the outcomes whose acks are recorded, not yet sent.
	acked []Outcome
	// progress counts the messages read, out of the depth at the start.
	progress Progress
}

// A mover is what a sweep does with the messages it selects: replay
// publishes them, purge archives them. T is what the mover reads of a
// delivery (replay needs less than the lossless Record).
type mover[T any] interface {
	// read decodes a delivery and its id; an error (headers that do not
	// decode) makes it unselectable: it stays where it is.
	read(d amqp.Delivery) (T, string, error)
	// move takes one selected message and says what became of it.
	move(ctx context.Context, d amqp.Delivery, gen int, v T) (verdict, error)
	// full says the work in hand must be settled before the next read.
	full() bool
	// wake fires when work in hand is worth settling before the next
	// delivery arrives; nil when there is none.
	wake() <-chan struct{}
	// settle settles work in hand: all that full asks for when block,
	// else only what is ready without waiting.
	settle(ctx context.Context, block bool) error
	// finish settles everything left when the scan ends; runErr is the
	// scan's error, and finish returns it or else its own.
	finish(ctx context.Context, runErr error) error
}

// A verdict is what a mover did with a selected message.
type verdict int

const (
	// stays: left in the queue (skipped, or failed before it moved), not
	// counted toward --limit.
	stays verdict = iota
	// staysCounted: left in the queue and counted toward --limit (what
	// a dry run would move).
	staysCounted
	// moving: counted toward --limit; the mover acks the message once its
	// copy is safe, or leaves it unacked.
	moving
)

// fired is always ready: a mover with work in hand returns it from wake,
// so the scan comes back as soon as no delivery is waiting, which is when
// that work is worth settling.
var fired = func() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// sweepReport says what a sweep's report keeps: every outcome in
// memory (every), and every outcome in a spool for the audit (spool).
type sweepReport struct {
	dryRun bool
	every  bool
	spool  *Spool
}

func openSweep(ctx context.Context, conn *amqp.Connection, queue string, prefetch int, sel *Selection, limit int, kept sweepReport, progress Progress) (*sweep, error) {
	sc, err := openScanner(ctx, conn, queue, prefetch)
	if err != nil {
		return nil, err
	}
	if progress == nil {
		progress = noProgress{}
	}
	setTotal(progress, sc.Total)
	s := &sweep{sc: sc, sel: sel, limit: limit, progress: progress,
		rep: newReport(queue, sc.Total, kept.dryRun, kept.every, kept.spool)}
	if sel.byID() {
		s.taken = map[string]bool{}
	}
	return s, nil
}

// setTotal tells a progress that can show a total how many messages the
// scan will read at most: the depth at the start.
func setTotal(p Progress, total int) {
	if t, ok := p.(interface{ SetTotal(int64) }); ok {
		t.SetTotal(int64(total))
	}
}

// runSweep scans with m until every message present at the start was
// read, the limit is met, or something fails; then m settles what it
// holds, and closing the scanner returns every unacked message to the
// queue. NotFound is known only when the whole queue was read.
func runSweep[T any](ctx context.Context, s *sweep, m mover[T]) error {
	complete, err := scan(ctx, s, m)
	err = m.finish(ctx, err)
	if complete && err == nil {
		s.rep.NotFound = s.sel.Untaken(s.taken)
	}
	if s.rep.NotFound == nil {
		s.rep.NotFound = []string{}
	}
	if cerr := s.sc.close(); cerr != nil && err == nil {
		err = fmt.Errorf("return unselected messages to %q: %w", s.sc.queue, cerr)
	}
	return err
}

// scan is the loop of runSweep; complete reports whether it read every
// message present at the start.
func scan[T any](ctx context.Context, s *sweep, m mover[T]) (complete bool, err error) {
	for {
		if m.full() {
			if err := m.settle(ctx, true); err != nil {
				return false, err
			}
			continue
		}
		if s.limit > 0 && s.selected >= s.limit {
			return s.sc.seen >= s.sc.Total, nil
		}
		d, gen, st, err := s.sc.next(ctx, m.wake())
		switch {
		case err != nil:
			return false, err
		case st == scanDone:
			return true, nil
		case st == scanWoke:
			if err := m.settle(ctx, false); err != nil {
				return false, err
			}
			continue
		}
		if err := offer(ctx, s, m, d, gen); err != nil {
			return false, err
		}
	}
}

// offer hands a delivery to m when the selection takes it; whatever m
// does not move is held, to return to the queue at the end.
func offer[T any](ctx context.Context, s *sweep, m mover[T], d amqp.Delivery, gen int) error {
	s.rep.Scanned++
	s.progress.Add(1)
	v, id, err := m.read(d)
	if err != nil || !s.sel.take(d, id) {
		return s.sc.hold(gen)
	}
	if s.taken != nil {
		s.taken[id] = true
	}
	vd, err := m.move(ctx, d, gen, v)
	if err != nil {
		return err
	}
	if vd != stays {
		s.selected++
	}
	if vd != moving {
		return s.sc.hold(gen)
	}
	return nil
}

// ack records the ack of a message whose copy is safe (confirmed, or
// fsynced); sendAcks sends it.
func (s *sweep) ack(tag uint64, out Outcome) {
	s.sc.ack(tag)
	s.acked = append(s.acked, out)
}

// sendAcks sends the recorded acks and settles their outcomes: done when
// the acks went out, failed with lost when they did not (the channel is
// gone, and its unacked messages return to the queue).
func (s *sweep) sendAcks(done, lost string) error {
	err := s.sc.flushAcks()
	for _, o := range s.acked {
		if err != nil {
			o.Status, o.Reason = StatusFailed, lost
		} else {
			o.Status, o.Reason = done, ""
		}
		s.rep.Record(o)
	}
	s.acked = s.acked[:0]
	return err
}

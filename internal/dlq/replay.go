package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/fail"
)

// ReplayOptions configure Replay.
type ReplayOptions struct {
	Queue     string
	Selection *Selection
	// To overrides the destination queue; empty means each message's
	// origin queue.
	To         string
	MaxReplays int
	Force      bool // replay even above MaxReplays
	DryRun     bool
	Limit      int     // at most this many messages (0: no limit)
	Rate       float64 // messages per second (0: unlimited)
	// Window is how many publishes await their confirm at once.
	Window  int
	Journal *Journal
	// Spool, when not nil, receives every outcome for the audit trail
	// (the caller removes it); AllOutcomes keeps every outcome in the
	// report's Outcomes too, the replayed ones included.
	Spool       *Spool
	AllOutcomes bool
	// Progress hears of every message read, out of the depth at the start.
	Progress Progress
	Now      func() time.Time
	// Origins are the queues that dead-letter into Queue, from the
	// dead-letter model (Linkage.Origins); nil when unknown. Unless To or
	// Force is given, a message whose claimed origin is not one of them
	// is skipped: its headers send it somewhere this DLQ never received
	// dead letters from.
	Origins []string
}

// Replay republishes the selected dead letters of o.Queue to the queue
// they died in (default exchange, routing key = that queue) or to o.To,
// with confirms and mandatory, and acks each dead letter only after its
// publish was confirmed and not returned. Messages not selected, not
// replayable, or that arrived after the start stay in the queue, in their
// order. src carries the consumer, dst the publisher: while an alarm
// blocks the publishing connection, the consumer's acks still flow.
func Replay(ctx context.Context, src, dst *amqp.Connection, o ReplayOptions) (*Report, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Window = max(o.Window, 1)
	if o.To == o.Queue && o.To != "" {
		return nil, fail.Usagef("--to %s is the dead-letter queue itself", o.To)
	}
	s, err := openSweep(ctx, src, o.Queue, 2*o.Window+64, o.Selection, o.Limit,
		sweepReport{dryRun: o.DryRun, every: o.AllOutcomes, spool: o.Spool}, o.Progress)
	if err != nil {
		return nil, err
	}
	defer s.sc.close()
	s.rep.PossibleDuplicates = o.Journal.earlier()
	r := &replayer{sweep: s, o: o, pace: pacer{rate: o.Rate}, maxReady: 128, dst: dst, routes: map[string]string{}}
	if o.Rate > 0 {
		r.maxReady = 1 // paced: each message goes out when its time comes
	}
	if !o.DryRun {
		if r.pub, err = broker.NewPublisher(dst, o.Window); err != nil {
			return s.rep, err
		}
		defer r.pub.Close()
	}
	return s.rep, runSweep(ctx, s, r)
}

// replayer is the mover of a replay. A selected dead letter goes through
// three stages: ready (prepared, paced), journaled and published
// (inflight, awaiting its confirm), then acked through the sweep once the
// confirm is positive. Published and not yet acked stays within the
// window.
type replayer struct {
	*sweep
	o   ReplayOptions
	pub *broker.Publisher // nil on a dry run
	// dst is the publishing connection; a dry run looks up destinations
	// on it, and routes caches why one would fail ("" when it routes).
	dst      *amqp.Connection
	routes   map[string]string
	pace     pacer
	maxReady int
	// ready are selected deliveries waiting to be published: the
	// deliveries at hand are journaled with one write, then published.
	ready []prepared
	// inflight are the publishes awaiting their confirm, oldest first.
	inflight []flight
}

type prepared struct {
	d   amqp.Delivery
	gen int
	out Outcome
}

type flight struct {
	tag  uint64
	gen  int
	conf *broker.Confirmation
	out  Outcome
}

// ackLost is the reason of a replayed message whose ack was lost.
const ackLost = "published, but the dead letter could not be acked: it stays in the DLQ and the origin queue holds a copy"

// replayee is what replay reads of a dead letter: its id, the queue it
// died in, and how often it was replayed.
type replayee struct {
	ID          string
	Origin      string
	ReplayCount int64
}

// read decodes of the death headers only what replay uses: the origin,
// which is the queue of the newest death (see Death.OriginQueue), not the
// whole history and summary that show and export need.
func (r *replayer) read(d amqp.Delivery) (replayee, string, error) {
	if d.MessageId == "" {
		// The id is a hash of the Record, built as export builds it.
		s, err := Summarize(r.o.Queue, d)
		return replayee{ID: s.ID, Origin: s.Death.OriginQueue, ReplayCount: s.ReplayCount}, s.ID, err
	}
	return replayee{ID: d.MessageId, Origin: originOf(d.Headers), ReplayCount: replayCount(d.Headers)}, d.MessageId, nil
}

// move leaves a message that may not be replayed where it is, counts
// what a dry run would replay, and prepares the rest, paced.
func (r *replayer) move(ctx context.Context, d amqp.Delivery, gen int, s replayee) (verdict, error) {
	out := Outcome{ID: s.ID, Destination: destination(r.o.To, Death{OriginQueue: s.Origin}), ReplayCount: s.ReplayCount, BodySHA256: audit.BodyHash(d.Body)}
	if out.Status, out.Reason = r.refusal(out, s.Origin); out.Status != "" {
		r.rep.Record(out)
		return stays, nil
	}
	if r.o.DryRun {
		out.Status = StatusWouldReplay
		why, err := r.wouldFail(out.Destination)
		if err != nil {
			return stays, err
		}
		if why != "" {
			out.Status, out.Reason = StatusWouldFail, why
		}
		r.rep.Record(out)
		return staysCounted, nil
	}
	if err := r.pace.wait(ctx); err != nil {
		return stays, err
	}
	r.ready = append(r.ready, prepared{d: d, gen: gen, out: out})
	return moving, nil
}

// refusal is why a message may not be replayed (skipped: the loop guard,
// or an origin this DLQ has no link from; failed: nowhere to go), or ""
// when it may.
func (r *replayer) refusal(out Outcome, origin string) (status, reason string) {
	switch {
	case out.ReplayCount >= int64(r.o.MaxReplays) && !r.o.Force:
		return StatusSkipped, fmt.Sprintf("replayed %d times already (--max-replays %d); it keeps failing: check it, or pass --force", out.ReplayCount, r.o.MaxReplays)
	case out.Destination == "":
		return StatusFailed, "no origin queue in x-death or mqctl headers; pass --to QUEUE"
	case out.Destination == r.o.Queue:
		return StatusFailed, "origin is this dead-letter queue itself; pass --to QUEUE"
	case r.o.To == "" && !r.o.Force && r.o.Origins != nil && !slices.Contains(r.o.Origins, origin):
		return StatusSkipped, ForeignOrigin(r.o.Queue, origin, r.o.Origins)
	}
	return "", ""
}

// ForeignOrigin is the reason a message claiming origin is not replayed
// out of dlq, whose origins are origins.
func ForeignOrigin(dlq, origin string, origins []string) string {
	from := "no queue dead-letters into it now"
	if len(origins) > 0 {
		from = "its origins are " + strings.Join(origins, ", ")
	}
	return fmt.Sprintf("claims origin %s (mqctl-origin-queue or x-death), but %s does not dead-letter into %s (%s): check where it belongs, then pass --to QUEUE, or --force to send it to %s", origin, origin, dlq, from, origin)
}

// wouldFail is why a dry run's publish to the default exchange with
// routing key dest would fail ("" when it would route): the queue does
// not exist, and a mandatory publish would come back NO_ROUTE.
func (r *replayer) wouldFail(dest string) (string, error) {
	if r.dst == nil {
		return "", nil
	}
	why, ok := r.routes[dest]
	if ok {
		return why, nil
	}
	exists, err := QueueExists(r.dst, dest)
	if err != nil {
		return "", err
	}
	if !exists {
		why = fmt.Sprintf("would fail: queue %s does not exist (the default exchange routes nowhere); pass --to QUEUE", dest)
	}
	r.routes[dest] = why
	return why, nil
}

func (r *replayer) full() bool {
	return len(r.inflight)+len(r.ready) >= r.o.Window || len(r.ready) >= r.maxReady
}

// wake publishes what is ready as soon as no delivery is waiting, unless
// the broker has a quarter of the window in hand still to confirm: then
// the ready ones wait for the oldest confirm (or a full batch), and go
// out together, in one journal write and one socket write, rather than a
// few at a time as deliveries trickle in.
func (r *replayer) wake() <-chan struct{} {
	switch {
	case len(r.ready) > 0 && len(r.inflight) < max(r.o.Window/4, 1):
		return fired
	case len(r.inflight) > 0:
		return r.inflight[0].conf.Done()
	case len(r.ready) > 0:
		return fired
	}
	return nil
}

// settle publishes what is ready, else settles confirms.
func (r *replayer) settle(ctx context.Context, block bool) error {
	if len(r.ready) > 0 {
		return r.publishReady(ctx)
	}
	return r.settleConfirmed(ctx, block)
}

func (r *replayer) finish(ctx context.Context, runErr error) error {
	// What is prepared goes out unless the run failed or was interrupted:
	// then it stays in the DLQ, unpublished and unjournaled.
	if runErr == nil {
		runErr = r.publishReady(ctx)
	}
	// Every publish still in flight is settled before the channel closes,
	// so no confirmed message is left unacked (and duplicated) needlessly.
	for len(r.inflight) > 0 {
		if err := r.settleConfirmed(ctx, true); err != nil && runErr == nil {
			runErr = err
		}
	}
	if err := r.sendAcks(StatusReplayed, ackLost); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// publishReady journals the ready messages, then publishes them:
// journal before publish, so a killed run's successor knows what may
// have been published twice.
func (r *replayer) publishReady(ctx context.Context) error {
	if len(r.ready) == 0 {
		return nil
	}
	// Published or not, what was prepared is done with: on an error it
	// stays in the DLQ.
	defer func() { r.ready = r.ready[:0] }()
	if err := r.journal(); err != nil {
		return err
	}
	// The batch leaves in one write, not one per message. Should that
	// write fail, the connection closes and every publish of the batch
	// fails at its confirm: none is acked, all stay in the DLQ.
	r.pub.Hold()
	for _, p := range r.ready {
		conf, err := r.pub.Publish(ctx, "", p.out.Destination, ForReplay(publishingOf(p.d), r.o.Queue, r.o.Now()))
		if err != nil {
			p.out.Status, p.out.Reason = StatusFailed, err.Error()
			r.rep.Record(p.out)
			_ = r.pub.Release() // what it would say, err says
			// The rest were journaled but not published: the next run
			// reports them as possible duplicates, erring on the safe
			// side. They stay in the DLQ.
			return err
		}
		r.inflight = append(r.inflight, flight{tag: p.d.DeliveryTag, gen: p.gen, conf: conf, out: p.out})
	}
	// An error here is the connection's end, which the confirms report.
	_ = r.pub.Release()
	return nil
}

// journal writes the ids of the ready messages in one write, and
// reports those an earlier, killed run had published as possible
// duplicates.
func (r *replayer) journal() error {
	ids := make([]string, len(r.ready))
	for i, p := range r.ready {
		ids[i] = p.out.ID
		if r.o.Journal.redo(p.out.ID) {
			r.rep.PossibleDuplicates = append(r.rep.PossibleDuplicates, p.out.ID)
		}
	}
	return r.o.Journal.published(ids...)
}

// settleConfirmed settles the oldest publish (waiting for its confirm
// when block) and every later one already confirmed, then sends their
// acks together. Confirms arrive in bursts, one per broker sync, so the
// acks of a burst go out as one cumulative ack where that is exact, and
// no ack waits while the loop publishes: published and not yet acked
// stays within the window.
func (r *replayer) settleConfirmed(ctx context.Context, block bool) error {
	for len(r.inflight) > 0 {
		f := r.inflight[0]
		if !block && !isDone(f.conf) {
			break
		}
		block = false
		if err := r.settleOne(f, awaitConfirm(ctx, f.conf)); err != nil {
			if ferr := r.sendAcks(StatusReplayed, ackLost); ferr != nil {
				return ferr
			}
			return err
		}
	}
	return r.sendAcks(StatusReplayed, ackLost)
}

// settleOne records the ack of the oldest publish when its confirm was
// positive; a failed one stays in the DLQ. A closed channel or a broker
// that stopped answering ends the replay.
func (r *replayer) settleOne(f flight, err error) error {
	r.inflight = r.inflight[1:]
	if err == nil {
		r.ack(f.tag, f.out)
		return nil
	}
	f.out.Status, f.out.Reason = StatusFailed, err.Error()
	r.rep.Record(f.out)
	if errors.Is(err, broker.ErrChannelClosed) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("replay stopped: %w", err)
	}
	return r.sc.hold(f.gen)
}

func isDone(c *broker.Confirmation) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// awaitConfirm waits for a publish's confirm. It waits even after an
// interrupt: settling what was published is what keeps an interrupted
// run from duplicating.
func awaitConfirm(ctx context.Context, c *broker.Confirmation) error {
	if isDone(c) {
		// Known already: no timer, and no cancelled ctx to lose it to.
		return c.Wait(context.Background())
	}
	// 30 s of the broker not answering; time it blocks publishing (an
	// alarm) does not count: the blocked policy on ctx bounds that.
	return c.WaitFor(context.WithoutCancel(ctx), 30*time.Second)
}

// publishingOf copies a delivery's content and properties unchanged.
func publishingOf(d amqp.Delivery) amqp.Publishing {
	return amqp.Publishing{
		Headers: d.Headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, Expiration: d.Expiration, MessageId: d.MessageId, Timestamp: d.Timestamp,
		Type: d.Type, UserId: d.UserId, AppId: d.AppId, Body: d.Body,
	}
}

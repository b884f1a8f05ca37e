package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/fail"
)

// Outcome statuses.
const (
	StatusReplayed    = "replayed"
	StatusPurged      = "purged"
	StatusSkipped     = "skipped"
	StatusFailed      = "failed"
	StatusWouldReplay = "would_replay"
	StatusWouldPurge  = "would_purge"
)

// Outcome is what happened to one selected message.
type Outcome struct {
	ID          string `json:"id"`
	Destination string `json:"destination,omitempty"`
	Status      string `json:"status"`
	Reason      string `json:"reason,omitempty"`
	ReplayCount int64  `json:"replay_count,omitempty"`
}

// Report is the result of a replay or purge.
type Report struct {
	Queue string `json:"queue"`
	// Depth is the number of ready messages when the run started; only
	// those are considered.
	Depth   int  `json:"depth"`
	Scanned int  `json:"scanned"`
	DryRun  bool `json:"dry_run"`

	Replayed int `json:"replayed"`
	Purged   int `json:"purged"`
	Skipped  int `json:"skipped"`
	Failed   int `json:"failed"`
	// NotFound lists selected ids the queue did not hold (nil when the
	// scan stopped early at --limit).
	NotFound []string `json:"not_found"`
	// PossibleDuplicates lists ids an earlier, interrupted replay had
	// published without acking, replayed again by this run: the origin
	// queue may hold them twice.
	PossibleDuplicates []string  `json:"possible_duplicates,omitempty"`
	Archive            string    `json:"archive,omitempty"`
	Outcomes           []Outcome `json:"outcomes"`
}

// Partial reports whether some selected message was not moved.
func (r *Report) Partial() bool {
	return r.Skipped > 0 || r.Failed > 0 || len(r.NotFound) > 0
}

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
	Window   int
	Journal  *Journal
	Progress Progress
	Now      func() time.Time
}

// pacer spaces operations to a rate.
type pacer struct {
	rate  float64
	start time.Time
	n     int
}

func (p *pacer) wait(ctx context.Context) error {
	if p.rate <= 0 {
		return nil
	}
	if p.n == 0 {
		p.start = time.Now()
	}
	due := p.start.Add(time.Duration(float64(p.n) / p.rate * float64(time.Second)))
	p.n++
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Replay republishes the selected dead letters of o.Queue to the queue
// they died in (default exchange, routing key = that queue) or to o.To,
// with confirms and mandatory, and acks each dead letter only after its
// publish was confirmed and not returned. Messages not selected, not
// replayable, or that arrived after the start stay in the queue, in their
// order. src carries the consumer, dst the publisher.
func Replay(ctx context.Context, src, dst *amqp.Connection, o ReplayOptions) (*Report, error) {
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Window = max(o.Window, 1)
	if o.To == o.Queue && o.To != "" {
		return nil, fail.Usagef("--to %s is the dead-letter queue itself", o.To)
	}
	sc, err := openScanner(ctx, src, o.Queue, 2*o.Window+64)
	if err != nil {
		return nil, err
	}
	defer sc.close()
	rep := &Report{Queue: o.Queue, Depth: sc.Total, DryRun: o.DryRun, Outcomes: []Outcome{}, PossibleDuplicates: o.Journal.earlier()}
	var pub *broker.Publisher
	if !o.DryRun {
		if pub, err = broker.NewPublisher(dst, o.Window); err != nil {
			return rep, err
		}
		defer pub.Close()
	}

	type flight struct {
		tag  uint64
		gen  int
		conf *broker.Confirmation
		out  int
	}
	var inflight []flight
	// A confirm is awaited even after an interrupt: settling what was
	// published is what keeps an interrupted replay from duplicating.
	wait := func(f flight) error {
		select {
		case <-f.conf.Done():
			// Known already: no timer, and no cancelled ctx to lose it to.
			return f.conf.Wait(context.Background())
		default:
		}
		// 30 s of the broker not answering; time it blocks publishing (an
		// alarm) does not count: the blocked policy on ctx bounds that.
		return f.conf.WaitFor(context.WithoutCancel(ctx), 30*time.Second)
	}
	// unacked are the outcomes settled as replayed whose acks are recorded
	// but not yet sent.
	var unacked []int
	flushAcks := func() error {
		err := sc.flushAcks()
		if err != nil {
			for _, i := range unacked {
				out := &rep.Outcomes[i]
				out.Status, out.Reason = StatusFailed, "published, but the dead letter could not be acked: it stays in the DLQ and the origin queue holds a copy"
				rep.Replayed--
				rep.Failed++
			}
		}
		unacked = unacked[:0]
		return err
	}
	settle := func(f flight, err error) error {
		inflight = inflight[1:]
		o.Progress.Add(1)
		out := &rep.Outcomes[f.out]
		if err == nil {
			sc.ack(f.tag)
			unacked = append(unacked, f.out)
			out.Status = StatusReplayed
			rep.Replayed++
			return nil
		}
		out.Status, out.Reason = StatusFailed, err.Error()
		rep.Failed++
		if errors.Is(err, broker.ErrChannelClosed) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("replay stopped: %w", err)
		}
		return sc.hold(f.gen)
	}
	// settleConfirmed settles the oldest publish (waiting for its confirm
	// when block) and every later one already confirmed, then sends their
	// acks together. Confirms arrive in bursts, one per broker sync, so the
	// acks of a burst go out as one cumulative ack where that is exact, and
	// no ack waits while the loop publishes: published and not yet acked
	// stays within the window.
	settleConfirmed := func(block bool) error {
		for len(inflight) > 0 {
			f := inflight[0]
			if !block {
				select {
				case <-f.conf.Done():
				default:
					return flushAcks()
				}
			}
			block = false
			if err := settle(f, wait(f)); err != nil {
				if ferr := flushAcks(); ferr != nil {
					return ferr
				}
				return err
			}
		}
		return flushAcks()
	}
	// ready are selected deliveries waiting to be published: the
	// deliveries at hand are journaled with one write, then published.
	type prepared struct {
		d   amqp.Delivery
		gen int
		out Outcome
	}
	var ready []prepared
	maxReady := 128
	if o.Rate > 0 {
		maxReady = 1 // paced: each message goes out when its time comes
	}
	publishReady := func() error {
		if len(ready) == 0 {
			return nil
		}
		// Published or not, what was prepared is done with: on an error
		// it stays in the DLQ.
		defer func() { ready = ready[:0] }()
		ids := make([]string, len(ready))
		for i, p := range ready {
			ids[i] = p.out.ID
			if o.Journal.redo(p.out.ID) {
				rep.PossibleDuplicates = append(rep.PossibleDuplicates, p.out.ID)
			}
		}
		if err := o.Journal.published(ids...); err != nil {
			return err
		}
		for _, p := range ready {
			out := p.out
			conf, err := pub.Publish(ctx, "", out.Destination, ForReplay(publishingOf(p.d), o.Queue, o.Now()))
			if err != nil {
				out.Status, out.Reason = StatusFailed, err.Error()
				rep.Outcomes = append(rep.Outcomes, out)
				rep.Failed++
				// The rest were journaled but not published: the next
				// run reports them as possible duplicates, erring on the
				// safe side. They stay in the DLQ.
				return err
			}
			rep.Outcomes = append(rep.Outcomes, out)
			inflight = append(inflight, flight{tag: p.d.DeliveryTag, gen: p.gen, conf: conf, out: len(rep.Outcomes) - 1})
		}
		return nil
	}
	// always is ready at once: with deliveries prepared, next returns
	// scanWoke as soon as no further delivery is at hand.
	always := make(chan struct{})
	close(always)
	taken := map[string]bool{}
	selected := 0
	pace := &pacer{rate: o.Rate}
	scanned := true
	var runErr error
loop:
	for {
		if len(inflight)+len(ready) >= o.Window || len(ready) >= maxReady {
			if len(ready) > 0 {
				runErr = publishReady()
			} else {
				runErr = settleConfirmed(true)
			}
			if runErr != nil {
				break
			}
			continue
		}
		if o.Limit > 0 && selected >= o.Limit {
			scanned = sc.seen >= sc.Total
			break
		}
		var wake <-chan struct{}
		switch {
		case len(ready) > 0:
			wake = always
		case len(inflight) > 0:
			wake = inflight[0].conf.Done()
		}
		d, gen, st, err := sc.next(ctx, wake)
		if err != nil {
			runErr = err
			break
		}
		switch st {
		case scanDone:
			break loop
		case scanWoke:
			if len(ready) > 0 {
				runErr = publishReady()
			} else {
				runErr = settleConfirmed(false)
			}
			if runErr != nil {
				break loop
			}
			continue
		}
		rep.Scanned++
		rec, err := Summarize(o.Queue, d)
		if err != nil {
			// Unreadable headers: not selectable; leave it where it is.
			if runErr = sc.hold(gen); runErr != nil {
				break
			}
			continue
		}
		if !o.Selection.Take(rec.ID) {
			if runErr = sc.hold(gen); runErr != nil {
				break
			}
			continue
		}
		taken[rec.ID] = true
		out := Outcome{ID: rec.ID, Destination: rec.Destination(o.To), ReplayCount: rec.ReplayCount}
		switch {
		case rec.ReplayCount >= int64(o.MaxReplays) && !o.Force:
			out.Status, out.Reason = StatusSkipped, fmt.Sprintf("replayed %d times already (--max-replays %d); it keeps failing: check it, or pass --force", rec.ReplayCount, o.MaxReplays)
			rep.Skipped++
		case out.Destination == "":
			out.Status, out.Reason = StatusFailed, "no origin queue in x-death or mqctl headers; pass --to QUEUE"
			rep.Failed++
		case out.Destination == o.Queue:
			out.Status, out.Reason = StatusFailed, "origin is this dead-letter queue itself; pass --to QUEUE"
			rep.Failed++
		case o.DryRun:
			selected++
			out.Status = StatusWouldReplay
		default:
			selected++
			if err := pace.wait(ctx); err != nil {
				runErr = err
				break loop
			}
			ready = append(ready, prepared{d: d, gen: gen, out: out})
			continue
		}
		rep.Outcomes = append(rep.Outcomes, out)
		if out.Status != StatusWouldReplay {
			o.Progress.Add(1)
		}
		if runErr = sc.hold(gen); runErr != nil {
			break
		}
	}
	// What is prepared goes out unless the run failed or was interrupted:
	// then it stays in the DLQ, unpublished and unjournaled.
	if runErr == nil {
		runErr = publishReady()
	}
	// Every publish still in flight is settled before the channel closes,
	// so no confirmed message is left unacked (and duplicated) needlessly.
	for len(inflight) > 0 {
		if err := settleConfirmed(true); err != nil && runErr == nil {
			runErr = err
		}
	}
	if err := flushAcks(); err != nil && runErr == nil {
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

// publishingOf copies a delivery's content and properties unchanged.
func publishingOf(d amqp.Delivery) amqp.Publishing {
	return amqp.Publishing{
		Headers: d.Headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, Expiration: d.Expiration, MessageId: d.MessageId, Timestamp: d.Timestamp,
		Type: d.Type, UserId: d.UserId, AppId: d.AppId, Body: d.Body,
	}
}

package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
)

// idleWait is how long the mover waits for a delivery before it reads the
// source's ready count to learn whether it is done.
const idleWait = 200 * time.Millisecond

// mover moves the messages of one queue into another: it consumes with
// manual acks, publishes each message to the default exchange with the
// destination as routing key (mandatory, confirmed), and acks a delivery
// only after its publish was confirmed and not returned. Its channel and
// connections belong to one move.
type mover struct {
	r        *run
	src, dst string
	step     Step
	conn     *amqp.Connection
	ch       *amqp.Channel
	tag      string
	pub      *broker.Publisher
	in       <-chan amqp.Delivery
	inflight []flight
	// stopping is set once the source was seen empty and the consumer
	// cancelled: the deliveries still buffered are moved, then it ends.
	stopping bool
	// last is when the last delivery came, for the no-progress bound.
	last  time.Time
	moved int
	// limit, when positive, bounds the deliveries taken (Retime: the
	// messages the queue held when it began); taken counts them.
	limit, taken int
}

type flight struct {
	tag  uint64
	conf *broker.Confirmation
}

// move moves every message of src to dst until src has none ready, and
// returns how many it moved. A source that does not exist has nothing to
// move. Deliveries not settled when it fails return to src when its
// channel closes.
func (r *run) move(ctx context.Context, src, dst string, step Step) (int, error) {
	return r.moveAtMost(ctx, src, dst, step, 0)
}

// moveAtMost is move of at most limit messages (no bound when 0); the
// deliveries the consumer's prefetch brought beyond it return to src, in
// their place, when the channel closes.
func (r *run) moveAtMost(ctx context.Context, src, dst string, step Step, limit int) (int, error) {
	conn, err := r.q.Dialer.Dial(ctx)
	if err != nil {
		return 0, err
	}
	defer broker.CloseConnection(conn, broker.CloseWait)
	// Publishes get a connection of their own: a publisher the broker
	// blocks (an alarm) must not hold up the consumer's acks.
	pubConn, err := r.q.Dialer.Dial(ctx)
	if err != nil {
		return 0, err
	}
	defer broker.CloseConnection(pubConn, broker.CloseWait)
	m := &mover{r: r, src: src, dst: dst, step: step, conn: conn, tag: "mqctl-migrate", last: time.Now(), limit: limit}
	if m.pub, err = broker.NewPublisher(pubConn, r.q.Prefetch); err != nil {
		return 0, err
	}
	defer m.pub.Close()
	if m.ch, err = conn.Channel(); err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	if err := m.ch.Qos(r.q.Prefetch, 0, false); err != nil {
		return 0, fmt.Errorf("set prefetch: %w", err)
	}
	m.in, err = m.ch.Consume(src, m.tag, false, false, false, false, nil)
	if amqpCode(err, amqp.NotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("consume %s: %w", src, err)
	}
	err = m.run(ctx)
	// Closing the channel waits until the broker has processed every ack
	// sent on it, so the emptiness check that follows sees them.
	if !broker.WithinOrCut(conn, broker.CloseWait, func() { _ = m.ch.Close() }) && err == nil {
		err = fmt.Errorf("no answer from the broker within %s to close the channel", broker.CloseWait)
	}
	if err != nil {
		return m.moved, fmt.Errorf("move the messages of %s to %s: %w", src, dst, err)
	}
	return m.moved, nil
}

// run is the mover's loop: take the deliveries at hand, journal and
// publish them, settle the confirmed ones; when nothing comes, check
// whether the source is empty.
func (m *mover) run(ctx context.Context) error {
	window := m.r.q.Prefetch
	for {
		if err := ctx.Err(); err != nil {
			return m.abort(err)
		}
		want := window - len(m.inflight)
		if m.limit > 0 {
			if m.taken >= m.limit && len(m.inflight) == 0 {
				return nil
			}
			want = min(want, m.limit-m.taken)
		}
		batch, open := m.take(ctx, want)
		m.taken += len(batch)
		if len(batch) > 0 {
			if err := m.publish(ctx, batch); err != nil {
				return m.abort(err)
			}
		}
		block := len(batch) == 0 || len(m.inflight) >= window || !open
		if err := m.settle(ctx, block); err != nil {
			return m.abort(err)
		}
		if !open && len(m.inflight) == 0 {
			if m.stopping {
				return nil
			}
			return fmt.Errorf("the broker ended the consumer of %s (was it deleted?); run the same command again", m.src)
		}
		if len(batch) == 0 && len(m.inflight) == 0 && !m.stopping {
			if err := m.checkDone(ctx); err != nil {
				return err
			}
		}
	}
}

// take returns the deliveries at hand, at most n. With nothing in flight
// it waits for the first up to idleWait; open is false once the consumer
// has ended.
func (m *mover) take(ctx context.Context, n int) (batch []amqp.Delivery, open bool) {
	if n <= 0 {
		return nil, true
	}
	if len(m.inflight) == 0 {
		t := time.NewTimer(idleWait)
		defer t.Stop()
		select {
		case d, ok := <-m.in:
			if !ok {
				return nil, false
			}
			batch = append(batch, d)
		case <-t.C:
			return nil, true
		case <-ctx.Done():
			return nil, true
		}
	}
	for len(batch) < n {
		select {
		case d, ok := <-m.in:
			if !ok {
				return batch, false
			}
			batch = append(batch, d)
		default:
			return batch, true
		}
	}
	return batch, true
}

// checkDone reads the source's ready count: none left ends the consumer
// (what it still delivers is moved), some left waits for them, within
// the no-progress bound.
func (m *mover) checkDone(ctx context.Context) error {
	n, exists, err := m.r.ready(ctx, m.src)
	if err != nil {
		return err
	}
	if !exists || n == 0 {
		m.stopping = true
		if !broker.WithinOrCut(m.conn, m.r.q.Timeout, func() { err = m.ch.Cancel(m.tag, false) }) {
			return fmt.Errorf("no answer from the broker within %s to stop consuming %s", m.r.q.Timeout, m.src)
		}
		return err
	}
	if time.Since(m.last) > m.r.q.DrainTimeout {
		return fmt.Errorf("%s holds %d ready messages but none came to mqctl within %s (another consumer, or a single-active-consumer queue, takes them?); run the same command again", m.src, n, m.r.q.DrainTimeout)
	}
	return nil
}

// publish journals the batch as in flight, then publishes it.
func (m *mover) publish(ctx context.Context, batch []amqp.Delivery) error {
	m.last = time.Now()
	j := m.r.j
	if j != nil {
		j.InFlight += len(batch)
		if err := j.save(false); err != nil {
			return err
		}
	}
	for i, d := range batch {
		conf, err := m.pub.Publish(ctx, "", m.dst, m.r.publishingOf(d))
		if err != nil {
			// Not published: these stay in the source, no duplicate.
			if j != nil {
				j.InFlight -= len(batch) - i
			}
			return fmt.Errorf("publish to %s: %w", m.dst, err)
		}
		m.inflight = append(m.inflight, flight{tag: d.DeliveryTag, conf: conf})
	}
	return nil
}

// settle settles the oldest publishes whose confirm is in (waiting for the
// oldest when block), acking their deliveries; the first publish that was
// returned, nacked or not confirmed in time stops the move, its delivery
// left unacked (it returns to the source).
func (m *mover) settle(ctx context.Context, block bool) error {
	n := 0
	for n < len(m.inflight) {
		f := m.inflight[n]
		if !block && !isDone(f.conf) {
			break
		}
		block = false
		if err := m.wait(ctx, f.conf); err != nil {
			m.ack(n, true)
			return err
		}
		n++
	}
	m.ack(n, true)
	return nil
}

// ack acks the first n in-flight deliveries (one cumulative ack: they are
// the oldest unacked of the channel) and records them as moved.
func (m *mover) ack(n int, cumulative bool) {
	if n == 0 {
		return
	}
	if cumulative {
		_ = m.ch.Ack(m.inflight[n-1].tag, true)
	} else {
		for _, f := range m.inflight[:n] {
			_ = m.ch.Ack(f.tag, false)
		}
	}
	m.inflight = m.inflight[n:]
	m.done(n, n)
}

// done records settled publishes (acked of them moved) in the journal and
// reports the progress.
func (m *mover) done(settled, acked int) {
	m.moved += acked
	m.r.emit(Event{Step: m.step, Moved: acked})
	j := m.r.j
	if j == nil {
		return // Retime keeps no journal
	}
	j.InFlight -= settled
	if m.step == StepMoveBack {
		j.MovedBack += acked
	} else {
		j.MovedOut += acked
	}
	// A failed write leaves InFlight too high: more possible duplicates
	// reported, never fewer.
	_ = j.save(false)
}

// abort ends a failed move: publishes still in flight are settled (acked
// if confirmed, so they are not duplicated), the rest stays in the source.
func (m *mover) abort(cause error) error {
	ctx := context.Background()
	var unsettled int
	var ok []flight
	for _, f := range m.inflight {
		if m.wait(ctx, f.conf) == nil {
			ok = append(ok, f)
		} else {
			unsettled++
		}
	}
	for _, f := range ok {
		_ = m.ch.Ack(f.tag, false)
	}
	m.inflight = nil
	m.done(len(ok)+unsettled, len(ok))
	return cause
}

// wait waits for one publish's confirm, bounded by the confirm timeout
// (time the broker blocks publishing does not count). It waits even after
// an interrupt: settling what was published keeps it from being
// duplicated.
func (m *mover) wait(ctx context.Context, c *broker.Confirmation) error {
	err := c.WaitFor(context.WithoutCancel(ctx), m.r.q.ConfirmTimeout)
	var re *broker.ReturnedError
	if errors.As(err, &re) {
		return fmt.Errorf("%s returned a message as unroutable (was the queue deleted?): %w", m.dst, err)
	}
	return err
}

func isDone(c *broker.Confirmation) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// publishingOf copies a delivery's body, properties and headers. user_id
// stays only when it is the migrating user's: RabbitMQ refuses a publish
// whose user_id names another user (and closes the channel).
func (r *run) publishingOf(d amqp.Delivery) amqp.Publishing {
	user := d.UserId
	if user != r.q.User {
		user = ""
	}
	return amqp.Publishing{
		Headers: d.Headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, Expiration: d.Expiration, MessageId: d.MessageId, Timestamp: d.Timestamp,
		Type: d.Type, UserId: user, AppId: d.AppId, Body: d.Body,
	}
}

package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrQueueNotFound matches (errors.Is) the error QueueCounts and
// QueueCountsOn return for a queue that does not exist; errors.As still
// finds the broker's *amqp.Error (code 404) in it.
var ErrQueueNotFound = errors.New("queue not found")

// QueueCounts reads a queue's exact ready message count (unacknowledged
// messages not included) and its consumer count with an AMQP passive
// declare, on a connection of its own that it closes before returning.
// The management API has these figures only up to 5 s late, or not at all
// with metrics collection off; a check that decides whether a queue may be
// deleted wants them from the queue itself.
//
// The whole call is bounded by the dialer's timeout and ctx: a broker
// that accepts the connection and then stops answering costs one timeout.
func (d *Dialer) QueueCounts(ctx context.Context, queue string) (messages, consumers int, err error) {
	conn, err := d.Dial(ctx)
	if err != nil {
		return 0, 0, err
	}
	// A node that stops answering after the declare must not hold the
	// close (and the caller) beyond the timeout either.
	defer func() { _ = conn.CloseDeadline(time.Now().Add(d.timeout)) }()
	type result struct {
		messages, consumers int
		err                 error
	}
	done := make(chan result, 1)
	go func() {
		m, c, err := QueueCountsOn(conn, queue)
		done <- result{m, c, err}
	}()
	timer := time.NewTimer(d.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.messages, r.consumers, r.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("read the message count of queue %q on %s: no answer within %s; the node may be overloaded, or raise --timeout", queue, d.Node(), d.timeout)
	}
	// Closing the connection (at once: the node may be the one not
	// answering) ends the pending declare, so the goroutine returns
	// before this function does.
	_ = conn.CloseDeadline(time.Now())
	<-done
	return 0, 0, err
}

// QueueCountsOn is QueueCounts on a connection the caller holds, which it
// leaves open: it opens a channel for the passive declare and closes it.
// A missing queue makes the broker close that channel (404 NOT_FOUND),
// never the connection, so conn stays usable after ErrQueueNotFound. It
// has no deadline of its own: bound it as the caller bounds conn's other
// calls (closing conn ends it).
func QueueCountsOn(conn *amqp.Connection, queue string) (messages, consumers int, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, 0, fmt.Errorf("open channel: %w", err)
	}
	// After a 404 the channel is already closed by the broker; Close then
	// only reports that, which says nothing new.
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return 0, 0, &queueNotFoundError{ae}
		}
		return 0, 0, err
	}
	return q.Messages, q.Consumers, nil
}

// queueNotFoundError keeps the broker's text ("NOT_FOUND - no queue 'x' in
// vhost 'v'") and matches both ErrQueueNotFound and *amqp.Error.
type queueNotFoundError struct{ err *amqp.Error }

func (e *queueNotFoundError) Error() string   { return e.err.Error() }
func (e *queueNotFoundError) Unwrap() []error { return []error{ErrQueueNotFound, e.err} }

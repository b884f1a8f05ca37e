package dlq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
)

// Values are the grouped fields of d under g ("" for those g leaves
// out), as a group made by g shows them: what a browser labels the group
// of Key(d) with.
func (g GroupBy) Values(d Death) (origin, reason, errText string) { return g.values(d) }

// Depth is the number of ready messages queue holds now (a passive
// declare on a channel of its own), for progress that knows its total
// before a peek starts.
func Depth(conn *amqp.Connection, queue string) (int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return 0, fail.Usagef("queue %q not found in this vhost; `mqctl dlq ls` lists the dead-letter queues", queue)
		}
		return 0, fmt.Errorf("look up queue %q: %w", queue, err)
	}
	return q.Messages, nil
}

// PeekID reads queue the way Peek does (nothing consumed) until the
// first message with id, and returns it; found is false when the queue
// holds none.
func PeekID(ctx context.Context, conn *amqp.Connection, queue, id string) (rec Record, found bool, err error) {
	_, err = peekDeliveries(ctx, conn, queue, 0, func(d amqp.Delivery) error {
		s, err := Summarize(queue, d)
		if err != nil || s.ID != id {
			return nil // undecodable: not the one asked for
		}
		if rec, err = FromDelivery(queue, d); err != nil {
			return err
		}
		found = true
		return ErrStopPeek
	})
	return rec, found, err
}

package registration

import (
	"context"
	"errors"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
)

// Dialer opens connections; *broker.Dialer satisfies it.
type Dialer interface {
	DialRetry(ctx context.Context, b broker.Backoff, onRetry func(attempt int, err error)) (*amqp.Connection, error)
	Failover()
}

// eventMessage is how an event travels: persistent JSON, message_id = the
// event id so consumers and DLQ tools can tell messages apart.
func eventMessage(eventID string, body []byte) amqp.Publishing {
	return amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    eventID,
		Timestamp:    time.Now(),
		Type:         "user.registered",
		AppId:        "mqctl",
		Body:         body,
	}
}

type outgoing struct {
	key string
	msg amqp.Publishing
}

// confirmTimeout bounds the wait for each confirm, not counting time the
// broker blocks the connection (an alarm: the BlockedPolicy bounds that).
const confirmTimeout = 30 * time.Second

// publishAll publishes msgs to exchange and waits for every confirm; the
// result says, per message, nil (safely queued) or why not. pace, when
// set, is awaited before each publish (rate limiting).
func publishAll(ctx context.Context, pub *broker.Publisher, exchange string, msgs []outgoing, pace func(context.Context) error) []error {
	errs := make([]error, len(msgs))
	confs := make([]*broker.Confirmation, len(msgs))
	var stop error
	for i, m := range msgs {
		if stop == nil && pace != nil {
			stop = pace(ctx)
		}
		if stop != nil {
			errs[i] = stop
			continue
		}
		c, err := pub.Publish(ctx, exchange, m.key, m.msg)
		if err != nil {
			errs[i] = err
			stop = err
			continue
		}
		confs[i] = c
	}
	for i, c := range confs {
		if c != nil {
			errs[i] = c.WaitFor(ctx, confirmTimeout)
		}
	}
	return errs
}

// connectionLost reports whether a publish failed because its channel or
// connection went away (reconnect) rather than a refusal (retry later).
func connectionLost(err error) bool {
	var ae *amqp.Error
	return errors.Is(err, broker.ErrChannelClosed) || errors.Is(err, amqp.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ae)
}

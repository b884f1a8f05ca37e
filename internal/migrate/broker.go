package migrate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
)

// notFound reports whether err is the management API's 404.
func notFound(err error) bool {
	var er rabbithole.ErrorResponse
	return errors.As(err, &er) && er.StatusCode == http.StatusNotFound
}

// amqpCode reports whether err is the broker's AMQP error code.
func amqpCode(err error, code int) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == code
}

// call runs f on a fresh channel of the run's control connection (dialled
// on first use, and again after a failure closed it), bounded by the
// timeout: a broker that does not answer gets its connection cut, which
// ends f. A 404 or 406 closes only the channel.
func (r *run) call(ctx context.Context, f func(ch *amqp.Channel) error) error {
	if r.conn == nil || r.conn.IsClosed() {
		conn, err := r.q.Dialer.Dial(ctx)
		if err != nil {
			return err
		}
		r.conn = conn
	}
	ch, err := r.conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	var ferr error
	if !broker.WithinOrCut(r.conn, r.q.Timeout, func() { ferr = f(ch); _ = ch.Close() }) {
		return fmt.Errorf("no answer from the broker within %s; it may be overloaded: run the same command again", r.q.Timeout)
	}
	return ferr
}

// ready reads a queue's exact ready count (a passive declare); exists is
// false for a queue that is not there.
func (r *run) ready(ctx context.Context, name string) (n int, exists bool, err error) {
	err = r.call(ctx, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
		n = q.Messages
		return err
	})
	if amqpCode(err, amqp.NotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the message count of %s: %w", name, err)
	}
	return n, true, nil
}

// queueInfo reads a queue from the management API (nil when missing),
// with its message count samples of the last minute. Only the columns it
// needs: rabbit-hole cannot decode every consumer_details the broker sends.
func (r *run) queueInfo(name string) (*rabbithole.DetailedQueueInfo, error) {
	q, err := r.q.Mgmt.GetQueueWithParameters(r.q.Vhost, name, url.Values{"lengths_age": {"60"}, "lengths_incr": {"5"},
		"columns": {"name,type,durable,messages,messages_unacknowledged,messages_details"}})
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read queue %s in vhost %s from the management API: %w", name, r.q.Vhost, err)
	}
	return q, nil
}

// bindings lists the bindings from exchanges to queue name (the default
// exchange's implicit one left out); exists is false for a missing queue.
func (r *run) bindings(name string) (bs []Binding, exists bool, err error) {
	list, err := r.q.Mgmt.ListQueueBindings(r.q.Vhost, name)
	if notFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("list the bindings of %s in vhost %s: %w", name, r.q.Vhost, err)
	}
	for _, b := range list {
		if b.Source == "" || b.Destination != name || b.DestinationType != "queue" {
			continue
		}
		bs = append(bs, Binding{Source: b.Source, RoutingKey: b.RoutingKey, Arguments: b.Arguments})
	}
	return bs, true, nil
}

// bind gives queue name the bindings (idempotent: RabbitMQ treats an
// existing binding as declared).
func (r *run) bind(name string, bs []Binding) error {
	for _, b := range bs {
		info := rabbithole.BindingInfo{Source: b.Source, Destination: name, DestinationType: "queue", RoutingKey: b.RoutingKey, Arguments: b.Arguments}
		if _, err := r.q.Mgmt.DeclareBinding(r.q.Vhost, info); err != nil {
			return fmt.Errorf("bind %s to exchange %s with key %q: %w", name, b.Source, b.RoutingKey, err)
		}
	}
	return nil
}

// unbind removes every binding from an exchange to queue name; a queue or
// binding already gone is no error.
func (r *run) unbind(name string) error {
	list, err := r.q.Mgmt.ListQueueBindings(r.q.Vhost, name)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list the bindings of %s in vhost %s: %w", name, r.q.Vhost, err)
	}
	for _, b := range list {
		if b.Source == "" || b.Destination != name || b.DestinationType != "queue" {
			continue
		}
		if _, err := r.q.Mgmt.DeleteBinding(r.q.Vhost, b); err != nil && !notFound(err) {
			return fmt.Errorf("unbind %s from exchange %s (key %q): %w", name, b.Source, b.RoutingKey, err)
		}
	}
	return nil
}

// declareTemp declares the temporary queue: durable, of the journal's
// type, no other argument, so no x-argument of the old queue (a TTL, a
// length limit) can drop a message while it waits there.
func (r *run) declareTemp(ctx context.Context) error {
	var args amqp.Table
	if r.j.TempType != "" && r.j.TempType != "classic" {
		args = amqp.Table{"x-queue-type": r.j.TempType}
	}
	err := r.call(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(r.j.Temp, true, false, false, false, args)
		return err
	})
	if amqpCode(err, amqp.PreconditionFailed) {
		return fmt.Errorf("declare the temporary queue %s: %w; it exists with other settings: move its messages away and delete it, then run the same command again", r.j.Temp, err)
	}
	if err != nil {
		return fmt.Errorf("declare the temporary queue %s: %w", r.j.Temp, err)
	}
	return nil
}

// sampleWait bounds the wait for a management sample taken after a check
// began (the statistics interval is 5 s by default).
const sampleWait = 20 * time.Second

// settledEmpty says why queue name may not be deleted yet ("" when it may):
// ready messages (exact, over AMQP), or messages delivered to a consumer
// and not yet acked, from a management sample taken after this check
// began (the API's figures are up to 5 s old, and one from before could
// miss a delivery a killed run left unacked). A queue that gets no sample
// within sampleWait is on a broker with metrics collection off: it is
// checked over AMQP only.
func (r *run) settledEmpty(ctx context.Context, name string) (why string, gone bool, err error) {
	n, exists, err := r.ready(ctx, name)
	if err != nil || !exists {
		return "", !exists, err
	}
	if n > 0 {
		return fmt.Sprintf("%d messages ready", n), false, nil
	}
	info, err := r.queueInfo(name)
	if err != nil || info == nil {
		return "", info == nil && err == nil, err
	}
	// Sample times are the end of their 5 s bucket: a later bucket than
	// the newest now holds a sample taken after this read.
	first := latestSample(info)
	deadline := time.Now().Add(sampleWait)
	for latestSample(info) <= first {
		if time.Now().After(deadline) {
			if first == 0 {
				return "", false, nil // no statistics on this broker
			}
			return fmt.Sprintf("no new management sample within %s", sampleWait), false, nil
		}
		if err := broker.Sleep(ctx, 250*time.Millisecond); err != nil {
			return "", false, err
		}
		if info, err = r.queueInfo(name); err != nil || info == nil {
			return "", info == nil && err == nil, err
		}
	}
	if info.Messages > 0 {
		return fmt.Sprintf("%d messages (%d delivered, not yet acked)", info.Messages, info.MessagesUnacknowledged), false, nil
	}
	return "", false, nil
}

// latestSample is the time of the newest message count sample, 0 when
// the API has none.
func latestSample(q *rabbithole.DetailedQueueInfo) int64 {
	var ts int64
	if q.MessagesDetails != nil {
		for _, s := range q.MessagesDetails.Samples {
			ts = max(ts, s.Timestamp)
		}
	}
	return ts
}

// deleteEmpty deletes queue name if it is empty. A classic queue is
// deleted with if-empty, which the broker checks atomically against
// messages published meanwhile; a quorum queue does not support if-empty,
// so its ready count is read again right before the delete. deleted is
// false, with the reason, when the queue was not empty.
func (r *run) deleteEmpty(ctx context.Context, name string) (deleted bool, why string, err error) {
	why, gone, err := r.settledEmpty(ctx, name)
	if err != nil || gone || why != "" {
		return gone, why, err
	}
	info, err := r.queueInfo(name)
	if err != nil || info == nil {
		return info == nil && err == nil, "", err
	}
	ifEmpty := info.Type == "" || info.Type == "classic"
	if !ifEmpty {
		n, exists, err := r.ready(ctx, name)
		switch {
		case err != nil:
			return false, "", err
		case !exists:
			return true, "", nil
		case n > 0:
			return false, fmt.Sprintf("%d messages ready", n), nil
		}
	}
	err = r.call(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(name, false, ifEmpty, false)
		return err
	})
	switch {
	case amqpCode(err, amqp.PreconditionFailed):
		return false, "a message arrived before the delete (if-empty refused it)", nil
	case amqpCode(err, amqp.NotFound):
		return true, "", nil
	case err != nil:
		return false, "", fmt.Errorf("delete %s: %w", name, err)
	}
	return true, "", nil
}

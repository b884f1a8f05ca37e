package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrNacked means the broker refused to take responsibility for a message.
var ErrNacked = errors.New("broker nacked the message")

// ErrChannelClosed means the channel or connection closed before the
// confirm arrived: the message may or may not have been stored; publish it
// again (consumers must tolerate the duplicate).
var ErrChannelClosed = errors.New("channel closed before the publish was confirmed")

// ChannelClosedError is ErrChannelClosed with the reason the broker gave
// for closing the channel (an amqp.Error: 403 ACCESS_REFUSED when the user
// may not write to the exchange, 404 NOT_FOUND for a missing exchange), so
// the user sees why, and an access refusal maps to exit 4.
type ChannelClosedError struct{ Reason *amqp.Error }

func (e *ChannelClosedError) Error() string {
	if e.Reason.Code == amqp.AccessRefused {
		return fmt.Sprintf("%v: %s; publishing needs write permission on that exchange", ErrChannelClosed, e.Reason.Reason)
	}
	return fmt.Sprintf("%v: %s", ErrChannelClosed, e.Reason.Reason)
}

// Is makes errors.Is(err, ErrChannelClosed) hold.
func (e *ChannelClosedError) Is(target error) bool { return target == ErrChannelClosed }

// Unwrap gives the broker's reason to errors.As.
func (e *ChannelClosedError) Unwrap() error { return e.Reason }

// ReturnedError means the message was returned as unroutable (mandatory):
// no queue is bound for it, so the broker dropped it despite the ack.
type ReturnedError struct {
	Exchange, RoutingKey string
	Code                 uint16
	Text                 string
}

func (e *ReturnedError) Error() string {
	ex := e.Exchange
	if ex == "" {
		ex = "(default exchange)"
	}
	return fmt.Sprintf("message returned unroutable by %s with routing key %q: %d %s; is the queue or binding declared?", ex, e.RoutingKey, e.Code, e.Text)
}

// Publisher publishes on its own channel in confirm mode with mandatory
// set, and tells each publish apart: confirmed, nacked, returned, or lost
// with the channel. It is safe for concurrent use; publishes are serialised
// on the channel, confirms are awaited concurrently.
type Publisher struct {
	ch *amqp.Channel

	pubMu sync.Mutex // one publish at a time, so sequence numbers match

	mu      sync.Mutex
	pending map[uint64]*Confirmation
	closed  error

	done chan struct{}
}

// Confirmation is the outcome of one publish, known once Done is closed.
type Confirmation struct {
	done chan struct{}
	err  error
	// What a basic.return is matched against. The body is referenced, not
	// copied or hashed: returns are rare, publishes are not.
	exchange, key, messageID string
	body                     []byte
}

// returnedBy reports whether r is the return of this publish.
func (c *Confirmation) returnedBy(r amqp.Return) bool {
	return r.Exchange == c.exchange && r.RoutingKey == c.key && r.MessageId == c.messageID && bytes.Equal(r.Body, c.body)
}

// Done is closed when the outcome is known.
func (c *Confirmation) Done() <-chan struct{} { return c.done }

// Wait blocks until the broker confirmed, refused or returned the message,
// the channel closed, or ctx ended. nil means the message is safely queued.
func (c *Confirmation) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("wait for publisher confirm: %w", ctx.Err())
	case <-c.done:
		return c.err
	}
}

// NewPublisher opens a channel on conn and puts it in confirm mode. window
// sizes the notification buffers: at least the number of publishes the
// caller keeps in flight.
func NewPublisher(conn *amqp.Connection, window int) (*Publisher, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open publishing channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	window = max(window, 64)
	p := &Publisher{ch: ch, pending: map[uint64]*Confirmation{}, done: make(chan struct{})}
	returns := ch.NotifyReturn(make(chan amqp.Return, window))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window))
	// amqp091 sends the close reason (once) before it closes confirms.
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	go p.loop(returns, confirms, closes)
	return p, nil
}

// loop is the only reader of returns and confirms. The broker sends a
// basic.return before the basic.ack of the same message and amqp091 queues
// them in that order, so draining returns when an ack arrives is enough to
// know whether that message was returned.
func (p *Publisher) loop(returns <-chan amqp.Return, confirms <-chan amqp.Confirmation, closes <-chan *amqp.Error) {
	defer close(p.done)
	// Returns not yet matched to their ack, oldest first.
	var returned []amqp.Return
	take := func(r amqp.Return) { returned = append(returned, r) }
	drain := func() {
		for {
			select {
			case r, ok := <-returns:
				if !ok {
					returns = nil
					return
				}
				take(r)
			default:
				return
			}
		}
	}
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			take(r)
		case c, ok := <-confirms:
			if !ok {
				var err error = ErrChannelClosed
				select {
				case reason := <-closes:
					if reason != nil {
						err = &ChannelClosedError{Reason: reason}
					}
				default:
				}
				p.failAll(err)
				return
			}
			drain()
			p.mu.Lock()
			conf := p.pending[c.DeliveryTag]
			delete(p.pending, c.DeliveryTag)
			p.mu.Unlock()
			if conf == nil {
				continue
			}
			if !c.Ack {
				conf.err = ErrNacked
			} else if i := slices.IndexFunc(returned, conf.returnedBy); i >= 0 {
				r := returned[i]
				conf.err = &ReturnedError{Exchange: r.Exchange, RoutingKey: r.RoutingKey, Code: r.ReplyCode, Text: r.ReplyText}
				returned = slices.Delete(returned, i, i+1)
			}
			close(conf.done)
		}
	}
}

func (p *Publisher) failAll(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = err
	for tag, c := range p.pending {
		c.err = err
		close(c.done)
		delete(p.pending, tag)
	}
}

// Publish sends msg with mandatory set and returns its Confirmation.
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (*Confirmation, error) {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	conf := &Confirmation{done: make(chan struct{}), exchange: exchange, key: key, messageID: msg.MessageId, body: msg.Body}
	p.mu.Lock()
	if p.closed != nil {
		p.mu.Unlock()
		return nil, p.closed
	}
	seq := p.ch.GetNextPublishSeqNo()
	// Registered before the publish: the ack can beat the return of this call.
	p.pending[seq] = conf
	p.mu.Unlock()
	if err := p.ch.PublishWithContext(ctx, exchange, key, true, false, msg); err != nil {
		p.mu.Lock()
		delete(p.pending, seq)
		p.mu.Unlock()
		if errors.Is(err, amqp.ErrClosed) {
			// The broker closed the channel under an earlier publish; its
			// reason (ACCESS_REFUSED…) says more than "not open".
			select {
			case <-p.done:
			case <-time.After(time.Second):
			}
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed != nil {
				return nil, closed
			}
		}
		return nil, fmt.Errorf("publish to %q with key %q: %w", exchange, key, err)
	}
	return conf, nil
}

// PublishAndWait publishes and waits for the outcome.
func (p *Publisher) PublishAndWait(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	c, err := p.Publish(ctx, exchange, key, msg)
	if err != nil {
		return err
	}
	return c.Wait(ctx)
}

// Close closes the channel; publishes still pending fail with ErrChannelClosed.
func (p *Publisher) Close() error {
	err := p.ch.Close()
	<-p.done
	return err
}

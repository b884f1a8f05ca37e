package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrNacked means the broker refused to take responsibility for a message.
var ErrNacked = errors.New("broker nacked the message")

// ErrChannelClosed means the channel or connection closed before the
// confirm arrived: the message may or may not have been stored; publish it
// again (consumers must tolerate the duplicate).
var ErrChannelClosed = errors.New("channel closed before the publish was confirmed")

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
//
// After a nack it publishes on a fresh channel (once the confirms in
// flight are settled): RabbitMQ 3.10 nacks every later publish of a
// channel whose first publish to a quorum queue found no leader (the
// leader's node had just died), for as long as the channel lives, while a
// channel opened after the election works.
type Publisher struct {
	conn   *amqp.Connection
	window int

	pubMu sync.Mutex // one publish at a time, so sequence numbers match

	mu     sync.Mutex
	lane   *lane // the channel publishes go to
	renew  bool  // a nack came back: open a fresh channel before the next publish
	closed error
}

// lane is one confirm-mode channel and the publishes awaiting its confirms.
type lane struct {
	ch      *amqp.Channel
	pending map[uint64]*Confirmation // guarded by Publisher.mu
	done    chan struct{}            // closed when its loop has ended
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
	p := &Publisher{conn: conn, window: max(window, 64)}
	l, err := p.open()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.lane = l
	p.mu.Unlock()
	return p, nil
}

// open starts a confirm-mode channel and the loop that reads its
// notifications.
func (p *Publisher) open() (*lane, error) {
	ch, err := p.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open publishing channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	l := &lane{ch: ch, pending: map[uint64]*Confirmation{}, done: make(chan struct{})}
	returns := ch.NotifyReturn(make(chan amqp.Return, p.window))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, p.window))
	go p.loop(l, returns, confirms)
	return l, nil
}

// loop is the only reader of a lane's returns and confirms. The broker
// sends a basic.return before the basic.ack of the same message and
// amqp091 queues them in that order, so draining returns when an ack
// arrives is enough to know whether that message was returned.
func (p *Publisher) loop(l *lane, returns <-chan amqp.Return, confirms <-chan amqp.Confirmation) {
	defer close(l.done)
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
				p.failAll(l, ErrChannelClosed)
				return
			}
			drain()
			p.mu.Lock()
			conf := l.pending[c.DeliveryTag]
			delete(l.pending, c.DeliveryTag)
			if !c.Ack && l == p.lane {
				// Set before the caller hears of the nack, so its
				// next publish goes to a fresh channel.
				p.renew = true
			}
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

// failAll settles l's pending publishes with err; when l is the current
// lane the publisher is closed for good.
func (p *Publisher) failAll(l *lane, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l == p.lane {
		p.closed = err
	}
	for tag, c := range l.pending {
		c.err = err
		close(c.done)
		delete(l.pending, tag)
	}
}

// renewLane swaps the channel for a fresh one after a nack, once nothing
// is pending on it (their confirms belong to it). Called with pubMu and mu
// held; returns with mu held.
func (p *Publisher) renewLane() {
	if !p.renew || len(p.lane.pending) > 0 {
		return
	}
	old := p.lane
	p.mu.Unlock()
	l, err := p.open()
	p.mu.Lock()
	switch {
	case err != nil:
		// The connection is most likely gone: callers reconnect.
		p.closed = fmt.Errorf("%w (reopening it after a nack: %v)", ErrChannelClosed, err)
		return
	case p.closed != nil: // Close ran meanwhile
		p.mu.Unlock()
		_ = l.ch.Close()
		<-l.done
		p.mu.Lock()
		return
	}
	p.lane, p.renew = l, false
	p.mu.Unlock()
	_ = old.ch.Close()
	<-old.done
	p.mu.Lock()
}

// Publish sends msg with mandatory set and returns its Confirmation.
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (*Confirmation, error) {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	conf := &Confirmation{done: make(chan struct{}), exchange: exchange, key: key, messageID: msg.MessageId, body: msg.Body}
	p.mu.Lock()
	if p.closed == nil {
		p.renewLane()
	}
	if p.closed != nil {
		err := p.closed
		p.mu.Unlock()
		return nil, err
	}
	l := p.lane
	seq := l.ch.GetNextPublishSeqNo()
	// Registered before the publish: the ack can beat the return of this call.
	l.pending[seq] = conf
	p.mu.Unlock()
	if err := l.ch.PublishWithContext(ctx, exchange, key, true, false, msg); err != nil {
		p.mu.Lock()
		delete(l.pending, seq)
		p.mu.Unlock()
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
	p.mu.Lock()
	l := p.lane
	if p.closed == nil {
		p.closed = ErrChannelClosed
	}
	p.mu.Unlock()
	err := l.ch.Close()
	<-l.done
	return err
}

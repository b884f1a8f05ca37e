package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
// It watches its connection for blocks (a memory or disk alarm): WaitFor
// does not count blocked time against its timeout, a BlockedPolicy on the
// publishes' context hears about blocks and bounds them, and Close never
// waits on a connection the broker no longer reads.
type Publisher struct {
	ch   *amqp.Channel
	conn *amqp.Connection

	pubMu sync.Mutex // one publish at a time, so sequence numbers match

	mu      sync.Mutex
	pending map[uint64]*Confirmation
	closed  error

	done chan struct{}

	// The connection's block state; changed is closed (and replaced) at
	// each change, so waiters can watch it.
	bmu          sync.Mutex
	blockedSince time.Time // zero: not blocked
	blockReason  string
	changed      chan struct{}
	policy       atomic.Pointer[BlockedPolicy]
}

// Confirmation is the outcome of one publish, known once Done is closed.
type Confirmation struct {
	pub  *Publisher
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
		return c.pub.waitErr(ctx.Err())
	case <-c.done:
		return c.err
	}
}

// WaitFor is Wait with a bound on how long the broker may take to answer:
// timeout counts only time the connection is not blocked. While the broker
// blocks the connection (an alarm) WaitFor keeps waiting, for as long as
// the publishes' BlockedPolicy allows (then the publish fails with
// *BlockedError); ctx cancels the wait at any time.
func (c *Confirmation) WaitFor(ctx context.Context, timeout time.Duration) error {
	left := timeout
	for {
		blocked, changed := c.pub.blockState()
		var expired <-chan time.Time
		var timer *time.Timer
		start := time.Now()
		if !blocked {
			timer = time.NewTimer(left)
			expired = timer.C
		}
		select {
		case <-c.done:
			stopTimer(timer)
			return c.err
		case <-ctx.Done():
			stopTimer(timer)
			return c.pub.waitErr(ctx.Err())
		case <-changed:
			if stopTimer(timer) {
				left -= time.Since(start)
			}
		case <-expired:
			return fmt.Errorf("wait for publisher confirm: no answer from the broker within %s: %w", timeout, context.DeadlineExceeded)
		}
	}
}

func stopTimer(t *time.Timer) bool {
	if t == nil {
		return false
	}
	t.Stop()
	return true
}

// waitErr says why a wait ended early, naming the block if there is one.
func (p *Publisher) waitErr(err error) error {
	p.bmu.Lock()
	reason, blocked := p.blockReason, !p.blockedSince.IsZero()
	p.bmu.Unlock()
	if blocked {
		return fmt.Errorf("wait for publisher confirm (publishing blocked by the broker: %s): %w", alarmOf(reason), err)
	}
	return fmt.Errorf("wait for publisher confirm: %w", err)
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
	p := &Publisher{ch: ch, conn: conn, pending: map[uint64]*Confirmation{}, done: make(chan struct{}), changed: make(chan struct{})}
	returns := ch.NotifyReturn(make(chan amqp.Return, window))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window))
	// Drained until the connection closes, which closes it: an undrained
	// notification channel would stall the connection's reader.
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	go p.loop(returns, confirms)
	go p.watchBlocks(blocks)
	return p, nil
}

// watchBlocks follows the connection's blocked state, tells the policy,
// and enforces its Timeout.
func (p *Publisher) watchBlocks(blocks <-chan amqp.Blocking) {
	var timer *time.Timer
	var expired <-chan time.Time
	defer func() { stopTimer(timer) }()
	for {
		select {
		case b, ok := <-blocks:
			if !ok {
				return
			}
			ev, changed := p.setBlocked(b)
			if !changed {
				continue
			}
			pol := p.policy.Load()
			if pol != nil && pol.Notify != nil {
				pol.Notify(ev)
			}
			stopTimer(timer)
			timer, expired = nil, nil
			if b.Active && pol != nil && pol.Timeout > 0 {
				timer = time.NewTimer(pol.Timeout)
				expired = timer.C
			}
		case <-expired:
			timer, expired = nil, nil
			p.bmu.Lock()
			reason := p.blockReason
			p.bmu.Unlock()
			pol := p.policy.Load()
			p.failAll(&BlockedError{Reason: reason, Timeout: pol.Timeout})
			// The broker reads nothing from a blocked connection: only a
			// deadline on the socket ends a publish stuck in write or a
			// close waiting for its answer.
			_ = p.conn.CloseDeadline(time.Now().Add(time.Second))
		}
	}
}

// setBlocked records a block notification; changed is false for a repeat.
func (p *Publisher) setBlocked(b amqp.Blocking) (ev Blocking, changed bool) {
	p.bmu.Lock()
	defer p.bmu.Unlock()
	now := time.Now()
	switch {
	case b.Active && p.blockedSince.IsZero():
		p.blockedSince, p.blockReason = now, b.Reason
		ev = Blocking{Active: true, Reason: b.Reason}
	case b.Active:
		p.blockReason = b.Reason // another alarm while blocked: same block
		return ev, false
	case !p.blockedSince.IsZero():
		ev = Blocking{Active: false, Reason: p.blockReason, For: now.Sub(p.blockedSince)}
		p.blockedSince, p.blockReason = time.Time{}, ""
	default:
		return ev, false
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return ev, true
}

// blockState reports whether the connection is blocked, and a channel
// closed at the next change.
func (p *Publisher) blockState() (blocked bool, changed <-chan struct{}) {
	p.bmu.Lock()
	defer p.bmu.Unlock()
	return !p.blockedSince.IsZero(), p.changed
}

// loop is the only reader of returns and confirms. The broker sends a
// basic.return before the basic.ack of the same message and amqp091 queues
// them in that order, so draining returns when an ack arrives is enough to
// know whether that message was returned.
func (p *Publisher) loop(returns <-chan amqp.Return, confirms <-chan amqp.Confirmation) {
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
				p.failAll(ErrChannelClosed)
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
	if p.closed == nil {
		p.closed = err
	}
	for tag, c := range p.pending {
		c.err = err
		close(c.done)
		delete(p.pending, tag)
	}
}

// Publish sends msg with mandatory set and returns its Confirmation. A
// BlockedPolicy on ctx becomes the publisher's (see WithBlockedPolicy).
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (*Confirmation, error) {
	if pol := blockedPolicyFrom(ctx); pol != nil && p.policy.Load() != pol {
		p.policy.Store(pol)
	}
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	conf := &Confirmation{pub: p, done: make(chan struct{}), exchange: exchange, key: key, messageID: msg.MessageId, body: msg.Body}
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
		closed := p.closed
		p.mu.Unlock()
		var be *BlockedError
		if errors.As(closed, &be) {
			return nil, be // the write was cut off by the give-up
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

// closeWait bounds the channel close handshake of a connection that is
// not blocked; a broker that does not answer within it is not coming back.
const closeWait = 5 * time.Second

// Close closes the channel; publishes still pending fail with
// ErrChannelClosed. It never hangs: when the broker cannot answer the close
// (the connection is blocked by an alarm, or no answer within 5 s) it
// closes the whole connection instead, with a deadline on the socket, so
// callers must not expect the connection to outlive its publisher.
func (p *Publisher) Close() error {
	if blocked, changed := p.blockState(); !blocked {
		errc := make(chan error, 1)
		go func() { errc <- p.ch.Close() }()
		timer := time.NewTimer(closeWait)
		defer timer.Stop()
	wait:
		for {
			select {
			case err := <-errc:
				<-p.done
				return err
			case <-changed:
				if blocked, changed = p.blockState(); blocked {
					break wait
				}
			case <-timer.C:
				break wait
			}
		}
	}
	// A channel close left waiting ends when the connection does.
	_ = p.conn.CloseDeadline(time.Now().Add(time.Second))
	<-p.done
	return nil
}

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

// AccessRefused reports whether the broker refused err's operation for a
// missing permission (403 ACCESS_REFUSED): no reconnect or retry fixes it.
func AccessRefused(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.AccessRefused
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
//
// It watches its connection for blocks (a memory or disk alarm): WaitFor
// does not count blocked time against its timeout, a BlockedPolicy on the
// publishes' context hears about blocks and bounds them, and Close never
// waits on a connection the broker no longer reads.
//
// After a nack it publishes on a fresh channel (once the confirms in
// flight are settled, and not while the connection is blocked): RabbitMQ
// 3.10 nacks every later publish of a channel whose first publish to a
// quorum queue found no leader (the leader's node had just died), for as
// long as the channel lives, while a channel opened after the election
// works.
type Publisher struct {
	conn   *amqp.Connection
	window int

	pubMu sync.Mutex // one publish at a time, so sequence numbers match

	mu     sync.Mutex
	lane   *lane // the channel publishes go to
	renew  bool  // a nack came back: open a fresh channel before the next publish
	closed error

	// The connection's block state; changed is closed (and replaced) at
	// each change, so waiters can watch it.
	bmu          sync.Mutex
	blockedSince time.Time // zero: not blocked
	blockReason  string
	changed      chan struct{}
	policy       atomic.Pointer[BlockedPolicy]
}

// lane is one confirm-mode channel and the publishes awaiting its confirms.
type lane struct {
	ch      *amqp.Channel
	pending map[uint64]*Confirmation // guarded by Publisher.mu
	done    chan struct{}            // closed when its loop has ended
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
	p := &Publisher{conn: conn, window: max(window, 64), changed: make(chan struct{})}
	l, err := p.open()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.lane = l
	p.mu.Unlock()
	// Drained until the connection closes, which closes it: an undrained
	// notification channel would stall the connection's reader.
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	go p.watchBlocks(blocks)
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
	// amqp091 sends the close reason (once) before it closes confirms.
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	go p.loop(l, returns, confirms, closes)
	return l, nil
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
			p.mu.Lock()
			l := p.lane
			p.mu.Unlock()
			p.failAll(l, &BlockedError{Reason: reason, Timeout: pol.Timeout})
			// The broker reads nothing from a blocked connection: only a
			// deadline on the socket ends a publish stuck in write or a
			// close waiting for its answer.
			cut(p.conn)
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

// loop is the only reader of a lane's returns and confirms. The broker
// sends a basic.return before the basic.ack of the same message and
// amqp091 queues them in that order, so draining returns when an ack
// arrives is enough to know whether that message was returned.
func (p *Publisher) loop(l *lane, returns <-chan amqp.Return, confirms <-chan amqp.Confirmation, closes <-chan *amqp.Error) {
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
				var err error = ErrChannelClosed
				select {
				case reason := <-closes:
					if reason != nil {
						err = &ChannelClosedError{Reason: reason}
					}
				default:
				}
				p.failAll(l, err)
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
// lane the publisher is closed for good (with the first such error).
func (p *Publisher) failAll(l *lane, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l == p.lane && p.closed == nil {
		p.closed = err
	}
	for tag, c := range l.pending {
		c.err = err
		close(c.done)
		delete(l.pending, tag)
	}
}

// renewLane swaps the channel for a fresh one after a nack, once nothing
// is pending on it (their confirms belong to it) and the connection is not
// blocked (the broker would answer neither the open nor the close until
// the alarm clears). Called with pubMu and mu held; returns with mu held.
func (p *Publisher) renewLane() {
	if !p.renew || len(p.lane.pending) > 0 {
		return
	}
	if blocked, _ := p.blockState(); blocked {
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
		p.closeLane(l)
		p.mu.Lock()
		return
	}
	p.lane, p.renew = l, false
	p.mu.Unlock()
	p.closeLane(old)
	p.mu.Lock()
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
		closed := p.closed
		p.mu.Unlock()
		var be *BlockedError
		if errors.As(closed, &be) {
			return nil, be // the write was cut off by the give-up
		}
		if errors.Is(err, amqp.ErrClosed) {
			// The broker closed the channel under an earlier publish; its
			// reason (ACCESS_REFUSED…) says more than "not open".
			select {
			case <-l.done:
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

// Hold gathers the publishes that follow, until Release, into as few
// writes to the socket as fit: a batch of publishes leaves in one write
// instead of one each. Nothing waits on it for long: a hold ends by
// itself after 10 ms. A connection the Dialer did not make is not held.
func (p *Publisher) Hold() {
	if c := coalescerOf(p.conn); c != nil {
		c.hold()
	}
}

// Release sends what Hold gathered. Its error is the connection's: it is
// closed, and every publish in the batch fails with ErrChannelClosed.
func (p *Publisher) Release() error {
	if c := coalescerOf(p.conn); c != nil {
		return c.release()
	}
	return nil
}

// PublishAndWait publishes and waits for the outcome.
func (p *Publisher) PublishAndWait(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	c, err := p.Publish(ctx, exchange, key, msg)
	if err != nil {
		return err
	}
	return c.Wait(ctx)
}

// Close closes the channel; publishes still pending fail with
// ErrChannelClosed. It never hangs: when the broker cannot answer the close
// (the connection is blocked by an alarm, or no answer within 5 s) it
// closes the whole connection instead, with a deadline on the socket, so
// callers must not expect the connection to outlive its publisher.
func (p *Publisher) Close() error {
	p.mu.Lock()
	l := p.lane
	if p.closed == nil {
		p.closed = ErrChannelClosed
	}
	p.mu.Unlock()
	return p.closeLane(l)
}

// closeLane closes l's channel and waits for its loop. When the broker
// cannot answer the close (blocked, or silent for CloseWait) it closes the
// connection with a deadline on the socket instead (no error: the
// connection is gone either way).
func (p *Publisher) closeLane(l *lane) error {
	if blocked, changed := p.blockState(); !blocked {
		errc := make(chan error, 1)
		go func() { errc <- l.ch.Close() }()
		timer := time.NewTimer(CloseWait)
		defer timer.Stop()
	wait:
		for {
			select {
			case err := <-errc:
				<-l.done
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
	cut(p.conn)
	<-l.done
	return nil
}

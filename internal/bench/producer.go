package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// producer publishes on its own connection. With a confirm window, a
// semaphore of that size bounds the messages in flight; the confirm loop
// releases a slot per confirmation and records the confirm latency.
type producer struct {
	cfg      Config
	conn     *amqp.Connection
	ch       *amqp.Channel
	queue    string
	counters *Counters

	confirms <-chan amqp.Confirmation
	returns  <-chan amqp.Return
	closed   <-chan *amqp.Error
	blocked  <-chan amqp.Blocking

	sem chan struct{}
	// sentAt holds the send time (Unix ns) of delivery tag t at t % window;
	// no more than window messages are in flight, so no slot is reused
	// before its confirm.
	sentAt  []atomic.Int64
	latency *Histogram // owned by the confirm loop until run returns
	// isBlocked is set while the broker blocks publishers (resource alarm).
	isBlocked atomic.Bool
}

func startProducer(ctx context.Context, cfg Config, dial DialFunc, queue string, i int, counters *Counters) (*producer, error) {
	conn, err := dial(ctx, fmt.Sprintf("mqctl bench producer %d", i))
	if err != nil {
		return nil, fmt.Errorf("connect producer %d: %w", i, err)
	}
	p := &producer{cfg: cfg, conn: conn, queue: queue, counters: counters, latency: NewHistogram()}
	err = bounded(ctx, cfg.Timeout, fmt.Sprintf("open producer %d channel", i), func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		p.ch = ch
		// Every notification channel is buffered and always drained: an
		// undrained one stalls the whole connection.
		p.closed = ch.NotifyClose(make(chan *amqp.Error, 1))
		p.returns = ch.NotifyReturn(make(chan amqp.Return, 128))
		p.blocked = conn.NotifyBlocked(make(chan amqp.Blocking, 4))
		if cfg.ConfirmWindow > 0 {
			if err := ch.Confirm(false); err != nil {
				return err
			}
			p.confirms = ch.NotifyPublish(make(chan amqp.Confirmation, cfg.ConfirmWindow))
			p.sem = make(chan struct{}, cfg.ConfirmWindow)
			p.sentAt = make([]atomic.Int64, cfg.ConfirmWindow)
		}
		return nil
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return p, nil
}

// run publishes until ctx ends or the count is reached, then waits (bounded
// by the timeout) for the outstanding confirms and closes the connection.
func (p *producer) run(ctx context.Context) error {
	defer p.conn.Close()
	// Ends when the connection closes.
	go func() {
		for b := range p.blocked {
			p.isBlocked.Store(b.Active)
		}
	}()
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); p.drainReturns() }()
	go func() { defer loops.Done(); p.confirmLoop() }()
	defer loops.Wait()
	defer p.ch.Close() // ends both loops (LIFO: before the Wait)

	body := make([]byte, p.cfg.Size)
	msg := amqp.Publishing{Body: body}
	if p.cfg.Persistent {
		msg.DeliveryMode = amqp.Persistent
	}
	var interval time.Duration
	if p.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / p.cfg.Rate)
	}
	start := time.Now()
	var pause *time.Timer
	for seq := int64(0); p.cfg.ProducerCount == 0 || seq < p.cfg.ProducerCount; seq++ {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(seq) * interval)); d > 0 {
				if pause == nil {
					pause = time.NewTimer(d)
				} else {
					pause.Reset(d)
				}
				select {
				case <-pause.C:
				case <-ctx.Done():
					return p.finish()
				}
			}
		}
		if p.sem != nil {
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				return p.finish()
			case e := <-p.closed:
				return fmt.Errorf("producer channel closed: %v", e)
			}
		} else if ctx.Err() != nil {
			return p.finish()
		}
		now := time.Now()
		EncodeHeader(body, int32(seq), now, p.cfg.UseMillis)
		if p.sem != nil {
			tag := uint64(seq) + 1 // delivery tags start at 1 on a fresh channel
			p.sentAt[tag%uint64(len(p.sentAt))].Store(now.UnixNano())
		}
		// amqp091 has written the frames when Publish returns, so the body
		// buffer is reused for the next message.
		if err := p.ch.PublishWithContext(ctx, "", p.queue, p.cfg.Mandatory, false, msg); err != nil {
			if ctx.Err() != nil {
				// amqp091 checks the context before sending anything:
				// this message never left, so its slot is free again.
				if p.sem != nil {
					<-p.sem
				}
				return p.finish()
			}
			if p.isBlocked.Load() {
				return fmt.Errorf("publish while the broker blocks publishers (memory or disk alarm): %w", err)
			}
			return fmt.Errorf("publish to queue %s: %w", p.queue, err)
		}
		p.counters.Sent.Add(1)
	}
	return p.finish()
}

// finish waits for every outstanding confirm by taking all the window's
// slots, bounded by the timeout.
func (p *producer) finish() error {
	if p.sem == nil {
		return nil
	}
	wait := time.NewTimer(p.cfg.Timeout)
	defer wait.Stop()
	for taken := range cap(p.sem) {
		select {
		case p.sem <- struct{}{}:
		case <-wait.C:
			return fmt.Errorf("producer: %d publisher confirms still missing after %s", cap(p.sem)-taken, p.cfg.Timeout)
		case e, ok := <-p.closed:
			if ok {
				return fmt.Errorf("producer channel closed while waiting for confirms: %v", e)
			}
			return errors.New("producer channel closed while waiting for confirms")
		}
	}
	return nil
}

func (p *producer) confirmLoop() {
	if p.confirms == nil {
		return
	}
	for c := range p.confirms {
		sent := p.sentAt[c.DeliveryTag%uint64(len(p.sentAt))].Load()
		p.latency.Record(time.Duration(time.Now().UnixNano() - sent))
		if c.Ack {
			p.counters.Confirmed.Add(1)
		} else {
			p.counters.Nacked.Add(1)
		}
		<-p.sem
	}
}

func (p *producer) drainReturns() {
	for range p.returns {
		p.counters.Returned.Add(1)
	}
}

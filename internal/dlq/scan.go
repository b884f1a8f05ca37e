package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
)

// scanner reads, once each, the messages a queue held when it started,
// through one exclusive consumer with manual acks. Nothing is acked unless
// the caller acks it; whatever is left unacked returns to the queue when
// the scanner closes its channel.
//
// Messages the caller keeps (holds) use up the consumer's prefetch credit
// for good, so after prefetch/2 held messages the scanner cancels the
// consumer and starts a new one with fresh credit: RabbitMQ counts a
// per-consumer prefetch against that consumer's own deliveries, and a
// cancelled consumer's unacked messages stay with the channel. Memory stays
// bounded by the prefetch whatever the queue length.
//
// Acks are recorded by ack and sent by flushAcks. While the caller has
// acked every delivery so far, in order, one cumulative basic.ack
// (multiple) settles the whole run: a cumulative ack takes every unacked
// tag up to it, so it is exact only while none of them is held. After
// the first gap acks go one by one. A per-message ack costs the source
// queue about a third more work than a cumulative one.
type scanner struct {
	ch       *amqp.Channel
	closed   chan *amqp.Error
	queue    string
	prefetch int
	idle     time.Duration

	// Total is the queue's ready count when the scan started: the scan
	// stops after that many deliveries, so messages that arrive later are
	// never read.
	Total int
	seen  int

	gen        int
	held       int
	tag        string
	deliveries <-chan amqp.Delivery
	backlog    []amqp.Delivery // delivered to a cancelled consumer, not yet returned

	ackedTo uint64   // every tag up to here is acked, as far as the caller goes
	sentTo  uint64   // … and sent: ackedTo > sentTo is a cumulative ack to send
	singles []uint64 // acked after a gap, to send one by one
}

type scanStatus int

const (
	scanGot scanStatus = iota
	scanWoke
	scanDone
)

func openScanner(ctx context.Context, conn *amqp.Connection, queue string, prefetch int) (*scanner, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	s := &scanner{ch: ch, queue: queue, prefetch: min(max(prefetch, 2), 65535), idle: 2 * time.Second}
	s.closed = ch.NotifyClose(make(chan *amqp.Error, 1))
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil, fail.Usagef("queue %q not found in this vhost; `mqctl dlq ls` lists the dead-letter queues", queue)
		}
		return nil, fmt.Errorf("look up queue %q: %w", queue, err)
	}
	if q.Consumers > 0 {
		ch.Close()
		return nil, fmt.Errorf("queue %q has %d consumer(s); mqctl reads a dead-letter queue only as its sole (exclusive) consumer, so nothing is taken behind its back: stop them and run again", queue, q.Consumers)
	}
	s.Total = q.Messages
	if err := ch.Qos(s.prefetch, 0, false); err != nil {
		return nil, fmt.Errorf("set prefetch on %q: %w", queue, err)
	}
	if s.Total > 0 {
		if err := s.consume(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *scanner) consume() error {
	s.gen++
	s.held = 0
	s.tag = fmt.Sprintf("mqctl-dlq-%d", s.gen)
	d, err := s.ch.Consume(s.queue, s.tag, false, true, false, false, nil)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
			return fmt.Errorf("consume %q exclusively: %s; another consumer is attached: stop it and run again", s.queue, ae.Reason)
		}
		return fmt.Errorf("consume %q: %w", s.queue, err)
	}
	s.deliveries = d
	return nil
}

// rotate replaces the consumer by one with fresh prefetch credit; what
// the old one had been sent is kept in the backlog.
func (s *scanner) rotate() error {
	if err := s.ch.Cancel(s.tag, false); err != nil {
		return s.channelErr(fmt.Errorf("cancel consumer on %q: %w", s.queue, err))
	}
	for d := range s.deliveries {
		s.backlog = append(s.backlog, d)
	}
	return s.consume()
}

// hold records that a delivery of generation gen will stay unacked until
// the end of the scan.
func (s *scanner) hold(gen int) error {
	if gen != s.gen {
		return nil
	}
	s.held++
	if s.held >= s.prefetch/2 && s.seen+len(s.backlog) < s.Total {
		return s.rotate()
	}
	return nil
}

// next returns the next message present at the start, scanDone once all
// were read (or the queue turned out shorter), or scanWoke when wake
// fires first. A ready delivery is preferred over wake.
func (s *scanner) next(ctx context.Context, wake <-chan struct{}) (amqp.Delivery, int, scanStatus, error) {
	if s.seen >= s.Total {
		return amqp.Delivery{}, 0, scanDone, nil
	}
	if len(s.backlog) > 0 {
		d := s.backlog[0]
		s.backlog = s.backlog[1:]
		s.seen++
		// Backlog deliveries belong to an older generation: holding them
		// does not use the current consumer's credit.
		return d, s.gen - 1, scanGot, nil
	}
	select {
	case d, ok := <-s.deliveries:
		return s.got(d, ok)
	default:
	}
	timer := time.NewTimer(s.idle)
	defer timer.Stop()
	for {
		select {
		case d, ok := <-s.deliveries:
			return s.got(d, ok)
		case <-wake:
			return amqp.Delivery{}, 0, scanWoke, nil
		case <-ctx.Done():
			return amqp.Delivery{}, 0, scanDone, ctx.Err()
		case <-timer.C:
			// No delivery for a while: the queue may hold fewer messages
			// than at the start (expired, taken by a consumer that was
			// there first), or the consumer may be out of credit.
			q, err := s.ch.QueueDeclarePassive(s.queue, false, false, false, false, nil)
			if err != nil {
				return amqp.Delivery{}, 0, scanDone, s.channelErr(fmt.Errorf("look up queue %q: %w", s.queue, err))
			}
			if q.Messages == 0 {
				s.Total = s.seen
				return amqp.Delivery{}, 0, scanDone, nil
			}
			if err := s.rotate(); err != nil {
				return amqp.Delivery{}, 0, scanDone, err
			}
			timer.Reset(s.idle)
		}
	}
}

func (s *scanner) got(d amqp.Delivery, ok bool) (amqp.Delivery, int, scanStatus, error) {
	if !ok {
		return amqp.Delivery{}, 0, scanDone, s.channelErr(fmt.Errorf("consumer on %q was cancelled by the broker (queue deleted?)", s.queue))
	}
	s.seen++
	return d, s.gen, scanGot, nil
}

// channelErr prefers the broker's reason for closing the channel.
func (s *scanner) channelErr(err error) error {
	select {
	case e, ok := <-s.closed:
		if ok && e != nil {
			return fmt.Errorf("channel on %q closed by the broker: %s (the consumer timeout closes a channel whose messages stay unacked too long; see `mqctl dlq --help`)", s.queue, e.Reason)
		}
	default:
	}
	return err
}

// ack records that the message with tag is to be removed from the queue
// for good; flushAcks sends it.
func (s *scanner) ack(tag uint64) {
	if tag == s.ackedTo+1 && len(s.singles) == 0 {
		s.ackedTo = tag
		return
	}
	s.singles = append(s.singles, tag)
}

// flushAcks sends every recorded ack. On an error none of them may have
// reached the broker: the channel is gone, and its unacked messages
// return to the queue.
func (s *scanner) flushAcks() error {
	if s.ackedTo > s.sentTo {
		if err := s.ch.Ack(s.ackedTo, true); err != nil {
			return s.channelErr(fmt.Errorf("ack on %q: %w", s.queue, err))
		}
		s.sentTo = s.ackedTo
	}
	for len(s.singles) > 0 {
		if err := s.ch.Ack(s.singles[0], false); err != nil {
			return s.channelErr(fmt.Errorf("ack on %q: %w", s.queue, err))
		}
		s.singles = s.singles[1:]
	}
	return nil
}

// close returns every unacked message to the queue. Acks sent before are
// processed first: frames on a connection keep their order. Acks still
// recorded are sent first; their error is close's.
func (s *scanner) close() error {
	if err := s.flushAcks(); err != nil {
		s.ch.Close()
		return err
	}
	err := s.ch.Close()
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}

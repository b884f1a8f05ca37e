package bench

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ackFlush is how long a consumer holds unacknowledged messages below the
// multi-ack threshold when no more arrive (the tail of a run).
const ackFlush = 100 * time.Millisecond

// consumer consumes on its own connection with manual acks, acknowledging
// every MultiAckEvery messages at once.
type consumer struct {
	cfg        Config
	conn       *amqp.Connection
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	closed     <-chan *amqp.Error
	counters   *Counters

	latency     *Histogram
	noTimestamp int64
}

func startConsumer(ctx context.Context, cfg Config, dial DialFunc, queue string, i int, counters *Counters) (*consumer, error) {
	conn, err := dial(ctx, fmt.Sprintf("mqctl bench consumer %d", i))
	if err != nil {
		return nil, fmt.Errorf("connect consumer %d: %w", i, err)
	}
	c := &consumer{cfg: cfg, conn: conn, counters: counters, latency: NewHistogram()}
	err = bounded(ctx, cfg.Timeout, fmt.Sprintf("start consumer %d on %s", i, queue), func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		c.ch = ch
		c.closed = ch.NotifyClose(make(chan *amqp.Error, 1))
		if cfg.Prefetch > 0 {
			if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
				return err
			}
		}
		c.deliveries, err = ch.Consume(queue, fmt.Sprintf("mqctl-bench-%d-%s", i, randomHex(3)), false, false, false, false, nil)
		return err
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *consumer) close() { c.conn.Close() }

// run consumes until ctx ends or the consumer's count is reached. It
// acknowledges what it took before returning, so nothing it counted goes
// back to the queue.
func (c *consumer) run(ctx context.Context) error {
	defer c.conn.Close()
	every := c.cfg.MultiAckEvery
	var received, pending int64
	var lastTag uint64
	ack := func() error {
		if pending == 0 {
			return nil
		}
		pending = 0
		if err := c.ch.Ack(lastTag, true); err != nil {
			return fmt.Errorf("acknowledge deliveries: %w", err)
		}
		return nil
	}
	flush := time.NewTicker(ackFlush)
	defer flush.Stop()
	for {
		select {
		case d, ok := <-c.deliveries:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("consumer channel closed: %v", <-c.closed)
			}
			if _, sent, ok := DecodeHeader(d.Body); ok {
				c.latency.Record(time.Since(sent))
			} else {
				c.noTimestamp++
			}
			c.counters.Received.Add(1)
			received++
			lastTag = d.DeliveryTag
			pending++
			if pending >= int64(every) {
				if err := ack(); err != nil {
					return err
				}
			}
			if c.cfg.ConsumerCount > 0 && received >= c.cfg.ConsumerCount {
				return ack()
			}
		case <-flush.C:
			if err := ack(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ack()
		}
	}
}

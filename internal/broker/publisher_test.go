package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/mqctl/mqctl/internal/brokertest"
)

func TestPublisherTellsConfirmedFromReturned(t *testing.T) {
	// Registered first, so it runs after the connection's cleanup.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	env := brokertest.New(t)
	conn := env.Dial(t)
	ch, _ := conn.Channel()
	if _, err := ch.QueueDeclare("routed", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(conn, 256)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Interleave routable and unroutable publishes, all in flight at once:
	// exactly the unroutable ones must fail, each with a return.
	const n = 400
	confs := make([]*Confirmation, n)
	for i := 0; i < n; i++ {
		key := "routed"
		if i%3 == 0 {
			key = "nowhere"
		}
		confs[i], err = p.Publish(ctx, "", key, amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte(fmt.Sprint("body ", i)), DeliveryMode: amqp.Persistent})
		if err != nil {
			t.Fatal(err)
		}
	}
	routed := 0
	for i, c := range confs {
		err := c.Wait(ctx)
		var re *ReturnedError
		if i%3 == 0 {
			if !errors.As(err, &re) || re.RoutingKey != "nowhere" || re.Code != amqp.NoRoute {
				t.Errorf("publish %d to nowhere: %v, want a NO_ROUTE return", i, err)
			}
		} else {
			if err != nil {
				t.Errorf("publish %d to routed: %v", i, err)
			}
			routed++
		}
	}
	if got := env.QueueDepth(t, "routed"); got != routed {
		t.Errorf("queue holds %d, confirmed %d", got, routed)
	}
	p.Close()
}

func TestPublisherPendingFailWhenChannelDies(t *testing.T) {
	env := brokertest.New(t)
	conn := env.Dial(t)
	p, err := NewPublisher(conn, 64)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Publishing to a missing exchange closes the channel (404); every
	// pending confirm must resolve as not confirmed, never hang.
	c, err := p.Publish(ctx, "no-such-exchange", "k", amqp.Publishing{Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("want ErrChannelClosed, got %v", err)
	}
	if _, err := p.Publish(ctx, "", "k", amqp.Publishing{}); err == nil {
		t.Fatal("publish on a dead publisher succeeded")
	}
}

func TestPublisherPublishesOnAFreshChannelAfterANack(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	env := brokertest.New(t)
	conn := env.Dial(t)
	ch, _ := conn.Channel()
	// A full queue that refuses more: the broker nacks the second publish.
	if _, err := ch.QueueDeclare("full", true, false, false, false, amqp.Table{"x-max-length": 1, "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(conn, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg := amqp.Publishing{Body: []byte("x")}
	if err := p.PublishAndWait(ctx, "", "full", msg); err != nil {
		t.Fatalf("first publish: %v", err)
	}
	first := p.lane.ch
	if err := p.PublishAndWait(ctx, "", "full", msg); !errors.Is(err, ErrNacked) {
		t.Fatalf("publish to a full queue: %v, want ErrNacked", err)
	}
	if _, err := ch.QueuePurge("full", false); err != nil {
		t.Fatal(err)
	}
	// RabbitMQ 3.10 keeps nacking on a channel whose publish to a quorum
	// queue found no leader; the publisher moves to a fresh channel.
	if err := p.PublishAndWait(ctx, "", "full", msg); err != nil {
		t.Fatalf("publish after the nack: %v", err)
	}
	if p.lane.ch == first {
		t.Error("the publisher kept the channel that was nacked")
	}
	if !first.IsClosed() {
		t.Error("the nacked channel was left open")
	}
	ch.Close()
}

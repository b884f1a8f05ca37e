package brokertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Channels is where a test opens channels: an Env (a private vhost on the
// shared broker) or a Node (a private node's default vhost).
type Channels interface {
	Channel(t testing.TB) *amqp.Channel
}

// DLQFixture declares work queue "email" dead-lettering through email.dlx
// into the classic email.dlq, and an "audit" queue on the same exchange,
// then has the broker dead-letter n messages (ids evt-00001…, bodies of
// bodySize bytes) by rejecting them.
func DLQFixture(t testing.TB, c Channels, n, bodySize int) {
	t.Helper()
	ch := c.Channel(t)
	defer ch.Close()
	for _, err := range []error{
		ch.ExchangeDeclare("events", "topic", true, false, false, false, nil),
		ch.ExchangeDeclare("email.dlx", "direct", true, false, false, false, nil),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	args := amqp.Table{"x-dead-letter-exchange": "email.dlx", "x-dead-letter-routing-key": "email"}
	for q, a := range map[string]amqp.Table{"email": args, "audit": nil, "email.dlq": nil} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range [][3]string{{"email", "user.registered", "events"}, {"audit", "#", "events"}, {"email.dlq", "email", "email.dlx"}} {
		if err := ch.QueueBind(b[0], b[1], b[2], false, nil); err != nil {
			t.Fatal(err)
		}
	}
	DeadLetter(t, c, 1, n, bodySize)
}

// DeadLetter publishes messages evt-<first>…evt-<last> to the fixture's
// "email" queue and rejects them, so that the broker dead-letters them
// into email.dlq; it returns once they are all there.
func DeadLetter(t testing.TB, c Channels, first, last, bodySize int) {
	t.Helper()
	if last < first {
		return
	}
	ch := c.Channel(t)
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	before := Depth(t, c, "email.dlq")
	body := []byte(strings.Repeat("x", bodySize))
	var lastConf *amqp.DeferredConfirmation
	for i := first; i <= last; i++ {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "events", "user.registered", false, false,
			amqp.Publishing{MessageId: fmt.Sprintf("evt-%05d", i), DeliveryMode: 2, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		lastConf = dc
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ok, err := lastConf.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("confirm of the messages to dead-letter: %v (is the broker blocking publishers?)", err)
	}
	want := last - first + 1
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume("email", "reject", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for got := 0; got < want; got++ {
		var d amqp.Delivery
		select {
		case d = <-ds:
		case <-ctx.Done():
			t.Fatalf("received %d of the %d messages to dead-letter within a minute", got, want)
		}
		if got%500 == 499 || got == want-1 {
			_ = d.Nack(true, false)
		}
	}
	_ = ch.Cancel("reject", false)
	_, _ = ch.QueuePurge("audit", false)
	WaitFor(t, "the dead letters in email.dlq", 30*time.Second, func() bool { return Depth(t, c, "email.dlq") >= before+want })
}

// Depth is a queue's ready count, exact (a passive declare).
func Depth(t testing.TB, c Channels, queue string) int {
	t.Helper()
	ch := c.Channel(t)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare %s: %v", queue, err)
	}
	return q.Messages
}

// DrainIDs removes every message of queue and returns their message ids,
// in queue order.
func DrainIDs(t testing.TB, c Channels, queue string) []string {
	t.Helper()
	return readIDs(t, c, queue, true)
}

// PeekIDs returns the message ids of every message in queue, in order,
// and leaves them there (read unacked, then returned by closing the
// channel). Only for classic queues: a quorum queue counts each return
// toward its delivery limit.
func PeekIDs(t testing.TB, c Channels, queue string) []string {
	t.Helper()
	return readIDs(t, c, queue, false)
}

func readIDs(t testing.TB, c Channels, queue string, remove bool) []string {
	t.Helper()
	n := Depth(t, c, queue)
	out := make([]string, 0, n)
	if n == 0 {
		return out
	}
	ch := c.Channel(t)
	defer ch.Close()
	ds, err := ch.Consume(queue, "", remove, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", queue, err)
	}
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for len(out) < n {
		select {
		case d, ok := <-ds:
			if !ok {
				t.Fatalf("consumer on %s closed after %d of %d messages", queue, len(out), n)
			}
			out = append(out, d.MessageId)
		case <-timeout.C:
			t.Fatalf("read %d of the %d messages in %s within 60s", len(out), n, queue)
		}
	}
	return out
}

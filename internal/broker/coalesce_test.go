package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/mqctl/mqctl/internal/brokertest"
)

// recordingConn records each write it is given.
type recordingConn struct {
	net.Conn
	writes [][]byte
	fail   error
	closed bool
}

func (r *recordingConn) Write(p []byte) (int, error) {
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recordingConn) Close() error { r.closed = true; return nil }

// Held writes leave in order, as one write, at the release; without a
// hold each goes at once; a failed write of held bytes closes the
// connection and fails every later write.
func TestCoalescingConnGathersHeldWrites(t *testing.T) {
	rec := &recordingConn{}
	// Released by the test alone, however slow the machine.
	c := &coalescingConn{Conn: rec, limit: time.Hour}
	c.Write([]byte("a"))
	c.hold()
	c.Write([]byte("b"))
	c.Write([]byte("c"))
	if len(rec.writes) != 1 {
		t.Fatalf("held writes went out: %q", rec.writes)
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("d"))
	if fmt.Sprintf("%q", rec.writes) != `["a" "bc" "d"]` {
		t.Errorf("writes %q, want a, bc, d", rec.writes)
	}

	c.hold()
	c.Write([]byte("e"))
	rec.fail = errors.New("broken pipe")
	if err := c.release(); err == nil || !rec.closed {
		t.Errorf("release of a failing write: %v, closed %v", err, rec.closed)
	}
	if _, err := c.Write([]byte("f")); err == nil {
		t.Error("a write after the failure succeeded")
	}
}

// A hold ends by itself: a frame that expects an answer is never left
// waiting.
func TestCoalescingConnHoldEndsByItself(t *testing.T) {
	rec := &recordingConn{}
	c := &coalescingConn{Conn: rec}
	c.hold()
	c.Write([]byte("open"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := len(rec.writes)
		c.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the held write never left")
		}
		time.Sleep(time.Millisecond)
	}
}

// Through a Dialer's connection, publishes held and released together are
// each confirmed or returned as one by one, and a channel opened while
// publishes are held (an RPC awaiting its answer) still opens.
func TestPublisherHoldsABatchIntoOneWrite(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	env := brokertest.New(t)
	d, err := NewDialer(env.Settings(t), "coalesce test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := d.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if coalescerOf(conn) == nil {
		t.Fatal("the Dialer's connection has no coalescer")
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("held", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(conn, 512)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 300
	var confs []*Confirmation
	for batch := 0; batch < 3; batch++ {
		p.Hold()
		for i := 0; i < n/3; i++ {
			key := "held"
			if i%10 == 0 {
				key = "nowhere"
			}
			c, err := p.Publish(ctx, "", key, amqp.Publishing{MessageId: fmt.Sprint(batch, "-", i), Body: make([]byte, 1024)})
			if err != nil {
				t.Fatal(err)
			}
			confs = append(confs, c)
		}
		if batch == 1 {
			// Held: the open waits for the hold to end by itself.
			other, err := conn.Channel()
			if err != nil {
				t.Fatalf("channel opened while held: %v", err)
			}
			other.Close()
		}
		if err := p.Release(); err != nil {
			t.Fatal(err)
		}
	}
	routed := 0
	for i, c := range confs {
		err := c.Wait(ctx)
		var re *ReturnedError
		switch {
		case i%(n/3)%10 == 0:
			if !errors.As(err, &re) {
				t.Errorf("publish %d to nowhere: %v, want a return", i, err)
			}
		case err != nil:
			t.Errorf("publish %d: %v", i, err)
		default:
			routed++
		}
	}
	if got := env.QueueDepth(t, "held"); got != routed || routed != n-n/10 {
		t.Errorf("queue holds %d, confirmed %d of %d", got, routed, n-n/10)
	}
}

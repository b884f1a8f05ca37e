package broker

import (
	"net"
	"runtime"
	"sync"
	"time"
	"weak"

	amqp "github.com/rabbitmq/amqp091-go"
)

// amqp091 flushes its buffer after every publish: one write(2), and on
// loopback one trip through the TCP stack, per message, which was a fifth
// of a replay's CPU. A coalescingConn sits under amqp091 (through its
// Config.Dial hook, amqp091 itself unchanged) and, while a caller holds
// it, gathers those writes into one. Frames keep their order (one buffer,
// one lock); only their departure waits, and never for long: the caller
// releases the hold when its batch is published, and a timer releases it
// after holdLimit in any case, so a frame that expects an answer (a
// channel open, a close) is never left waiting on a hold.
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex
	holding bool
	buf     []byte
	timer   *time.Timer
	limit   time.Duration // of a hold; 0: holdLimit
	err     error         // a write of held bytes failed: the connection is dead
}

const (
	// holdLimit bounds how long a held frame waits to go out.
	holdLimit = 10 * time.Millisecond
	// holdBytes is how much is gathered into one write at most.
	holdBytes = 256 << 10
)

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.holding && len(c.buf)+len(p) <= holdBytes {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// hold gathers writes until release, or holdLimit at most.
func (c *coalescingConn) hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding || c.err != nil {
		return
	}
	c.holding = true
	limit := c.limit
	if limit == 0 {
		limit = holdLimit
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(limit, func() { _ = c.release() })
	} else {
		c.timer.Reset(limit)
	}
}

// release sends what was gathered, in one write, and ends the hold.
func (c *coalescingConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.holding = false
	return c.flushLocked()
}

// flushLocked writes the gathered bytes. amqp091 was told they were
// written: when they cannot be, the connection is closed, so that its
// reader fails and amqp091 shuts the connection down as after any failed
// write (publishes awaiting a confirm fail with the channel).
func (c *coalescingConn) flushLocked() error {
	if len(c.buf) == 0 || c.err != nil {
		return c.err
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if err != nil {
		c.err = err
		c.Conn.Close()
	}
	return err
}

// coalescers maps the connections the Dialer made to their coalescingConn,
// without keeping a connection alive: the entry goes with it.
var coalescers sync.Map // weak.Pointer[amqp.Connection] → *coalescingConn

func registerCoalescer(conn *amqp.Connection, c *coalescingConn) {
	key := weak.Make(conn)
	coalescers.Store(key, c)
	runtime.AddCleanup(conn, func(k weak.Pointer[amqp.Connection]) { coalescers.Delete(k) }, key)
}

// coalescerOf is conn's coalescingConn, nil for a connection made
// elsewhere (tests dial amqp091 directly): its writes go out one by one.
func coalescerOf(conn *amqp.Connection) *coalescingConn {
	if c, ok := coalescers.Load(weak.Make(conn)); ok {
		return c.(*coalescingConn)
	}
	return nil
}

// Package worker is a reusable RabbitMQ consumer that follows the retry and
// dead-letter contract of internal/pattern: manual acks after the work is
// done, a prefetch window, failed attempts republished (confirm +
// mandatory) to the queue's delay queues and after the last attempt to its
// dead-letter exchange with the failure recorded in headers, the original
// acked only after that publish is confirmed. It reconnects with backoff
// after a connection loss (a fresh channel, fresh notify channels, no
// delivery tag from the old channel is ever acked) and stops gracefully:
// stop consuming, finish the deliveries in hand, then close.
//
// Delivery is at least once. Handlers make side effects idempotent, for
// example with a Ledger keyed by the message id.
package worker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/pattern"
)

// Handler does the work for one delivery. nil means done (the message is
// acked); an error means this attempt failed (retried or dead-lettered per
// the policy); a Permanent error dead-letters at once.
type Handler func(ctx context.Context, d Delivery) error

// Delivery is what a handler sees of a message.
type Delivery struct {
	MessageID   string
	RoutingKey  string
	Body        []byte
	Headers     amqp.Table
	Attempt     int  // 1-based, from pattern.HeaderAttempt
	Redelivered bool // the broker delivered it before (a crash or lost connection)
}

// Ledger is an idempotency ledger: Once runs effect and records (handler,
// key) in one transaction unless the pair is already recorded.
// internal/ledger implements it with SQLite.
type Ledger interface {
	Once(ctx context.Context, handler, key string, effect func(*sql.Tx) error) (applied bool, err error)
	Seen(ctx context.Context, handler, key string) (bool, error)
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks an error no retry can fix (a malformed message): the
// message goes straight to the dead-letter queue.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Dialer opens connections; *broker.Dialer satisfies it.
type Dialer interface {
	DialRetry(ctx context.Context, b broker.Backoff, onRetry func(attempt int, err error)) (*amqp.Connection, error)
	Failover()
}

// EventKind names what happened, for logs and counters.
type EventKind string

// Event kinds.
const (
	Connected    EventKind = "connected"
	Disconnected EventKind = "disconnected"
	Retrying     EventKind = "reconnecting"
	Acked        EventKind = "acked"
	Retried      EventKind = "retried"
	DeadLettered EventKind = "dead-lettered"
	Requeued     EventKind = "requeued" // the retry publish failed; the broker redelivers
	Stopping     EventKind = "stopping"
)

// Event is one thing the worker did, reported to Config.OnEvent.
type Event struct {
	Kind      EventKind
	MessageID string
	Attempt   int
	Delay     time.Duration // before the next attempt, for Retried
	Err       error
}

// Config is a worker's queue, policy and dependencies.
type Config struct {
	// Queue is the work queue to consume.
	Queue string
	// Retry is the queue's policy; Retry.Queue is set to Queue when empty.
	Retry pattern.Retry
	// Prefetch bounds unacked deliveries, and is also how many run at once.
	Prefetch int
	// Dialer connects and reconnects.
	Dialer Dialer
	// Reconnect is the backoff between reconnect rounds.
	Reconnect broker.Backoff
	// Handler does the work.
	Handler Handler
	// ConsumerTag names the consumer in the management UI.
	ConsumerTag string
	// PublishTimeout bounds the retry/dead-letter publish (default 10s).
	PublishTimeout time.Duration
	// MissingQueueTimeout is how long the worker keeps trying, with the
	// reconnect backoff, to consume a queue that disappeared after it had
	// consumed from it (`mqctl topology apply --migrate` deletes and
	// re-creates a queue); default 2 min. A queue missing when the worker
	// starts fails Run at once with ErrQueueMissing.
	MissingQueueTimeout time.Duration
	// OnEvent, when set, hears about every event; it must not block long.
	OnEvent func(Event)
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// ErrQueueMissing means the work queue does not exist: when the worker
// starts (reconnecting cannot fix that), or for longer than
// Config.MissingQueueTimeout after it had consumed from it.
var ErrQueueMissing = errors.New("work queue not found")

// Run consumes until ctx ends (nil: a graceful stop) or an error no
// reconnect can fix. Deliveries in hand when ctx ends are finished and
// acknowledged before Run returns.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Queue == "" || cfg.Handler == nil || cfg.Dialer == nil {
		return errors.New("worker: Queue, Handler and Dialer are required")
	}
	if cfg.Retry.Queue == "" {
		cfg.Retry.Queue = cfg.Queue
	}
	cfg.Prefetch = max(cfg.Prefetch, 1)
	if cfg.Reconnect.Initial == 0 {
		cfg.Reconnect = broker.DefaultBackoff
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	if cfg.MissingQueueTimeout == 0 {
		cfg.MissingQueueTimeout = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Event) {}
	}
	w := &worker{cfg: cfg}
	for {
		conn, err := cfg.Dialer.DialRetry(ctx, cfg.Reconnect, func(_ int, err error) {
			cfg.OnEvent(Event{Kind: Retrying, Err: err})
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		err = w.session(ctx, conn)
		broker.CloseConnection(conn, broker.CloseWait)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrQueueMissing) {
			wait, gerr := w.missing(err)
			if gerr != nil {
				return gerr
			}
			cfg.OnEvent(Event{Kind: Retrying, Err: err})
			if broker.Sleep(ctx, wait) != nil {
				return nil
			}
			continue
		}
		if rerr := w.refusal(); rerr != nil {
			return fail.Wrap(fail.Auth, rerr)
		}
		if !w.reported {
			cfg.OnEvent(Event{Kind: Disconnected, Err: err})
		}
		w.reported = false
		cfg.Dialer.Failover()
		if broker.Sleep(ctx, cfg.Reconnect.Delay(0)) != nil {
			return nil
		}
	}
}

type worker struct {
	cfg             Config
	onPublisherLost func()
	reported        bool // the session already reported its disconnect
	// consumed is set once a session consumed from the queue: a queue
	// missing after that is being re-created (a migration), not a typo.
	consumed     bool
	missingSince time.Time
	missingTries int

	mu      sync.Mutex
	refused error // the broker refused publishing a retry: the worker stops
}

// refuse stops the worker for a refusal no reconnect can fix.
func (w *worker) refuse(err error) {
	w.mu.Lock()
	if w.refused == nil {
		w.refused = err
	}
	w.mu.Unlock()
	w.onPublisherLost()
}

// missing decides about a work queue found missing: a queue that never
// existed for this worker fails at once; one that disappeared is waited
// for with the reconnect backoff, up to MissingQueueTimeout.
func (w *worker) missing(err error) (wait time.Duration, giveUp error) {
	if !w.consumed {
		return 0, err
	}
	if w.missingSince.IsZero() {
		w.missingSince = time.Now()
	}
	if gone := time.Since(w.missingSince); gone > w.cfg.MissingQueueTimeout {
		return 0, fmt.Errorf("%w for %s after the worker had consumed from it; declare it again (`mqctl topology apply -f FILE`)", err, gone.Round(time.Second))
	}
	w.missingTries++
	return w.cfg.Reconnect.Delay(w.missingTries), nil
}

func (w *worker) refusal() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused
}

// session consumes on one connection until ctx ends (nil) or the
// connection or channel dies (an error). Everything it opens (channel,
// notify channels, publisher) belongs to this connection only.
func (w *worker) session(ctx context.Context, conn *amqp.Connection) error {
	cfg := w.cfg
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	// The broker cancels the consumer (basic.cancel) when the queue is
	// deleted, and the channel stays open: without this the session would
	// wait for ever on a queue that is gone.
	cancelled := ch.NotifyCancel(make(chan string, 1))
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch %d: %w", cfg.Prefetch, err)
	}
	pub, err := broker.NewPublisher(conn, cfg.Prefetch)
	if err != nil {
		return err
	}
	defer pub.Close()
	tag := cfg.ConsumerTag
	if tag == "" {
		tag = "mqctl-worker-" + cfg.Queue
	}
	deliveries, err := ch.Consume(cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return fmt.Errorf("consume %s: %w; declare it first (`mqctl topology apply -f FILE`)", cfg.Queue, ErrQueueMissing)
		}
		return fmt.Errorf("consume %s: %w", cfg.Queue, err)
	}
	w.consumed, w.missingSince, w.missingTries = true, time.Time{}, 0
	cfg.OnEvent(Event{Kind: Connected})

	// broken is closed when the retry publisher's channel is gone: every
	// retry would be requeued, so the session starts over instead.
	broken := make(chan struct{})
	var breakOnce sync.Once
	w.onPublisherLost = func() { breakOnce.Do(func() { close(broken) }) }

	var wg sync.WaitGroup
	for range cfg.Prefetch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The handler's context survives the stop signal, so work in
			// hand finishes; deliveries ends when the consumer is
			// cancelled or the channel dies.
			hctx := context.WithoutCancel(ctx)
			for d := range deliveries {
				w.process(hctx, ch, pub, d)
			}
		}()
	}

	result := w.await(ctx, conn, ch, tag, sessionEnds{conn: connClosed, ch: chClosed, cancelled: cancelled, broken: broken})
	wg.Wait()
	broker.WithinOrCut(conn, broker.CloseWait, func() { _ = ch.Close() })
	return result
}

// sessionEnds are the notifications that end a session.
type sessionEnds struct {
	conn, ch  <-chan *amqp.Error
	cancelled <-chan string
	broken    <-chan struct{}
}

// await waits until the session must end and returns why (nil for a
// stop). For a failure it closes the channel at once, so the broker
// requeues the deliveries not yet handled; after a basic.cancel from the
// broker (the queue was deleted) it does not: those deliveries are in no
// queue any more, and the handlers finish them first.
func (w *worker) await(ctx context.Context, conn *amqp.Connection, ch *amqp.Channel, tag string, ends sessionEnds) error {
	cfg := w.cfg
	var result error
	requeue := true
	select {
	case <-ctx.Done():
		cfg.OnEvent(Event{Kind: Stopping})
		// basic.cancel: the broker stops sending; deliveries already
		// buffered are still handled, then the channel closes. A broker
		// that does not answer reads nothing from this connection (an
		// alarm blocks it once a retry was published here): closing the
		// socket ends the handlers' waits too, the deliveries in hand
		// return to the queue, and the ledger absorbs their repeat.
		if !broker.WithinOrCut(conn, broker.CloseWait, func() { _ = ch.Cancel(tag, false) }) {
			cfg.OnEvent(Event{Kind: Disconnected, Err: fmt.Errorf("no answer from the broker within %s to stop consuming (is an alarm blocking the connection?): closed it; unacked deliveries return to %s", broker.CloseWait, cfg.Queue)})
			w.reported = true
		}
		return nil
	case e := <-ends.conn:
		result = closeErr("connection", e)
	case e := <-ends.ch:
		result = closeErr("channel", e)
	case _, ok := <-ends.cancelled:
		result, requeue = fmt.Errorf("the broker cancelled the consumer of %s (the queue was deleted?); consuming again", cfg.Queue), false
		if !ok {
			// Closed with the channel: the close says why.
			result, requeue = closeErr("channel", <-ends.ch), true
		}
	case <-ends.broken:
		result = errors.New("retry publishing channel closed")
	}
	// Report the loss now: handlers in hand may still take a while.
	if requeue {
		_ = ch.Close()
	}
	cfg.OnEvent(Event{Kind: Disconnected, Err: result})
	w.reported = true
	return result
}

func closeErr(what string, e *amqp.Error) error {
	if e == nil {
		return fmt.Errorf("%s closed", what)
	}
	return fmt.Errorf("%s closed: %w", what, e)
}

// process runs the handler and settles d on the channel it came from. A
// failed ack (channel gone) is not an error: the broker redelivers, and
// the handler's ledger absorbs the repeat.
func (w *worker) process(ctx context.Context, ch *amqp.Channel, pub *broker.Publisher, d amqp.Delivery) {
	cfg := w.cfg
	attempt := Attempt(d.Headers)
	err := safeHandle(ctx, cfg.Handler, Delivery{
		MessageID: d.MessageId, RoutingKey: d.RoutingKey, Body: d.Body,
		Headers: d.Headers, Attempt: attempt, Redelivered: d.Redelivered,
	})
	if err == nil {
		_ = d.Ack(false)
		cfg.OnEvent(Event{Kind: Acked, MessageID: d.MessageId, Attempt: attempt})
		return
	}
	dec := cfg.Retry.AfterFailure(attempt)
	if IsPermanent(err) {
		dec = pattern.Decision{Exchange: pattern.DeadLetterExchange(cfg.Retry.Queue), RoutingKey: cfg.Retry.Queue, DeadLetter: true}
	}
	if dec.DeadLetter && cfg.Retry.DLQ == "" {
		// No dead-letter queue in the policy: hand the message to the
		// broker's own dead lettering (or its drop, if none is set).
		_ = d.Nack(false, false)
		cfg.OnEvent(Event{Kind: DeadLettered, MessageID: d.MessageId, Attempt: attempt, Err: err})
		return
	}
	msg := Republish(d, dec, cfg.Retry.Queue, attempt, err, cfg.Now())
	pctx, cancel := context.WithTimeout(ctx, cfg.PublishTimeout)
	perr := pub.PublishAndWait(pctx, dec.Exchange, dec.RoutingKey, msg)
	cancel()
	if perr != nil {
		if broker.AccessRefused(perr) {
			// A missing write permission: every retry would be refused
			// the same way, so stop instead of cycling the message.
			w.refuse(fmt.Errorf("consume %s: publishing the retry of %s was refused, so the worker stops (the message stays in %s): %w", cfg.Queue, d.MessageId, cfg.Queue, perr))
		} else if errors.Is(perr, broker.ErrChannelClosed) {
			w.onPublisherLost()
		} else {
			// A missing delay queue or a refusal will not fix itself in a
			// millisecond; don't spin on it.
			_ = broker.Sleep(ctx, time.Second)
		}
		// Never lose it: leave it to the broker to deliver again. A
		// reject, not a nack: RabbitMQ 4.3 no longer counts a
		// nack(requeue) toward a quorum queue's delivery limit, so a
		// retry publish that keeps failing would loop for ever; a
		// reject(requeue) counts on every version and ends, at the
		// limit, in the dead-letter queue.
		_ = d.Reject(true)
		cfg.OnEvent(Event{Kind: Requeued, MessageID: d.MessageId, Attempt: attempt, Err: fmt.Errorf("%v; publishing the retry failed: %w", err, perr)})
		return
	}
	_ = d.Ack(false)
	if dec.DeadLetter {
		cfg.OnEvent(Event{Kind: DeadLettered, MessageID: d.MessageId, Attempt: attempt, Err: err})
	} else {
		cfg.OnEvent(Event{Kind: Retried, MessageID: d.MessageId, Attempt: attempt, Delay: dec.Delay, Err: err})
	}
}

func safeHandle(ctx context.Context, h Handler, d Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, d)
}

// Attempt reads pattern.HeaderAttempt; absent or unreadable means 1.
func Attempt(h amqp.Table) int {
	var n int64
	switch v := h[pattern.HeaderAttempt].(type) {
	case int8:
		n = int64(v)
	case int16:
		n = int64(v)
	case int32:
		n = int64(v)
	case int64:
		n = v
	case int:
		n = int64(v)
	case uint8:
		n = int64(v)
	case uint16:
		n = int64(v)
	case uint32:
		n = int64(v)
	case string:
		n, _ = strconv.ParseInt(v, 10, 64)
	}
	if n < 1 {
		return 1
	}
	return int(n)
}

// Republish builds the copy of d that a failed attempt sends on: same body
// and properties, headers updated per the pattern contract. Expiration is
// dropped so a per-message TTL cannot shorten a delay queue's wait, and
// user_id because the broker refuses one that is not the publisher's user.
func Republish(d amqp.Delivery, dec pattern.Decision, queue string, attempt int, cause error, now time.Time) amqp.Publishing {
	h := amqp.Table{}
	for k, v := range d.Headers {
		h[k] = v
	}
	at := now.UTC().Format(time.RFC3339)
	if _, ok := h[pattern.HeaderFirstFailedAt]; !ok {
		h[pattern.HeaderFirstFailedAt] = at
	}
	if _, ok := h[pattern.HeaderRoutingKey]; !ok {
		h[pattern.HeaderExchange], h[pattern.HeaderRoutingKey] = d.Exchange, d.RoutingKey
	}
	h[pattern.HeaderFailedAt] = at
	h[pattern.HeaderFailureReason] = truncate(cause.Error(), 1024)
	h[pattern.HeaderErrorClass] = ErrorClass(cause)
	h[pattern.HeaderWorker] = workerID
	h[pattern.HeaderOriginQueue] = queue
	if dec.DeadLetter {
		h[pattern.HeaderAttempt] = int32(attempt)
	} else {
		h[pattern.HeaderAttempt] = int32(dec.NextAttempt)
	}
	mode := d.DeliveryMode
	if mode == 0 {
		mode = amqp.Persistent
	}
	return amqp.Publishing{
		Headers: h, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: mode, Priority: d.Priority, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, MessageId: d.MessageId, Timestamp: d.Timestamp,
		Type: d.Type, AppId: d.AppId, Body: d.Body,
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// workerID names this process in the failure headers: a person reading a
// dead letter can find the log of the attempt that gave up.
var workerID = func() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}()

// ErrorClass is the kind of err for the failure headers: the ErrorClass()
// of the first error in its chain that has one (a handler's way to name
// its failures), else the Go type of the innermost error that is more
// than a bare text (a wrapped *net.OpError gives "*net.OpError"), else
// "error". Grouping dead letters by class keeps apart failures whose
// texts look alike.
func ErrorClass(err error) string {
	var named interface{ ErrorClass() string }
	if errors.As(err, &named) {
		if c := named.ErrorClass(); c != "" {
			return c
		}
	}
	class := "error"
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch t := fmt.Sprintf("%T", e); t {
		case "*errors.errorString", "*fmt.wrapError", "*fmt.wrapErrors", "*errors.joinError", "worker.permanentError":
		default:
			class = t
		}
	}
	return class
}

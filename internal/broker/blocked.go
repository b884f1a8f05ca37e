package broker

import (
	"context"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Blocking is a change in whether the broker blocks a publisher's
// connection. RabbitMQ blocks every publishing connection of the cluster
// while a node has a memory or disk alarm (connection.blocked); the
// broker then reads nothing from the connection until the alarm clears,
// so confirms stop coming and even closing a channel waits.
type Blocking struct {
	// Active is true when the block starts, false when it ends.
	Active bool
	// Reason is the broker's, e.g. "low on memory".
	Reason string
	// For is how long the block lasted, when it ends.
	For time.Duration
}

// Alarm names the broker alarm behind a block ("memory alarm", "disk
// alarm"), from the broker's reason.
func (b Blocking) Alarm() string { return alarmOf(b.Reason) }

func alarmOf(reason string) string {
	mem, disk := strings.Contains(reason, "memory"), strings.Contains(reason, "disk")
	switch {
	case mem && disk:
		return "memory and disk alarms"
	case mem:
		return "memory alarm"
	case disk:
		return "disk alarm"
	case reason == "":
		return "an alarm"
	}
	return reason
}

// BlockedPolicy says how publishes wait while the broker blocks their
// connection. Attach it to the context of Publish with WithBlockedPolicy.
type BlockedPolicy struct {
	// Timeout bounds one continuous block. When a block outlasts it, every
	// pending and later publish of the publisher fails with *BlockedError
	// and the connection is closed (a blocked connection cannot even be
	// closed politely). 0 waits as long as the block lasts.
	Timeout time.Duration
	// Notify, when set, hears when a block starts and when it ends, from
	// the publisher's own goroutine; it must not block.
	Notify func(Blocking)
}

type blockedPolicyKey struct{}

// WithBlockedPolicy returns a context whose publishes wait under p while
// the broker blocks their connection. Like net/http/httptrace, it travels
// with the context so that every publisher a command creates, however
// deep, follows the command's policy.
func WithBlockedPolicy(ctx context.Context, p BlockedPolicy) context.Context {
	return context.WithValue(ctx, blockedPolicyKey{}, &p)
}

func blockedPolicyFrom(ctx context.Context) *BlockedPolicy {
	p, _ := ctx.Value(blockedPolicyKey{}).(*BlockedPolicy)
	return p
}

// BlockedError means the broker blocked publishing longer than the
// policy's Timeout, and the publisher gave up. Publishes not confirmed by
// then may or may not have been stored (it matches ErrChannelClosed).
type BlockedError struct {
	Reason  string
	Timeout time.Duration
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("publishing blocked by the broker for %s: %s (%s); free memory or disk space on the node (`rabbitmqctl status` lists its alarms), then run again",
		e.Timeout, alarmOf(e.Reason), e.Reason)
}

// Is makes a BlockedError match ErrChannelClosed: the connection was
// closed before the pending confirms arrived.
func (e *BlockedError) Is(target error) bool { return target == ErrChannelClosed }

// CloseWait bounds a step that needs the broker's answer to end something
// (a consumer cancel, a channel or connection close): a broker silent
// that long, or blocked by an alarm, is not going to answer.
const CloseWait = 5 * time.Second

// CloseConnection closes conn and never hangs: when the broker does not
// answer within d (it reads nothing from a connection an alarm blocks, so
// even connection.close waits for the alarm to clear) the socket is closed
// under a deadline instead. Unacked deliveries return to their queues
// either way.
func CloseConnection(conn *amqp.Connection, d time.Duration) {
	WithinOrCut(conn, d, func() { _ = conn.Close() })
}

// WithinOrCut runs f, a call on conn that waits for the broker's answer,
// and reports whether it returned within d. When it did not, conn's socket
// is closed under a deadline, which ends f too.
func WithinOrCut(conn *amqp.Connection, d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		cut(conn)
		return false
	}
}

// cut closes conn's socket with a one-second deadline: the only way to
// end a write or a close handshake the broker no longer reads.
func cut(conn *amqp.Connection) { _ = conn.CloseDeadline(time.Now().Add(time.Second)) }

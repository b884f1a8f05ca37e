// Package pattern is the contract between the topology expansion, the
// consumer library and the dead-letter tools: how the retry and dead_letter
// patterns name their objects and which headers carry a message's history.
// Change it only together with all three.
//
// For a work queue Q with retry {max_attempts: N, backoff: [d1, d2, …]} and
// dead_letter D the expansion declares:
//
//	Q.retry.1 … Q.retry.K   delay queues, K = min(len(backoff), N-1); queue i
//	                        holds messages for d_i (x-message-ttl) and then
//	                        dead-letters them to the default exchange with
//	                        routing key Q, i.e. back onto Q. Quorum queues with
//	                        at-least-once dead lettering, so the return trip
//	                        cannot lose a message.
//	Q.dlx                   a durable direct exchange, Q's dead-letter exchange
//	D (default Q.dlq)       the dead-letter queue, bound to Q.dlx with key Q
//	Q                       gets x-dead-letter-exchange=Q.dlx and
//	                        x-dead-letter-routing-key=Q, and when quorum
//	                        x-delivery-limit (a crash-loop safety net),
//	                        x-dead-letter-strategy=at-least-once and
//	                        x-overflow=reject-publish.
//
// A consumer that fails attempt a (1-based) publishes the message, with
// confirms and mandatory, to Q.retry.min(a, K) via the default exchange with
// HeaderAttempt = a+1, then acks the original. After attempt N it publishes
// to Q.dlx with routing key Q and the failure headers, then acks. Messages
// the broker dead-letters itself (delivery limit, rejection, expiry) carry
// x-death instead; the dlq tools read both.
package pattern

import (
	"fmt"
	"time"
)

// Header names. None starts with "x-": RabbitMQ reserves those, and 3.13+
// ignores an x-death a client publishes.
const (
	// HeaderAttempt is the 1-based number of the attempt a delivery is for;
	// absent means 1.
	HeaderAttempt = "mqctl-attempt"
	// HeaderOriginQueue names the work queue a dead letter failed in.
	HeaderOriginQueue = "mqctl-origin-queue"
	// HeaderFailureReason is the consumer's last error, for humans.
	HeaderFailureReason = "mqctl-failure-reason"
	// HeaderFailedAt is when the last attempt failed (RFC 3339).
	HeaderFailedAt = "mqctl-failed-at"
	// HeaderFirstFailedAt is when the first attempt failed (RFC 3339).
	HeaderFirstFailedAt = "mqctl-first-failed-at"
	// HeaderDeathHistory keeps a replayed message's earlier x-death (and
	// mqctl failure headers) so a replay starts a clean history.
	HeaderDeathHistory = "mqctl-death-history"
	// HeaderReplayCount counts replays out of a DLQ, guarding against loops.
	HeaderReplayCount = "mqctl-replay-count"
	// HeaderExchange and HeaderRoutingKey are where the message was first
	// published, set at its first failure: every later hop (delay queue,
	// dead-letter exchange) has its own routing key.
	HeaderExchange   = "mqctl-exchange"
	HeaderRoutingKey = "mqctl-routing-key"
	// HeaderErrorClass is the kind of the consumer's last error: what the
	// error says it is (an ErrorClass method), else its Go type.
	HeaderErrorClass = "mqctl-error-class"
	// HeaderWorker names the process that made the last attempt
	// (host:pid).
	HeaderWorker = "mqctl-worker"
)

// DelayQueue names the delay queue for backoff step (1-based).
func DelayQueue(queue string, step int) string { return fmt.Sprintf("%s.retry.%d", queue, step) }

// DeadLetterExchange names the work queue's dead-letter exchange.
func DeadLetterExchange(queue string) string { return queue + ".dlx" }

// DefaultDLQ names the dead-letter queue when dead_letter is `true`.
func DefaultDLQ(queue string) string { return queue + ".dlq" }

// Retry is a work queue's retry policy.
type Retry struct {
	Queue       string
	MaxAttempts int             // processing attempts in all, the first included
	Backoff     []time.Duration // wait before attempt 2, 3, …; the last repeats
	DLQ         string          // "" when the queue has no dead-letter queue
}

// Steps is how many delay queues the policy needs.
func (r Retry) Steps() int {
	return min(len(r.Backoff), max(r.MaxAttempts-1, 0))
}

// Decision is what to do with a message whose attempt failed.
type Decision struct {
	// Exchange and RoutingKey are where to publish the message next.
	Exchange, RoutingKey string
	// NextAttempt is the attempt number to stamp in HeaderAttempt (retries).
	NextAttempt int
	// DeadLetter is true when no attempt is left.
	DeadLetter bool
	// Delay is the wait before the next attempt (retries).
	Delay time.Duration
}

// AfterFailure decides where a message goes after attempt (1-based) failed.
func (r Retry) AfterFailure(attempt int) Decision {
	if attempt < 1 {
		attempt = 1
	}
	if attempt >= r.MaxAttempts || r.Steps() == 0 {
		return Decision{Exchange: DeadLetterExchange(r.Queue), RoutingKey: r.Queue, DeadLetter: true}
	}
	step := min(attempt, r.Steps())
	return Decision{
		Exchange:    "",
		RoutingKey:  DelayQueue(r.Queue, step),
		NextAttempt: attempt + 1,
		Delay:       r.Backoff[step-1],
	}
}

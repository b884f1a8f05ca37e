package dlq

import (
	"regexp"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/pattern"
)

// Sources of a DeathEvent.
const (
	SourceBroker = "x-death"
	SourceMqctl  = "mqctl"
)

// ReasonFailed is the reason of a consumer's failure (mqctl headers).
const ReasonFailed = "failed"

// DeathEvent is one death in a message's history: the broker dead-lettered
// it (an x-death entry, or the x-first/last-death-* headers where x-death
// is missing), or a consumer gave up an attempt (the mqctl failure
// headers).
type DeathEvent struct {
	Source string `json:"source"` // SourceBroker or SourceMqctl
	Queue  string `json:"queue"`
	// Reason is the broker's (rejected, expired, maxlen, delivery_limit)
	// or ReasonFailed.
	Reason string `json:"reason"`
	// Error is the consumer's error text (mqctl), ErrorClass its kind
	// and Worker the process that gave up (host:pid).
	Error      string `json:"error,omitempty"`
	ErrorClass string `json:"error_class,omitempty"`
	Worker     string `json:"worker,omitempty"`
	// Count is the x-death count of (queue, reason), or the attempts the
	// consumer had made.
	Count int64 `json:"count"`
	// Time is when it happened: for x-death the time the broker keeps,
	// which is when the message first died this way; for a consumer the
	// last failed attempt. Nil when the headers do not say.
	Time *Timestamp `json:"time,omitempty"`
	// FirstTime is a consumer's first failed attempt.
	FirstTime *Timestamp `json:"first_time,omitempty"`
	// Life counts the replays before this death: 0 before the first
	// replay, 1 between the first and the second, and so on.
	Life int `json:"life"`
	// Retry marks a pass through a retry delay queue (Q.retry.N, reason
	// expired): part of the story, but not a death.
	Retry bool `json:"retry,omitempty"`
}

// retryQueue matches the delay queues of the retry pattern (see
// pattern.DelayQueue): a message expiring there goes back to its work
// queue, it does not die.
var retryQueue = regexp.MustCompile(`\.retry\.[0-9]+$`)

// deathOf reads the death model of a message from its headers.
func deathOf(h amqp.Table) Death {
	return summarize(historyOf(h), h)
}

// originOf is deathOf(h).OriginQueue, the queue of the newest death,
// reading no more than it needs: the present life's deaths, and the
// earlier lives only when the present one holds no death (then the
// newest is among them).
func originOf(h amqp.Table) string {
	if q, ok := brokerOrigin(h); ok {
		return q
	}
	lives, _ := h[pattern.HeaderDeathHistory].([]any)
	events := lifeEvents(h, len(lives))
	for i := len(events) - 1; i >= 0; i-- {
		if !events[i].Retry {
			return events[i].Queue
		}
	}
	return deathOf(h).OriginQueue
}

// brokerOrigin is the origin of a message the broker alone dead-lettered
// in its present life (x-death, no consumer's failure headers to order
// against it): the queue of x-death's newest entry that is a death, not a
// retry pass, read in place. ok is false when it takes more than that.
func brokerOrigin(h amqp.Table) (queue string, ok bool) {
	if _, ok := h[pattern.HeaderOriginQueue]; ok {
		return "", false
	}
	if _, ok := h[pattern.HeaderFailureReason]; ok {
		return "", false
	}
	arr, _ := h["x-death"].([]any)
	for _, e := range arr {
		t, ok := e.(amqp.Table)
		if !ok {
			continue
		}
		q, _ := t["queue"].(string)
		r, _ := t["reason"].(string)
		if !isRetryPass(DeathEvent{Queue: q, Reason: r}) {
			return q, true
		}
	}
	return "", false
}

// historyOf is every death the headers record, oldest first: each earlier
// life kept in pattern.HeaderDeathHistory (one entry per replay, appended
// in order), then the present one.
func historyOf(h amqp.Table) []DeathEvent {
	lives, _ := h[pattern.HeaderDeathHistory].([]any)
	var out []DeathEvent
	for i, l := range lives {
		if t, ok := l.(amqp.Table); ok {
			out = append(out, lifeEvents(t, i)...)
		}
	}
	return append(out, lifeEvents(h, len(lives))...)
}

// lifeEvents orders the deaths of one life. x-death lists the broker's
// deaths newest first, and its order is the truth among them (the time of
// a repeated (queue, reason) stays that of its first occurrence). The
// consumer's failure goes in by its time: after every broker death that
// is older, or as old (the headers have whole seconds) and from another
// queue — a broker death in the consumer's own queue at the same second
// came after the failure that was stamped while the consumer held it.
func lifeEvents(h amqp.Table, life int) []DeathEvent {
	events := brokerEvents(h, life)
	m, ok := mqctlEvent(h, life)
	if !ok {
		return events
	}
	at := len(events)
	if m.Time != nil {
		at = 0
		for i, e := range events {
			if e.Time == nil || e.Time.Before(m.Time.Time) || (e.Time.Equal(m.Time.Time) && e.Queue != m.Queue) {
				at = i + 1
			}
		}
	}
	if hasDeath(events[at:]) {
		// A death came after it, so the consumer sent the message on to
		// a retry, stamping the number of the next attempt; a consumer
		// that dead-letters stamps the attempts made.
		m.Count = max(m.Count-1, 1)
	}
	events = append(events, DeathEvent{})
	copy(events[at+1:], events[at:])
	events[at] = m
	return events
}

// hasDeath reports whether events hold a death, not only retry passes.
func hasDeath(events []DeathEvent) bool {
	for _, e := range events {
		if !e.Retry {
			return true
		}
	}
	return false
}

// brokerEvents are the broker's deaths of one life, oldest first.
func brokerEvents(h amqp.Table, life int) []DeathEvent {
	xd := xDeaths(h)
	out := make([]DeathEvent, 0, len(xd)+1)
	for i := len(xd) - 1; i >= 0; i-- {
		x := xd[i]
		e := DeathEvent{Source: SourceBroker, Queue: x.queue, Reason: x.reason, Count: max(x.count, 1), Life: life}
		if !x.time.IsZero() {
			t := NewTimestamp(x.time)
			e.Time = &t
		}
		e.Retry = isRetryPass(e)
		out = append(out, e)
	}
	if len(out) > 0 {
		return out
	}
	// No x-death (a client may drop it): 3.13+ still names the first and
	// the last death in their own headers, 3.10 the first.
	for _, p := range []string{"x-first-death-", "x-last-death-"} {
		q, _ := h[p+"queue"].(string)
		r, _ := h[p+"reason"].(string)
		if q == "" && r == "" {
			continue
		}
		e := DeathEvent{Source: SourceBroker, Queue: q, Reason: r, Count: 1, Life: life}
		if n := len(out); n > 0 && out[n-1].Queue == q && out[n-1].Reason == r {
			continue
		}
		e.Retry = isRetryPass(e)
		out = append(out, e)
	}
	return out
}

func isRetryPass(e DeathEvent) bool {
	return e.Reason == "expired" && retryQueue.MatchString(e.Queue)
}

// mqctlEvent is the failure a consumer stamped (see package pattern).
func mqctlEvent(h amqp.Table, life int) (DeathEvent, bool) {
	q, _ := h[pattern.HeaderOriginQueue].(string)
	msg, _ := h[pattern.HeaderFailureReason].(string)
	if q == "" && msg == "" {
		return DeathEvent{}, false
	}
	e := DeathEvent{Source: SourceMqctl, Queue: q, Reason: ReasonFailed, Error: msg, Life: life,
		Count: max(intHeader(h, pattern.HeaderAttempt), 1)}
	e.ErrorClass, _ = h[pattern.HeaderErrorClass].(string)
	e.Worker, _ = h[pattern.HeaderWorker].(string)
	e.Time = timeHeader(h, pattern.HeaderFailedAt)
	e.FirstTime = timeHeader(h, pattern.HeaderFirstFailedAt)
	if e.Time == nil {
		e.Time = e.FirstTime
	}
	return e, true
}

// summarize makes the Death of a history: the newest death decides the
// reason, the origin and the error shown.
func summarize(hist []DeathEvent, h amqp.Table) Death {
	var d Death
	last := -1
	for i, e := range hist {
		if e.Retry {
			continue
		}
		last = i
		d.Deaths += e.Count
		if e.Error != "" {
			d.LastError = e.Error
		}
	}
	for _, e := range hist {
		for _, t := range []*Timestamp{e.FirstTime, e.Time} {
			if t != nil && (d.FirstDeathAt == nil || t.Before(d.FirstDeathAt.Time)) {
				d.FirstDeathAt = t
			}
		}
	}
	if last < 0 {
		if len(hist) == 0 {
			return Death{}
		}
		// Only passes through delay queues: not dead, but that is all
		// the headers tell.
		last = len(hist) - 1
	}
	n := hist[last]
	d.Source, d.OriginQueue, d.Reason, d.Failure, d.Count, d.LastDeathAt = n.Source, n.Queue, n.Reason, n.Error, n.Count, n.Time
	d.ErrorClass = n.ErrorClass
	d.History = hist
	d.Exchange, d.RoutingKeys = firstPublish(h)
	return d
}

// firstPublish is where the message was first published: the exchange
// and routing keys of the oldest x-death entry of its first life that has
// one (x-first-death-exchange when present).
func firstPublish(h amqp.Table) (string, []string) {
	// The worker keeps them from the first failure: x-death's oldest entry
	// has the key of the hop into the first queue that dead-lettered it
	// (email.retry.1), not the publisher's.
	if rk, ok := h[pattern.HeaderRoutingKey].(string); ok {
		ex, _ := h[pattern.HeaderExchange].(string)
		return ex, []string{rk}
	}
	lives, _ := h[pattern.HeaderDeathHistory].([]any)
	for _, l := range lives {
		if t, ok := l.(amqp.Table); ok && len(xDeaths(t)) > 0 {
			h = t
			break
		}
	}
	xd := xDeaths(h)
	if len(xd) == 0 {
		return "", nil
	}
	first := xd[len(xd)-1]
	ex := first.exchange
	if q, ok := h["x-first-death-exchange"].(string); ok {
		ex = q
	}
	return ex, first.keys
}

type xDeath struct {
	queue, reason, exchange string
	keys                    []string
	count                   int64
	time                    time.Time
}

// xDeaths reads x-death, newest first as the broker keeps it.
func xDeaths(h amqp.Table) []xDeath {
	arr, _ := h["x-death"].([]any)
	var out []xDeath
	for _, e := range arr {
		t, ok := e.(amqp.Table)
		if !ok {
			continue
		}
		x := xDeath{count: toInt(t["count"])}
		x.queue, _ = t["queue"].(string)
		x.reason, _ = t["reason"].(string)
		x.exchange, _ = t["exchange"].(string)
		x.time, _ = t["time"].(time.Time)
		if ks, ok := t["routing-keys"].([]any); ok {
			for _, k := range ks {
				if s, ok := k.(string); ok {
					x.keys = append(x.keys, s)
				}
			}
		}
		out = append(out, x)
	}
	return out
}

package backlog

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mqctl/mqctl/internal/deadletter"
)

// Limits are the gates of `backlog check`; a nil limit is not checked.
type Limits struct {
	MaxReady     *int
	MaxUnacked   *int
	MaxDLQ       *int
	MinConsumers *int
	MaxAge       *time.Duration
	// RequireAge turns "age unknown" into a violation instead of a note.
	RequireAge bool
}

// Check names one gate.
type Check string

// Gates, as the flags spell them.
const (
	CheckMaxReady     Check = "max_ready"
	CheckMaxUnacked   Check = "max_unacked"
	CheckMaxDLQ       Check = "max_dlq"
	CheckMinConsumers Check = "min_consumers"
	CheckMaxAge       Check = "max_age"
	// CheckMatch: a glob named on the command line matched no queue.
	CheckMatch Check = "match"
)

// Violation is one gate that does not hold for one queue, or that cannot
// be evaluated because the figure it needs is unknown.
type Violation struct {
	Vhost string `json:"vhost"`
	Queue string `json:"queue"`
	Check Check  `json:"check"`
	// Actual and Limit are counts, or seconds for max_age. Actual is -1
	// when the figure is unknown (Unknown).
	Actual int64 `json:"actual"`
	// Unknown: the gate cannot be evaluated, the management API gives no
	// figure for it (e.g. metrics collection off); that fails the check
	// rather than pass it unseen.
	Unknown bool   `json:"unknown"`
	Limit   int64  `json:"limit"`
	Message string `json:"message"`
}

// Unchecked is a gate that could not be evaluated for a queue, and why.
type Unchecked struct {
	Vhost  string `json:"vhost"`
	Queue  string `json:"queue"`
	Check  Check  `json:"check"`
	Reason string `json:"reason"`
}

// Verdict is the outcome of Evaluate.
type Verdict struct {
	OK         bool        `json:"ok"`
	Checked    int         `json:"checked"` // queues the gates were applied to
	Violations []Violation `json:"violations"`
	Unchecked  []Unchecked `json:"unchecked"`
}

// Evaluate applies the limits to a report. Ready, unacked, consumers and
// age gates apply to work queues: a DLQ or retry delay queue has no
// consumer and holds messages by design, and is covered by --max-dlq
// instead. --max-dlq applies to each DLQ linked from a matched queue and
// to each matched DLQ, once per DLQ. unmatched lists globs that matched
// no queue: each is a violation, so a typo cannot make a gate pass. A
// gate whose figure is unknown (null in the report) is a violation with
// Unknown set, for the same reason.
func Evaluate(rep Report, l Limits, unmatched []string) Verdict {
	e := evaluation{limits: l, dlqSeen: map[qkey]bool{}, v: Verdict{Violations: []Violation{}, Unchecked: []Unchecked{}}}
	for _, g := range unmatched {
		e.v.Violations = append(e.v.Violations, Violation{Vhost: rep.Vhost, Queue: g, Check: CheckMatch,
			Message: fmt.Sprintf("no queue matches %q", g)})
	}
	for _, r := range rep.Queues {
		e.v.Checked++
		for _, d := range r.DLQs {
			e.dlq(r, d.Name, d.Messages)
		}
		if r.Role == deadletter.RoleDLQ {
			e.dlq(r, r.Name, r.Messages)
		}
		if r.Role != deadletter.RoleWork {
			continue
		}
		e.count(r, CheckMaxReady, l.MaxReady, r.Ready, "ready count", "%d ready messages (max %d)")
		e.count(r, CheckMaxUnacked, l.MaxUnacked, r.Unacked, "unacknowledged count", "%d unacknowledged messages (max %d)")
		e.count(r, CheckMinConsumers, l.MinConsumers, r.Consumers, "consumer count", "%d consumers (min %d)")
		e.age(r)
	}
	e.v.OK = len(e.v.Violations) == 0
	return e.v
}

// evaluation is one Evaluate under way.
type evaluation struct {
	limits  Limits
	dlqSeen map[qkey]bool
	v       Verdict
}

func (e *evaluation) add(r Row, c Check, actual, limit int64, format string, a ...any) {
	e.v.Violations = append(e.v.Violations, Violation{Vhost: r.Vhost, Queue: r.Name, Check: c,
		Actual: actual, Limit: limit, Message: fmt.Sprintf(format, a...)})
}

func (e *evaluation) unknown(r Row, c Check, limit int64, what string) {
	e.v.Violations = append(e.v.Violations, Violation{Vhost: r.Vhost, Queue: r.Name, Check: c,
		Actual: -1, Limit: limit, Unknown: true,
		Message: fmt.Sprintf("cannot evaluate --%s: %s unknown (%s)", strings.ReplaceAll(string(c), "_", "-"), what, noFigures)})
}

// count gates a count n of row r: at most limit, or for min_consumers at
// least limit. format takes n and the limit.
func (e *evaluation) count(r Row, c Check, limit, n *int, what, format string) {
	switch {
	case limit == nil:
	case n == nil:
		e.unknown(r, c, int64(*limit), what)
	case c == CheckMinConsumers && *n < *limit, c != CheckMinConsumers && *n > *limit:
		e.add(r, c, int64(*n), int64(*limit), format, *n, *limit)
	}
}

// dlq gates the depth n of DLQ name, linked from row r or r itself, once
// per DLQ.
func (e *evaluation) dlq(r Row, name string, n *int) {
	k, limit := qkey{r.Vhost, name}, e.limits.MaxDLQ
	if limit == nil || e.dlqSeen[k] {
		return
	}
	e.dlqSeen[k] = true
	switch {
	case n == nil && name == r.Name:
		e.unknown(r, CheckMaxDLQ, int64(*limit), "its depth is")
	case n == nil:
		e.unknown(r, CheckMaxDLQ, int64(*limit), "the depth of its dead-letter queue "+name+" is")
	case *n > *limit && name == r.Name:
		e.add(r, CheckMaxDLQ, int64(*n), int64(*limit), "dead-letter queue %s holds %d messages (max %d)", name, *n, *limit)
	case *n > *limit:
		e.add(r, CheckMaxDLQ, int64(*n), int64(*limit), "its dead-letter queue %s holds %d messages (max %d)", name, *n, *limit)
	}
}

// age gates the age of r's oldest ready message.
func (e *evaluation) age(r Row) {
	maxAge := e.limits.MaxAge
	if maxAge == nil {
		return
	}
	limit := int64(maxAge.Seconds())
	switch {
	case r.Ready != nil && *r.Ready == 0:
		// nothing waiting (unacked ones are being worked on)
	case r.Ready == nil:
		e.unknown(r, CheckMaxAge, limit, "ready count")
	case r.OldestMessageAgeSeconds != nil:
		age := *r.OldestMessageAgeSeconds
		if age > maxAge.Seconds() {
			e.add(r, CheckMaxAge, int64(math.Round(age)), limit, "oldest message is %s old (max %s)",
				(time.Duration(age) * time.Second).String(), maxAge.String())
		}
	case r.Type == "classic" && r.Consumers == nil:
		// No statistics for the queue at all: unlike a quorum queue's,
		// this age would be known with metrics on.
		e.unknown(r, CheckMaxAge, limit, "oldest message age")
	case e.limits.RequireAge:
		e.add(r, CheckMaxAge, -1, limit, "oldest message age unknown: %s", ageUnknownReason(r))
	default:
		e.v.Unchecked = append(e.v.Unchecked, Unchecked{Vhost: r.Vhost, Queue: r.Name, Check: CheckMaxAge, Reason: ageUnknownReason(r)})
	}
}

// noFigures says why a figure is missing.
const noFigures = "the management API reports no statistics for the queue: metrics collection is off or the queue was not sampled yet"

func ageUnknownReason(r Row) string {
	if r.Type != "classic" {
		return fmt.Sprintf("%s queues do not report the head message's timestamp", r.Type)
	}
	return "the head message carries no timestamp property (publish with a timestamp to enable --max-age)"
}

// NeedStatistics reports whether a gate of l reads a figure that only a
// queue list read with statistics gives: consumers (MinConsumers) or the
// head message's timestamp (MaxAge). Without one, every gate can be
// evaluated from a queue totals read (HTTPSource.QueueTotals): ready,
// unacked and DLQ depths, and the arguments, policies and bindings that
// tell work queues from DLQs.
func (l Limits) NeedStatistics() bool {
	return l.MinConsumers != nil || l.MaxAge != nil
}

package backlog

import (
	"fmt"
	"math"
	"strings"
	"time"
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
	v := Verdict{Violations: []Violation{}, Unchecked: []Unchecked{}}
	for _, g := range unmatched {
		v.Violations = append(v.Violations, Violation{Vhost: rep.Vhost, Queue: g, Check: CheckMatch,
			Message: fmt.Sprintf("no queue matches %q", g)})
	}
	add := func(r Row, c Check, actual, limit int64, format string, a ...any) {
		v.Violations = append(v.Violations, Violation{Vhost: r.Vhost, Queue: r.Name, Check: c,
			Actual: actual, Limit: limit, Message: fmt.Sprintf(format, a...)})
	}
	unknown := func(r Row, c Check, limit int64, what string) {
		v.Violations = append(v.Violations, Violation{Vhost: r.Vhost, Queue: r.Name, Check: c,
			Actual: -1, Limit: limit, Unknown: true,
			Message: fmt.Sprintf("cannot evaluate --%s: %s unknown (%s)", strings.ReplaceAll(string(c), "_", "-"), what, noFigures)})
	}
	dlqSeen := map[qkey]bool{}
	checkDLQ := func(r Row, vhost, name string, n *int) {
		k := qkey{vhost, name}
		if l.MaxDLQ == nil || dlqSeen[k] {
			return
		}
		dlqSeen[k] = true
		switch {
		case n == nil && name == r.Name:
			unknown(r, CheckMaxDLQ, int64(*l.MaxDLQ), "its depth is")
		case n == nil:
			unknown(r, CheckMaxDLQ, int64(*l.MaxDLQ), "the depth of its dead-letter queue "+name+" is")
		case *n > *l.MaxDLQ && name == r.Name:
			add(r, CheckMaxDLQ, int64(*n), int64(*l.MaxDLQ), "dead-letter queue %s holds %d messages (max %d)", name, *n, *l.MaxDLQ)
		case *n > *l.MaxDLQ:
			add(r, CheckMaxDLQ, int64(*n), int64(*l.MaxDLQ), "its dead-letter queue %s holds %d messages (max %d)", name, *n, *l.MaxDLQ)
		}
	}
	for _, r := range rep.Queues {
		v.Checked++
		for _, d := range r.DLQs {
			checkDLQ(r, r.Vhost, d.Name, d.Messages)
		}
		if r.Role == RoleDLQ {
			checkDLQ(r, r.Vhost, r.Name, r.Messages)
		}
		if r.Role != RoleWork {
			continue
		}
		if l.MaxReady != nil {
			switch {
			case r.Ready == nil:
				unknown(r, CheckMaxReady, int64(*l.MaxReady), "ready count")
			case *r.Ready > *l.MaxReady:
				add(r, CheckMaxReady, int64(*r.Ready), int64(*l.MaxReady), "%d ready messages (max %d)", *r.Ready, *l.MaxReady)
			}
		}
		if l.MaxUnacked != nil {
			switch {
			case r.Unacked == nil:
				unknown(r, CheckMaxUnacked, int64(*l.MaxUnacked), "unacknowledged count")
			case *r.Unacked > *l.MaxUnacked:
				add(r, CheckMaxUnacked, int64(*r.Unacked), int64(*l.MaxUnacked), "%d unacknowledged messages (max %d)", *r.Unacked, *l.MaxUnacked)
			}
		}
		if l.MinConsumers != nil {
			switch {
			case r.Consumers == nil:
				unknown(r, CheckMinConsumers, int64(*l.MinConsumers), "consumer count")
			case *r.Consumers < *l.MinConsumers:
				add(r, CheckMinConsumers, int64(*r.Consumers), int64(*l.MinConsumers), "%d consumers (min %d)", *r.Consumers, *l.MinConsumers)
			}
		}
		if l.MaxAge != nil {
			limit := int64(l.MaxAge.Seconds())
			switch {
			case r.Ready != nil && *r.Ready == 0:
				// nothing waiting (unacked ones are being worked on)
			case r.Ready == nil:
				unknown(r, CheckMaxAge, limit, "ready count")
			case r.OldestMessageAgeSeconds != nil:
				age := *r.OldestMessageAgeSeconds
				if age > l.MaxAge.Seconds() {
					add(r, CheckMaxAge, int64(math.Round(age)), limit, "oldest message is %s old (max %s)",
						(time.Duration(age) * time.Second).String(), l.MaxAge.String())
				}
			case r.Type == "classic" && r.Consumers == nil:
				// No statistics for the queue at all: unlike a quorum
				// queue's, this age would be known with metrics on.
				unknown(r, CheckMaxAge, limit, "oldest message age")
			default:
				reason := ageUnknownReason(r)
				if l.RequireAge {
					add(r, CheckMaxAge, -1, limit, "oldest message age unknown: %s", reason)
				} else {
					v.Unchecked = append(v.Unchecked, Unchecked{Vhost: r.Vhost, Queue: r.Name, Check: CheckMaxAge, Reason: reason})
				}
			}
		}
	}
	v.OK = len(v.Violations) == 0
	return v
}

// noFigures says why a figure is missing.
const noFigures = "the management API reports no statistics for the queue: metrics collection is off or the queue was not sampled yet"

func ageUnknownReason(r Row) string {
	if r.Type != "classic" {
		return fmt.Sprintf("%s queues do not report the head message's timestamp", r.Type)
	}
	return "the head message carries no timestamp property (publish with a timestamp to enable --max-age)"
}

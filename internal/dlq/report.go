package dlq

import (
	"maps"
	"slices"

	"github.com/mqctl/mqctl/internal/audit"
)

// Outcome statuses.
const (
	StatusReplayed    = "replayed"
	StatusPurged      = "purged"
	StatusPublished   = "published"
	StatusSkipped     = "skipped"
	StatusFailed      = "failed"
	StatusWouldReplay = "would_replay"
	StatusWouldPurge  = "would_purge"
	// StatusWouldFail is a dry run's message whose destination would not
	// take it (the queue does not exist); counted as failed.
	StatusWouldFail = "would_fail"
)

// Outcome is what happened to one selected message.
type Outcome struct {
	ID          string `json:"id"`
	Destination string `json:"destination,omitempty"`
	Status      string `json:"status"`
	Reason      string `json:"reason,omitempty"`
	ReplayCount int64  `json:"replay_count,omitempty"`
	// BodySHA256 is the hex SHA-256 of the body, for the audit trail.
	BodySHA256 string `json:"body_sha256,omitempty"`
}

// Report is the result of a replay or purge.
type Report struct {
	Queue string `json:"queue"`
	// Depth is the number of ready messages when the run started; only
	// those are considered.
	Depth   int  `json:"depth"`
	Scanned int  `json:"scanned"`
	DryRun  bool `json:"dry_run"`

	Replayed int `json:"replayed"`
	Purged   int `json:"purged"`
	Skipped  int `json:"skipped"`
	Failed   int `json:"failed"`
	// NotFound lists selected ids the queue did not hold (nil when the
	// scan stopped early at --limit).
	NotFound []string `json:"not_found"`
	// PossibleDuplicates lists ids an earlier, interrupted replay had
	// published without acking, replayed again by this run: the origin
	// queue may hold them twice.
	PossibleDuplicates []string `json:"possible_duplicates,omitempty"`
	Archive            string   `json:"archive,omitempty"`
	// Path is how a replay moved the messages: PathClient (mqctl read and
	// published each) or PathShovel (a broker shovel did, after mqctl
	// checked them); PathReason says why.
	Path       string `json:"path,omitempty"`
	PathReason string `json:"path_reason,omitempty"`
	// Shovel names the shovel of a shovel replay; DepthBefore and
	// DepthAfter are the DLQ's counts before it started and after it
	// ended.
	Shovel      string `json:"shovel,omitempty"`
	DepthBefore *int   `json:"depth_before_shovel,omitempty"`
	DepthAfter  *int   `json:"depth_after_shovel,omitempty"`
	// NotMoved counts the checked messages an interrupted or failed
	// shovel replay left in the DLQ; Unknown those whose fate it could
	// not learn (the shovel could not be stopped or the head not read).
	NotMoved int `json:"not_moved,omitempty"`
	Unknown  int `json:"unknown,omitempty"`
	// WouldReplay and WouldPurge count what a dry run would move.
	WouldReplay int `json:"would_replay,omitempty"`
	WouldPurge  int `json:"would_purge,omitempty"`
	// Outcomes are the outcomes a human must see: skipped, failed,
	// would_fail, the first MaxOutcomes of them (OutcomesTruncated
	// counts the rest). The moved ones (replayed, purged, would_replay,
	// would_purge) are left out, the counts hold them (OutcomesOmitted
	// counts them), unless every outcome was asked for (AllOutcomes).
	// The audit trail holds every one, from the spool.
	Outcomes          []Outcome `json:"outcomes"`
	OutcomesOmitted   int       `json:"outcomes_omitted,omitempty"`
	OutcomesTruncated int       `json:"outcomes_truncated,omitempty"`

	// all keeps every outcome in Outcomes (--outcomes).
	all bool
	// spool receives every outcome as it becomes final, for the audit
	// trail (nil: none kept beyond Outcomes).
	spool *Spool
	// dests are the distinct destinations of the outcomes, in the order
	// first met; moved counts per destination the messages replayed (or
	// that a dry run would replay); statuses counts every outcome by
	// status. What the prompt, the audit and the summary need, without
	// the outcomes.
	dests    []string
	moved    map[string]int
	statuses map[string]int
}

// MaxOutcomes bounds the outcomes a report keeps in memory for a human
// (skipped, failed): a run that refuses millions of messages must not
// hold them all; the audit trail lists every one.
const MaxOutcomes = 5000

// MovedTo is how many messages a replay moved (or a dry run would move)
// to each destination, in the order the destinations were first met.
type MovedTo struct {
	Destination string
	Count       int
}

// Moved lists the destinations of the messages replayed or that a dry
// run would replay, with their counts, in the order first met.
func (r *Report) Moved() []MovedTo {
	var out []MovedTo
	for _, d := range r.dests {
		if n := r.moved[d]; n > 0 {
			out = append(out, MovedTo{Destination: d, Count: n})
		}
	}
	return out
}

// Replay paths.
const (
	PathClient = "client"
	PathShovel = "shovel"
)

// Partial reports whether some selected message was not moved.
func (r *Report) Partial() bool {
	return r.Skipped > 0 || r.Failed > 0 || len(r.NotFound) > 0 || r.NotMoved > 0 || r.Unknown > 0
}

// newReport is the report of a sweep of queue. every keeps every
// outcome in Outcomes; spool, when not nil, receives every outcome.
func newReport(queue string, depth int, dryRun, every bool, spool *Spool) *Report {
	return &Report{Queue: queue, Depth: depth, DryRun: dryRun, Outcomes: []Outcome{},
		all: every, spool: spool, moved: map[string]int{}, statuses: map[string]int{}}
}

// Record counts an outcome whose status is final, spools it, and keeps
// it when a human must see it (or every outcome was asked for). Each
// outcome is recorded once, in this one place.
func (r *Report) Record(o Outcome) {
	r.count(o.Status)
	if r.statuses == nil {
		r.moved, r.statuses = map[string]int{}, map[string]int{}
	}
	r.statuses[o.Status]++
	if o.Destination != "" {
		if _, ok := r.moved[o.Destination]; !ok {
			r.dests = append(r.dests, o.Destination)
			r.moved[o.Destination] = 0
		}
		if o.Status == StatusReplayed || o.Status == StatusWouldReplay {
			r.moved[o.Destination]++
		}
	}
	r.spool.add(o)
	moved := isMoved(o.Status)
	switch {
	case r.all:
		r.Outcomes = append(r.Outcomes, o)
	case moved:
		r.OutcomesOmitted++
	case len(r.Outcomes) >= MaxOutcomes:
		r.OutcomesTruncated++
	default:
		r.Outcomes = append(r.Outcomes, o)
	}
}

// isMoved says whether status is a message moved, or that a dry run
// would move: the counts say all a human needs of those.
func isMoved(status string) bool {
	switch status {
	case StatusReplayed, StatusPurged, StatusWouldReplay, StatusWouldPurge:
		return true
	}
	return false
}

// count keeps the totals in step with the outcomes: they are counted in
// this one place, once each, when their status is final.
func (r *Report) count(status string) {
	switch status {
	case StatusReplayed:
		r.Replayed++
	case StatusPurged:
		r.Purged++
	case StatusSkipped:
		r.Skipped++
	case StatusFailed, StatusWouldFail:
		r.Failed++
	case StatusWouldReplay:
		r.WouldReplay++
	case StatusWouldPurge:
		r.WouldPurge++
	}
}

// Audit is the audit-trail entry of the run r reports: every selected
// message with its body hash and result, the destinations, the totals.
// The items are streamed from the spool when the entry is written
// (audit.Append), never held together in memory; without a spool they
// are the outcomes r kept. The caller fills in who, where and when, and
// removes the spool after the entry is written.
func (r *Report) Audit(command, selection string, err error) audit.Entry {
	e := audit.Entry{Command: command, Queue: r.Queue, Selection: selection,
		Items: []audit.Item{}, Counts: map[string]int{}, Destinations: slices.Clone(r.dests),
		Outcome: audit.OutcomeOf(err, r.Partial())}
	maps.Copy(e.Counts, r.statuses)
	if len(r.NotFound) > 0 {
		e.Counts["not_found"] = len(r.NotFound)
	}
	if r.Archive != "" {
		e.Destinations = append(e.Destinations, "archive "+r.Archive)
	}
	e.MoreItems = func(yield func(audit.Item) error) error {
		each := func(o Outcome) error {
			return yield(audit.Item{ID: o.ID, BodySHA256: o.BodySHA256, Destination: o.Destination, Status: o.Status, Reason: o.Reason})
		}
		if r.spool != nil {
			if err := r.spool.Each(each); err != nil {
				return err
			}
		} else {
			for _, o := range r.Outcomes {
				if err := each(o); err != nil {
					return err
				}
			}
		}
		for _, id := range r.NotFound {
			if err := yield(audit.Item{ID: id, Status: "not_found"}); err != nil {
				return err
			}
		}
		return nil
	}
	return e
}

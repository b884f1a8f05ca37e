package dlq

import (
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
	// Outcomes is what happened to each selected message. A report may
	// leave out those that moved (see WithoutMoved): OutcomesOmitted
	// counts them.
	Outcomes        []Outcome `json:"outcomes"`
	OutcomesOmitted int       `json:"outcomes_omitted,omitempty"`
}

// WithoutMoved is r with only the outcomes a human must see: every one
// but the messages replayed or purged, which the counts hold. At 100,000
// messages the full list is most of the report's size and of its cost.
func (r *Report) WithoutMoved() *Report {
	c := *r
	c.Outcomes = make([]Outcome, 0, r.Skipped+r.Failed)
	for _, o := range r.Outcomes {
		if o.Status == StatusReplayed || o.Status == StatusPurged {
			c.OutcomesOmitted++
			continue
		}
		c.Outcomes = append(c.Outcomes, o)
	}
	return &c
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

// add appends an outcome and returns its index. An outcome whose status
// is not known yet (published, awaiting its confirm and ack) is counted
// later, by settle; one counted now must not be settled again.
func (r *Report) add(o Outcome) int {
	r.Outcomes = append(r.Outcomes, o)
	r.count(o.Status)
	return len(r.Outcomes) - 1
}

// settle gives outcome i its final status and counts it.
func (r *Report) settle(i int, status, reason string) {
	r.Outcomes[i].Status, r.Outcomes[i].Reason = status, reason
	r.count(status)
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
	}
}

// Audit is the audit-trail entry of the run r reports: every selected
// message with its body hash and result, the destinations, the totals.
// The caller fills in who, where and when.
func (r *Report) Audit(command, selection string, err error) audit.Entry {
	e := audit.Entry{Command: command, Queue: r.Queue, Selection: selection,
		Items: make([]audit.Item, 0, len(r.Outcomes)), Counts: map[string]int{},
		Outcome: audit.OutcomeOf(err, r.Partial())}
	for _, o := range r.Outcomes {
		e.Items = append(e.Items, audit.Item{ID: o.ID, BodySHA256: o.BodySHA256,
			Destination: o.Destination, Status: o.Status, Reason: o.Reason})
		e.Counts[o.Status]++
		if o.Destination != "" && !slices.Contains(e.Destinations, o.Destination) {
			e.Destinations = append(e.Destinations, o.Destination)
		}
	}
	for _, id := range r.NotFound {
		e.Items = append(e.Items, audit.Item{ID: id, Status: "not_found"})
		e.Counts["not_found"]++
	}
	if r.Archive != "" {
		e.Destinations = append(e.Destinations, "archive "+r.Archive)
	}
	return e
}

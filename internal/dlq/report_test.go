package dlq

import (
	"strings"
	"testing"
)

// Totals count each outcome once, when its status is final: a publish
// awaiting its ack is not counted until it is settled.
func TestReportCountsOutcomesOnceWhenFinal(t *testing.T) {
	r := &Report{}
	r.add(Outcome{ID: "a", Status: StatusSkipped})
	r.add(Outcome{ID: "b", Status: StatusWouldReplay})
	pending := r.add(Outcome{ID: "c"})
	lost := r.add(Outcome{ID: "d"})
	if r.Skipped != 1 || r.Replayed != 0 || r.Failed != 0 {
		t.Fatalf("before settling: %+v", r)
	}
	r.settle(pending, StatusReplayed, "")
	r.settle(lost, StatusFailed, "ack lost")
	if r.Replayed != 1 || r.Failed != 1 || r.Skipped != 1 || !r.Partial() || r.Outcomes[lost].Reason != "ack lost" {
		t.Errorf("after settling: %+v", r)
	}
}

// The audit entry of a run lists every selected message with its hash
// and result, each destination once, and says the run was partial.
func TestReportAuditEntry(t *testing.T) {
	r := &Report{Queue: "email.dlq"}
	r.add(Outcome{ID: "a", Destination: "email", Status: StatusReplayed, BodySHA256: "h1"})
	r.add(Outcome{ID: "b", Destination: "email", Status: StatusReplayed, BodySHA256: "h2"})
	r.add(Outcome{ID: "c", Destination: "points", Status: StatusSkipped, Reason: "max replays"})
	r.NotFound = []string{"d"}
	e := r.Audit("dlq replay", "--all", nil)
	if e.Command != "dlq replay" || e.Queue != "email.dlq" || e.Selection != "--all" || e.Outcome != "partial" {
		t.Errorf("entry %+v", e)
	}
	if len(e.Items) != 4 || e.Items[1].BodySHA256 != "h2" || e.Items[3].Status != "not_found" {
		t.Errorf("items %+v", e.Items)
	}
	if len(e.Destinations) != 2 || e.Counts["replayed"] != 2 || e.Counts["skipped"] != 1 {
		t.Errorf("destinations %v counts %v", e.Destinations, e.Counts)
	}
}

// WithoutMoved keeps the counts and every outcome but the moved ones,
// says how many it left out, and leaves the report itself (which the
// audit entry is made from) whole.
func TestReportWithoutMoved(t *testing.T) {
	r := &Report{Queue: "email.dlq", NotFound: []string{"d"}}
	r.add(Outcome{ID: "a", Destination: "email", Status: StatusReplayed})
	r.add(Outcome{ID: "b", Destination: "email", Status: StatusSkipped, Reason: "max replays"})
	r.add(Outcome{ID: "c", Destination: "email", Status: StatusFailed, Reason: "nacked"})
	r.add(Outcome{ID: "e", Destination: "email", Status: StatusPurged})
	r.add(Outcome{ID: "f", Destination: "email", Status: StatusWouldReplay})
	w := r.WithoutMoved()
	var ids []string
	for _, o := range w.Outcomes {
		ids = append(ids, o.ID)
	}
	if strings.Join(ids, ",") != "b,c,f" || w.OutcomesOmitted != 2 || w.Replayed != 1 || w.Purged != 1 || w.Skipped != 1 || w.Failed != 1 || len(w.NotFound) != 1 {
		t.Errorf("without moved: outcomes %v, %+v", ids, w)
	}
	if len(r.Outcomes) != 5 || r.OutcomesOmitted != 0 || len(r.Audit("dlq replay", "--all", nil).Items) != 6 {
		t.Errorf("the report itself changed: %+v", r)
	}
}

package dlq

import "testing"

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

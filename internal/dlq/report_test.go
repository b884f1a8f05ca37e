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

package dlq

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/mqctl/mqctl/internal/audit"
)

// Totals count each outcome once, when it is recorded with its final
// status; the report keeps only the outcomes a human must see, and counts
// the moved ones it left out.
func TestReportKeepsOnlyWhatAHumanMustSee(t *testing.T) {
	r := newReport("email.dlq", 6, false, false, nil)
	for _, o := range []Outcome{
		{ID: "a", Destination: "email", Status: StatusReplayed},
		{ID: "b", Destination: "email", Status: StatusSkipped, Reason: "max replays"},
		{ID: "c", Destination: "points", Status: StatusFailed, Reason: "nacked"},
		{ID: "d", Destination: "points", Status: StatusReplayed},
		{ID: "e", Status: StatusPurged},
		{ID: "f", Destination: "email", Status: StatusReplayed},
	} {
		r.Record(o)
	}
	var ids []string
	for _, o := range r.Outcomes {
		ids = append(ids, o.ID)
	}
	if fmt.Sprint(ids) != "[b c]" || r.OutcomesOmitted != 4 || r.OutcomesTruncated != 0 {
		t.Errorf("outcomes %v, omitted %d, truncated %d", ids, r.OutcomesOmitted, r.OutcomesTruncated)
	}
	if r.Replayed != 3 || r.Purged != 1 || r.Skipped != 1 || r.Failed != 1 || !r.Partial() {
		t.Errorf("counts %+v", r)
	}
	if m := r.Moved(); fmt.Sprint(m) != "[{email 2} {points 1}]" {
		t.Errorf("moved %v", m)
	}
}

// Refused messages beyond MaxOutcomes are counted, not kept; a dry run's
// would_replay ones are counted too, and asking for every outcome keeps
// them all.
func TestReportCapsOutcomes(t *testing.T) {
	r := newReport("email.dlq", 0, true, false, nil)
	for i := range MaxOutcomes + 10 {
		r.Record(Outcome{ID: fmt.Sprint(i), Status: StatusSkipped})
		r.Record(Outcome{ID: fmt.Sprint("r", i), Destination: "email", Status: StatusWouldReplay})
	}
	if len(r.Outcomes) != MaxOutcomes || r.OutcomesTruncated != 10 || r.Skipped != MaxOutcomes+10 ||
		r.WouldReplay != MaxOutcomes+10 || r.OutcomesOmitted != MaxOutcomes+10 {
		t.Errorf("kept %d, truncated %d, skipped %d, would replay %d, omitted %d",
			len(r.Outcomes), r.OutcomesTruncated, r.Skipped, r.WouldReplay, r.OutcomesOmitted)
	}
	all := newReport("email.dlq", 0, true, true, nil)
	for i := range MaxOutcomes + 10 {
		all.Record(Outcome{ID: fmt.Sprint(i), Status: StatusSkipped})
		all.Record(Outcome{ID: fmt.Sprint("r", i), Status: StatusWouldReplay})
	}
	if len(all.Outcomes) != 2*(MaxOutcomes+10) || all.OutcomesOmitted != 0 || all.OutcomesTruncated != 0 {
		t.Errorf("every outcome: kept %d, omitted %d, truncated %d", len(all.Outcomes), all.OutcomesOmitted, all.OutcomesTruncated)
	}
}

// The audit entry of a run lists every selected message with its hash
// and result, from the spool, though the report kept none of the moved
// ones; each destination once; the totals; and says the run was partial.
func TestReportAuditEntryFromSpool(t *testing.T) {
	spool, err := NewSpool("")
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Remove()
	r := newReport("email.dlq", 3, false, false, spool)
	r.Record(Outcome{ID: "a", Destination: "email", Status: StatusReplayed, BodySHA256: "h1"})
	r.Record(Outcome{ID: "b", Destination: "email", Status: StatusReplayed, BodySHA256: "h2"})
	r.Record(Outcome{ID: "c", Destination: "points", Status: StatusSkipped, Reason: "max replays", BodySHA256: "h3"})
	r.NotFound = []string{"d"}
	if len(r.Outcomes) != 1 {
		t.Fatalf("the report kept %d outcomes, want only the skipped one", len(r.Outcomes))
	}
	e := r.Audit("dlq replay", "--all", nil)
	if e.Command != "dlq replay" || e.Queue != "email.dlq" || e.Selection != "--all" || e.Outcome != "partial" {
		t.Errorf("entry %+v", e)
	}
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := audit.Append(trail, e); err != nil {
		t.Fatal(err)
	}
	got, err := audit.Read(trail)
	if err != nil || len(got) != 1 {
		t.Fatalf("read back: %v, %d entries", err, len(got))
	}
	items := got[0].Items
	if len(items) != 4 || items[0] != (audit.Item{ID: "a", BodySHA256: "h1", Destination: "email", Status: "replayed"}) ||
		items[1].BodySHA256 != "h2" || items[2].Reason != "max replays" || items[3] != (audit.Item{ID: "d", Status: "not_found"}) {
		t.Errorf("items %+v", items)
	}
	if fmt.Sprint(got[0].Destinations) != "[email points]" || got[0].Counts["replayed"] != 2 || got[0].Counts["skipped"] != 1 || got[0].Counts["not_found"] != 1 {
		t.Errorf("destinations %v counts %v", got[0].Destinations, got[0].Counts)
	}
}

// A spool's file is private, nameless while in use (so a killed run
// leaves nothing), read back in order, and gone after Remove, which a
// failed run calls as well.
func TestSpoolFileIsPrivateAndRemoved(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	s, err := NewSpool("")
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.f.Stat()
	if err != nil || st.Mode().Perm() != 0o600 || filepath.Dir(s.Path()) != os.Getenv("TMPDIR") {
		t.Fatalf("spool %s: %v, mode %v", s.Path(), err, st.Mode())
	}
	if _, err := os.Stat(s.Path()); runtime.GOOS != "windows" && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the spool has a name while in use (a killed run would leave it): %v", err)
	}
	for i := range 3 {
		s.add(Outcome{ID: fmt.Sprint(i), Status: StatusReplayed})
	}
	var ids []string
	err = s.Each(func(o Outcome) error {
		ids = append(ids, o.ID)
		if o.ID == "1" {
			return errStopEach
		}
		return nil
	})
	if err != nil || fmt.Sprint(ids) != "[0 1]" || s.Len() != 3 {
		t.Errorf("each: %v %v len %d", err, ids, s.Len())
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spool still there after Remove: %v", err)
	}
	if err := s.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

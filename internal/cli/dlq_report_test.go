package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

func partialReport() *dlq.Report {
	rep := &dlq.Report{
		Queue: "email.dlq", Depth: 4, Scanned: 4,
		NotFound: []string{"nope"}, PossibleDuplicates: []string{"evt-2"},
	}
	for _, o := range []dlq.Outcome{
		{ID: "evt-1", Destination: "email", Status: dlq.StatusReplayed},
		{ID: "evt-2", Destination: "email", Status: dlq.StatusSkipped, Reason: "replayed 3 times already"},
		{ID: "evt-3", Status: dlq.StatusFailed, Reason: "no origin queue"},
	} {
		rep.Record(o)
	}
	return rep
}

// A partial run prints its report, warns of possible duplicates on
// stderr, and exits 3; an error wins over the partial exit.
func TestFinishReportPartialExits3(t *testing.T) {
	ios, _, out, errOut := iostreams.Test()
	err := finishReport(ios, output.Table, partialReport(), nil, "replay")
	if code := ExitCode(context.Background(), err, true); code != ExitCondition {
		t.Errorf("exit %d (%v), want 3", code, err)
	}
	for _, w := range []string{"evt-2", "skipped", "evt-3", "failed", "nope", "not_found",
		"replayed 1, skipped 1, failed 1, not found 1; 4 message(s) in email.dlq at start, 4 read"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out.String(), "evt-1") {
		t.Errorf("a replayed message has no row:\n%s", out)
	}
	if !strings.Contains(errOut.String(), "1 message(s) were published by an earlier, interrupted run") {
		t.Errorf("stderr %q", errOut)
	}

	ios, _, out, _ = iostreams.Test()
	stop := errors.New("replay stopped: channel closed")
	if err := finishReport(ios, output.JSON, partialReport(), stop, "replay"); !errors.Is(err, stop) {
		t.Errorf("err = %v, want the run's", err)
	}
	if !strings.Contains(out.String(), `"not_found": [`) {
		t.Errorf("the report is printed after an error too:\n%s", out)
	}
}

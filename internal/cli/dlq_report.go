package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// reportView renders a replay or purge report.
type reportView struct {
	*dlq.Report
	verb string
}

func (v reportView) RenderText(w io.Writer, s *output.Styles) error {
	var rows [][]string
	levels := []output.Level{}
	shown := 0
	for _, o := range v.Outcomes {
		switch o.Status {
		case dlq.StatusReplayed, dlq.StatusPurged, dlq.StatusWouldReplay, dlq.StatusWouldPurge:
			continue
		}
		if shown++; shown > 200 {
			continue
		}
		rows = append(rows, []string{o.ID, o.Status, dash(o.Destination), o.Reason})
		switch o.Status {
		case dlq.StatusFailed:
			levels = append(levels, output.LevelError)
		case dlq.StatusSkipped:
			levels = append(levels, output.LevelWarn)
		default:
			levels = append(levels, output.LevelNone)
		}
	}
	for _, id := range v.NotFound {
		if shown++; shown > 200 {
			continue
		}
		rows = append(rows, []string{id, "not_found", "-", "no such message in the queue when the command started"})
		levels = append(levels, output.LevelWarn)
	}
	// Those beyond what the report kept count as rows not shown.
	shown += v.OutcomesTruncated
	if len(rows) > 0 {
		footer := ""
		switch {
		case v.OutcomesTruncated > 0:
			footer = fmt.Sprintf("… %d more rows (-o json lists the first %d; the audit trail of a run lists every one)", shown-200, dlq.MaxOutcomes)
		case shown > 200:
			footer = fmt.Sprintf("… %d more rows (see -o json)", shown-200)
		}
		t := output.TableData{Headers: []string{"id", "status", "destination", "reason"}, Rows: rows,
			Columns:  map[string]output.Column{"id": {Keep: true}, "status": {Keep: true}, "destination": {Min: 12, Drop: 1}, "reason": {Min: 20}},
			RowLevel: func(r int) output.Level { return levels[r] }, Footer: footer}
		if err := output.WriteTable(w, s, t); err != nil {
			return err
		}
	}
	var b strings.Builder
	if v.DryRun {
		fmt.Fprintf(&b, "dry run: would %s %d", v.verb, v.WouldReplay+v.WouldPurge)
	} else {
		done := map[string]string{"replay": "replayed", "purge": "purged"}[v.verb]
		fmt.Fprintf(&b, "%s %d", done, v.Replayed+v.Purged)
	}
	fmt.Fprintf(&b, ", skipped %d, failed %d, not found %d; %d message(s) in %s at start, %d read",
		v.Skipped, v.Failed, len(v.NotFound), v.Depth, v.Queue, v.Scanned)
	if v.Archive != "" {
		fmt.Fprintf(&b, "; archive %s", v.Archive)
	}
	switch {
	case v.Path == dlq.PathShovel && v.DryRun:
		fmt.Fprintf(&b, "\nwould move through a broker shovel: %s", v.PathReason)
	case v.Path == dlq.PathShovel && v.Shovel == "":
		b.WriteString("\nno broker shovel was created: nothing moved")
	case v.Path == dlq.PathShovel:
		fmt.Fprintf(&b, "\nmoved through broker shovel %s", v.Shovel)
		if v.DepthBefore != nil && v.DepthAfter != nil {
			fmt.Fprintf(&b, " (removed); %s held %d before, %d after", v.Queue, *v.DepthBefore, *v.DepthAfter)
		}
		if v.NotMoved > 0 || v.Unknown > 0 {
			fmt.Fprintf(&b, "; %d checked message(s) left in %s, %d unknown", v.NotMoved, v.Queue, v.Unknown)
		}
	case v.Path == dlq.PathClient && v.DryRun:
		fmt.Fprintf(&b, "\nwould move by mqctl, not a broker shovel: %s", v.PathReason)
	case v.Path == dlq.PathClient:
		fmt.Fprintf(&b, "\nmoved by mqctl, not a broker shovel: %s", v.PathReason)
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}

// finishReport prints a replay or purge report (also after an error, so
// the user sees what did happen) and picks the exit code.
func finishReport(ios *iostreams.IOStreams, format output.Format, rep *dlq.Report, runErr error, verb string) error {
	if rep == nil {
		return runErr
	}
	if len(rep.PossibleDuplicates) > 0 && rep.Path == dlq.PathShovel {
		fmt.Fprintf(ios.ErrOut, "warning: %d message(s) may be in their origin queue twice (published by an earlier, interrupted run, or held unacked by the shovel when it was stopped; those are back in %s): %s\n",
			len(rep.PossibleDuplicates), rep.Queue, strings.Join(rep.PossibleDuplicates, ", "))
	} else if len(rep.PossibleDuplicates) > 0 {
		fmt.Fprintf(ios.ErrOut, "warning: %d message(s) were published by an earlier, interrupted run and replayed again; their origin queue may hold them twice: %s\n",
			len(rep.PossibleDuplicates), strings.Join(rep.PossibleDuplicates, ", "))
	}
	var v any = rep
	if format == output.Table {
		v = reportView{Report: rep, verb: verb}
	}
	if err := output.Print(ios, format, v); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return runErr
	}
	if rep.Partial() {
		msg := fmt.Sprintf("%s finished partially: %d skipped, %d failed, %d not found", verb, rep.Skipped, rep.Failed, len(rep.NotFound))
		if rep.NotMoved > 0 || rep.Unknown > 0 {
			msg += fmt.Sprintf(", %d left in the DLQ by the shovel, %d unknown", rep.NotMoved, rep.Unknown)
		}
		return fail.Conditionf("%s", msg)
	}
	return nil
}

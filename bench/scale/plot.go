package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// jobs in the order the report shows them, with what one item is.
var jobs = []struct{ name, item string }{
	{"backlog", "queue"},
	{"topology", "work queue with two retry delay queues and a DLQ (4 queues)"},
	{"dlq", "dead letter of 1 KiB"},
}

func plotMain(args []string) error {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	in := fs.String("csv", "", "CSV written by scale run")
	dir := fs.String("dir", "bench/results", "where the table and charts go")
	meta := fs.String("meta", "", "file whose text heads the table (machine, versions, command line)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rows, err := readRows(*in)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	var head []byte
	if *meta != "" {
		if head, err = os.ReadFile(*meta); err != nil {
			return err
		}
	}
	if err := writeTable(filepath.Join(*dir, "scale.md"), string(head), rows); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(*dir, "scale.json"), rows); err != nil {
		return err
	}
	for _, j := range jobs {
		if err := charts(*dir, j.name, rows); err != nil {
			return err
		}
	}
	return nil
}

// readRows reads the CSV back; a later row for the same job, op and size
// replaces an earlier one (a re-run of one size).
func readRows(path string) ([]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) < 2 {
		return nil, errors.New(path + " holds no rows")
	}
	var rows []map[string]string
	index := map[string]int{}
	for _, rec := range recs[1:] {
		r := map[string]string{}
		for i, h := range recs[0] {
			r[h] = rec[i]
		}
		k := r["job"] + "\x00" + r["op"] + "\x00" + r["size"]
		if i, ok := index[k]; ok {
			rows[i] = r
			continue
		}
		index[k] = len(rows)
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b map[string]string) int {
		if c := jobOrder(a["job"]) - jobOrder(b["job"]); c != 0 {
			return c
		}
		if c := strings.Compare(a["op"], b["op"]); c != 0 && (isSetup(a) || isSetup(b)) {
			return map[bool]int{true: 1, false: -1}[isSetup(a)]
		}
		return num(a["size"]) - num(b["size"])
	})
	return rows, nil
}

func jobOrder(name string) int {
	for i, j := range jobs {
		if j.name == name {
			return i
		}
	}
	return len(jobs)
}

func isSetup(r map[string]string) bool { return strings.HasPrefix(r["op"], "setup") }

func num(s string) int { n, _ := strconv.Atoi(s); return n }

func fnum(s string) float64 { x, _ := strconv.ParseFloat(s, 64); return x }

// ops of job in the order they first appear (the order they ran).
func ops(job string, rows []map[string]string) []string {
	var out []string
	for _, r := range rows {
		if r["job"] == job && !isSetup(r) && !slices.Contains(out, r["op"]) {
			out = append(out, r["op"])
		}
	}
	return out
}

func writeTable(path, head string, rows []map[string]string) error {
	var b strings.Builder
	b.WriteString("# mqctl at three sizes\n\n")
	if head != "" {
		b.WriteString(head + "\n")
	}
	b.WriteString("Per item: per queue (backlog), per work queue (topology), per dead letter in the queue (dlq; `show` reads its default\n" +
		"20 messages whatever the depth, so its per-item figure falls as 1/size). Wall and CPU are medians over the runs;\n" +
		"peak RSS is the largest of them. Broker CPU is the private node's whole OS process over the command; \"idle %\" is\n" +
		"its background load (in % of one core) just before, which that figure includes.\n\n")
	for _, j := range jobs {
		fmt.Fprintf(&b, "## %s (item: %s)\n\n", j.name, j.item)
		b.WriteString("| command | size | runs | wall s | wall µs/item | mqctl CPU s | mqctl CPU µs/item | broker CPU s | broker CPU µs/item | mqctl peak RSS MiB | broker idle % | status |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
		for _, op := range ops(j.name, rows) {
			for _, r := range rows {
				if r["job"] != j.name || r["op"] != op {
					continue
				}
				status := r["status"]
				if r["note"] != "" {
					status += ": " + strings.ReplaceAll(r["note"], "|", "\\|")
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %.1f | %.2f | %.1f | %.2f | %.1f | %.1f | %.0f | %s |\n",
					op, group(r["size"]), r["runs"], fnum(r["wall_s"]), fnum(r["wall_us_per_item"]), fnum(r["mqctl_cpu_s"]),
					fnum(r["mqctl_cpu_us_per_item"]), fnum(r["broker_cpu_s"]), fnum(r["broker_cpu_us_per_item"]),
					fnum(r["peak_rss_mib"]), fnum(r["broker_idle_pct"]), status)
			}
		}
		b.WriteString("\n")
		var setup []string
		for _, r := range rows {
			if r["job"] == j.name && isSetup(r) {
				setup = append(setup, fmt.Sprintf("%s %s: %.1f s (broker CPU %.1f s)", strings.TrimPrefix(r["op"], "setup:"), group(r["size"]), fnum(r["wall_s"]), fnum(r["broker_cpu_s"])))
			}
		}
		if len(setup) > 0 {
			b.WriteString("Preparation, not mqctl: " + strings.Join(setup, "; ") + ".\n\n")
		}
		fmt.Fprintf(&b, "![%[1]s: time per item](%[1]s-time.png) ![%[1]s: CPU per item](%[1]s-cpu.png) ![%[1]s: peak RSS](%[1]s-rss.png)\n\n", j.name)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// group writes n with thousands separators: 1000000 → 1,000,000.
func group(s string) string {
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func writeJSON(path string, rows []map[string]string) error {
	type item struct {
		Job               string  `json:"job"`
		Op                string  `json:"op"`
		Size              int     `json:"size"`
		Unit              string  `json:"unit"`
		Runs              int     `json:"runs"`
		WallS             float64 `json:"wall_s"`
		MqctlCPUS         float64 `json:"mqctl_cpu_s"`
		BrokerCPUS        float64 `json:"broker_cpu_s"`
		PeakRSSMiB        float64 `json:"peak_rss_mib"`
		WallUsPerItem     float64 `json:"wall_us_per_item"`
		MqctlCPUUsPerItem float64 `json:"mqctl_cpu_us_per_item"`
		BrokerCPUUsPerIt  float64 `json:"broker_cpu_us_per_item"`
		BrokerIdlePct     float64 `json:"broker_idle_pct"`
		Status            string  `json:"status"`
		Note              string  `json:"note,omitempty"`
		At                string  `json:"at"`
	}
	var out []item
	for _, r := range rows {
		out = append(out, item{r["job"], r["op"], num(r["size"]), r["unit"], num(r["runs"]), fnum(r["wall_s"]), fnum(r["mqctl_cpu_s"]),
			fnum(r["broker_cpu_s"]), fnum(r["peak_rss_mib"]), fnum(r["wall_us_per_item"]), fnum(r["mqctl_cpu_us_per_item"]),
			fnum(r["broker_cpu_us_per_item"]), fnum(r["broker_idle_pct"]), r["status"], r["note"], r["at"]})
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// series is the successful rows of job's op: x the size, y from field.
func series(job, op, field string, rows []map[string]string) plotter.XYs {
	var xy plotter.XYs
	for _, r := range rows {
		if r["job"] == job && r["op"] == op && r["status"] == "ok" && fnum(r[field]) > 0 {
			xy = append(xy, plotter.XY{X: fnum(r["size"]), Y: fnum(r[field])})
		}
	}
	return xy
}

// charts draws DIR/JOB-time.png (wall time per item), JOB-cpu.png (mqctl
// and broker CPU per item) and JOB-rss.png (mqctl's peak RSS), all
// against the size on a log axis.
func charts(dir, job string, rows []map[string]string) error {
	names := ops(job, rows)
	if len(names) == 0 {
		return nil
	}
	unit := "item"
	for _, r := range rows {
		if r["job"] == job {
			unit = strings.TrimSuffix(r["unit"], "s")
		}
	}
	draw := func(file, title, ylabel string, logY bool, lines []any) error {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = unit + "s (log)"
		p.Y.Label.Text = ylabel
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		if logY {
			p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		} else {
			p.Y.Min = 0
		}
		p.Legend.Top, p.Legend.Left = true, true
		p.Add(plotter.NewGrid())
		if err := plotutil.AddLinePoints(p, lines...); err != nil {
			return err
		}
		// Room on the left for the legend, and the end points off the
		// frame.
		p.X.Min, p.X.Max = p.X.Min/8, p.X.Max*2
		return p.Save(18*vg.Centimeter, 12*vg.Centimeter, filepath.Join(dir, file))
	}
	var wall, cpu, rss []any
	for _, op := range names {
		if xy := series(job, op, "wall_us_per_item", rows); len(xy) > 0 {
			wall = append(wall, op, xy)
		}
		if xy := series(job, op, "mqctl_cpu_us_per_item", rows); len(xy) > 0 {
			cpu = append(cpu, op+": mqctl", xy)
		}
		if xy := series(job, op, "broker_cpu_us_per_item", rows); len(xy) > 0 {
			cpu = append(cpu, op+": broker", xy)
		}
		if xy := series(job, op, "peak_rss_mib", rows); len(xy) > 0 {
			rss = append(rss, op, xy)
		}
	}
	if err := draw(job+"-time.png", "mqctl "+job+": wall time per "+unit, "µs per "+unit+" (log)", true, wall); err != nil {
		return err
	}
	if err := draw(job+"-cpu.png", "mqctl "+job+": CPU per "+unit, "CPU µs per "+unit+" (log)", true, cpu); err != nil {
		return err
	}
	return draw(job+"-rss.png", "mqctl "+job+": peak RSS of mqctl", "MiB", false, rss)
}

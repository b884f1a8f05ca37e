package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/deadletter"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/mqctltest"
	"github.com/mqctl/mqctl/internal/output"
)

// snapshotAPI is a management API serving one snapshot as RabbitMQ lists
// it: a queue with statistics (Consumers known) on the queue list with its
// counts and rates; one without (metrics collection off) with no figures
// there, and its counts, where known, only as queue totals. A queue totals
// read gives what 3.10 gives: no consumers, rates or effective policy.
// email's ready count grows by one per queue list read, so a watch has a
// trend to show.
type snapshotAPI struct {
	snap  backlog.Snapshot
	reads int
	// statsReads and totalsReads count the queue list reads with
	// statistics and as queue totals (for counts a statistics read
	// lacked, or the whole list).
	statsReads, totalsReads int
	// fail makes the queue list read of that number (1-based) fail.
	fail map[int]error
}

func (a *snapshotAPI) GetJSON(_ context.Context, path string, q url.Values, v any) error {
	var body any
	switch resource, _, _ := strings.Cut(path, "/"); {
	case resource == "queues":
		totals := q.Get("enable_queue_totals") == "true"
		if totals && q.Get("disable_stats") != "true" {
			return fmt.Errorf("queue totals without disable_stats: %v", q)
		}
		if totals {
			a.totalsReads++
		} else {
			a.statsReads++
		}
		// A totals read of the counts a statistics read lacked belongs to
		// that read.
		if !totals || strings.Contains(q.Get("columns"), "type") {
			a.reads++
			if err := a.fail[a.reads]; err != nil {
				return err
			}
		}
		body = a.queuePage(totals, q.Get("columns"))
	case resource == "bindings":
		var bs []map[string]any
		for _, b := range a.snap.Bindings {
			bs = append(bs, map[string]any{"vhost": b.Vhost, "source": b.Source, "destination": b.Queue,
				"destination_type": "queue", "routing_key": b.RoutingKey})
		}
		body = bs
	case resource == "exchanges":
		var es []map[string]any
		for _, e := range a.snap.Exchanges {
			es = append(es, map[string]any{"vhost": e.Vhost, "name": e.Name, "type": e.Type})
		}
		body = es
	default:
		return fmt.Errorf("unexpected read of %s", path)
	}
	if page, ok := body.(map[string]any); ok && !q.Has("page") {
		body = page["items"] // the whole list: an array, as the API sends it
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// queuePage is the queue list, as queue totals or with statistics, with
// the columns asked for (all when none).
func (a *snapshotAPI) queuePage(totals bool, columns string) map[string]any {
	items := []map[string]any{}
	for i, qs := range a.snap.Queues {
		if i == 0 && qs.Ready != nil {
			qs.Ready = ref(*qs.Ready + a.reads - 1)
		}
		stats := qs.Consumers != nil
		item := map[string]any{"vhost": qs.Vhost, "name": qs.Name, "type": qs.Type, "state": qs.State, "arguments": qs.Arguments,
			"leader": qs.Leader, "members": qs.Members, "online": qs.Online}
		if (stats || totals) && qs.Ready != nil && qs.Unacked != nil {
			item["messages_ready"], item["messages_unacknowledged"] = *qs.Ready, *qs.Unacked
		}
		if !totals {
			item["effective_policy_definition"] = qs.Policy
		}
		if !totals && stats {
			item["consumers"] = *qs.Consumers
			item["message_stats"] = map[string]any{"publish_details": map[string]any{"rate": *qs.Publish},
				"deliver_get_details": map[string]any{"rate": *qs.Deliver}, "ack_details": map[string]any{"rate": *qs.Ack}}
		}
		if columns != "" {
			keep := map[string]bool{}
			for _, c := range strings.Split(columns, ",") {
				top, _, _ := strings.Cut(c, ".")
				keep[top] = true
			}
			for k := range item {
				if !keep[k] {
					delete(item, k)
				}
			}
		}
		items = append(items, item)
	}
	return map[string]any{"page_count": 1, "items": items}
}

func fakeBacklog() *snapshotAPI {
	return &snapshotAPI{snap: backlog.Snapshot{
		Queues: []backlog.QueueStat{
			{Vhost: "v", Name: "email", Type: "quorum", State: "running", Ready: ref(5), Unacked: ref(1), Consumers: ref(0),
				Publish: ref(0.0), Deliver: ref(0.0), Ack: ref(0.0),
				Arguments: map[string]any{"x-dead-letter-exchange": "email.dlx", "x-dead-letter-routing-key": "email"},
				Leader:    "rabbit@a", Members: []string{"rabbit@a", "rabbit@b", "rabbit@c"}, Online: []string{"rabbit@a"}},
			{Vhost: "v", Name: "email.dlq", Type: "classic", State: "running", Ready: ref(3), Unacked: ref(0), Consumers: ref(0),
				Publish: ref(0.0), Deliver: ref(0.0), Ack: ref(0.0)},
			{Vhost: "v", Name: "points", Type: "classic", State: "running", Ready: ref(0), Unacked: ref(0), Consumers: ref(2),
				Publish: ref(1.5), Deliver: ref(0.0), Ack: ref(0.0)},
		},
		Exchanges: []deadletter.Exchange{{Vhost: "v", Name: "email.dlx", Type: "direct"}},
		Bindings:  []deadletter.Binding{{Vhost: "v", Source: "email.dlx", Queue: "email.dlq", RoutingKey: "email"}},
	}}
}

// fakeRead reads vhost "v" through api.
func fakeRead(api backlog.Getter) backlogRead {
	return backlogRead{
		Settings:   func() (config.Settings, error) { return config.Settings{Vhost: "v"}, nil },
		MgmtReader: func(config.Settings) (backlog.Getter, error) { return api, nil },
	}
}

func fakeBacklogOpts(ios *iostreams.IOStreams, f output.Format, api backlog.Getter) *BacklogOptions {
	return &BacklogOptions{IO: ios, Format: f, Sort: backlog.SortReady, backlogRead: fakeRead(api)}
}

func TestBacklogTablePipedHasNoEscapeCodes(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	if err := backlogRun(context.Background(), fakeBacklogOpts(ios, output.Table, fakeBacklog())); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.Contains(got, "\x1b") {
		t.Errorf("piped table has escape codes:\n%q", got)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 5 {
		t.Fatalf("want header, 3 rows, summary:\n%s", got)
	}
	for i, want := range [][]string{
		{"QUEUE", "READY", "DLQ", "QUORUM", "WARNINGS"},
		{"email", "quorum", "5", "1", "email.dlq 3", "1/3 rabbit@a", "no consumer, dlq not empty, below quorum"},
		{"email.dlq (dlq)", "3", "dlq not empty"},
		{"points", "classic", "0", "2"},
		{"3 queues, 9 messages (8 ready, 1 unacked), 3 DLQ messages, 2 queues with warnings"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d lacks %q: %q", i, w, lines[i])
			}
		}
	}
}

func TestBacklogTableStyledOnTerminal(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	ios.SetTTY(false, true, false)
	if err := backlogRun(context.Background(), fakeBacklogOpts(ios, output.Table, fakeBacklog())); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\x1b[") || !strings.Contains(out.String(), "╭") {
		t.Errorf("terminal table should be styled: %q", out.String())
	}
	// NO_COLOR on a terminal: plain again.
	ios, _, out, _ = iostreams.Test()
	ios.SetTTY(false, true, false)
	ios.SetNoColor(true)
	if err := backlogRun(context.Background(), fakeBacklogOpts(ios, output.Table, fakeBacklog())); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("NO_COLOR output has escape codes: %q", out.String())
	}
}

func TestBacklogJSONIsTheReport(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	if err := backlogRun(context.Background(), fakeBacklogOpts(ios, output.JSON, fakeBacklog())); err != nil {
		t.Fatal(err)
	}
	var rep backlog.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if rep.Vhost != "v" || len(rep.Queues) != 3 || rep.Queues[0].Name != "email" || *rep.Summary.DLQMessages != 3 {
		t.Errorf("report %+v", rep)
	}
	var raw map[string]any
	_ = json.Unmarshal(out.Bytes(), &raw)
	for _, k := range []string{"History", "Fancy", "history", "fancy"} {
		if _, ok := raw[k]; ok {
			t.Errorf("view field %s leaked into JSON", k)
		}
	}
}

func TestBacklogWatchPipedPrintsSnapshots(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	opts := fakeBacklogOpts(ios, output.Table, fakeBacklog())
	opts.Watch, opts.Count = time.Millisecond, 3
	if err := backlogRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.Contains(got, "\x1b") {
		t.Errorf("piped watch has escape codes: %q", got)
	}
	if n := strings.Count(got, "\n# "); n != 2 || !strings.HasPrefix(got, "# ") {
		t.Errorf("want 3 snapshots, each under a timestamp line:\n%s", got)
	}
	// email grows by one per read: +0 first, then +1.
	if strings.Count(got, "+1") != 2 || !strings.Contains(got, "+0") || !strings.Contains(got, "TREND") {
		t.Errorf("trend column missing or wrong:\n%s", got)
	}
}

func TestBacklogWatchTerminalRedrawsInPlace(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	ios.SetTTY(false, true, false)
	opts := fakeBacklogOpts(ios, output.Table, fakeBacklog())
	opts.Watch, opts.Count = time.Millisecond, 3
	if err := backlogRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if n := strings.Count(got, "\x1b[H\x1b[2J"); n != 3 {
		t.Errorf("want 3 redraws, got %d", n)
	}
	if !strings.Contains(got, "↑") || !strings.Contains(got, "▁▄█") {
		t.Errorf("want a rising arrow and sparkline for email:\n%s", got)
	}
}

func TestBacklogWatchJSONStreamsDocuments(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	opts := fakeBacklogOpts(ios, output.JSON, fakeBacklog())
	opts.Watch, opts.Count = time.Millisecond, 2
	if err := backlogRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(out.Bytes()))
	for i := range 2 {
		var rep backlog.Report
		if err := dec.Decode(&rep); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		if *rep.Queues[0].Ready != 5+i {
			t.Errorf("document %d: email ready %d", i, rep.Queues[0].Ready)
		}
	}
}

func TestBacklogWatchStopsOnCancel(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	out := &mqctltest.Buffer{}
	ios.Out = out
	opts := fakeBacklogOpts(ios, output.Table, fakeBacklog())
	opts.Watch = time.Hour // only cancellation can end it
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- backlogRun(ctx, opts) }()
	// Wait for the first frame, then interrupt.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "QUEUE"); {
		if time.Now().After(deadline) {
			t.Fatal("no first frame")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("interrupted watch returned %v, want a clean stop", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not stop on cancel")
	}
}

func TestBacklogFlags(t *testing.T) {
	cases := []struct {
		args  []string
		watch time.Duration
		globs []string
		sort  backlog.SortKey
	}{
		{[]string{}, 0, []string{}, backlog.SortReady},
		{[]string{"--watch"}, 5 * time.Second, []string{}, backlog.SortReady},
		{[]string{"--watch=2s", "e*"}, 2 * time.Second, []string{"e*"}, backlog.SortReady},
		{[]string{"--watch", "2s", "e*"}, 2 * time.Second, []string{"e*"}, backlog.SortReady},
		{[]string{"2s", "--sort", "name"}, 0, []string{"2s"}, backlog.SortName},
	}
	for _, c := range cases {
		ios, _, _, _ := iostreams.Test()
		f := &Factory{IO: ios}
		var got *BacklogOptions
		cmd := NewCmdBacklog(f, func(o *BacklogOptions) error { got = o; return nil })
		cmd.SetArgs(c.args)
		if err := cmd.Execute(); err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if got.Watch != c.watch || strings.Join(got.Globs, ",") != strings.Join(c.globs, ",") || got.Sort != c.sort {
			t.Errorf("%v: watch %s globs %v sort %s", c.args, got.Watch, got.Globs, got.Sort)
		}
	}
}

func TestBacklogFlagsThroughRunF(t *testing.T) {
	var got *BacklogOptions
	build := func(f *Factory) *cobra.Command {
		return NewCmdBacklog(f, func(o *BacklogOptions) error { got = o; return nil })
	}
	if err := runWithF(t, "backlog", build, "backlog", "--all-vhosts", "--page-size", "7", "--sort", "dlq", "-o", "json", "--watch=3s", "--count", "2", "e*", "p*"); err != nil {
		t.Fatal(err)
	}
	if !got.AllVhosts || got.PageSize != 7 || got.Sort != backlog.SortDLQ || got.Format != output.JSON ||
		got.Watch != 3*time.Second || got.Count != 2 || strings.Join(got.Globs, ",") != "e*,p*" {
		t.Errorf("options %+v", got)
	}
	if got.IO == nil || got.Settings == nil || got.MgmtReader == nil {
		t.Error("IO, Settings and MgmtReader must be wired")
	}
}

func TestBacklogCheckFlagsThroughRunF(t *testing.T) {
	cases := []struct {
		args      []string
		allVhosts bool
		globs     []string
		limits    backlog.Limits
	}{
		{[]string{"backlog", "check", "--max-ready", "3"}, false, []string{}, backlog.Limits{MaxReady: ref(3)}},
		// --all-vhosts is the parent's persistent flag: before or after check.
		{[]string{"backlog", "--all-vhosts", "check", "--max-dlq", "0", "e*"}, true, []string{"e*"}, backlog.Limits{MaxDLQ: ref(0)}},
		{[]string{"backlog", "check", "--all-vhosts", "--max-unacked", "1", "--min-consumers", "2", "--max-age", "10m", "--require-age"}, true, []string{},
			backlog.Limits{MaxUnacked: ref(1), MinConsumers: ref(2), MaxAge: ref(10 * time.Minute), RequireAge: true}},
	}
	for _, c := range cases {
		var got *BacklogCheckOptions
		build := func(f *Factory) *cobra.Command {
			return newCmdBacklog(f, nil, func(o *BacklogCheckOptions) error { got = o; return nil })
		}
		if err := runWithF(t, "backlog", build, append(c.args, "-o", "json")...); err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if got.AllVhosts != c.allVhosts || strings.Join(got.Globs, ",") != strings.Join(c.globs, ",") ||
			!reflect.DeepEqual(got.Limits, c.limits) || got.Format != output.JSON || got.PageSize != 0 {
			t.Errorf("%v: options %+v, limits %+v", c.args, got, got.Limits)
		}
		if got.IO == nil || got.Settings == nil || got.MgmtReader == nil {
			t.Errorf("%v: IO, Settings and MgmtReader must be wired", c.args)
		}
	}
}

func TestBacklogUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: a usage error must come before any call.
	env := map[string]string{"MQCTL_URL": "amqp://guest:guest@127.0.0.1:1/", "MQCTL_MGMT_URL": "http://127.0.0.1:1"}
	for _, args := range [][]string{
		{"backlog", "--sort", "size"},
		{"backlog", "--watch=-1s"},
		{"backlog", "--watch=soon"},
		{"backlog", "--count", "-1"},
		{"backlog", "--count", "2"},
		{"backlog", "check"},
		{"backlog", "check", "--max-ready", "-1"},
		{"backlog", "check", "--max-age", "0s"},
		{"backlog", "check", "--max-ready", "1", "--require-age"},
		{"backlog", "check", "--max-ready", "x"},
	} {
		r := runCLI(t, env, args...)
		if r.Code != ExitUsage {
			t.Errorf("%v: exit %d, want 2\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	if r := runCLI(t, env, "backlog"); r.Code != ExitError || !strings.Contains(r.Stderr, "read the backlog") {
		t.Errorf("unreachable API: exit %d, want 1\n%s", r.Code, r.Stderr)
	}
}

func TestBacklogCheckRendering(t *testing.T) {
	for _, tty := range []bool{false, true} {
		ios, _, out, errOut := iostreams.Test()
		ios.SetTTY(false, tty, false)
		ready := 4
		age := time.Minute
		opts := &BacklogCheckOptions{IO: ios, Format: output.Table, backlogRead: fakeRead(fakeBacklog()),
			Limits: backlog.Limits{MaxReady: &ready, MaxAge: &age}}
		err := backlogCheckRun(context.Background(), opts)
		if code := ExitCode(context.Background(), err, true); code != ExitCondition {
			t.Errorf("tty=%v: exit %d, want 3 (%v)", tty, code, err)
		}
		if got := strings.Count(out.String(), "\n"); got != 1 || !strings.Contains(out.String(), "email: 5 ready messages (max 4) [max_ready]") {
			t.Errorf("tty=%v: want exactly one violation line:\n%q", tty, out)
		}
		if strings.Contains(out.String(), "\x1b") != tty {
			t.Errorf("tty=%v: escape codes present = %v", tty, !tty)
		}
		if !strings.Contains(errOut.String(), "note: email: --max-age not checked: quorum queues") {
			t.Errorf("tty=%v: the unknown age must be said: %q", tty, errOut)
		}
	}
}

// backlog check reads the queue list as queue totals when no gate needs
// consumers or the head timestamp, and with statistics otherwise; the
// verdict is the same either way.
func TestBacklogCheckReadsQueueTotalsUnlessAGateNeedsStatistics(t *testing.T) {
	for _, c := range []struct {
		name   string
		limits backlog.Limits
		totals bool
		lines  []string
	}{
		{"counts only", backlog.Limits{MaxReady: ref(4), MaxUnacked: ref(0), MaxDLQ: ref(2)}, true, []string{
			"email: its dead-letter queue email.dlq holds 3 messages (max 2) [max_dlq]",
			"email: 5 ready messages (max 4) [max_ready]",
			"email: 1 unacknowledged messages (max 0) [max_unacked]",
		}},
		{"consumers", backlog.Limits{MaxReady: ref(4), MinConsumers: ref(1)}, false, []string{
			"email: 5 ready messages (max 4) [max_ready]",
			"email: 0 consumers (min 1) [min_consumers]",
		}},
		{"age", backlog.Limits{MaxDLQ: ref(2), MaxAge: ref(time.Hour)}, false, []string{
			"email: its dead-letter queue email.dlq holds 3 messages (max 2) [max_dlq]",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ios, _, out, _ := iostreams.Test()
			api := fakeBacklog()
			opts := &BacklogCheckOptions{IO: ios, Format: output.Table, backlogRead: fakeRead(api), Limits: c.limits}
			err := backlogCheckRun(context.Background(), opts)
			if code := ExitCode(context.Background(), err, true); code != ExitCondition {
				t.Errorf("exit %d, want 3 (%v)", code, err)
			}
			if got := strings.Split(strings.TrimSpace(out.String()), "\n"); !reflect.DeepEqual(got, c.lines) {
				t.Errorf("violations\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.lines, "\n"))
			}
			want := [2]int{1, 0} // statistics, totals
			if c.totals {
				want = [2]int{0, 1}
			}
			if got := [2]int{api.statsReads, api.totalsReads}; got != want {
				t.Errorf("queue list reads with statistics, as totals = %v, want %v", got, want)
			}
		})
	}
}

func TestBacklogWatchSurvivesAFailedRefresh(t *testing.T) {
	ios, _, out, errOut := iostreams.Test()
	api := fakeBacklog()
	api.fail = map[int]error{2: errors.New("timeout")}
	opts := fakeBacklogOpts(ios, output.Table, api)
	opts.Watch, opts.Count = time.Millisecond, 3
	if err := backlogRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "QUEUE"); n != 3 || !strings.Contains(errOut.String(), "refresh failed, retrying") {
		t.Errorf("want 3 frames and a retry note, got %d frames, stderr %q", n, errOut)
	}
	// Refused credentials end the watch.
	ios, _, _, _ = iostreams.Test()
	api = fakeBacklog()
	api.fail = map[int]error{2: fail.Authf("401")}
	opts = fakeBacklogOpts(ios, output.Table, api)
	opts.Watch = time.Millisecond
	if err := backlogRun(context.Background(), opts); ExitCode(context.Background(), err, true) != ExitAuth {
		t.Errorf("auth failure: %v", err)
	}
}

// metricsOffBacklog is a broker with management metrics collection off:
// email's counts came from queue totals, email.dlq's not even from there.
func metricsOffBacklog() *snapshotAPI {
	return &snapshotAPI{snap: backlog.Snapshot{
		Queues: []backlog.QueueStat{
			{Vhost: "v", Name: "email", Type: "classic", State: "running", Ready: ref(10), Unacked: ref(0),
				Arguments: map[string]any{"x-dead-letter-exchange": "email.dlx", "x-dead-letter-routing-key": "email"}},
			{Vhost: "v", Name: "email.dlq", Type: "classic", State: "live"},
		},
		Exchanges: []deadletter.Exchange{{Vhost: "v", Name: "email.dlx", Type: "direct"}},
		Bindings:  []deadletter.Binding{{Vhost: "v", Source: "email.dlx", Queue: "email.dlq", RoutingKey: "email"}},
	}}
}

func TestBacklogShowsUnknownFiguresAsUnknown(t *testing.T) {
	ios, _, out, errOut := iostreams.Test()
	if err := backlogRun(context.Background(), fakeBacklogOpts(ios, output.Table, metricsOffBacklog())); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header, 2 rows, summary:\n%s", out)
	}
	for i, want := range [][]string{
		{"email", "10", "unknown", "email.dlq unknown"},
		{"email.dlq (dlq)", "unknown", "counts unknown"},
		{"2 queues, messages unknown (counts unknown for 1 queue), DLQ messages unknown, 1 queue with warnings"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("line %d lacks %q: %q", i+1, w, lines[i+1])
			}
		}
	}
	if strings.Contains(lines[2], " 0 ") {
		t.Errorf("an unknown figure shown as 0: %q", lines[2])
	}
	if !strings.Contains(errOut.String(), "note: the management API reports no message counts for 1 queue") {
		t.Errorf("stderr note missing: %q", errOut)
	}

	ios, _, out, _ = iostreams.Test()
	if err := backlogRun(context.Background(), fakeBacklogOpts(ios, output.JSON, metricsOffBacklog())); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"consumers": null`, `"ready": null`, `"publish_rate": null`, `"dlq_messages": null`, `"counts_unknown": 1`} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("JSON lacks %s:\n%s", w, out)
		}
	}
}

func TestBacklogCheckCannotEvaluateUnknownFigures(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	opts := &BacklogCheckOptions{IO: ios, Format: output.Table, backlogRead: fakeRead(metricsOffBacklog()),
		Limits: backlog.Limits{MaxReady: ref(100), MaxDLQ: ref(100), MinConsumers: ref(0)}}
	err := backlogCheckRun(context.Background(), opts)
	if code := ExitCode(context.Background(), err, true); code != ExitCondition {
		t.Errorf("exit %d, want 3 (%v)", code, err)
	}
	if err == nil || !strings.Contains(err.Error(), "mqctl doctor") {
		t.Errorf("error should say what to do next: %v", err)
	}
	for _, w := range []string{
		"email: cannot evaluate --min-consumers: consumer count unknown",
		"email: cannot evaluate --max-dlq: the depth of its dead-letter queue email.dlq is unknown",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("no line %q in\n%s", w, out)
		}
	}
	if strings.Contains(out.String(), "max_ready") || strings.Contains(out.String(), "ok:") {
		t.Errorf("ready is known (10 ≤ 100) and must hold; nothing may pass:\n%s", out)
	}
}

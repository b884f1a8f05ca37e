package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/migrate"
	"github.com/mqctl/mqctl/internal/topology"
)

// notADLQ is a linkage that says queue is a work queue dead-lettering
// into QUEUE.dlq.
func notADLQ(ctx context.Context, queue string) (dlq.Linkage, error) {
	return dlq.Linkage{Queue: queue, Listed: true, Role: "work", Suggest: queue + ".dlq",
		DeadLettersTo: "it dead-letters into " + queue + ".dlq (through " + queue + ".dlx, set by arguments)"}, nil
}

// Every dlq command that reads a queue refuses a queue that is not a DLQ
// before it connects to read it (the dialer here fails the test), and
// --force gets past the check to the broker.
func TestDLQCommandsRefuseAWorkQueueBeforeReading(t *testing.T) {
	settings := func() (config.Settings, error) { return config.Settings{Vhost: "/"}, nil }
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	runs := map[string]func(ios *iostreams.IOStreams, dial dialFunc, force bool) error{
		"show": func(ios *iostreams.IOStreams, dial dialFunc, force bool) error {
			return dlqShowRun(context.Background(), &DLQShowOptions{IO: ios, Dial: dial, Linkage: notADLQ, Force: force, Queue: "email", Limit: 20})
		},
		"export": func(ios *iostreams.IOStreams, dial dialFunc, force bool) error {
			return dlqExportRun(context.Background(), &DLQExportOptions{IO: ios, Dial: dial, Linkage: notADLQ, Force: force, Queue: "email",
				Out: filepath.Join(t.TempDir(), "x.jsonl")})
		},
		"replay": func(ios *iostreams.IOStreams, dial dialFunc, force bool) error {
			o := replayOpts(t, ios)
			o.Dial, o.Linkage, o.Force, o.Queue, o.Settings, o.DryRun = dial, notADLQ, force, "email", settings, true
			o.Select.All = true
			return dlqReplayRun(context.Background(), o)
		},
		"purge": func(ios *iostreams.IOStreams, dial dialFunc, force bool) error {
			return dlqPurgeRun(context.Background(), &DLQPurgeOptions{IO: ios, Dial: dial, Linkage: notADLQ, Force: force, Queue: "email",
				Select: selectionFlags{All: true}, Yes: true, Settings: settings, Audit: auditTrail{Path: trail}, now: time.Now})
		},
	}
	for name, run := range runs {
		ios, _, out, _ := iostreams.Test()
		err := run(ios, noBroker(t), false)
		if ExitCode(context.Background(), err, true) != ExitUsage {
			t.Errorf("%s: %v, want exit 2", name, err)
			continue
		}
		for _, want := range []string{"email is not a dead-letter queue", "dead-letters into email.dlq", "did you mean email.dlq?", "--force"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q lacks %q", name, err, want)
			}
		}
		if out.Len() != 0 {
			t.Errorf("%s: printed %q", name, out)
		}
		ios, _, _, errOut := iostreams.Test()
		err = run(ios, brokerDown, true)
		if ExitCode(context.Background(), err, true) != ExitError || !strings.Contains(errOut.String(), "--force: reading email although it is not a dead-letter queue") {
			t.Errorf("%s --force: %v, want the broker's error; stderr %q", name, err, errOut)
		}
	}
	if b, _ := os.ReadFile(trail); len(b) > 0 {
		t.Errorf("a refused purge was recorded: %s", b)
	}
}

func TestGuardWarnsOfQuorumDLQsAndNotes(t *testing.T) {
	ios, _, _, errOut := iostreams.Test()
	quorum := func(ctx context.Context, q string) (dlq.Linkage, error) {
		return dlq.Linkage{Queue: q, Listed: true, IsDLQ: true, Type: "quorum", Origins: []string{"points"}}, nil
	}
	if _, err := guardDLQ(context.Background(), ios, quorum, "points.dlq", false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "warning: points.dlq is a quorum queue") || !strings.Contains(errOut.String(), "x-delivery-count") {
		t.Errorf("stderr %q", errOut)
	}
	ios, _, _, errOut = iostreams.Test()
	named := func(ctx context.Context, q string) (dlq.Linkage, error) {
		return dlq.Linkage{Queue: q, IsDLQ: true, Note: "the management API did not answer (refused); taken as a dead-letter queue by mqctl's naming (X.dlq) alone"}, nil
	}
	if _, err := guardDLQ(context.Background(), ios, named, "email.dlq", false); err != nil || !strings.Contains(errOut.String(), "note: the management API did not answer") {
		t.Errorf("%v; stderr %q", err, errOut)
	}
}

func TestSelectionTextIsTheSelectionAsGiven(t *testing.T) {
	for _, c := range []struct {
		s     selectionFlags
		limit int
		want  string
	}{
		{selectionFlags{Where: `error contains "x"`}, 10, `--where 'error contains "x"' --limit 10`},
		{selectionFlags{From: "checked.jsonl"}, 0, "--from checked.jsonl"},
		{selectionFlags{IDs: []string{"7f3a", "9b2c"}}, 0, "--id 7f3a --id 9b2c"},
		{selectionFlags{All: true}, 0, "--all"},
		{selectionFlags{All: true, Groups: []string{"3fa2c9d1"}, Where: "it's"}, 0, `--all --where 'it'\''s' --group 3fa2c9d1`},
		{selectionFlags{From: "my file.jsonl"}, 0, "--from 'my file.jsonl'"},
	} {
		if got := c.s.text(c.limit); got != c.want {
			t.Errorf("%+v: %s, want %s", c.s, got, c.want)
		}
	}
}

func TestPromptsStateCountsAndDestinations(t *testing.T) {
	rep := &dlq.Report{Queue: "points.dlq"}
	for i := 0; i < 1960; i++ {
		rep.Record(dlq.Outcome{Destination: "points", Status: dlq.StatusWouldReplay})
	}
	for i := 0; i < 6; i++ {
		rep.Record(dlq.Outcome{Destination: "points-vip", Status: dlq.StatusWouldReplay})
	}
	if got := capitalize(replayPrompt(rep)); got != "Replay 1,966 messages of points.dlq to points (1,960) and points-vip (6)" {
		t.Errorf("replay prompt %q", got)
	}
	rep.Record(dlq.Outcome{Destination: "gone", Status: dlq.StatusWouldFail})
	rep.Record(dlq.Outcome{Status: dlq.StatusSkipped})
	if got := replayPrompt(rep); !strings.HasSuffix(got, "(2 selected will not move: skipped or failing; see --dry-run)") {
		t.Errorf("replay prompt with refusals %q", got)
	}
	purged := &dlq.Report{Queue: "email.dlq"}
	purged.Record(dlq.Outcome{Status: dlq.StatusWouldPurge})
	if got := purgePrompt(purged, "a.jsonl"); got != "remove 1 message of email.dlq, archiving them to a.jsonl" {
		t.Errorf("purge prompt %q", got)
	}
	if got := purgePrompt(purged, ""); !strings.Contains(got, "without archiving") {
		t.Errorf("purge prompt --no-archive %q", got)
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %s", n, got)
		}
	}
}

// A trail that cannot be written refuses the act (exit 2) before
// anything connects.
func TestUnwritableAuditTrailRefusesBeforeActing(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	trail := auditTrail{Path: filepath.Join(blocker, "audit.jsonl")}
	ios, _, _, _ := iostreams.Test()
	o := replayOpts(t, ios)
	o.Select.All, o.Yes, o.Audit = true, true, trail
	err := dlqReplayRun(context.Background(), o)
	if ExitCode(context.Background(), err, true) != ExitUsage || !strings.Contains(err.Error(), "cannot write the audit trail") {
		t.Errorf("replay: %v", err)
	}
	err = dlqPurgeRun(context.Background(), &DLQPurgeOptions{IO: ios, Dial: noBroker(t), Queue: "email.dlq", Select: selectionFlags{All: true},
		Yes: true, Audit: trail, now: time.Now})
	if ExitCode(context.Background(), err, true) != ExitUsage || !strings.Contains(err.Error(), "cannot write the audit trail") {
		t.Errorf("purge: %v", err)
	}
	// A dry run changes nothing and needs no trail.
	o.DryRun, o.Dial = true, brokerDown
	o.Settings = func() (config.Settings, error) { return config.Settings{Vhost: "/"}, nil }
	if err := dlqReplayRun(context.Background(), o); ExitCode(context.Background(), err, true) != ExitError {
		t.Errorf("dry run: %v", err)
	}
}

// A file published before is refused (exit 2, saying when and how many)
// before anything connects; --force publishes it again.
func TestPublishRefusesTheSameFileTwice(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "archive.jsonl")
	os.WriteFile(file, []byte(`{"id":"a","death":{"origin_queue":"email"}}`+"\n"), 0o600)
	state := filepath.Join(dir, "state")
	env := func(k string) (string, bool) { return state, k == "XDG_STATE_HOME" }
	sum, err := dlq.FileSHA256(file)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	if err := dlq.WritePublished(dlq.PublishedPath(state, sum), dlq.Published{File: file, SHA256: sum, At: at, Vhost: "/", Published: 1966}); err != nil {
		t.Fatal(err)
	}
	ios, _, _, _ := iostreams.Test()
	o := &PublishOptions{IO: ios, Env: env, Dial: noBroker(t), From: file, Window: 1, Audit: auditTrail{Path: filepath.Join(dir, "audit.jsonl")}}
	err = publishRun(context.Background(), o)
	if ExitCode(context.Background(), err, true) != ExitUsage {
		t.Fatalf("second publish: %v, want exit 2", err)
	}
	for _, want := range []string{"was published already on " + at.Local().Format(time.RFC3339), "1,966 messages", "--force"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	// Another file, or the same file changed, is not this one.
	os.WriteFile(file, []byte(`{"id":"b","death":{"origin_queue":"email"}}`+"\n"), 0o600)
	o.Dial, o.Settings = brokerDown, func() (config.Settings, error) { return config.Settings{Vhost: "/"}, nil }
	if err := publishRun(context.Background(), o); ExitCode(context.Background(), err, true) != ExitError {
		t.Errorf("changed file: %v, want the broker's error", err)
	}
	os.WriteFile(file, []byte(`{"id":"a","death":{"origin_queue":"email"}}`+"\n"), 0o600)
	o.Force = true
	if err := publishRun(context.Background(), o); ExitCode(context.Background(), err, true) != ExitError {
		t.Errorf("--force: %v, want the broker's error", err)
	}
}

func TestTopologyAuditEntries(t *testing.T) {
	res := &topology.Result{DeletedObjects: []string{"binding x", "queue old"}, Kept: []string{"busy"}, KeptWhy: map[string]string{"busy": "holds 3 messages"}}
	e := pruneEntry("t.yaml", "prod", res, nil)
	if e.Command != "topology prune" || e.Vhost != "prod" || e.Selection != "-f t.yaml --prune" || e.Outcome != audit.Partial ||
		e.Counts["deleted"] != 2 || e.Counts["kept"] != 1 || e.Items[2].Reason != "holds 3 messages" {
		t.Errorf("prune entry %+v", e)
	}
	migs := []queueMigration{{Queue: "a"}, {Queue: "b"}, {Queue: "c"}}
	results := []*migrate.Result{{Queue: "a", MovedOut: 5, MovedBack: 5}, {Queue: "b", MovedOut: 2}}
	e = migrateEntry("t.yaml", "prod", migs, results, fail.Conditionf("boom"))
	if e.Outcome != audit.Failed || e.Items[0].Status != "migrated" || e.Items[1].Status != "failed" || e.Items[2].Status != "not_started" ||
		e.Counts["moved_out"] != 5 || e.Selection != "-f t.yaml --migrate" {
		t.Errorf("migrate entry %+v", e)
	}
}

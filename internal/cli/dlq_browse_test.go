package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/browse"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
	"github.com/mqctl/mqctl/internal/pattern"
)

func TestDLQBrowseFlags(t *testing.T) {
	o := mustParse(t, "dlq browse", NewCmdDLQBrowse, "email.dlq", "--max-replays", "5", "--archive-dir", "/srv/archives",
		"--audit-log", "/srv/audit.jsonl", "--force")
	if o.Queue != "email.dlq" || o.MaxReplays != 5 || o.ArchiveDir != "/srv/archives" || o.Audit.Path != "/srv/audit.jsonl" || !o.Force {
		t.Errorf("flags: %+v", o)
	}
	if o := mustParse(t, "dlq browse", NewCmdDLQBrowse, "email.dlq"); o.MaxReplays != 3 || o.ArchiveDir != "." || o.Force {
		t.Errorf("defaults: %+v", o)
	}
	refusesFlags(t, "dlq browse", NewCmdDLQBrowse, []string{}, []string{"a", "b"}, []string{"email.dlq", "--max-replays", "-1"})
}

func TestBrowseSourceReadsARecordAsReplayWouldMoveIt(t *testing.T) {
	at := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
	r, err := dlq.FromDelivery("email.dlq", amqp.Delivery{MessageId: "m-1", ContentType: "application/json", DeliveryMode: 2,
		Exchange: "email.dlx", RoutingKey: "email", Body: []byte(`{"order":1}`), Headers: amqp.Table{
			"tenant": "acme", pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "timeout after 10s",
			pattern.HeaderErrorClass: "*net.OpError", pattern.HeaderAttempt: int32(3),
			pattern.HeaderFailedAt: at.Format(time.RFC3339), pattern.HeaderReplayCount: int64(3)}})
	if err != nil {
		t.Fatal(err)
	}
	b := &browseSource{opts: &DLQBrowseOptions{Queue: "email.dlq", MaxReplays: 3}, origins: []string{"email"}}
	m := b.message(r)
	if m.ID != "m-1" || m.GroupKey != dlq.GroupAll.Key(r.Death) || m.Origin != "email" || m.Reason != "failed" ||
		m.Error != "timeout after <n>s" || m.Destination != "email" || !m.LastDeath.Equal(at) || m.Size != 11 ||
		m.Hold != "replayed 3 time(s) already (--max-replays 3)" {
		t.Errorf("message %+v", m)
	}
	b.opts.MaxReplays, b.origins = 5, []string{"sms"}
	if m := b.message(r); m.Hold != "claims origin email, which does not dead-letter into email.dlq" {
		t.Errorf("foreign origin: hold %q", m.Hold)
	}
	d := browseDetail(r)
	if len(d.Deaths) != 1 || d.Deaths[0].Queue != "email" || d.Deaths[0].Error != "timeout after 10s" ||
		d.Deaths[0].ErrorClass != "*net.OpError" || d.Deaths[0].Count != 3 || !d.Deaths[0].Time.Equal(at) {
		t.Errorf("deaths %+v", d.Deaths)
	}
	if fmt.Sprint(d.Headers) != "[{tenant acme}]" || d.HiddenHeaders != 6 || string(d.Body) != `{"order":1}` {
		t.Errorf("headers %v (%d hidden), body %q", d.Headers, d.HiddenHeaders, d.Body)
	}
	if got := fmt.Sprint(d.Properties); got != "[{content_type application/json} {delivery_mode 2} {message_id m-1} {exchange email.dlx} {routing_key email}]" {
		t.Errorf("properties %s", got)
	}
}

func TestBrowseReportSummary(t *testing.T) {
	rep := &dlq.Report{NotFound: []string{"gone"}}
	for _, o := range []dlq.Outcome{{ID: "a", Destination: "email", Status: dlq.StatusReplayed},
		{ID: "b", Destination: "sms", Status: dlq.StatusReplayed}, {ID: "c", Destination: "email", Status: dlq.StatusSkipped}} {
		rep.Record(o)
	}
	if got := reportSummary("dlq replay", rep, "email.dlq"); got != "replayed 2 messages from email.dlq to email (1), sms (1); 1 skipped; 1 no longer in the queue" {
		t.Errorf("replay: %q", got)
	}
	rep = &dlq.Report{Purged: 1, Archive: "/srv/email.dlq.purged.jsonl"}
	if got := reportSummary("dlq purge", rep, "email.dlq"); got != "purged 1 message from email.dlq into /srv/email.dlq.purged.jsonl" {
		t.Errorf("purge: %q", got)
	}
}

func TestDLQBrowseRefusesWithoutATerminal(t *testing.T) {
	r := runCLI(t, nil, "dlq", "browse", "email.dlq")
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, "stdout is not a terminal") ||
		!strings.Contains(r.Stderr, "mqctl dlq show email.dlq --groups") || r.Stdout != "" {
		t.Errorf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// waitScreen waits until the program has drawn every one of parts (in
// output written since the last wait).
func waitScreen(t *testing.T, tm *teatest.TestModel, parts ...string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		for _, p := range parts {
			if !bytes.Contains(b, []byte(p)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(2*time.Minute), teatest.WithCheckInterval(50*time.Millisecond))
}

// TestDLQBrowseMarkGroupAndReplayHeadless drives the browser headless
// (bubbletea's teatest: the real program loop, keys in, screen out) on a
// real broker with the command's own source: three groups; a whole group
// is marked and replayed; exactly that group reaches its origin, the rest
// stays in the DLQ, and the audit trail has the line.
func TestDLQBrowseMarkGroupAndReplayHeadless(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 4) // evt-00001…4: rejected by the broker
	for i, id := range []string{"timeout-a1", "timeout-b2", "timeout-c3"} {
		deadLetterFailure(t, env, id, fmt.Sprintf("timeout after %ds for order %d", 10+i, 4000+i))
	}
	deadLetterFailure(t, env, "prov-1", "provider unavailable: request 5f0c3e2a-9b1d-4c8e-a7f2-1d2e3f4a5b6c failed")
	deadLetterFailure(t, env, "prov-2", "provider unavailable: request 0e5b1c22-7a3d-4f9e-b8c1-9a8b7c6d5e4f failed")

	dir := t.TempDir()
	auditLog := filepath.Join(dir, "audit.jsonl")
	vars := env.Environ()
	vars["MQCTL_CONFIG"] = filepath.Join(dir, "none.yaml")
	vars["XDG_STATE_HOME"] = filepath.Join(dir, "state")
	ios, _, _, errOut := iostreams.Test()
	f := NewFactory(ios, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	var opts *DLQBrowseOptions
	cmd := NewCmdDLQBrowse(f, func(o *DLQBrowseOptions) error { opts = o; return nil })
	cmd.SetArgs([]string{"email.dlq", "--audit-log", auditLog, "--archive-dir", dir})
	cmd.SetOut(io.Discard)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	src, err := newBrowseSource(context.Background(), opts)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	m := browse.New(src, browse.Options{Queue: "email.dlq", Styles: browse.NewStyles(output.NewStyles(ios, io.Discard))})
	defer m.Close()
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(120, 30))

	// Groups by size: rejected (4), timeout (3), provider (2).
	waitScreen(t, tm, "9 message(s) in 3 group(s)")
	tm.Type("j")
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
	waitScreen(t, tm, "timeout-a1", "timeout-b2", "timeout-c3")
	tm.Type("a")
	waitScreen(t, tm, "3 marked")
	tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
	tm.Type("r")
	waitScreen(t, tm, "Replay 3 marked message(s) from email.dlq?", "→ email  3")
	tm.Type("y")
	// One wait for both: a line drawn once is in the output once.
	waitScreen(t, tm, "replayed 3 messages from email.dlq to email (3)", "6 message(s) in 2 group(s)")
	tm.Type("q")
	tm.WaitFinished(t, teatest.WithFinalTimeout(time.Minute))

	got := brokertest.PeekIDs(t, env, "email.dlq")
	slices.Sort(got)
	if want := "evt-00001,evt-00002,evt-00003,evt-00004,prov-1,prov-2"; strings.Join(got, ",") != want {
		t.Errorf("email.dlq holds %v, want %s", got, want)
	}
	replayed := brokertest.DrainIDs(t, env, "email")
	slices.Sort(replayed)
	if strings.Join(replayed, ",") != "timeout-a1,timeout-b2,timeout-c3" {
		t.Errorf("email got %v", replayed)
	}

	key := dlq.GroupAll.Key(dlq.Death{Source: dlq.SourceMqctl, OriginQueue: "email", Reason: dlq.ReasonFailed,
		Failure: "timeout after 10s for order 4000"})
	entries, err := audit.Read(auditLog)
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit trail: %v, %+v", err, entries)
	}
	e := entries[0]
	if e.Command != "dlq replay" || e.Queue != "email.dlq" || e.Vhost != env.Vhost || e.Outcome != audit.OK ||
		e.Selection != "browse: 3 marked (group "+key+")" || strings.Join(e.Destinations, ",") != "email" ||
		strings.Contains(e.Broker, env.Password) {
		t.Errorf("audit entry %+v", e)
	}
	var ids []string
	for _, it := range e.Items {
		ids = append(ids, it.ID)
		if it.Destination != "email" || it.Status != dlq.StatusReplayed || len(it.BodySHA256) != 64 {
			t.Errorf("audit item %+v", it)
		}
	}
	slices.Sort(ids)
	if strings.Join(ids, ",") != "timeout-a1,timeout-b2,timeout-c3" {
		t.Errorf("audit ids %v", ids)
	}
}

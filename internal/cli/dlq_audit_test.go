package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/pattern"
)

// peekBodies reads every message of a classic queue without removing
// any (got unacked, returned by closing the channel): id → body.
func peekBodies(t *testing.T, env *brokertest.Env, queue string) map[string][]byte {
	t.Helper()
	ch := env.Channel(t)
	defer ch.Close()
	out := map[string][]byte{}
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out[d.MessageId] = d.Body
	}
}

func readTrail(t *testing.T, path string) []audit.Entry {
	t.Helper()
	entries, err := audit.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestDLQAuditTrailOnARealBroker replays and purges as a user whose
// password is distinctive, then reads the trail: one line per act (none
// for a dry run) with the ids and the SHA-256 of the bodies acted on,
// destinations, counts, outcome, OS user and vhost, and the password
// nowhere in the file. `dlq history` shows it.
func TestDLQAuditTrailOnARealBroker(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 6)
	const password = "Audit-Pa55-7c1e9b"
	url := env.CreateUser(t, "auditor", password, "administrator")
	e := map[string]string{"MQCTL_URL": url, "MQCTL_MGMT_URL": env.MgmtURL}
	dir := t.TempDir()
	trail := filepath.Join(dir, "audit.jsonl")
	bodies := peekBodies(t, env, "email.dlq")
	if len(bodies) != 6 {
		t.Fatalf("peeked %d bodies", len(bodies))
	}

	run := func(want int, args ...string) cliResult {
		t.Helper()
		r := runCLI(t, e, append(args, "--audit-log", trail)...)
		if r.Code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, r.Code, want, r.Stdout, r.Stderr)
		}
		return r
	}
	run(0, "dlq", "replay", "email.dlq", "--id", "evt-00001", "--id", "evt-00002", "--dry-run")
	if _, err := os.Stat(trail); err == nil {
		t.Error("a dry run wrote the trail")
	}
	run(0, "dlq", "replay", "email.dlq", "--id", "evt-00001", "--id", "evt-00002", "--yes", "--journal", filepath.Join(dir, "j.jsonl"))
	run(0, "dlq", "replay", "email.dlq", "--where", `id == "evt-00003" || id == "evt-00004"`, "--limit", "1",
		"--yes", "--journal", filepath.Join(dir, "j.jsonl"))
	run(ExitCondition, "dlq", "replay", "email.dlq", "--id", "evt-00004", "--id", "nope", "--yes", "--journal", filepath.Join(dir, "j.jsonl"))
	archive := filepath.Join(dir, "purged.jsonl")
	run(0, "dlq", "purge", "email.dlq", "--all", "--yes", "--archive", archive)

	entries := readTrail(t, trail)
	if len(entries) != 4 {
		t.Fatalf("%d entries, want 4: %+v", len(entries), entries)
	}
	for _, en := range entries {
		if en.User != audit.CurrentUser() || en.Vhost != env.Vhost || en.Queue != "email.dlq" || en.Time.IsZero() ||
			strings.Contains(en.Broker, "@") || !strings.HasPrefix(en.Broker, "amqp://") {
			t.Errorf("who and where: %+v", en)
		}
	}
	check := func(en audit.Entry, command, selection, outcome, dest string, ids []string, counts map[string]int) {
		t.Helper()
		if en.Command != command || en.Selection != selection || en.Outcome != outcome {
			t.Errorf("%s: command %q selection %q outcome %q", command, en.Command, en.Selection, en.Outcome)
		}
		var got []string
		for _, it := range en.Items {
			got = append(got, it.ID)
			if b, ok := bodies[it.ID]; ok && it.BodySHA256 != audit.BodyHash(b) {
				t.Errorf("%s: %s body hash %s, want the SHA-256 of its body", command, it.ID, it.BodySHA256)
			}
			if it.Status != "not_found" && it.Destination != dest && dest != "" {
				t.Errorf("%s: %s destination %q", command, it.ID, it.Destination)
			}
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Errorf("%s: items %v, want %v", command, got, ids)
		}
		for k, v := range counts {
			if en.Counts[k] != v {
				t.Errorf("%s: counts %v, want %v", command, en.Counts, counts)
				break
			}
		}
	}
	check(entries[0], "dlq replay", "--id evt-00001 --id evt-00002", audit.OK, "email", []string{"evt-00001", "evt-00002"}, map[string]int{"replayed": 2})
	if strings.Join(entries[0].Destinations, ",") != "email" {
		t.Errorf("replay destinations %v", entries[0].Destinations)
	}
	check(entries[1], "dlq replay", `--where 'id == "evt-00003" || id == "evt-00004"' --limit 1`, audit.OK, "email",
		[]string{"evt-00003"}, map[string]int{"replayed": 1})
	check(entries[2], "dlq replay", "--id evt-00004 --id nope", audit.Partial, "email",
		[]string{"evt-00004", "nope"}, map[string]int{"replayed": 1, "not_found": 1})
	check(entries[3], "dlq purge", "--all", audit.OK, "", []string{"evt-00005", "evt-00006"}, map[string]int{"purged": 2})
	if strings.Join(entries[3].Destinations, ",") != "archive "+archive {
		t.Errorf("purge destinations %v", entries[3].Destinations)
	}

	b, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), password) {
		t.Errorf("the password is in the trail:\n%s", b)
	}
	if st, _ := os.Stat(trail); st.Mode().Perm() != 0o600 {
		t.Errorf("trail mode %v", st.Mode().Perm())
	}

	r := runCLI(t, nil, "dlq", "history", "--audit-log", trail, "--queue", "email.dlq")
	if r.Code != 0 || strings.Count(r.Stdout, "dlq replay") != 3 || !strings.Contains(r.Stdout, "dlq purge") || !strings.Contains(r.Stdout, "partial") {
		t.Errorf("history: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = runCLI(t, nil, "dlq", "history", "--audit-log", trail, "--limit", "1", "-o", "json")
	var h struct {
		Entries []audit.Entry `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &h); err != nil || len(h.Entries) != 1 || h.Entries[0].Command != "dlq purge" || len(h.Entries[0].Items) != 2 {
		t.Errorf("history json: %v\n%s", err, r.Stdout)
	}
}

// TestDLQGuardRailsOnARealBroker: a work queue is refused before a
// message is read (a quorum queue's delivery count stays unset, a classic
// queue's message is not redelivered); a quorum DLQ is read with a
// warning; replay skips a message from a foreign origin, and its dry run
// names a destination that does not exist; a purge that matches nothing
// leaves no archive.
func TestDLQGuardRailsOnARealBroker(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 2)
	e := env.Environ()
	dir := t.TempDir()
	ch := env.Channel(t)
	if _, err := ch.QueueDeclare("points", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("sms.dlq", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	publish := func(queue, id string, headers amqp.Table) {
		t.Helper()
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{MessageId: id, Headers: headers, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	publish("points", "work-1", nil)
	publish("email", "work-2", nil)
	publish("sms.dlq", "dead-sms", nil)
	brokertest.WaitFor(t, "the messages", 10*time.Second, func() bool {
		return env.QueueDepth(t, "points") == 1 && env.QueueDepth(t, "email") == 1 && env.QueueDepth(t, "sms.dlq") == 1
	})

	for _, args := range [][]string{
		{"dlq", "show", "points"},
		{"dlq", "export", "points", "--out", filepath.Join(dir, "p.jsonl")},
		{"dlq", "replay", "points", "--all", "--dry-run"},
		{"dlq", "purge", "points", "--all", "--yes", "--archive", filepath.Join(dir, "p-purged.jsonl")},
	} {
		r := runCLI(t, e, args...)
		if r.Code != ExitUsage || !strings.Contains(r.Stderr, "points is not a dead-letter queue") || !strings.Contains(r.Stderr, "--force") {
			t.Errorf("%v: exit %d\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	r := runCLI(t, e, "dlq", "show", "email")
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, "it dead-letters into email.dlq") || !strings.Contains(r.Stderr, "did you mean email.dlq?") {
		t.Errorf("show email: exit %d\n%s", r.Code, r.Stderr)
	}
	// Nothing was read: the broker never delivered either message.
	for _, q := range []string{"points", "email"} {
		d, ok, err := ch.Get(q, false)
		if err != nil || !ok {
			t.Fatalf("get %s: %v %v", q, ok, err)
		}
		// 3.10 stamps a quorum queue's first delivery with count 0.
		if c, ok := d.Headers["x-delivery-count"]; d.Redelivered || (ok && fmt.Sprint(c) != "0") {
			t.Errorf("%s: a refused command read the message (redelivered %v, x-delivery-count %v)", q, d.Redelivered, d.Headers["x-delivery-count"])
		}
		_ = d.Nack(false, true)
	}
	for _, f := range []string{"p.jsonl", "p-purged.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s written by a refused command", f)
		}
	}
	r = runCLI(t, e, "dlq", "show", "email", "--force")
	if r.Code != 0 || !strings.Contains(r.Stdout, "work-2") || !strings.Contains(r.Stderr, "--force") {
		t.Errorf("show email --force: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = runCLI(t, e, "dlq", "show", "sms.dlq")
	if r.Code != 0 || !strings.Contains(r.Stdout, "dead-sms") || !strings.Contains(r.Stderr, "sms.dlq is a quorum queue") || !strings.Contains(r.Stderr, "x-delivery-count") {
		t.Errorf("show sms.dlq: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// A dead letter that claims an origin email.dlq has no link from.
	publish("email.dlq", "foreign-1", amqp.Table{pattern.HeaderOriginQueue: "billing", pattern.HeaderFailureReason: "boom"})
	brokertest.WaitFor(t, "the foreign dead letter", 10*time.Second, func() bool { return env.QueueDepth(t, "email.dlq") == 3 })
	type report struct {
		Outcomes []struct {
			ID, Status, Reason, Destination string
		} `json:"outcomes"`
	}
	outcomes := func(r cliResult) map[string]string {
		t.Helper()
		var rep report
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
			t.Fatalf("%v: %s%s", err, r.Stdout, r.Stderr)
		}
		out := map[string]string{}
		for _, o := range rep.Outcomes {
			out[o.ID] = o.Status + ": " + o.Reason
		}
		return out
	}
	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--all", "--dry-run", "--outcomes", "-o", "json")
	got := outcomes(r)
	if r.Code != ExitCondition || !strings.HasPrefix(got["evt-00001"], "would_replay") ||
		!strings.HasPrefix(got["foreign-1"], "skipped: claims origin billing") || !strings.Contains(got["foreign-1"], "its origins are email") {
		t.Errorf("dry run: exit %d %v", r.Code, got)
	}
	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--all", "--dry-run", "--force", "-o", "json")
	if got := outcomes(r); r.Code != ExitCondition || got["foreign-1"] != "would_fail: would fail: queue billing does not exist (the default exchange routes nowhere); pass --to QUEUE" {
		t.Errorf("dry run --force: exit %d %v", r.Code, got)
	}
	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--all", "--dry-run", "--to", "nowhere")
	if r.Code != ExitCondition || !strings.Contains(r.Stdout, "would fail: queue nowhere does not exist") || strings.Contains(r.Stdout, "would replay 3") {
		t.Errorf("dry run --to nowhere: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// -o json lists what a human must see (the skipped one), and counts
	// the replayed ones it leaves out.
	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--all", "--yes", "-o", "json", "--journal", filepath.Join(dir, "j.jsonl"))
	if got := outcomes(r); r.Code != ExitCondition || len(got) != 1 || !strings.HasPrefix(got["foreign-1"], "skipped") ||
		!strings.Contains(r.Stdout, `"replayed": 2`) || !strings.Contains(r.Stdout, `"outcomes_omitted": 2`) {
		t.Errorf("replay: exit %d %v\n%s", r.Code, got, r.Stdout)
	}
	if ids := brokertest.PeekIDs(t, env, "email.dlq"); strings.Join(ids, ",") != "foreign-1" {
		t.Errorf("email.dlq holds %v, want the foreign dead letter only", ids)
	}

	// A purge that matched nothing: no archive file, none in the report.
	archive := filepath.Join(dir, "nothing.jsonl")
	r = runCLI(t, e, "dlq", "purge", "email.dlq", "--id", "nope", "--yes", "--archive", archive)
	if r.Code != ExitCondition || strings.Contains(r.Stdout, "archive") {
		t.Errorf("purge of nothing: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(archive); err == nil {
		t.Error("a purge that matched nothing left an archive")
	}
}

// TestDLQPromptsStateCountsOnARealBroker: on a terminal, replay and purge
// count first and ask with the count and the destinations or archive.
func TestDLQPromptsStateCountsOnARealBroker(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 3)
	archive := filepath.Join(t.TempDir(), "a.jsonl")
	for args, want := range map[string]string{
		"dlq replay email.dlq --all":                      "Replay 3 messages of email.dlq to email (3)? [y/N]",
		"dlq replay email.dlq --id evt-00002":             "Replay 1 message of email.dlq to email (1)? [y/N]",
		"dlq purge email.dlq --all --archive " + archive:  "Remove 3 messages of email.dlq, archiving them to " + archive + "? [y/N]",
		"dlq purge email.dlq --id evt-00001 --no-archive": "Remove 1 message of email.dlq for good, without archiving them? [y/N]",
		"dlq replay email.dlq --all --limit 2 --to audit": "Replay 2 messages of email.dlq to audit (2)? [y/N]",
	} {
		r := runCLIWith(t, func(s *iostreams.IOStreams) { s.SetTTY(true, false, true); s.In = strings.NewReader("n\n") },
			env.Environ(), strings.Fields(args)...)
		if r.Code != ExitUsage || !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "nothing was changed") {
			t.Errorf("%s: exit %d\n%s", args, r.Code, r.Stderr)
		}
	}
	if n := env.QueueDepth(t, "email.dlq"); n != 3 {
		t.Errorf("dlq depth %d after refusals, want 3", n)
	}
	if _, err := os.Stat(archive); err == nil {
		t.Error("archive written by a refused purge")
	}
}

// TestTopologyPruneIsAudited: a prune that deletes appends one line
// naming each object deleted; an apply with nothing to delete appends
// none.
func TestTopologyPruneIsAudited(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	mustRun(t, env.Environ(), 0, "topology", "apply", "-f", exampleTopology, "--prune", "--yes", "--audit-log", trail)
	if entries := readTrail(t, trail); len(entries) != 0 {
		t.Fatalf("an apply that deleted nothing was recorded: %+v", entries)
	}
	if err := env.Channel(t).ExchangeDeclare("stray", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env.Environ(), 0, "topology", "apply", "-f", exampleTopology, "--prune", "--yes", "--audit-log", trail)
	entries := readTrail(t, trail)
	if len(entries) != 1 {
		t.Fatalf("%d entries: %+v", len(entries), entries)
	}
	e := entries[0]
	if e.Command != "topology prune" || e.Vhost != env.Vhost || e.Outcome != audit.OK || e.Selection != "-f "+exampleTopology+" --prune" ||
		len(e.Items) != 1 || e.Items[0].ID != "exchange stray" || e.Items[0].Status != "deleted" || e.Counts["deleted"] != 1 || e.User != audit.CurrentUser() {
		t.Errorf("prune entry %+v", e)
	}
}

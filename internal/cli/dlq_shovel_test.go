package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/audit"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/dlq"
)

// replayResult is the JSON report of `dlq replay`, as much as these tests read.
type replayResult struct {
	Replayed    int    `json:"replayed"`
	WouldReplay int    `json:"would_replay"`
	Path        string `json:"path"`
	PathReason  string `json:"path_reason"`
	Shovel      string `json:"shovel"`
	Outcomes    []struct {
		ID          string `json:"id"`
		Status      string `json:"status"`
		Destination string `json:"destination"`
	} `json:"outcomes"`
}

func runReplay(t *testing.T, e map[string]string, args ...string) replayResult {
	t.Helper()
	r := runCLI(t, e, append([]string{"dlq", "replay"}, args...)...)
	var rep replayResult
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rep) != nil {
		t.Fatalf("replay %v: exit %d\n%s%s", args, r.Code, r.Stdout, r.Stderr)
	}
	return rep
}

// takeAll drains queue and returns the message ids in order, failing on
// a message that came twice.
func takeAll(t *testing.T, env *brokertest.Env, queue string) ([]string, []amqp.Delivery) {
	t.Helper()
	ch := env.Channel(t)
	defer ch.Close()
	var ids []string
	var ds []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return ids, ds
		}
		if slices.Contains(ids, d.MessageId) {
			t.Errorf("%s holds %s twice", queue, d.MessageId)
		}
		ids, ds = append(ids, d.MessageId), append(ds, d)
	}
}

func evtIDs(first, last int) []string {
	var out []string
	for i := first; i <= last; i++ {
		out = append(out, fmt.Sprintf("evt-%05d", i))
	}
	return out
}

// noShovels fails the test when a shovel parameter is left in the vhost.
func noShovels(t *testing.T, env *brokertest.Env) {
	t.Helper()
	params, err := env.Mgmt.ListShovelsIn(env.Vhost)
	if err != nil {
		t.Fatalf("list shovels: %v", err)
	}
	if len(params) != 0 {
		t.Errorf("shovels left in the vhost: %+v", params)
	}
}

// A whole-DLQ replay of a single-origin classic DLQ with --via shovel
// goes through a broker shovel: --limit N moves exactly the first N to the origin, in order,
// the rest stay, the shovel is gone, the audit trail lists each moved
// id, and the moved messages count as replayed once for the loop guard.
func TestDLQReplayThroughAShovelMovesExactlyTheCheckedHead(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 40)
	e := env.Environ()
	e["XDG_STATE_HOME"] = t.TempDir()
	trail := filepath.Join(e["XDG_STATE_HOME"], "mqctl", "audit.jsonl")

	dry := runReplay(t, e, "email.dlq", "--all", "--limit", "25", "--via", "shovel", "--dry-run", "-o", "json")
	if dry.Path != dlq.PathShovel || dry.WouldReplay != 25 || len(dry.Outcomes) != 0 {
		t.Fatalf("dry run: path %q (%s), would replay %d, %d outcomes; want shovel, 25 and none listed", dry.Path, dry.PathReason, dry.WouldReplay, len(dry.Outcomes))
	}
	noShovels(t, env)

	rep := runReplay(t, e, "email.dlq", "--all", "--limit", "25", "--via", "shovel", "--yes", "-o", "json")
	if rep.Path != dlq.PathShovel || rep.Replayed != 25 || !strings.HasPrefix(rep.Shovel, dlq.ShovelPrefix+"email.dlq-") {
		t.Fatalf("replay: path %q (%s), replayed %d, shovel %q", rep.Path, rep.PathReason, rep.Replayed, rep.Shovel)
	}
	noShovels(t, env)
	moved, ds := takeAll(t, env, "email")
	if !slices.Equal(moved, evtIDs(1, 25)) {
		t.Errorf("email holds %v, want evt-00001…evt-00025 in order", moved)
	}
	left, _ := takeAll(t, env, "email.dlq")
	if !slices.Equal(left, evtIDs(26, 40)) {
		t.Errorf("email.dlq holds %v, want evt-00026…evt-00040", left)
	}
	entries, err := audit.Read(trail)
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit: %d entries, %v", len(entries), err)
	}
	var audited []string
	for _, it := range entries[0].Items {
		if it.Status == dlq.StatusReplayed && it.Destination == "email" && it.BodySHA256 != "" {
			audited = append(audited, it.ID)
		}
	}
	if !slices.Equal(audited, evtIDs(1, 25)) || entries[0].Outcome != audit.OK {
		t.Errorf("audit items %v, outcome %q", audited, entries[0].Outcome)
	}

	// Dead-lettered again, a shovelled message counts one replay: with
	// --max-replays 1 the loop guard holds it back, so the check finds a
	// message a shovel could not skip and mqctl moves the rest itself.
	ch := env.Channel(t)
	defer ch.Close()
	for _, d := range ds[:2] {
		if err := ch.PublishWithContext(t.Context(), "email.dlx", "email", false, false, publishingOf(d)); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.WaitFor(t, "2 dead letters", 30*time.Second, func() bool { return brokertest.Depth(t, env, "email.dlq") == 2 })
	r := runCLI(t, e, "dlq", "replay", "email.dlq", "--all", "--max-replays", "1", "--via", "auto", "--yes", "-o", "json")
	if r.Code != ExitCondition || json.Unmarshal([]byte(r.Stdout), &rep) != nil {
		t.Fatalf("loop-guarded replay: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if rep.Path != dlq.PathClient || !strings.Contains(rep.PathReason, "a shovel cannot leave it out") {
		t.Errorf("loop-guarded replay: path %q (%s)", rep.Path, rep.PathReason)
	}
	skipped := 0
	for _, o := range rep.Outcomes {
		if o.Status == dlq.StatusSkipped {
			skipped++
		}
	}
	if skipped != 2 || brokertest.Depth(t, env, "email.dlq") != 2 {
		t.Errorf("skipped %d, email.dlq holds %d; want both held back", skipped, brokertest.Depth(t, env, "email.dlq"))
	}
}

// publishingOf is a delivery as a publish, headers and all.
func publishingOf(d amqp.Delivery) amqp.Publishing {
	return amqp.Publishing{Headers: d.Headers, MessageId: d.MessageId, DeliveryMode: d.DeliveryMode, Body: d.Body}
}

// A DLQ two queues dead-letter into never takes the shovel path: each
// message goes back to its own origin, by mqctl, and no shovel is made.
// Neither does one whose single origin is right but that holds a message
// claiming another origin, nor a replay without --via (client).
func TestDLQReplayMixedOriginsNeverTakeTheShovelPath(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 6)
	e := env.Environ()
	ch := env.Channel(t)
	defer ch.Close()
	// push dead-letters into email.dlq too; its messages claim origin push.
	if _, err := ch.QueueDeclare("push", true, false, false, false, amqp.Table{
		"x-dead-letter-exchange": "email.dlx", "x-dead-letter-routing-key": "email"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := ch.PublishWithContext(t.Context(), "", "push", false, false, amqp.Publishing{MessageId: fmt.Sprintf("push-%d", i), Body: []byte("p")}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		brokertest.WaitFor(t, "a push message", 30*time.Second, func() bool { return brokertest.Depth(t, env, "push") > 0 })
		d, ok, err := ch.Get("push", false)
		if err != nil || !ok {
			t.Fatalf("get push: %v %v", ok, err)
		}
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.WaitFor(t, "9 dead letters", 30*time.Second, func() bool { return brokertest.Depth(t, env, "email.dlq") == 9 })

	rep := runReplay(t, e, "email.dlq", "--all", "--via", "auto", "--yes", "-o", "json")
	if rep.Path != dlq.PathClient || !strings.Contains(rep.PathReason, "2 queues dead-letter into email.dlq") || rep.Replayed != 9 {
		t.Errorf("mixed origins: path %q (%s), replayed %d", rep.Path, rep.PathReason, rep.Replayed)
	}
	noShovels(t, env)
	emails, ds := takeAll(t, env, "email")
	pushes, _ := takeAll(t, env, "push")
	if !slices.Equal(emails, evtIDs(1, 6)) || len(pushes) != 3 {
		t.Errorf("email %v, push %v", emails, pushes)
	}
	for _, d := range ds {
		if _, ok := d.Headers["x-shovelled"]; ok || d.Headers["mqctl-replay-count"] == nil {
			t.Errorf("%s was not replayed by mqctl: headers %v", d.MessageId, d.Headers)
		}
	}

	// One origin by the linkage, but a message claims another.
	if _, err := ch.QueueDelete("push", false, false, false); err != nil {
		t.Fatal(err)
	}
	brokertest.DeadLetter(t, env, 7, 9, 10)
	if err := ch.PublishWithContext(t.Context(), "", "email.dlq", false, false, amqp.Publishing{MessageId: "stray",
		Headers: amqp.Table{"mqctl-origin-queue": "billing"}, Body: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "4 dead letters", 30*time.Second, func() bool { return brokertest.Depth(t, env, "email.dlq") == 4 })
	r := runCLI(t, e, "dlq", "replay", "email.dlq", "--all", "--via", "auto", "--yes", "-o", "json")
	var foreign replayResult
	if r.Code != ExitCondition || json.Unmarshal([]byte(r.Stdout), &foreign) != nil {
		t.Fatalf("foreign message: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if foreign.Path != dlq.PathClient || !strings.Contains(foreign.PathReason, "stray skipped") || foreign.Replayed != 3 {
		t.Errorf("foreign message: path %q (%s), replayed %d", foreign.Path, foreign.PathReason, foreign.Replayed)
	}
	noShovels(t, env)

	if _, err := ch.QueuePurge("email.dlq", false); err != nil {
		t.Fatal(err)
	}
	brokertest.DeadLetter(t, env, 10, 12, 10)
	rep = runReplay(t, e, "email.dlq", "--all", "--yes", "-o", "json")
	if rep.Path != dlq.PathClient || rep.PathReason != "--via client" || rep.Replayed != 3 {
		t.Errorf("default (--via client): path %q (%s), replayed %d", rep.Path, rep.PathReason, rep.Replayed)
	}
	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--id", "evt-00007", "--via", "shovel", "--yes")
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, "--via shovel: a shovel cannot replay this: the selection is by id") {
		t.Errorf("--via shovel by id: exit %d\n%s", r.Code, r.Stderr)
	}
	noShovels(t, env)
}

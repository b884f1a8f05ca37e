package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/pattern"
)

func TestDLQShowGroupFlags(t *testing.T) {
	o := mustParse(t, "dlq show", NewCmdDLQShow, "email.dlq", "--groups", "--where", `reason == "failed"`, "--group", "ab12cd34")
	if o.GroupBy == nil || !o.GroupBy.Origin || !o.GroupBy.Reason || !o.GroupBy.Error || o.Where != `reason == "failed"` ||
		strings.Join(o.Groups, ",") != "ab12cd34" || o.LimitSet {
		t.Errorf("--groups: %+v", o)
	}
	o = mustParse(t, "dlq show", NewCmdDLQShow, "email.dlq", "--group-by", "error,origin", "--limit", "100")
	if o.GroupBy == nil || !o.GroupBy.Origin || o.GroupBy.Reason || !o.GroupBy.Error || !o.LimitSet || o.Limit != 100 {
		t.Errorf("--group-by: %+v", o)
	}
	if o := mustParse(t, "dlq show", NewCmdDLQShow, "email.dlq"); o.GroupBy != nil {
		t.Errorf("groups without asking: %+v", o.GroupBy)
	}
	refusesFlags(t, "dlq show", NewCmdDLQShow,
		[]string{"email.dlq", "--groups", "--group-by", "reason"},
		[]string{"email.dlq", "--group-by", "queue"},
		[]string{"email.dlq", "--limit", "-1"},
	)
	p := mustParse(t, "dlq purge", NewCmdDLQPurge, "email.dlq", "--where", "deaths > 3", "--group", "k1", "--group", "k2")
	if p.Select.Where != "deaths > 3" || strings.Join(p.Select.Groups, ",") != "k1,k2" {
		t.Errorf("purge filter flags: %+v", p.Select)
	}
}

// deadLetterFailure puts a dead letter into email.dlq as the reference
// worker does after its last attempt: mqctl failure headers, through
// email.dlx.
func deadLetterFailure(t *testing.T, env *brokertest.Env, id, failure string) {
	t.Helper()
	ch := env.Channel(t)
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Format(time.RFC3339)
	dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), pattern.DeadLetterExchange("email"), "email", true, false,
		amqp.Publishing{MessageId: id, DeliveryMode: 2, Body: []byte(`{"order":1}`), Headers: amqp.Table{
			pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: failure, pattern.HeaderAttempt: int32(3),
			pattern.HeaderFailedAt: at, pattern.HeaderFirstFailedAt: at}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
		t.Fatalf("dead letter %s not confirmed: %v", id, err)
	}
}

type groupsJSON struct {
	Read   int `json:"read"`
	Groups []struct {
		Key        string   `json:"key"`
		Origin     *string  `json:"origin"`
		Reason     *string  `json:"reason"`
		Error      *string  `json:"error"`
		Count      int      `json:"count"`
		FirstDeath *string  `json:"first_death"`
		LastDeath  *string  `json:"last_death"`
		SampleIDs  []string `json:"sample_ids"`
	} `json:"groups"`
}

func TestDLQGroupsWhereAndIDPrefixesEndToEnd(t *testing.T) {
	t.Parallel()
	env := dlqFixture(t, 6)
	for i, id := range []string{"timeout-a1", "timeout-b2", "timeout-c3"} {
		deadLetterFailure(t, env, id, fmt.Sprintf("timeout after %ds for order %d", 10+i, 4000+i))
	}
	deadLetterFailure(t, env, "prov-1", "provider unavailable: request 5f0c3e2a-9b1d-4c8e-a7f2-1d2e3f4a5b6c failed")
	deadLetterFailure(t, env, "prov-2", "provider unavailable: request 0e5b1c22-7a3d-4f9e-b8c1-9a8b7c6d5e4f failed")
	e := env.Environ()
	dir := t.TempDir()
	journal := filepath.Join(dir, "journal.jsonl")

	r := runCLI(t, e, "dlq", "show", "email.dlq", "--groups", "-o", "json")
	var g groupsJSON
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &g) != nil {
		t.Fatalf("show --groups: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	counts, keys := map[string]int{}, map[string]string{}
	for _, gr := range g.Groups {
		k := *gr.Origin + " | " + *gr.Reason + " | " + *gr.Error
		counts[k], keys[k] = gr.Count, gr.Key
		if gr.FirstDeath == nil || gr.LastDeath == nil || len(gr.SampleIDs) == 0 {
			t.Errorf("group %s: first %v last %v samples %v", k, gr.FirstDeath, gr.LastDeath, gr.SampleIDs)
		}
	}
	provider := "email | failed | provider unavailable: request <id> failed"
	want := map[string]int{"email | rejected | ": 6, "email | failed | timeout after <n>s for order <n>": 3, provider: 2}
	if fmt.Sprint(counts) != fmt.Sprint(want) || g.Read != 11 {
		t.Errorf("groups %v (read %d), want %v", counts, g.Read, want)
	}
	r = runCLI(t, e, "dlq", "show", "email.dlq", "--group-by", "reason")
	if r.Code != 0 || !strings.Contains(r.Stdout, "rejected") || !strings.Contains(r.Stdout, "2 group(s) of 11 message(s)") ||
		strings.Contains(r.Stdout, "origin") {
		t.Errorf("show --group-by reason:\n%s%s", r.Stdout, r.Stderr)
	}

	r = runCLI(t, e, "dlq", "show", "email.dlq", "--where", `eror contains "timeout"`)
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, "--where: unknown name eror at line 1, column 1") {
		t.Errorf("bad --where: exit %d\n%s", r.Code, r.Stderr)
	}
	r = runCLI(t, e, "dlq", "show", "email.dlq", "--where", `error contains "timeout" && age < duration("1h")`, "--limit", "2")
	if r.Code != 0 || !strings.Contains(r.Stdout, "timeout-a1") || !strings.Contains(r.Stdout, "timeout-b2") ||
		strings.Contains(r.Stdout, "timeout-c3") || !strings.Contains(r.Stdout, "2 of 11 message(s) in email.dlq shown") {
		t.Errorf("show --where --limit 2:\n%s%s", r.Stdout, r.Stderr)
	}

	// An ambiguous id prefix moves nothing and names the ids.
	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--id", "evt-0000", "--yes", "--journal", journal)
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, "--id evt-0000 is ambiguous: it begins 6 ids in email.dlq: evt-00001, evt-00002") {
		t.Errorf("ambiguous prefix: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--id", "timeout-b", "--yes", "--journal", journal)
	if r.Code != 0 || !strings.Contains(r.Stdout, "replayed 1") {
		t.Errorf("unique prefix: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := brokertest.DrainIDs(t, env, "email"); strings.Join(got, ",") != "timeout-b2" {
		t.Errorf("email got %v after --id timeout-b", got)
	}

	r = runCLI(t, e, "dlq", "replay", "email.dlq", "--group", keys[provider], "--yes", "--journal", journal, "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"replayed": 2`) {
		t.Errorf("replay --group: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	got := brokertest.DrainIDs(t, env, "email")
	sort.Strings(got)
	if strings.Join(got, ",") != "prov-1,prov-2" {
		t.Errorf("email got %v after --group", got)
	}

	r = runCLI(t, e, "dlq", "purge", "email.dlq", "--where", `reason == "failed"`, "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Stdout, "dry run: would purge 2") {
		t.Errorf("purge --where --dry-run: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	out := filepath.Join(dir, "rejected.jsonl")
	r = runCLI(t, e, "dlq", "export", "email.dlq", "--out", out, "--where", `reason == "rejected" && deaths == 1`, "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"exported": 6`) || !strings.Contains(r.Stdout, `"read": 8`) || len(readLines(t, out)) != 6 {
		t.Errorf("export --where: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if n := env.QueueDepth(t, "email.dlq"); n != 8 {
		t.Errorf("dlq depth %d, want 8", n)
	}
}

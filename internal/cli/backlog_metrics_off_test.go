package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
)

// metricsOffConfig turns management metrics collection off. The 3.x key
// is still honoured by 4.0 and 4.3 (checked on 4.0.5 and 4.3.6), where the
// same is also reached with
// deprecated_features.permit.management_metrics_collection = false.
const metricsOffConfig = "management_agent.disable_metrics_collector = true\n"

// metricsOffRow is a backlog row decoded loosely: a missing figure must
// come out as null, which a typed int would hide.
type metricsOffRow struct {
	Name        string   `json:"name"`
	Ready       *int     `json:"ready"`
	Unacked     *int     `json:"unacked"`
	Consumers   *int     `json:"consumers"`
	PublishRate *float64 `json:"publish_rate"`
	DLQs        []struct {
		Name     string `json:"name"`
		Messages *int   `json:"messages"`
	} `json:"dlqs"`
}

// TestBacklogWithMetricsCollectionOff: a broker with management metrics
// collection off lists queues without message counts. email holds 10
// messages and its DLQ 3: backlog must show 10 and 3 (read as queue
// totals), consumers and rates as unknown (null), and backlog check must
// fail a limit it can judge (--max-ready) and one it cannot
// (--min-consumers: "cannot evaluate"), never pass on zeros; dlq ls must
// show the DLQ's depth as 3. audit dead-letters by policy, which 3.x and
// 4.0 then leave out of the queue list: its DLQ must still be found.
func TestBacklogWithMetricsCollectionOff(t *testing.T) {
	t.Parallel()
	node := brokertest.StartNodeWith(t, brokertest.NodeOptions{Management: true, Config: metricsOffConfig})
	env := map[string]string{"MQCTL_URL": node.URL(), "MQCTL_MGMT_URL": node.MgmtURL()}

	ch := node.Channel(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ch.ExchangeDeclare("email.dlx", "direct", true, false, false, false, nil))
	_, err := ch.QueueDeclare("email", true, false, false, false,
		amqp.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "email.dlx", "x-dead-letter-routing-key": "email"})
	must(err)
	_, err = ch.QueueDeclare("email.dlq", true, false, false, false, nil)
	must(err)
	must(ch.QueueBind("email.dlq", "email", "email.dlx", false, nil))
	must(ch.ExchangeDeclare("graveyard", "fanout", true, false, false, false, nil))
	for _, q := range []string{"audit", "audit.dead"} {
		_, err = ch.QueueDeclare(q, true, false, false, false, nil)
		must(err)
	}
	must(ch.QueueBind("audit.dead", "", "graveyard", false, nil))
	api, err := rabbithole.NewClient(node.MgmtURL(), "guest", "guest")
	must(err)
	if ov, err := api.Overview(); err == nil {
		t.Logf("private node: RabbitMQ %s", ov.RabbitMQVersion)
	}
	_, err = api.PutPolicy("/", "audit-dlx", rabbithole.Policy{
		Pattern: "^audit$", ApplyTo: "queues", Definition: rabbithole.PolicyDefinition{"dead-letter-exchange": "graveyard"}})
	must(err)
	must(ch.Confirm(false))
	publish := func(ex, key string, n int) {
		t.Helper()
		for i := range n {
			dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), ex, key, true, false,
				amqp.Publishing{Body: []byte(fmt.Sprint(i)), DeliveryMode: amqp.Persistent})
			must(err)
			if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
				t.Fatalf("publish to %s/%s not confirmed: %v", ex, key, err)
			}
		}
	}
	publish("", "email", 10)
	publish("email.dlx", "email", 3)
	publish("graveyard", "", 2)

	// The management API is asynchronous: wait for the counts to show.
	var email metricsOffRow
	brokertest.WaitFor(t, "backlog to show email's 10 messages", 60*time.Second, func() bool {
		r := runCLI(t, env, "backlog", "-o", "json", "email")
		if r.Code != 0 {
			t.Fatalf("backlog exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
		}
		var rep struct {
			Queues []metricsOffRow `json:"queues"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.Stdout)
		}
		if len(rep.Queues) != 1 {
			t.Fatalf("want one row for email:\n%s", r.Stdout)
		}
		email = rep.Queues[0]
		return email.Ready != nil && *email.Ready == 10 && len(email.DLQs) == 1 &&
			email.DLQs[0].Messages != nil && *email.DLQs[0].Messages == 3
	})
	if email.Unacked == nil || *email.Unacked != 0 {
		t.Errorf("email unacked = %v, want 0", email.Unacked)
	}
	if email.Consumers != nil || email.PublishRate != nil {
		t.Errorf("with metrics off consumers and rates are unknown (null), got consumers %v publish rate %v", email.Consumers, email.PublishRate)
	}

	// The table says "unknown" where it does not know, and a note says why.
	r := runCLI(t, env, "backlog", "email")
	if r.Code != 0 || !strings.Contains(r.Stdout, "unknown") || !strings.Contains(r.Stderr, "metrics collection off") {
		t.Errorf("table: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// The reported failure: --max-ready 5 with 10 messages held passed.
	r = runCLI(t, env, "backlog", "check", "--max-ready", "5", "email")
	if r.Code != ExitCondition || !strings.Contains(r.Stdout, "email: 10 ready messages (max 5) [max_ready]") {
		t.Errorf("--max-ready 5 with 10 held: exit %d, want 3\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// Counts come from queue totals, so limits that hold still pass.
	r = runCLI(t, env, "backlog", "check", "--max-ready", "10", "--max-dlq", "3", "email")
	if r.Code != 0 {
		t.Errorf("--max-ready 10 --max-dlq 3: exit %d, want 0\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// Consumers are unknown: the gate cannot be evaluated, and that fails.
	r = runCLI(t, env, "backlog", "check", "--min-consumers", "0", "email")
	if r.Code != ExitCondition || !strings.Contains(r.Stdout, "email: cannot evaluate --min-consumers") {
		t.Errorf("--min-consumers with metrics off: exit %d, want 3\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = runCLI(t, env, "backlog", "check", "-o", "json", "--min-consumers", "1", "email")
	var v struct {
		OK         bool `json:"ok"`
		Violations []struct {
			Queue   string `json:"queue"`
			Check   string `json:"check"`
			Unknown bool   `json:"unknown"`
		} `json:"violations"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || r.Code != ExitCondition || v.OK ||
		len(v.Violations) != 1 || !v.Violations[0].Unknown || v.Violations[0].Check != "min_consumers" {
		t.Errorf("json verdict (exit %d, %v): %s", r.Code, err, r.Stdout)
	}

	// The policy applies asynchronously; then audit's DLQ is known.
	brokertest.WaitFor(t, "audit's policy DLQ audit.dead to show", 60*time.Second, func() bool {
		r := runCLI(t, env, "backlog", "check", "--max-dlq", "1", "audit")
		return r.Code == ExitCondition && strings.Contains(r.Stdout, "audit: its dead-letter queue audit.dead holds 2 messages (max 1) [max_dlq]")
	})

	// dlq ls: the depth from queue totals, not 0.
	r = runCLI(t, env, "dlq", "ls", "--peek", "0", "-o", "json")
	var ls struct {
		DLQs []struct {
			Name     string `json:"name"`
			Messages *int   `json:"messages"`
		} `json:"dlqs"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ls); err != nil || r.Code != 0 || len(ls.DLQs) != 2 ||
		ls.DLQs[0].Name != "audit.dead" || ls.DLQs[0].Messages == nil || *ls.DLQs[0].Messages != 2 ||
		ls.DLQs[1].Name != "email.dlq" || ls.DLQs[1].Messages == nil || *ls.DLQs[1].Messages != 3 {
		t.Errorf("dlq ls (exit %d, %v): want audit.dead with 2 messages, email.dlq with 3\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/backlog"
	"github.com/mqctl/mqctl/internal/broker"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/deadletter"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

// backlogFixture is a vhost with known counts:
//
//	email      quorum, DLX by arguments → email.dlx → email.dlq;
//	           7 published, a consumer holds 2 unacked → 5 ready
//	email.dlq  3 messages
//	email.retry.1  the retry pattern's delay queue (back onto email); empty
//	points     classic, no dead-letter arguments; mqctl pattern via the
//	           exchange points.dlx → points.dlq (2 messages); 10 published
//	           with a timestamp 1h ago, a consumer holds 3 → 7 ready
//	coupon     classic, pattern by name only: coupon.dlq (1 message); empty
//	audit      classic, DLX by policy → graveyard (fanout) → audit.dead (4);
//	           5 ready, no consumer
type backlogFixture struct {
	env     *brokertest.Env
	stamped time.Time
}

func newBacklogFixture(t *testing.T) *backlogFixture {
	t.Helper()
	env := brokertest.New(t)
	ch := env.Channel(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	declare := func(name string, args amqp.Table) {
		t.Helper()
		_, err := ch.QueueDeclare(name, true, false, false, false, args)
		must(err)
	}
	must(ch.ExchangeDeclare("email.dlx", "direct", true, false, false, false, nil))
	must(ch.ExchangeDeclare("points.dlx", "direct", true, false, false, false, nil))
	must(ch.ExchangeDeclare("graveyard", "fanout", true, false, false, false, nil))
	declare("email", amqp.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "email.dlx", "x-dead-letter-routing-key": "email"})
	declare("email.dlq", nil)
	declare("email.retry.1", amqp.Table{"x-queue-type": "quorum", "x-message-ttl": int32(60000),
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "email"})
	declare("points", nil)
	declare("points.dlq", nil)
	declare("coupon", nil)
	declare("coupon.dlq", nil)
	declare("audit", nil)
	declare("audit.dead", nil)
	must(ch.QueueBind("email.dlq", "email", "email.dlx", false, nil))
	must(ch.QueueBind("points.dlq", "points", "points.dlx", false, nil))
	must(ch.QueueBind("audit.dead", "", "graveyard", false, nil))
	if _, err := env.Mgmt.PutPolicy(env.Vhost, "audit-dlx", rabbithole.Policy{
		Pattern: "^audit$", ApplyTo: "queues", Definition: rabbithole.PolicyDefinition{"dead-letter-exchange": "graveyard"},
	}); err != nil {
		t.Fatal(err)
	}
	must(ch.Confirm(false))
	stamped := time.Now().Add(-time.Hour).Truncate(time.Second)
	publish := func(ex, key string, n int, ts time.Time) {
		t.Helper()
		for i := range n {
			dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), ex, key, true, false,
				amqp.Publishing{Body: []byte(fmt.Sprint(i)), Timestamp: ts, DeliveryMode: amqp.Persistent})
			must(err)
			if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
				t.Fatalf("publish to %s/%s not confirmed: %v", ex, key, err)
			}
		}
	}
	publish("", "email", 7, time.Time{})
	publish("email.dlx", "email", 3, time.Time{})
	publish("", "points", 10, stamped)
	publish("points.dlx", "points", 2, time.Time{})
	publish("", "coupon.dlq", 1, time.Time{})
	publish("", "audit", 5, time.Time{})
	publish("graveyard", "", 4, time.Time{})

	// Consumers that take messages and never ack, on channels kept open
	// until the test ends.
	hold := func(queue string, n int) {
		t.Helper()
		c := env.Channel(t)
		must(c.Qos(n, 0, false))
		deliveries, err := c.Consume(queue, "", false, false, false, false, nil)
		must(err)
		for range n {
			select {
			case <-deliveries:
			case <-time.After(10 * time.Second):
				t.Fatalf("no delivery from %s", queue)
			}
		}
	}
	hold("email", 2)
	hold("points", 3)
	return &backlogFixture{env: env, stamped: stamped}
}

// backlogJSON polls `backlog -o json` until ok accepts the report: the
// management API samples every 5 seconds.
func (fx *backlogFixture) backlogJSON(t *testing.T, ok func(backlog.Report) error, args ...string) backlog.Report {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := runCLI(t, fx.env.Environ(), append([]string{"backlog", "-o", "json"}, args...)...)
		if r.Code != 0 {
			t.Fatalf("backlog exit %d: %s", r.Code, r.Stderr)
		}
		var rep backlog.Report
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.Stdout)
		}
		err := ok(rep)
		if err == nil {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog never showed the expected figures: %v\n%s", err, r.Stdout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// ref points at a copy of v.
func ref[T any](v T) *T { return &v }

type wantRow struct {
	typ                                    string
	role                                   deadletter.Role
	ready, unacked, consumers, dlqMessages int
	dlqs                                   []backlog.DLQ
	link                                   *deadletter.Link
	warnings                               []backlog.Warning
}

// expected is what backlog must print for the fixture, per queue.
func (fx *backlogFixture) expected() map[string]wantRow {
	return map[string]wantRow{
		"email": {"quorum", deadletter.RoleWork, 5, 2, 1, 3, []backlog.DLQ{{Name: "email.dlq", Messages: ref(3)}},
			&deadletter.Link{Source: deadletter.SourceArguments, Exchange: "email.dlx", RoutingKey: "email", Queues: []string{"email.dlq"}},
			[]backlog.Warning{backlog.WarnDLQNotEmpty}},
		"email.dlq": {"classic", deadletter.RoleDLQ, 3, 0, 0, 0, []backlog.DLQ{}, nil, []backlog.Warning{backlog.WarnDLQNotEmpty}},
		"points": {"classic", deadletter.RoleWork, 7, 3, 1, 2, []backlog.DLQ{{Name: "points.dlq", Messages: ref(2)}},
			&deadletter.Link{Source: deadletter.SourcePattern, Exchange: "points.dlx", RoutingKey: "points", Queues: []string{"points.dlq"}},
			[]backlog.Warning{backlog.WarnDLQNotEmpty}},
		"points.dlq": {"classic", deadletter.RoleDLQ, 2, 0, 0, 0, []backlog.DLQ{}, nil, []backlog.Warning{backlog.WarnDLQNotEmpty}},
		"coupon": {"classic", deadletter.RoleWork, 0, 0, 0, 1, []backlog.DLQ{{Name: "coupon.dlq", Messages: ref(1)}},
			&deadletter.Link{Source: deadletter.SourcePattern, Exchange: "coupon.dlx", RoutingKey: "coupon", Queues: []string{"coupon.dlq"}},
			[]backlog.Warning{backlog.WarnDLQNotEmpty}},
		"coupon.dlq": {"classic", deadletter.RoleDLQ, 1, 0, 0, 0, []backlog.DLQ{}, nil, []backlog.Warning{backlog.WarnDLQNotEmpty}},
		"audit": {"classic", deadletter.RoleWork, 5, 0, 0, 4, []backlog.DLQ{{Name: "audit.dead", Messages: ref(4)}},
			&deadletter.Link{Source: deadletter.SourcePolicy, Exchange: "graveyard", RoutingKey: "", Queues: []string{"audit.dead"}},
			[]backlog.Warning{backlog.WarnNoConsumer, backlog.WarnDLQNotEmpty}},
		"audit.dead":    {"classic", deadletter.RoleDLQ, 4, 0, 0, 0, []backlog.DLQ{}, nil, []backlog.Warning{backlog.WarnDLQNotEmpty}},
		"email.retry.1": {"quorum", deadletter.RoleRetry, 0, 0, 0, 0, []backlog.DLQ{}, nil, []backlog.Warning{}},
	}
}

// sampled accepts a report that shows exactly the fixture's figures.
func (fx *backlogFixture) sampled(rep backlog.Report) error {
	want := fx.expected()
	if len(rep.Queues) != len(want) {
		return fmt.Errorf("%d queues, want %d", len(rep.Queues), len(want))
	}
	for _, r := range rep.Queues {
		w := want[r.Name]
		if r.Ready == nil || r.Unacked == nil || r.Consumers == nil || r.DLQMessages == nil || r.Messages == nil {
			return fmt.Errorf("%s: figures unknown: %+v", r.Name, r)
		}
		got := wantRow{r.Type, r.Role, *r.Ready, *r.Unacked, *r.Consumers, *r.DLQMessages, r.DLQs, r.DeadLetter, r.Warnings}
		if !reflect.DeepEqual(got, w) {
			return fmt.Errorf("%s: got %+v\nwant %+v", r.Name, got, w)
		}
		if *r.Messages != *r.Ready+*r.Unacked || r.Vhost != fx.env.Vhost {
			return fmt.Errorf("%s: messages %d vhost %s", r.Name, *r.Messages, r.Vhost)
		}
	}
	return nil
}

func TestBacklogReportsKnownCounts(t *testing.T) {
	t.Parallel()
	fx := newBacklogFixture(t)
	rep := fx.backlogJSON(t, fx.sampled)

	// Sorted by ready, name breaking ties.
	var order []string
	for _, r := range rep.Queues {
		order = append(order, r.Name)
	}
	if w := []string{"points", "audit", "email", "audit.dead", "email.dlq", "points.dlq", "coupon.dlq", "coupon", "email.retry.1"}; !reflect.DeepEqual(order, w) {
		t.Errorf("order %v, want %v", order, w)
	}
	// Summary: 27 ready + 5 unacked; DLQs 3+2+1+4, each once.
	if w := (backlog.Summary{Queues: 9, Messages: ref(32), Ready: ref(27), Unacked: ref(5), DLQMessages: ref(10), Warnings: 8}); !reflect.DeepEqual(rep.Summary, w) {
		t.Errorf("summary %+v, want %+v", rep.Summary, w)
	}
	for _, r := range rep.Queues {
		switch r.Name {
		case "email.retry.1":
		case "email":
			// Quorum: leader and members from the one-node test broker.
			if r.Leader == "" || len(r.Members) != 1 || !reflect.DeepEqual(r.Online, r.Members) || r.MembersOnline != 1 || r.Members[0] != r.Leader {
				t.Errorf("email quorum fields: leader %q members %v online %v (%d)", r.Leader, r.Members, r.Online, r.MembersOnline)
			}
			if r.OldestMessageAt != nil {
				t.Errorf("quorum queues report no head timestamp, got %v", r.OldestMessageAt)
			}
		case "points":
			if r.OldestMessageAt == nil || !r.OldestMessageAt.Equal(fx.stamped) {
				t.Errorf("points oldest message at %v, want %v", r.OldestMessageAt, fx.stamped)
			}
			if a := r.OldestMessageAgeSeconds; a == nil || *a < 3600 || *a > 3600+120 {
				t.Errorf("points age %v, want about an hour", a)
			}
		default:
			if r.Leader != "" || len(r.Members) != 0 || r.MembersOnline != 0 {
				t.Errorf("%s: classic queue with quorum fields %+v", r.Name, r)
			}
		}
		// Nobody acked anything: the ack rate is exactly zero.
		if r.AckRate == nil || r.PublishRate == nil || r.DeliverRate == nil || *r.AckRate != 0 || *r.PublishRate < 0 || *r.DeliverRate < 0 {
			t.Errorf("%s rates: publish %v deliver %v ack %v", r.Name, r.PublishRate, r.DeliverRate, r.AckRate)
		}
	}

	// Globs, another sort key and many small pages give the same rows.
	small := fx.backlogJSON(t, func(r backlog.Report) error {
		if len(r.Queues) != 4 {
			return fmt.Errorf("%d queues", len(r.Queues))
		}
		return nil
	}, "--page-size", "2", "--sort", "unacked", "points*", "audit*")
	var names []string
	for _, r := range small.Queues {
		names = append(names, r.Name)
	}
	if w := []string{"points", "audit", "audit.dead", "points.dlq"}; !reflect.DeepEqual(names, w) {
		t.Errorf("globbed, by unacked: %v, want %v", names, w)
	}
	if d := small.Summary.DLQMessages; d == nil || *d != 6 {
		t.Errorf("globbed dlq messages %v, want 6", d)
	}

	// --all-vhosts includes this vhost's queues among others.
	all := fx.backlogJSON(t, func(r backlog.Report) error { return nil }, "--all-vhosts", "email*")
	found := 0
	for _, r := range all.Queues {
		if r.Vhost == fx.env.Vhost {
			found++
		}
	}
	if all.Vhost != "" || found != 3 {
		t.Errorf("--all-vhosts: vhost %q, %d rows of ours, want 3", all.Vhost, found)
	}

	// The table: plain when piped, with the summary line.
	r := runCLI(t, fx.env.Environ(), "backlog")
	if r.Code != 0 || strings.Contains(r.Stdout, "\x1b") || !strings.Contains(r.Stdout, "9 queues, 32 messages (27 ready, 5 unacked), 10 DLQ messages") {
		t.Errorf("piped table (exit %d):\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestBacklogCheckEveryGateBothWays(t *testing.T) {
	t.Parallel()
	fx := newBacklogFixture(t)
	// Wait until the sample holds the fixture's counts.
	fx.backlogJSON(t, fx.sampled)
	env := fx.env.Environ()
	cases := []struct {
		args []string
		fail string // the one violation line expected; "" = pass
	}{
		{[]string{"points", "--max-ready", "7"}, ""},
		{[]string{"points", "--max-ready", "6"}, "points: 7 ready messages (max 6) [max_ready]"},
		{[]string{"points", "--max-unacked", "3"}, ""},
		{[]string{"points", "--max-unacked", "2"}, "points: 3 unacknowledged messages (max 2) [max_unacked]"},
		{[]string{"points", "--max-dlq", "2"}, ""},
		{[]string{"points", "--max-dlq", "1"}, "points: its dead-letter queue points.dlq holds 2 messages (max 1) [max_dlq]"},
		{[]string{"audit.dead", "--max-dlq", "3"}, "audit.dead: dead-letter queue audit.dead holds 4 messages (max 3) [max_dlq]"},
		{[]string{"points", "--min-consumers", "1"}, ""},
		{[]string{"points", "--min-consumers", "2"}, "points: 1 consumers (min 2) [min_consumers]"},
		{[]string{"points", "--max-age", "2h"}, ""},
		{[]string{"points", "--max-age", "30m"}, "points: oldest message is "},
		{[]string{"email", "--max-age", "30m", "--require-age"}, "email: oldest message age unknown: quorum queues do not report"},
		{[]string{"nosuchqueue*", "--max-ready", "0"}, `nosuchqueue*: no queue matches "nosuchqueue*" [match]`},
	}
	for _, c := range cases {
		r := runCLI(t, env, append([]string{"backlog", "check"}, c.args...)...)
		if c.fail == "" {
			if r.Code != 0 || !strings.Contains(r.Stdout, "ok: 1 queue checked") {
				t.Errorf("%v: exit %d, want 0\n%s%s", c.args, r.Code, r.Stdout, r.Stderr)
			}
			continue
		}
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		if r.Code != ExitCondition || len(lines) != 1 || !strings.HasPrefix(lines[0], c.fail) {
			t.Errorf("%v: exit %d, want 3 and one line %q\n%s%s", c.args, r.Code, c.fail, r.Stdout, r.Stderr)
		}
		if !strings.Contains(r.Stderr, "backlog check failed: 1 violation") {
			t.Errorf("%v: stderr %q", c.args, r.Stderr)
		}
	}

	// Unknown age is said, not silently passed.
	r := runCLI(t, env, "backlog", "check", "email", "--max-age", "30m")
	if r.Code != 0 || !strings.Contains(r.Stderr, "note: email: --max-age not checked: quorum queues") {
		t.Errorf("unknown age: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// All gates at once, JSON verdict.
	r = runCLI(t, env, "backlog", "check", "-o", "json", "--max-ready", "0", "--max-unacked", "0", "--max-dlq", "0",
		"--min-consumers", "2", "--max-age", "1m")
	if r.Code != ExitCondition {
		t.Fatalf("exit %d, want 3\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var v backlog.Verdict
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.Stdout)
	}
	got := map[string]int64{}
	for _, x := range v.Violations {
		got[x.Queue+"/"+string(x.Check)] = x.Actual
	}
	want := map[string]int64{
		"email/max_ready": 5, "email/max_unacked": 2, "email/max_dlq": 3, "email/min_consumers": 1,
		"points/max_ready": 7, "points/max_unacked": 3, "points/max_dlq": 2, "points/min_consumers": 1,
		"audit/max_ready": 5, "audit/max_dlq": 4, "audit/min_consumers": 0,
		"coupon/max_dlq": 1, "coupon/min_consumers": 0,
		// DLQs matched directly are gated by --max-dlq only, once each.
	}
	age := got["points/max_age"]
	delete(got, "points/max_age")
	if !reflect.DeepEqual(got, want) || age < 3600 || v.OK || v.Checked != 9 {
		t.Errorf("violations %v (age %d), checked %d\nwant %v", got, age, v.Checked, want)
	}
	// Age unknown: email (quorum) and audit (messages without timestamp).
	reasons := map[string]string{}
	for _, u := range v.Unchecked {
		reasons[u.Queue] = u.Reason
	}
	if len(reasons) != 2 || !strings.Contains(reasons["email"], "quorum") || !strings.Contains(reasons["audit"], "no timestamp") {
		t.Errorf("unchecked %+v, want email (quorum) and audit (no timestamp)", v.Unchecked)
	}
}

// recordedAPI is the real management API, with every queue list read's
// query kept.
type recordedAPI struct {
	api     backlog.Getter
	mu      sync.Mutex
	queries []url.Values
}

func (r *recordedAPI) GetJSON(ctx context.Context, path string, q url.Values, v any) error {
	if strings.HasPrefix(path, "queues") {
		r.mu.Lock()
		r.queries = append(r.queries, q)
		r.mu.Unlock()
	}
	return r.api.GetJSON(ctx, path, q, v)
}

// check runs backlog check with limits against the fixture's vhost on the
// real broker; it returns stdout and the queue list reads it sent.
func (fx *backlogFixture) check(t *testing.T, f output.Format, l backlog.Limits) (string, []url.Values, error) {
	t.Helper()
	ios, _, out, _ := iostreams.Test()
	rec := &recordedAPI{}
	opts := &BacklogCheckOptions{IO: ios, Format: f, Limits: l, backlogRead: backlogRead{
		Settings: func() (config.Settings, error) { return fx.env.Settings(t), nil },
		MgmtReader: func(s config.Settings) (backlog.Getter, error) {
			api, err := broker.NewMgmtReader(s)
			rec.api = api
			return rec, err
		},
	}}
	err := backlogCheckRun(context.Background(), opts)
	return out.String(), rec.queries, err
}

// Without a consumers or age gate, backlog check reads the queue list once,
// as queue totals (the broker skips its statistics database), and still
// judges every queue of the fixture with its exact counts: audit's DLQ,
// set by policy, is found although that read gives no effective policy.
// The read itself knows no consumers (points has one): unknown, not 0.
func TestBacklogCheckOverQueueTotals(t *testing.T) {
	t.Parallel()
	fx := newBacklogFixture(t)
	// The statistics sample lags the queue totals: once it shows the
	// fixture's counts, the totals do too.
	fx.backlogJSON(t, fx.sampled)

	out, queries, err := fx.check(t, output.JSON, backlog.Limits{MaxReady: ref(0), MaxUnacked: ref(0), MaxDLQ: ref(0)})
	if code := ExitCode(context.Background(), err, true); code != ExitCondition {
		t.Fatalf("exit %d, want 3 (%v)\n%s", code, err, out)
	}
	if len(queries) != 1 || queries[0].Get("disable_stats") != "true" || queries[0].Get("enable_queue_totals") != "true" {
		t.Errorf("want one queue list read as queue totals, got %v", queries)
	}
	var v backlog.Verdict
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	got := map[string]int64{}
	for _, x := range v.Violations {
		if x.Unknown {
			t.Errorf("a figure unknown in the queue totals: %+v", x)
		}
		got[x.Queue+"/"+string(x.Check)] = x.Actual
	}
	want := map[string]int64{
		"email/max_ready": 5, "email/max_unacked": 2, "email/max_dlq": 3,
		"points/max_ready": 7, "points/max_unacked": 3, "points/max_dlq": 2,
		"audit/max_ready": 5, "audit/max_dlq": 4,
		"coupon/max_dlq": 1,
	}
	if !reflect.DeepEqual(got, want) || v.OK || v.Checked != 9 {
		t.Errorf("violations %v, checked %d\nwant %v", got, v.Checked, want)
	}

	// Limits at the counts pass; one below fails on that queue alone.
	out, _, err = fx.check(t, output.Table, backlog.Limits{MaxReady: ref(7), MaxUnacked: ref(3), MaxDLQ: ref(4)})
	if err != nil || !strings.Contains(out, "ok: 9 queues checked") {
		t.Errorf("limits at the counts: %v\n%s", err, out)
	}
	for _, c := range []struct {
		l    backlog.Limits
		line string
	}{
		{backlog.Limits{MaxReady: ref(6)}, "points: 7 ready messages (max 6) [max_ready]"},
		{backlog.Limits{MaxUnacked: ref(2)}, "points: 3 unacknowledged messages (max 2) [max_unacked]"},
		{backlog.Limits{MaxDLQ: ref(3)}, "audit: its dead-letter queue audit.dead holds 4 messages (max 3) [max_dlq]"},
	} {
		out, _, err := fx.check(t, output.Table, c.l)
		if code := ExitCode(context.Background(), err, true); code != ExitCondition || strings.TrimSpace(out) != c.line {
			t.Errorf("%+v: exit %d, want 3 and the one line %q\n%s", c.l, code, c.line, out)
		}
	}

	api, err := broker.NewMgmtReader(fx.env.Settings(t))
	if err != nil {
		t.Fatal(err)
	}
	page, err := backlog.HTTPSource{API: api, QueueTotals: true}.QueuePage(context.Background(), fx.env.Vhost, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range page.Queues {
		if q.Consumers != nil || q.HeadStamp != nil || q.Publish != nil {
			t.Errorf("%s: a queue totals read gives no consumers, head timestamp or rates, got %v %v %v", q.Name, q.Consumers, q.HeadStamp, q.Publish)
		}
		if q.Name == "points" && (q.Type != "classic" || q.Ready == nil || *q.Ready != 7 || q.Unacked == nil || *q.Unacked != 3) {
			t.Errorf("points: %+v", q)
		}
		if q.Name == "email" && (q.Type != "quorum" || len(q.Members) != 1 || q.Leader == "") {
			t.Errorf("email: quorum fields missing from the queue totals: %+v", q)
		}
	}
}

// The table names the management API its figures come from.
func TestBacklogTableNamesTheAPI(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	r := runCLI(t, env.Environ(), "backlog")
	if r.Code != 0 || !strings.Contains(r.Stdout, "(management API "+strings.TrimRight(env.MgmtURL, "/")+")") {
		t.Errorf("exit %d, footer without the API:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

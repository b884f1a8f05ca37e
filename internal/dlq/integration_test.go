package dlq_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/dlq"
	"github.com/mqctl/mqctl/internal/pattern"
)

// fixture is the mqctl DLQ pattern, declared by hand: exchange events
// (topic) → queue email and queue audit; email dead-letters through
// email.dlx (direct) into email.dlq (classic).
type fixture struct {
	env *brokertest.Env
	ch  *amqp.Channel
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := brokertest.New(t)
	ch := env.Channel(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ch.ExchangeDeclare("events", "topic", true, false, false, false, nil))
	must(ch.ExchangeDeclare(pattern.DeadLetterExchange("email"), "direct", true, false, false, false, nil))
	_, err := ch.QueueDeclare("email", true, false, false, false, amqp.Table{
		"x-dead-letter-exchange": pattern.DeadLetterExchange("email"), "x-dead-letter-routing-key": "email"})
	must(err)
	_, err = ch.QueueDeclare("audit", true, false, false, false, nil)
	must(err)
	_, err = ch.QueueDeclare("email.dlq", true, false, false, false, nil)
	must(err)
	must(ch.QueueBind("email", "user.registered.#", "events", false, nil))
	must(ch.QueueBind("audit", "#", "events", false, nil))
	must(ch.QueueBind("email.dlq", "email", pattern.DeadLetterExchange("email"), false, nil))
	must(ch.Confirm(false))
	return &fixture{env: env, ch: ch}
}

// message is a registration event with every kind of header.
func message(i int) amqp.Publishing {
	return amqp.Publishing{
		ContentType: "application/json", ContentEncoding: "identity", DeliveryMode: 2, Priority: 3,
		CorrelationId: fmt.Sprintf("corr-%d", i), ReplyTo: "replies", MessageId: fmt.Sprintf("evt-%03d", i),
		Timestamp: time.Unix(1700000000+int64(i), 0), Type: "user.registered", AppId: "signup",
		Headers: amqp.Table{
			"tenant": "acme", "i8": int8(-1), "u8": uint8(200), "i16": int16(-300), "i32": int32(i), "u32": uint32(4000000000),
			"i64": int64(1) << 40, "f32": float32(0.5), "f64": 2.25, "dec": amqp.Decimal{Scale: 2, Value: 1999},
			"bin": []byte{0, 1, 2, 0xff}, "when": time.Unix(1700000500, 0), "none": nil,
			"arr": []any{int32(1), "x", int64(2)}, "nested": amqp.Table{"deep": amqp.Table{"v": int16(9)}, "s": "t"},
		},
		Body: []byte(fmt.Sprintf(`{"user":%d,"email":"u%d@example.com"}`, i, i)),
	}
}

func (fx *fixture) publish(t *testing.T, exchange, key string, msg amqp.Publishing) {
	t.Helper()
	dc, err := fx.ch.PublishWithDeferredConfirmWithContext(context.Background(), exchange, key, true, false, msg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
		t.Fatalf("publish not confirmed: %v", err)
	}
}

// deadLetter publishes messages first..last to events and has the broker
// dead-letter them from email by rejecting them; audit is drained.
func (fx *fixture) deadLetter(t *testing.T, first, last int) {
	t.Helper()
	for i := first; i <= last; i++ {
		fx.publish(t, "events", "user.registered", message(i))
	}
	ch := fx.env.Channel(t)
	defer ch.Close()
	for n := first; n <= last; n++ {
		d, ok, err := ch.Get("email", false)
		if err != nil || !ok {
			t.Fatalf("get email: %v %v", ok, err)
		}
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ch.QueuePurge("audit", false); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, fx.env, "email.dlq", func(n int) bool { return n >= last-first+1 })
}

func waitDepth(t *testing.T, env *brokertest.Env, q string, ok func(int) bool) int {
	t.Helper()
	var n int
	for range 100 {
		if n = env.QueueDepth(t, q); ok(n) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("queue %s depth stuck at %d", q, n)
	return n
}

// drain takes every message of q, acking them.
func drain(t *testing.T, env *brokertest.Env, q string) []amqp.Delivery {
	t.Helper()
	ch := env.Channel(t)
	defer ch.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

func dial(t *testing.T, env *brokertest.Env) *amqp.Connection { return env.Dial(t) }

func ids(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.MessageId
	}
	return out
}

// content is what must survive a replay: body, properties, and headers
// except the death ones.
func content(d amqp.Delivery) amqp.Publishing {
	h := amqp.Table{}
	for k, v := range d.Headers {
		switch {
		case k == "x-death", strings.HasPrefix(k, "x-first-death-"), strings.HasPrefix(k, "x-last-death-"),
			strings.HasPrefix(k, "mqctl-"):
			continue
		}
		h[k] = v
	}
	return amqp.Publishing{Headers: h, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo,
		Expiration: d.Expiration, MessageId: d.MessageId, Timestamp: d.Timestamp.UTC(), Type: d.Type, UserId: d.UserId,
		AppId: d.AppId, Body: d.Body}
}

func wantContent(i int) amqp.Publishing {
	m := message(i)
	m.Timestamp = m.Timestamp.UTC()
	m.Headers["when"] = m.Headers["when"].(time.Time)
	return m
}

func sameContent(t *testing.T, got amqp.Delivery, want amqp.Publishing) {
	t.Helper()
	g := content(got)
	// Timestamps decode in the local zone; compare instants.
	for k, v := range g.Headers {
		if tv, ok := v.(time.Time); ok {
			g.Headers[k] = tv.UTC()
		}
	}
	for k, v := range want.Headers {
		if tv, ok := v.(time.Time); ok {
			want.Headers[k] = tv.UTC()
		}
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("message %s changed:\n got %#v\nwant %#v", want.MessageId, g, want)
	}
}

func exportTo(t *testing.T, fx *fixture, path string) []dlq.Record {
	t.Helper()
	res, err := dlq.Export(context.Background(), dial(t, fx.env), "email.dlq", path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []dlq.Record
	f, _ := os.Open(path)
	defer f.Close()
	if err := dlq.ReadRecords(f, path, func(_ int, r dlq.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if res.Read != len(recs) {
		t.Fatalf("export read %d, file has %d", res.Read, len(recs))
	}
	return recs
}

func writeRecords(t *testing.T, path string, recs []dlq.Record) {
	t.Helper()
	a, err := dlq.CreateArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		a.Write(r)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestExportIsLosslessAndReplayIsByteIdenticalToOriginOnly(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.deadLetter(t, 1, 5)
	// One dead letter made by a consumer (mqctl headers, no x-death).
	consumerDead := message(6)
	consumerDead.Headers[pattern.HeaderOriginQueue] = "email"
	consumerDead.Headers[pattern.HeaderFailureReason] = "smtp 550 mailbox unavailable"
	consumerDead.Headers[pattern.HeaderAttempt] = int32(4)
	consumerDead.Headers[pattern.HeaderFirstFailedAt] = "2026-11-25T04:00:00Z"
	fx.publish(t, pattern.DeadLetterExchange("email"), "email", consumerDead)

	dir := t.TempDir()
	recs := exportTo(t, fx, filepath.Join(dir, "export.jsonl"))
	if len(recs) != 6 {
		t.Fatalf("exported %d records, want 6", len(recs))
	}
	if n := fx.env.QueueDepth(t, "email.dlq"); n != 6 {
		t.Fatalf("export consumed: depth %d", n)
	}
	for i, r := range recs {
		if r.ID != fmt.Sprintf("evt-%03d", i+1) {
			t.Errorf("record %d id %s: order not kept", i, r.ID)
		}
		if r.Death.OriginQueue != "email" {
			t.Errorf("%s origin %q", r.ID, r.Death.OriginQueue)
		}
	}
	if d := recs[0].Death; d.Source != "x-death" || d.Reason != "rejected" || d.Count != 1 || d.FirstDeathAt == nil || d.Exchange != "events" || d.RoutingKeys[0] != "user.registered" {
		t.Errorf("x-death summary %+v", d)
	}
	if d := recs[5].Death; d.Source != "mqctl" || d.Failure != "smtp 550 mailbox unavailable" || d.Count != 4 {
		t.Errorf("mqctl summary %+v", d)
	}
	// The record rebuilds the message as it was in the DLQ.
	for i, r := range recs {
		p, err := r.Publishing()
		if err != nil {
			t.Fatal(err)
		}
		want := wantContent(i + 1)
		got := amqp.Delivery{Headers: p.Headers, ContentType: p.ContentType, ContentEncoding: p.ContentEncoding, DeliveryMode: p.DeliveryMode,
			Priority: p.Priority, CorrelationId: p.CorrelationId, ReplyTo: p.ReplyTo, Expiration: p.Expiration, MessageId: p.MessageId,
			Timestamp: p.Timestamp, Type: p.Type, UserId: p.UserId, AppId: p.AppId, Body: p.Body}
		sameContent(t, got, want)
	}

	rep, err := dlq.Replay(context.Background(), dial(t, fx.env), dial(t, fx.env), dlq.ReplayOptions{
		Queue: "email.dlq", Selection: mustSelection(t, filepath.Join(dir, "export.jsonl")), MaxReplays: 3, Window: 4})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replayed != 6 || rep.Partial() {
		t.Fatalf("report %+v", rep)
	}
	if n := fx.env.QueueDepth(t, "email.dlq"); n != 0 {
		t.Errorf("dlq depth %d after replaying all", n)
	}
	if n := fx.env.QueueDepth(t, "audit"); n != 0 {
		t.Errorf("replay reached audit (%d messages): it must go to the origin queue only", n)
	}
	got := drain(t, fx.env, "email")
	if len(got) != 6 {
		t.Fatalf("email got %d messages", len(got))
	}
	for i, d := range got {
		sameContent(t, d, wantContent(i+1))
		if d.Headers[pattern.HeaderReplayCount] != int64(1) {
			t.Errorf("%s replay count %#v", d.MessageId, d.Headers[pattern.HeaderReplayCount])
		}
		if _, ok := d.Headers["x-death"]; ok {
			t.Errorf("%s still has x-death", d.MessageId)
		}
		hist, _ := d.Headers[pattern.HeaderDeathHistory].([]any)
		if len(hist) != 1 {
			t.Fatalf("%s history %#v", d.MessageId, d.Headers[pattern.HeaderDeathHistory])
		}
		e := hist[0].(amqp.Table)
		if i < 5 && e["x-death"] == nil || i == 5 && e[pattern.HeaderFailureReason] != "smtp 550 mailbox unavailable" {
			t.Errorf("%s history entry %#v", d.MessageId, e)
		}
	}
}

func mustSelection(t *testing.T, path string) *dlq.Selection {
	t.Helper()
	s, err := dlq.ReadSelection(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReplayByFileMovesExactlySelectedAndNewArrivalsStay(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.deadLetter(t, 1, 10)
	dir := t.TempDir()
	recs := exportTo(t, fx, filepath.Join(dir, "export.jsonl"))
	var keep []dlq.Record
	for _, r := range recs {
		if r.ID == "evt-002" || r.ID == "evt-005" || r.ID == "evt-007" {
			keep = append(keep, r)
		}
	}
	checked := filepath.Join(dir, "checked.jsonl")
	writeRecords(t, checked, keep)
	// Arrivals after the human looked: a new copy of a selected id too.
	fx.deadLetter(t, 11, 12)
	fx.deadLetter(t, 5, 5)

	rep, err := dlq.Replay(context.Background(), dial(t, fx.env), dial(t, fx.env), dlq.ReplayOptions{
		Queue: "email.dlq", Selection: mustSelection(t, checked), MaxReplays: 3, Window: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replayed != 3 || rep.Partial() || rep.Depth != 13 {
		t.Fatalf("report %+v", rep)
	}
	if got := ids(drain(t, fx.env, "email")); !reflect.DeepEqual(got, []string{"evt-002", "evt-005", "evt-007"}) {
		t.Errorf("email got %v", got)
	}
	left := ids(drain(t, fx.env, "email.dlq"))
	want := []string{"evt-001", "evt-003", "evt-004", "evt-006", "evt-008", "evt-009", "evt-010", "evt-011", "evt-012", "evt-005"}
	if !reflect.DeepEqual(left, want) {
		t.Errorf("dlq left %v\nwant %v (same order)", left, want)
	}
}

func TestReplayReportsSkippedFailedNotFoundAndLeavesThem(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.deadLetter(t, 1, 2)
	looping := message(3)
	looping.Headers[pattern.HeaderReplayCount] = int64(3)
	looping.Headers[pattern.HeaderOriginQueue] = "email"
	fx.publish(t, pattern.DeadLetterExchange("email"), "email", looping)
	orphan := message(4) // no death information at all
	fx.publish(t, pattern.DeadLetterExchange("email"), "email", orphan)
	gone := message(5)
	gone.Headers[pattern.HeaderOriginQueue] = "deleted-queue"
	fx.publish(t, pattern.DeadLetterExchange("email"), "email", gone)

	rep, err := dlq.Replay(context.Background(), dial(t, fx.env), dial(t, fx.env), dlq.ReplayOptions{
		Queue: "email.dlq", Selection: dlq.SelectIDs([]string{"evt-001", "evt-003", "evt-004", "evt-005", "evt-404"}), MaxReplays: 3, Window: 8,
		AllOutcomes: true})
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, o := range rep.Outcomes {
		status[o.ID] = o.Status
	}
	want := map[string]string{"evt-001": "replayed", "evt-003": "skipped", "evt-004": "failed", "evt-005": "failed"}
	if !reflect.DeepEqual(status, want) || !reflect.DeepEqual(rep.NotFound, []string{"evt-404"}) || !rep.Partial() {
		t.Fatalf("outcomes %v not found %v", status, rep.NotFound)
	}
	if got := ids(drain(t, fx.env, "email.dlq")); !reflect.DeepEqual(got, []string{"evt-002", "evt-003", "evt-004", "evt-005"}) {
		t.Errorf("dlq left %v", got)
	}
	if got := ids(drain(t, fx.env, "email")); !reflect.DeepEqual(got, []string{"evt-001"}) {
		t.Errorf("email got %v", got)
	}
}

func TestPurgeRemovesExactlySelectedAndArchiveRepublishesIdentically(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.deadLetter(t, 1, 6)
	dir := t.TempDir()
	archive, err := dlq.OpenArchive(filepath.Join(dir, "archive.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := dlq.Purge(context.Background(), dial(t, fx.env), dlq.PurgeOptions{
		Queue: "email.dlq", Selection: dlq.SelectIDs([]string{"evt-002", "evt-004", "evt-006"}), Archive: archive, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	archive.Close()
	if rep.Purged != 3 || rep.Partial() {
		t.Fatalf("report %+v", rep)
	}
	if got := ids(drain(t, fx.env, "email.dlq")); !reflect.DeepEqual(got, []string{"evt-001", "evt-003", "evt-005"}) {
		t.Errorf("dlq left %v", got)
	}
	prep, err := dlq.PublishRecords(context.Background(), dial(t, fx.env), func() (io.ReadCloser, error) {
		return os.Open(filepath.Join(dir, "archive.jsonl"))
	}, "archive.jsonl", dlq.PublishOptions{Window: 2})
	if err != nil || prep.Published != 3 {
		t.Fatalf("publish %+v %v", prep, err)
	}
	got := drain(t, fx.env, "email")
	if !reflect.DeepEqual(ids(got), []string{"evt-002", "evt-004", "evt-006"}) {
		t.Fatalf("email got %v", ids(got))
	}
	for i, d := range got {
		sameContent(t, d, wantContent(2*i+2))
	}
	if n := fx.env.QueueDepth(t, "audit"); n != 0 {
		t.Errorf("publish reached audit: %d", n)
	}
}

// TestScanRotatesPastPrefetch holds far more unselected messages than the
// prefetch allows, so the consumer must rotate many times, and checks that
// exactly the selected ones moved and nothing else was lost or reordered.
func TestScanRotatesPastPrefetch(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	const n = 2000
	for i := 1; i <= n; i++ {
		m := amqp.Publishing{MessageId: fmt.Sprintf("m%04d", i), Headers: amqp.Table{pattern.HeaderOriginQueue: "email"}, Body: []byte("x")}
		if err := fx.ch.PublishWithContext(context.Background(), "", "email.dlq", false, false, m); err != nil {
			t.Fatal(err)
		}
	}
	waitDepth(t, fx.env, "email.dlq", func(d int) bool { return d == n })
	var sel []string
	for i := 100; i <= n; i += 100 {
		sel = append(sel, fmt.Sprintf("m%04d", i))
	}
	rep, err := dlq.Replay(context.Background(), dial(t, fx.env), dial(t, fx.env), dlq.ReplayOptions{
		Queue: "email.dlq", Selection: dlq.SelectIDs(sel), MaxReplays: 3, Window: 4})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replayed != len(sel) || rep.Scanned != n || rep.Partial() {
		t.Fatalf("report replayed %d scanned %d partial %v", rep.Replayed, rep.Scanned, rep.Partial())
	}
	if got := ids(drain(t, fx.env, "email")); !reflect.DeepEqual(got, sel) {
		t.Errorf("email got %v", got)
	}
	left := ids(drain(t, fx.env, "email.dlq"))
	if len(left) != n-len(sel) || !sort.StringsAreSorted(left) {
		t.Errorf("dlq left %d messages, sorted=%v", len(left), sort.StringsAreSorted(left))
	}
}

func TestPeekLimitAndDryRunChangeNothing(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.deadLetter(t, 1, 4)
	var seen []string
	res, err := dlq.Peek(context.Background(), dial(t, fx.env), "email.dlq", 2, func(r dlq.Record) error {
		seen = append(seen, r.ID)
		return nil
	})
	if err != nil || res.Read != 2 || res.Depth != 4 || !reflect.DeepEqual(seen, []string{"evt-001", "evt-002"}) {
		t.Fatalf("peek %+v %v %v", res, seen, err)
	}
	rep, err := dlq.Replay(context.Background(), dial(t, fx.env), dial(t, fx.env), dlq.ReplayOptions{
		Queue: "email.dlq", Selection: dlq.SelectAll(), MaxReplays: 3, Window: 2, DryRun: true})
	// The counts say what would move; the outcomes only what would not.
	if err != nil || rep.WouldReplay != 4 || len(rep.Outcomes) != 0 || rep.OutcomesOmitted != 4 ||
		!reflect.DeepEqual(rep.Moved(), []dlq.MovedTo{{Destination: "email", Count: 4}}) {
		t.Fatalf("dry run %+v %v", rep, err)
	}
	if got := ids(drain(t, fx.env, "email.dlq")); !reflect.DeepEqual(got, []string{"evt-001", "evt-002", "evt-003", "evt-004"}) {
		t.Errorf("dlq after peek and dry run %v", got)
	}
	if n := fx.env.QueueDepth(t, "email"); n != 0 {
		t.Errorf("dry run published %d", n)
	}
}

func TestFindDLQs(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	ch := fx.ch
	// A DLQ set by policy, routed through a fanout exchange.
	if err := ch.ExchangeDeclare("legacy-dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"legacy", "legacy-dead"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	ch.QueueBind("legacy-dead", "", "legacy-dlx", false, nil)
	if _, err := fx.env.Mgmt.PutPolicy(fx.env.Vhost, "dlx", rabbitPolicy("^legacy$", "legacy-dlx")); err != nil {
		t.Fatal(err)
	}
	// A delay queue routes back to its work queue: not a DLQ.
	ch.QueueDeclare("email.retry.1", true, false, false, false, amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "email"})
	var found []dlq.DLQ
	for range 300 { // up to 30 s: a loaded machine applies policies slowly
		var topo dlq.Topology
		topo.Queues, _ = fx.env.Mgmt.ListQueuesIn(fx.env.Vhost)
		topo.Exchanges, _ = fx.env.Mgmt.ListExchangesIn(fx.env.Vhost)
		topo.Bindings, _ = fx.env.Mgmt.ListBindingsIn(fx.env.Vhost)
		topo.Policies, _ = fx.env.Mgmt.ListPoliciesIn(fx.env.Vhost)
		found = dlq.Find(topo)
		if len(found) == 2 && found[1].Origins[0] == "legacy" {
			break
		}
		time.Sleep(100 * time.Millisecond) // the policy applies asynchronously
	}
	if len(found) != 2 || found[0].Name != "email.dlq" || found[1].Name != "legacy-dead" {
		t.Fatalf("found %+v", found)
	}
	if !reflect.DeepEqual(found[0].Origins, []string{"email"}) || !reflect.DeepEqual(found[0].FoundBy, []string{"arguments", "pattern"}) {
		t.Errorf("email.dlq %+v", found[0])
	}
	if !reflect.DeepEqual(found[1].Origins, []string{"legacy"}) || !reflect.DeepEqual(found[1].FoundBy, []string{"policy"}) {
		t.Errorf("legacy-dead %+v", found[1])
	}
}

// TestCumulativeAcksNeverTakeAHeldMessage selects a long run from the very
// first delivery (settled by cumulative acks), then leaves a block
// unselected, then selects again (acks one by one after the gap): a
// cumulative ack that reached past the gap would silently remove the held
// messages. Replay and purge share the scanner; both are checked.
func TestCumulativeAcksNeverTakeAHeldMessage(t *testing.T) {
	t.Parallel()
	const n = 900
	selected := func(i int) bool { return i <= 300 || i > 310 && i <= 600 }
	for _, mode := range []string{"replay", "purge"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t)
			for i := 1; i <= n; i++ {
				m := amqp.Publishing{MessageId: fmt.Sprintf("m%04d", i), Headers: amqp.Table{pattern.HeaderOriginQueue: "email"}, Body: []byte("x")}
				if err := fx.ch.PublishWithContext(context.Background(), "", "email.dlq", false, false, m); err != nil {
					t.Fatal(err)
				}
			}
			waitDepth(t, fx.env, "email.dlq", func(d int) bool { return d == n })
			var sel, rest []string
			for i := 1; i <= n; i++ {
				if id := fmt.Sprintf("m%04d", i); selected(i) {
					sel = append(sel, id)
				} else {
					rest = append(rest, id)
				}
			}
			var rep *dlq.Report
			var err error
			if mode == "replay" {
				rep, err = dlq.Replay(context.Background(), dial(t, fx.env), dial(t, fx.env), dlq.ReplayOptions{
					Queue: "email.dlq", Selection: dlq.SelectIDs(sel), MaxReplays: 3, Window: 32})
			} else {
				rep, err = dlq.Purge(context.Background(), dial(t, fx.env), dlq.PurgeOptions{
					Queue: "email.dlq", Selection: dlq.SelectIDs(sel), Batch: 50})
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Replayed+rep.Purged != len(sel) || rep.Partial() {
				t.Fatalf("report replayed %d purged %d partial %v", rep.Replayed, rep.Purged, rep.Partial())
			}
			if mode == "replay" {
				if got := ids(drain(t, fx.env, "email")); !reflect.DeepEqual(got, sel) {
					t.Errorf("email got %d messages, want the %d selected in order", len(got), len(sel))
				}
			}
			if left := ids(drain(t, fx.env, "email.dlq")); !reflect.DeepEqual(left, rest) {
				t.Errorf("dlq left %d messages, want exactly the %d unselected in order", len(left), len(rest))
			}
		})
	}
}

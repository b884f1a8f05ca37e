package dlq

import (
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/pattern"
)

func TestNormalizeError(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"provider unavailable: request 5f0c3e2a-9b1d-4c8e-a7f2-1d2e3f4a5b6c failed",
			"provider unavailable: request 0e5b1c22-7a3d-4f9e-b8c1-9a8b7c6d5e4f failed",
			"provider unavailable: request <id> failed"},
		{"timeout after 30s calling billing for order 1234", "timeout after 5s calling billing for order 98",
			"timeout after <n>s calling billing for order <n>"},
		{"smtp 550 mailbox u42@example.com unavailable", "smtp 550 mailbox bob.smith@example.org unavailable",
			"smtp <n> mailbox <email> unavailable"},
		{"lock held since 2026-05-01T10:15:00Z by evt-00042", "lock held since 2026-05-02 11:00:07.123+02:00 by evt-7",
			"lock held since <time> by evt-<n>"},
		{"bad checksum 0xdeadbeef in block 7f3a9c0e", "bad checksum 0x1F in block a1b2", "bad checksum <id> in block <id>"},
		{"slow: 250ms at 10:15:00.5", "slow:   1.5s at 23:59:59", "slow: <n>ms at <time>"},
		{"503 from api (request id 9e3779b1-0a2f)", "503 from api (request id deadbeef-abcd)", "<n> from api (request id <id>)"},
		{"trace cafebabe12 lost", "trace facade0012 lost", "trace <id> lost"},
	} {
		ga, gb := NormalizeError(tc.a), NormalizeError(tc.b)
		if ga != tc.want {
			t.Errorf("NormalizeError(%q) = %q, want %q", tc.a, ga, tc.want)
		}
		if tc.want != "slow: <n>ms at <time>" && gb != ga {
			t.Errorf("%q and %q normalise apart: %q vs %q", tc.a, tc.b, ga, gb)
		}
	}
	if got := NormalizeError("slow:   1.5s at 23:59:59"); got != "slow: <n>.<n>s at <time>" {
		t.Errorf("decimal with unit: %q", got)
	}
	if got := NormalizeError("call 15550123 at add-42 failed"); got != "call <n> at add-<n> failed" {
		t.Errorf("long number or short hex word taken for an id: %q", got)
	}
	if got := NormalizeError("smtp 550 mailbox unavailable"); got == NormalizeError("invalid address") {
		t.Errorf("different errors merged: %q", got)
	}
	long := NormalizeError(strings.Repeat("é", 300))
	if !strings.HasSuffix(long, "…") || len(long) > 204 || !strings.HasPrefix(long, "éé") {
		t.Errorf("long error cut to %d bytes: %q", len(long), long[len(long)-8:])
	}
}

func failed(id, queue, msg string, at time.Time) (string, Death) {
	return id, deathOf(amqp.Table{pattern.HeaderOriginQueue: queue, pattern.HeaderFailureReason: msg,
		pattern.HeaderFailedAt: at.Format(time.RFC3339), pattern.HeaderAttempt: int32(3)})
}

func brokerDeath(id, queue, reason string, at time.Time) (string, Death) {
	return id, deathOf(amqp.Table{"x-death": []any{amqp.Table{"queue": queue, "reason": reason, "count": int64(1), "time": at}}})
}

func TestGroupingCountsAndKeys(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	g := NewGrouping(GroupAll, 2)
	g.Add(failed("a", "email", "timeout for order 1", t0.Add(2*time.Minute)))
	g.Add(failed("b", "email", "timeout for order 22", t0))
	g.Add(failed("c", "email", "timeout for order 333", t0.Add(time.Minute)))
	g.Add(failed("c", "email", "timeout for order 333", t0.Add(time.Minute))) // a duplicate copy
	g.Add(brokerDeath("d", "sms", "delivery_limit", t0))
	g.Add("e", Death{})
	got := g.Groups()
	if len(got) != 3 {
		t.Fatalf("%d groups: %+v", len(got), got)
	}
	top := got[0]
	if top.Count != 4 || *top.Origin != "email" || *top.Reason != ReasonFailed || *top.Error != "timeout for order <n>" ||
		!top.FirstDeath.Equal(t0) || !top.LastDeath.Equal(t0.Add(2*time.Minute)) || !reflect.DeepEqual(top.SampleIDs, []string{"a", "b"}) {
		t.Errorf("top group %+v", top)
	}
	_, d := failed("x", "email", "timeout for order 4444", t0)
	if top.Key != GroupAll.Key(d) || len(top.Key) != 8 {
		t.Errorf("key %q is not the key of a new member (%q)", top.Key, GroupAll.Key(d))
	}
	// The key names the grouping too: origin alone keys email apart.
	if k := (GroupBy{Origin: true}).Key(d); k == top.Key {
		t.Error("origin-only key equals the full key")
	}
	byReason := NewGrouping(GroupBy{Reason: true}, 3)
	for _, m := range []struct {
		id string
		d  Death
	}{{"a", d}, {"d", func() Death { _, d := brokerDeath("d", "sms", "delivery_limit", t0); return d }()}, {"e", Death{}}} {
		byReason.Add(m.id, m.d)
	}
	for _, gr := range byReason.Groups() {
		if gr.Origin != nil || gr.Error != nil || gr.Reason == nil {
			t.Errorf("reason-only group has other fields: %+v", gr)
		}
		if *gr.Reason == "unknown" && gr.FirstDeath != nil {
			t.Errorf("a message without deaths has a death time: %+v", gr)
		}
	}
}

func TestParseGroupBy(t *testing.T) {
	g, err := ParseGroupBy([]string{"error", "origin"})
	if err != nil || g != (GroupBy{Origin: true, Error: true}) || g.String() != "origin,error" {
		t.Errorf("ParseGroupBy = %+v %v", g, err)
	}
	for _, bad := range [][]string{{"queue"}, {}} {
		if _, err := ParseGroupBy(bad); err == nil {
			t.Errorf("%v accepted", bad)
		} else if k, _ := fail.KindOf(err); k != fail.Usage {
			t.Errorf("%v: %v is not a usage error", bad, err)
		}
	}
}

func TestWhereCompileErrors(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct{ expr, want string }{
		{`error contains "timeout" &&`, "line 1, column"},
		{`eror contains "timeout"`, "unknown name eror"},
		{`properties.msg_id == "x"`, "msg_id"},
		{`deaths == "three"`, "mismatched types"},
		{`reason`, "expected bool"},
		{"reason == 'x' &&\n  age > 5 +", "line 2, column"},
	} {
		f, err := NewFilter(tc.expr, nil, now)
		if err == nil {
			t.Errorf("%q compiled", tc.expr)
			continue
		}
		if k, _ := fail.KindOf(err); k != fail.Usage || f != nil {
			t.Errorf("%q: %v is not a usage error", tc.expr, err)
		}
		if !strings.Contains(err.Error(), "--where") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q does not name --where and %q", tc.expr, err, tc.want)
		}
	}
	if f, err := NewFilter("", nil, now); f != nil || err != nil {
		t.Errorf("empty filter = %v, %v", f, err)
	}
}

func TestWhereMatches(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	worker := amqp.Delivery{MessageId: "evt-1", ContentType: "application/json", RoutingKey: "email", Body: []byte(`{"order":{"id":42,"tags":["vip"]}}`),
		Headers: amqp.Table{pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "smtp timeout talking to mx1",
			pattern.HeaderFailedAt: now.Add(-2 * time.Hour).Format(time.RFC3339), pattern.HeaderAttempt: int32(3),
			pattern.HeaderReplayCount: int64(1), "tenant": "acme", "n": int16(7),
			"x-death": []any{amqp.Table{"queue": "email.retry.1", "reason": "expired", "count": int64(2), "time": now.Add(-3 * time.Hour),
				"exchange": "events", "routing-keys": []any{"user.registered"}}}}}
	limit := amqp.Delivery{MessageId: "evt-2", Body: []byte("not json"), Headers: amqp.Table{"x-death": []any{
		amqp.Table{"queue": "sms", "reason": "delivery_limit", "count": int64(1), "time": now.Add(-time.Minute)}}}}
	for _, tc := range []struct {
		expr       string
		evt1, evt2 bool
	}{
		{`error contains "timeout" && age > duration("1h")`, true, false},
		{`reason == "delivery_limit" && age < duration("1h")`, false, true},
		{`origin in ["email", "sms"]`, true, true},
		{`deaths >= 3 && replays == 1`, true, false},
		{`headers.tenant == "acme" && headers.n == 7`, true, false},
		{`properties.content_type == "application/json" && properties.message_id startsWith "evt-"`, true, false},
		{`body.order.id == 42 && "vip" in body.order.tags`, true, false},
		{`body == nil`, false, true},
		{`routing_key == "user.registered" && exchange == "events"`, true, false},
		{`first_death < last_death`, true, false},
		{`last_death > now() - duration("24h") && error matches "mx[0-9]"`, true, false},
	} {
		f, err := NewFilter(tc.expr, nil, now)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if got := []bool{f.Match(worker, "evt-1"), f.Match(limit, "evt-2")}; !reflect.DeepEqual(got, []bool{tc.evt1, tc.evt2}) {
			t.Errorf("%q matched %v, want [%v %v]", tc.expr, got, tc.evt1, tc.evt2)
		}
	}
	// A header of another type than the expression expects fails at run
	// time: not selected, and counted.
	f, _ := NewFilter(`headers.n > 5`, nil, now)
	withText := amqp.Delivery{Headers: amqp.Table{"n": "seven"}}
	if f.Match(withText, "evt-3") || f.Failed != 1 || f.FirstFailure == nil || !strings.Contains(f.FirstFailure.Error(), "evt-3") {
		t.Errorf("run-time failure: failed %d, first %v", f.Failed, f.FirstFailure)
	}
}

func TestGroupFilterSelectsByAnyGrouping(t *testing.T) {
	now := time.Now()
	_, d := failed("a", "email", "timeout for order 7", now)
	h := amqp.Table{pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "timeout for order 8",
		pattern.HeaderFailedAt: now.Format(time.RFC3339)}
	other := amqp.Table{pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "invalid address",
		pattern.HeaderFailedAt: now.Format(time.RFC3339)}
	for _, by := range []GroupBy{GroupAll, {Error: true}} {
		f, err := NewFilter("", []string{by.Key(d)}, now)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Match(amqp.Delivery{Headers: h}, "b") || f.Match(amqp.Delivery{Headers: other}, "c") {
			t.Errorf("--group %s (%s) selects the wrong messages", by.Key(d), by)
		}
	}
	origin, _ := NewFilter(`reason == "failed"`, []string{(GroupBy{Origin: true}).Key(d)}, now)
	if !origin.Match(amqp.Delivery{Headers: other}, "c") {
		t.Error("--group of origin email with --where does not select another error of email")
	}
}

func TestResolvePrefixes(t *testing.T) {
	ids := []string{"evt-100", "evt-101", "evt-2", "sha256:7f3a9c00aa", "evt-1"}
	for _, tc := range []struct {
		given   []string
		want    []string
		errWant string
	}{
		{given: []string{"evt-2"}, want: []string{"evt-2"}},
		{given: []string{"7f3a"}, want: []string{"sha256:7f3a9c00aa"}},
		{given: []string{"evt-1"}, want: []string{"evt-1"}}, // exact wins over prefix
		{given: []string{"evt-10"}, errWant: "--id evt-10 is ambiguous: it begins 2 ids in q: evt-100, evt-101"},
		{given: []string{"nope"}, want: []string{"nope"}},
	} {
		s := SelectIDs(tc.given)
		given := map[string]*prefixMatch{}
		for _, p := range tc.given {
			m := &prefixMatch{}
			for _, id := range ids {
				switch {
				case id == p:
					m.exact = true
				case isPrefix(p, id):
					m.ids = append(m.ids, id)
				}
			}
			given[p] = m
		}
		err := s.resolve("q", given)
		if tc.errWant != "" {
			if k, _ := fail.KindOf(err); err == nil || k != fail.Usage || !strings.Contains(err.Error(), tc.errWant) {
				t.Errorf("%v: err %v, want %q", tc.given, err, tc.errWant)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.given, err)
			continue
		}
		for _, w := range tc.want {
			if s.want[w] != -1 || len(s.want) != len(tc.want) {
				t.Errorf("%v resolved to %v, want %v", tc.given, s.want, tc.want)
			}
		}
	}
}

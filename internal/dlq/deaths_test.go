package dlq

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/pattern"
)

// capturedHeaders reads the headers a broker gave a dead letter, as
// TestCaptureDeathHeaders wrote them, for each captured release.
func capturedHeaders(t *testing.T, story string) map[string]amqp.Table {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join("testdata", "deaths", "*"))
	if len(dirs) < 2 {
		t.Fatalf("testdata/deaths holds %d releases, want 3.10 and 4.x", len(dirs))
	}
	out := map[string]amqp.Table{}
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, story+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var typed map[string]Value
		if err := json.Unmarshal(b, &typed); err != nil {
			t.Fatal(err)
		}
		h, err := DecodeTable(typed)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(dir)] = h
	}
	return out
}

// TestDeathsFromCapturedHeaders decodes what RabbitMQ 3.10 and 4.0 really
// send (testdata/deaths/<version>/) and checks the newest death, the
// total, and the story in order.
func TestDeathsFromCapturedHeaders(t *testing.T) {
	for _, tc := range []struct {
		story           string
		source, origin  string
		reason, failure string
		lastError       string
		count, deaths   int64
		history         []string // queue/reason[/life], oldest first; "~" marks a retry pass
		lives           bool     // history names lives
	}{
		{story: "rejected", source: SourceBroker, origin: "work", reason: "rejected", count: 1, deaths: 1,
			history: []string{"work/rejected"}},
		{story: "expired", source: SourceBroker, origin: "work", reason: "expired", count: 1, deaths: 1,
			history: []string{"work/expired"}},
		{story: "maxlen", source: SourceBroker, origin: "small", reason: "maxlen", count: 1, deaths: 1,
			history: []string{"small/maxlen"}},
		{story: "delivery_limit", source: SourceBroker, origin: "qwork", reason: "delivery_limit", count: 1, deaths: 1,
			history: []string{"qwork/delivery_limit"}},
		{story: "rejected_twice", source: SourceBroker, origin: "second", reason: "rejected", count: 1, deaths: 2,
			history: []string{"first/rejected", "second/rejected"}},
		// Issue 14: a failure in the worker, then a loop on requeues until
		// the broker dead-lettered it: the newest death is the broker's.
		{story: "worker_then_delivery_limit", source: SourceBroker, origin: "qwork", reason: "delivery_limit",
			lastError: "provider unavailable", count: 1, deaths: 2,
			history: []string{"qwork/failed", "~qwork.retry.1/expired", "qwork/delivery_limit"}},
		{story: "worker_dead_lettered", source: SourceMqctl, origin: "qwork", reason: ReasonFailed,
			failure: "smtp 550 mailbox u42@example.com unavailable", lastError: "smtp 550 mailbox u42@example.com unavailable",
			count: 2, deaths: 2, history: []string{"~qwork.retry.1/expired", "qwork/failed"}},
		// Replayed, then failed again: the second failure shows, the
		// first life stays in the history.
		{story: "replayed_then_failed", source: SourceMqctl, origin: "qwork", reason: ReasonFailed,
			failure: "timeout after 30s calling billing for order 1234", lastError: "timeout after 30s calling billing for order 1234",
			count: 1, deaths: 3, history: []string{"first/rejected/0", "second/rejected/0", "qwork/failed/1"}, lives: true},
	} {
		for version, h := range capturedHeaders(t, tc.story) {
			d := deathOf(h)
			where := tc.story + " on " + version
			if d.Source != tc.source || d.OriginQueue != tc.origin || d.Reason != tc.reason || d.Failure != tc.failure ||
				d.LastError != tc.lastError || d.Count != tc.count || d.Deaths != tc.deaths {
				t.Errorf("%s: death = source %q origin %q reason %q failure %q last error %q count %d deaths %d",
					where, d.Source, d.OriginQueue, d.Reason, d.Failure, d.LastError, d.Count, d.Deaths)
			}
			if got := storyOf(d.History, tc.lives); strings.Join(got, " ") != strings.Join(tc.history, " ") {
				t.Errorf("%s: history %v, want %v", where, got, tc.history)
			}
			if d.LastDeathAt == nil || d.FirstDeathAt == nil || d.FirstDeathAt.After(d.LastDeathAt.Time) {
				t.Errorf("%s: first death %v, last death %v", where, d.FirstDeathAt, d.LastDeathAt)
			}
		}
	}
}

// storyOf writes a history as queue/reason, with /life when lives.
func storyOf(hist []DeathEvent, lives bool) []string {
	out := make([]string, len(hist))
	for i, e := range hist {
		s := e.Queue + "/" + e.Reason
		if e.Retry {
			s = "~" + s
		}
		if lives {
			s += "/" + string(rune('0'+e.Life))
		}
		out[i] = s
	}
	return out
}

// TestDeathOrderAtTheSameSecond covers the ties whole-second headers
// leave: a broker death in the consumer's own queue at the second of its
// failure came after it; one in another queue came before.
func TestDeathOrderAtTheSameSecond(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 15, 0, 0, time.UTC)
	stamp := at.Format(time.RFC3339)
	worker := func(extra amqp.Table) amqp.Table {
		h := amqp.Table{pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "provider unavailable",
			pattern.HeaderFailedAt: stamp, pattern.HeaderFirstFailedAt: stamp, pattern.HeaderAttempt: int32(3)}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	xd := func(entries ...amqp.Table) amqp.Table { return amqp.Table{"x-death": toAny(entries)} }
	entry := func(q, r string, t time.Time) amqp.Table {
		return amqp.Table{"queue": q, "reason": r, "count": int64(1), "time": t, "exchange": "", "routing-keys": []any{q}}
	}
	for _, tc := range []struct {
		name, reason string
		count        int64
		h            amqp.Table
	}{
		{"limit in its own queue, same second", "delivery_limit", 1, worker(xd(entry("email", "delivery_limit", at)))},
		{"limit an hour later", "delivery_limit", 1, worker(xd(entry("email", "delivery_limit", at.Add(time.Hour))))},
		{"came in expired from another queue, same second", ReasonFailed, 3, worker(xd(entry("signup", "expired", at)))},
		{"retry passes after it do not count", ReasonFailed, 3, worker(xd(entry("email.retry.2", "expired", at.Add(time.Minute))))},
		{"no times at all: the consumer's failure is newest", ReasonFailed, 1, amqp.Table{
			pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "x", "x-death": []any{amqp.Table{"queue": "email.retry.1", "reason": "expired"}}}},
		// Without x-death (a client dropped it) the broker's first/last
		// death headers have no time: a timed failure goes after them.
		{"x-first/last-death headers alone", ReasonFailed, 3, worker(amqp.Table{
			"x-first-death-queue": "email", "x-first-death-reason": "delivery_limit",
			"x-last-death-queue": "email", "x-last-death-reason": "delivery_limit"})},
	} {
		d := deathOf(tc.h)
		if d.Reason != tc.reason || d.Count != tc.count {
			t.Errorf("%s: reason %q count %d, want %q %d (history %+v)", tc.name, d.Reason, d.Count, tc.reason, tc.count, d.History)
		}
		if tc.reason != ReasonFailed && (d.Failure != "" || d.LastError == "" || ReasonText(d) != tc.reason) {
			t.Errorf("%s: failure %q last error %q text %q: a stale failure header must not win", tc.name, d.Failure, d.LastError, ReasonText(d))
		}
	}
	if d := deathOf(amqp.Table{}); d.Source != "" || d.History != nil || ReasonText(d) != "unknown" {
		t.Errorf("no death = %+v", d)
	}
}

func toAny(ts []amqp.Table) []any {
	out := make([]any, len(ts))
	for i, t := range ts {
		out[i] = t
	}
	return out
}

// dlq show's routing keys are the publisher's: the worker's first-publish
// headers win over x-death's oldest entry, which has the key of the hop
// into the delay queue.
func TestFirstPublishPrefersTheWorkersHeaders(t *testing.T) {
	h := amqp.Table{
		"x-death": []any{amqp.Table{"queue": "email.retry.1", "reason": "expired", "count": int64(1), "exchange": "", "routing-keys": []any{"email.retry.1"}}},
	}
	if ex, keys := firstPublish(h); ex != "" || len(keys) != 1 || keys[0] != "email.retry.1" {
		t.Errorf("without the worker's headers: %q %v", ex, keys)
	}
	h[pattern.HeaderExchange], h[pattern.HeaderRoutingKey] = "user.events", "user.registered.eu"
	if ex, keys := firstPublish(h); ex != "user.events" || len(keys) != 1 || keys[0] != "user.registered.eu" {
		t.Errorf("with them: %q %v", ex, keys)
	}
}

// originOf, which replay reads instead of the whole death model, names
// the same origin as deathOf: for every captured story of every release,
// and for the made-up edge cases (earlier lives only, retry passes only,
// no death at all).
func TestOriginOfIsDeathOfsOrigin(t *testing.T) {
	var cases []amqp.Table
	files, _ := filepath.Glob(filepath.Join("testdata", "deaths", "*", "*.json"))
	stories := map[string]bool{}
	for _, f := range files {
		stories[strings.TrimSuffix(filepath.Base(f), ".json")] = true
	}
	for story := range stories {
		for _, h := range capturedHeaders(t, story) {
			cases = append(cases, h)
			// The same, replayed once: the story moves into an earlier
			// life, the present one holds no death.
			cases = append(cases, ForReplay(amqp.Publishing{Headers: h}, "work.dlq", time.Unix(1700000000, 0)).Headers)
		}
	}
	retry := amqp.Table{"queue": "email.retry.1", "reason": "expired", "count": int64(1)}
	cases = append(cases,
		amqp.Table{},
		amqp.Table{"x-death": []any{retry}},
		amqp.Table{"x-death": []any{retry}, pattern.HeaderDeathHistory: []any{amqp.Table{"x-death": []any{amqp.Table{"queue": "email", "reason": "rejected"}}}}},
		amqp.Table{pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "x", "x-death": []any{retry}},
		amqp.Table{"x-first-death-queue": "sms", "x-first-death-reason": "rejected"},
		amqp.Table{"x-death": []any{retry, amqp.Table{"queue": "email", "reason": "rejected"}, amqp.Table{"queue": "sms", "reason": "expired"}}},
		amqp.Table{"x-death": []any{"not a table", amqp.Table{"queue": "email", "reason": "delivery_limit"}}},
		amqp.Table{"x-death": []any{"not a table"}, "x-first-death-queue": "sms", "x-first-death-reason": "rejected"},
		amqp.Table{pattern.HeaderOriginQueue: "billing", "x-death": []any{amqp.Table{"queue": "email", "reason": "rejected"}}},
	)
	if len(cases) < 20 {
		t.Fatalf("only %d cases", len(cases))
	}
	for i, h := range cases {
		if got, want := originOf(h), deathOf(h).OriginQueue; got != want {
			t.Errorf("case %d: originOf %q, deathOf %q\n%v", i, got, want, h)
		}
	}
}

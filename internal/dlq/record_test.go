package dlq

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Summarize must agree with FromDelivery, the identity export writes, with
// and without a message_id, so a file exported by one selects in the other.
func TestSummarizeAgreesWithFromDelivery(t *testing.T) {
	death := amqp.Table{
		"x-death":            []any{amqp.Table{"queue": "email", "reason": "rejected", "count": int64(2), "exchange": "user.events"}},
		"mqctl-replay-count": int32(1), "tenant": "acme",
	}
	for _, d := range []amqp.Delivery{
		{MessageId: "evt-1", Headers: death, Body: []byte("a")},
		{Headers: death, Body: []byte("no id"), ContentType: "application/json"},
	} {
		r, err := FromDelivery("email.dlq", d)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Summarize("email.dlq", d)
		if err != nil {
			t.Fatal(err)
		}
		if s.ID != r.ID || s.ReplayCount != r.ReplayCount || s.Destination("") != r.Destination("") || s.Destination("x") != "x" {
			t.Errorf("summary %+v disagrees with record id=%s replays=%d origin=%s", s, r.ID, r.ReplayCount, r.Destination(""))
		}
		if s.Destination("") != "email" || s.ReplayCount != 1 {
			t.Errorf("summary %+v: want origin email, 1 replay", s)
		}
	}
}

// A move by one of mqctl's replay shovels counts as a replay, one by any
// other shovel does not; neither changes a message's identity, and a
// client replay carries the count on and moves the shovel's trace into
// the death history.
func TestShovelHopsCountAsReplays(t *testing.T) {
	hop := func(name string) amqp.Table { return amqp.Table{"shovel-name": name, "src-queue": "email.dlq"} }
	h := amqp.Table{
		"x-death":            []any{amqp.Table{"queue": "email", "reason": "rejected", "count": int64(1)}},
		"mqctl-replay-count": int64(1),
		"x-shovelled":        []any{hop(ShovelPrefix + "email.dlq-0a1b2c3d"), hop("ops-move"), hop(ShovelPrefix + "email.dlq-99aa88bb")},
	}
	if got := replayCount(h); got != 3 {
		t.Errorf("replayCount = %d, want 1 + 2 mqctl shovel hops", got)
	}
	plain := amqp.Delivery{Body: []byte("b"), Headers: amqp.Table{"tenant": "acme"}}
	moved := plain
	moved.Headers = amqp.Table{"tenant": "acme", "x-shovelled": []any{hop(ShovelPrefix + "q-00000000")}}
	a, _ := FromDelivery("q", plain)
	b, _ := FromDelivery("q", moved)
	if a.ID != b.ID || b.ReplayCount != 1 {
		t.Errorf("ids %s / %s, replays %d: a shovel hop must keep the identity and count one replay", a.ID, b.ID, b.ReplayCount)
	}
	out := ForReplay(amqp.Publishing{Headers: h}, "email.dlq", time.Unix(0, 0))
	if out.Headers["mqctl-replay-count"] != int64(4) || out.Headers["x-shovelled"] != nil {
		t.Errorf("after a client replay: %v", out.Headers)
	}
}

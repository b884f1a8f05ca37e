package dlq

import (
	"testing"

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

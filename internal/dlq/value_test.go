package dlq

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/pattern"
)

// everyType holds one value of each AMQP field type amqp091 reads.
func everyType() amqp.Table {
	return amqp.Table{
		"bool":    true,
		"int8":    int8(-5),
		"uint8":   uint8(250),
		"int16":   int16(-30000),
		"uint16":  uint16(60000),
		"int32":   int32(-2000000000),
		"uint32":  uint32(4000000000),
		"int64":   int64(math.MaxInt64),
		"float32": float32(1.25),
		"float64": 0.1,
		"nan":     math.Inf(-1),
		"decimal": amqp.Decimal{Scale: 2, Value: 12345},
		"string":  "héllo\x00world",
		"bytes":   []byte{0, 1, 2, 255},
		"time":    time.Unix(1700000000, 0).UTC(),
		"void":    nil,
		"array":   []any{int32(1), "two", []any{int64(3)}},
		"table":   amqp.Table{"nested": amqp.Table{"deep": int16(7)}, "n": int64(1)},
	}
}

func TestTableRoundTripKeepsTypes(t *testing.T) {
	in := everyType()
	enc, err := EncodeTable(in)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(enc)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]Value
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	out, err := DecodeTable(back)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		for k := range in {
			if !reflect.DeepEqual(in[k], out[k]) {
				t.Errorf("%s: %#v (%T) came back as %#v (%T)", k, in[k], in[k], out[k], out[k])
			}
		}
	}
	if !strings.Contains(string(js), `"int64":{"type":"int64","value":9223372036854775807}`) {
		t.Errorf("int64 not exact in JSON: %s", js)
	}
}

func TestDecodeRejectsUnknownType(t *testing.T) {
	_, err := DecodeTable(map[string]Value{"k": {Type: "complex", Value: json.RawMessage(`1`)}})
	if err == nil || !strings.Contains(err.Error(), `"k"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestIdentity(t *testing.T) {
	p := Properties{ContentType: "application/json", Headers: map[string]Value{}}
	body := []byte(`{"user":1}`)
	id, src := Identity(p, body)
	if src != "hash" || !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("id %s (%s)", id, src)
	}
	// Death headers and expiration do not change the identity.
	q := p
	q.Expiration = "60000"
	q.Headers = map[string]Value{}
	xd, _ := EncodeValue([]any{amqp.Table{"count": int64(1)}})
	q.Headers["x-death"] = xd
	q.Headers[pattern.HeaderReplayCount], _ = EncodeValue(int64(2))
	if id2, _ := Identity(q, body); id2 != id {
		t.Errorf("death headers changed the identity: %s vs %s", id, id2)
	}
	// Content does.
	if id3, _ := Identity(p, []byte(`{"user":2}`)); id3 == id {
		t.Error("different bodies, same identity")
	}
	q.Headers["tenant"], _ = EncodeValue("acme")
	if id4, _ := Identity(q, body); id4 == id {
		t.Error("a content header did not change the identity")
	}
	p.MessageID = "evt-1"
	if id5, src := Identity(p, body); id5 != "evt-1" || src != "message_id" {
		t.Errorf("message_id identity = %s %s", id5, src)
	}
}

func TestForReplayMovesDeathHeaders(t *testing.T) {
	when := time.Unix(1700000000, 0)
	msg := amqp.Publishing{Headers: amqp.Table{
		"tenant":                    "acme",
		"x-death":                   []any{amqp.Table{"queue": "email", "reason": "rejected", "count": int64(1)}},
		"x-first-death-queue":       "email",
		pattern.HeaderOriginQueue:   "email",
		pattern.HeaderFailureReason: "smtp 550",
		pattern.HeaderAttempt:       int32(4),
		pattern.HeaderReplayCount:   int64(1),
		pattern.HeaderDeathHistory:  []any{amqp.Table{"dlq": "email.dlq"}},
		pattern.HeaderFirstFailedAt: "2026-01-01T00:00:00Z",
		pattern.HeaderFailedAt:      "2026-01-01T00:01:00Z",
		pattern.HeaderErrorClass:    "*net.OpError",
		pattern.HeaderWorker:        "host-1:4242",
	}, Body: []byte("b"), MessageId: "m1"}
	out := ForReplay(msg, "email.dlq", when)
	if out.Headers["tenant"] != "acme" || out.MessageId != "m1" || string(out.Body) != "b" {
		t.Errorf("content changed: %#v", out)
	}
	for k := range out.Headers {
		if k != "tenant" && k != pattern.HeaderDeathHistory && k != pattern.HeaderReplayCount {
			t.Errorf("header %s left on the replayed message", k)
		}
	}
	if out.Headers[pattern.HeaderReplayCount] != int64(2) {
		t.Errorf("replay count = %#v", out.Headers[pattern.HeaderReplayCount])
	}
	hist := out.Headers[pattern.HeaderDeathHistory].([]any)
	if len(hist) != 2 {
		t.Fatalf("history = %#v", hist)
	}
	e := hist[1].(amqp.Table)
	if e["dlq"] != "email.dlq" || e[pattern.HeaderFailureReason] != "smtp 550" || e["x-death"] == nil || e[pattern.HeaderAttempt] != int32(4) ||
		e[pattern.HeaderErrorClass] != "*net.OpError" || e[pattern.HeaderWorker] != "host-1:4242" {
		t.Errorf("history entry = %#v", e)
	}
	if _, err := EncodeTable(out.Headers); err != nil {
		t.Errorf("replayed headers not encodable: %v", err)
	}
	// The original is untouched.
	if msg.Headers["x-death"] == nil {
		t.Error("ForReplay modified its input")
	}
}

func TestDeathFromHeaders(t *testing.T) {
	t1 := time.Unix(1700000000, 0)
	t2 := time.Unix(1700000100, 0)
	broker := amqp.Table{"x-death": []any{
		amqp.Table{"queue": "email", "reason": "delivery_limit", "count": int64(2), "time": t2, "exchange": "email.retry", "routing-keys": []any{"email"}},
		amqp.Table{"queue": "email.retry.1", "reason": "expired", "count": int64(3), "time": t1, "exchange": "user.events", "routing-keys": []any{"user.registered"}},
	}}
	d := deathOf(broker)
	if d.Source != "x-death" || d.OriginQueue != "email" || d.Reason != "delivery_limit" || d.Count != 2 ||
		!d.FirstDeathAt.Equal(t1) || !d.LastDeathAt.Equal(t2) || d.Exchange != "user.events" || d.RoutingKeys[0] != "user.registered" {
		t.Errorf("x-death death = %+v", d)
	}
	consumer := amqp.Table{
		pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "smtp 550", pattern.HeaderAttempt: int32(4),
		pattern.HeaderFirstFailedAt: "2026-01-01T00:00:00Z",
		pattern.HeaderErrorClass:    "SmtpReject", pattern.HeaderWorker: "host-1:4242",
		// Passing through the delay queues leaves x-death behind: the mqctl
		// headers must win.
		"x-death": []any{amqp.Table{"queue": "email.retry.3", "reason": "expired", "count": int64(1)}},
	}
	d = deathOf(consumer)
	if d.Source != "mqctl" || d.OriginQueue != "email" || d.Reason != "failed" || d.Failure != "smtp 550" || d.Count != 4 || d.FirstDeathAt == nil ||
		d.ErrorClass != "SmtpReject" || d.History[len(d.History)-1].Worker != "host-1:4242" {
		t.Errorf("mqctl death = %+v", d)
	}
	if d := deathOf(amqp.Table{}); d.Source != "" || ReasonText(d) != "unknown" {
		t.Errorf("no death = %+v", d)
	}
}

func TestBodyPreview(t *testing.T) {
	if got := BodyPreview([]byte("hello world"), 5); got != "hello…" {
		t.Errorf("text preview %q", got)
	}
	if got := BodyPreview([]byte{0, 1, 0xff}, 10); got != "hex:0001ff" {
		t.Errorf("binary preview %q", got)
	}
}

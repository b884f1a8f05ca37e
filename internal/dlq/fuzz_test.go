package dlq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
)

// exportLine is one record as `mqctl dlq export` writes it, every header
// type included.
func exportLine(t testing.TB) []byte {
	t.Helper()
	h := everyType()
	h["x-death"] = []any{amqp.Table{"queue": "email", "reason": "rejected", "count": int64(2), "time": time.Unix(1700000000, 0), "routing-keys": []any{"user.registered"}}}
	r, err := FromDelivery("email.dlq", amqp.Delivery{Headers: h, ContentType: "application/json", DeliveryMode: 2, Priority: 3,
		MessageId: "evt-1", Timestamp: time.Unix(1700000000, 0), Body: []byte(`{"event_id":"evt-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzReadRecords feeds arbitrary bytes to the JSONL reader behind
// `dlq replay --from`, `dlq purge --from` and `publish --from`: nothing may
// panic; every rejection is a usage error (exit 2) naming the file and the
// line; every record read decodes into a message or is refused cleanly, and
// what it decodes to is stable: written back and read again it is the same
// record (export → publish → export loses nothing).
func FuzzReadRecords(f *testing.F) {
	line := exportLine(f)
	for _, s := range [][]byte{
		line,
		append(append(append([]byte{}, line...), '\n'), line...),
		[]byte(`{"id":"a"}` + "\n\n" + `{"id":"b","properties":{"headers":{"n":{"type":"int8","value":300}}}}`),
		[]byte(`{"id":"a","body":"not base64!"}`),
		[]byte(`{"id":"a","properties":{"delivery_mode":"2"}}`),
		[]byte(`{"id":"a","properties":{"headers":{"t":{"type":"timestamp","value":"9999-12-31T23:00:00-05:00"}}}}`),
		[]byte(`{"id":"a","properties":{"headers":{"s":{"type":"string","value":"\udc00"}}}}`),
		[]byte(`{"id":"a","properties":{"headers":{"a":{"type":"array","value":[{"type":"table","value":{"k":{"type":"decimal","value":{"scale":300}}}}]}}}}`),
		[]byte(`{"id":"\xff\xfe"}`),
		[]byte("{\"id\":\"a\"}\r\n\x00\x01"),
		[]byte(`[1,2,3]`),
		[]byte(`{"id":"a"} trailing`),
		[]byte(strings.Repeat("[", 5000)),
		[]byte(strings.Repeat("x", 5000)),
		{},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []Record
		err := readRecords(bytes.NewReader(data), "fuzz.jsonl", 4096, func(_ int, r Record) error {
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			if k, _ := fail.KindOf(err); k != fail.Usage || !strings.HasPrefix(err.Error(), "fuzz.jsonl:") {
				t.Fatalf("rejection is not a usage error naming file:line: %v", err)
			}
		}
		for _, r := range recs {
			if r.ID == "" {
				t.Fatalf("record without id accepted: %+v", r)
			}
			Identity(r.Properties, r.Body)
			msg, err := r.Publishing()
			if err != nil {
				continue // publish --from refuses this line before publishing anything
			}
			replayed := ForReplay(msg, r.Queue, time.Unix(1700000000, 0))
			if _, err := EncodeTable(replayed.Headers); err != nil {
				t.Fatalf("a replayed message's headers do not encode: %v", err)
			}
			// The message as it would be published, exported again, must
			// read back as the same message.
			again := rewrite(t, r, msg)
			msg2, err := again.Publishing()
			if err != nil {
				t.Fatalf("re-exported record does not decode: %v", err)
			}
			if a, b := rewrite(t, again, msg2), again; !sameRecord(a, b) {
				t.Fatalf("record not stable through export:\n%s\n%s", mustJSON(t, a), mustJSON(t, b))
			}
		}
	})
}

// rewrite is r as export would write the message msg: headers encoded from
// their wire values, through JSON and back.
func rewrite(t *testing.T, r Record, msg amqp.Publishing) Record {
	t.Helper()
	h, err := EncodeTable(msg.Headers)
	if err != nil {
		t.Fatalf("decoded headers do not encode again: %v", err)
	}
	r.Properties.Headers = h
	var back Record
	if err := json.Unmarshal(mustJSON(t, r), &back); err != nil {
		t.Fatalf("written record does not read back: %v", err)
	}
	return back
}

func sameRecord(a, b Record) bool { return bytes.Equal(mustJSONNoT(a), mustJSONNoT(b)) }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func mustJSONNoT(v any) []byte { b, _ := json.Marshal(v); return b }

// FuzzValueDecode: a typed header value from a file either decodes to the
// wire value amqp091 writes or is refused; encoded again it keeps its type
// and value exactly (a second round changes nothing).
func FuzzValueDecode(f *testing.F) {
	for k, v := range everyType() {
		ev, err := EncodeValue(v)
		if err != nil {
			f.Fatal(k, err)
		}
		f.Add(ev.Type, []byte(ev.Value))
	}
	for _, s := range [][2]string{
		{"int8", "128"}, {"uint32", "-1"}, {"float32", "1e39"}, {"float64", `"NaN"`}, {"float64", `"-Inf"`},
		{"timestamp", `"0000-01-01T00:00:00+01:00"`}, {"timestamp", `"2020-01-01T00:00:00.123456789Z"`},
		{"bytes", `"!!"`}, {"decimal", `{"scale":1,"value":2147483648}`}, {"array", `[{"type":"void","value":null}]`},
		{"table", `{"a":{"type":"table","value":{}}}`}, {"string", `"\ud800"`}, {"void", `7`}, {"bool", `"true"`},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, typ string, raw []byte) {
		v, err := Value{Type: typ, Value: raw}.Decode()
		if err != nil {
			return
		}
		e1, err := EncodeValue(v)
		if err != nil {
			t.Fatalf("decoded %s %q to %#v, which does not encode: %v", typ, raw, v, err)
		}
		v2, err := e1.Decode()
		if err != nil {
			t.Fatalf("%s %s encoded from %#v does not decode: %v", e1.Type, e1.Value, v, err)
		}
		e2, err := EncodeValue(v2)
		if err != nil || e1.Type != e2.Type || !bytes.Equal(e1.Value, e2.Value) {
			t.Fatalf("not stable: %s %s -> %#v -> %s %s (%v)", e1.Type, e1.Value, v2, e2.Type, e2.Value, err)
		}
		if fmt.Sprintf("%T", v) != fmt.Sprintf("%T", v2) {
			t.Fatalf("type changed: %T -> %T", v, v2)
		}
	})
}

// FuzzEncodeString: any header string a message can carry (AMQP strings
// are bytes, not necessarily UTF-8) survives export and import exactly.
// Header names are JSON object keys, which hold only UTF-8: a name that is
// not is the one thing export cannot keep (it becomes U+FFFD).
func FuzzEncodeString(f *testing.F) {
	for _, s := range []string{"", "héllo", "\x00", "\xff\xfe", "a\xc3", "\ud7ff", "\U0010ffff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vals := []any{s, amqp.Table{"k": s}, []any{s}}
		if utf8.ValidString(s) {
			vals = append(vals, amqp.Table{s: s})
		}
		for _, v := range vals {
			e, err := EncodeValue(v)
			if err != nil {
				t.Fatal(err)
			}
			var back Value
			if err := json.Unmarshal(mustJSON(t, e), &back); err != nil {
				t.Fatal(err)
			}
			got, err := back.Decode()
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", v) {
				t.Fatalf("%#v came back as %#v", v, got)
			}
		}
	})
}

// FuzzExportThenPublish: whatever a delivery carries (any timestamp, any
// header string, any body) exports to a JSON line that reads back as the
// same message, with the same identity. Properties that are not UTF-8
// (message_id and the other short strings) are the exception export
// cannot keep; they are kept UTF-8 here.
func FuzzExportThenPublish(f *testing.F) {
	f.Add(int64(1700000000), int64(1700000000), "acme", "evt-1", []byte(`{"a":1}`))
	f.Add(int64(1700000000123), int64(-62135596801), "\xff", "", []byte{0, 1, 0xff})
	f.Add(int64(-1), int64(253402300800), "", "m\u00e9", []byte{})
	f.Fuzz(func(t *testing.T, ts, hts int64, header, id string, body []byte) {
		if !utf8.ValidString(id) {
			id = strings.ToValidUTF8(id, "?")
		}
		d := amqp.Delivery{MessageId: id, Timestamp: time.Unix(ts, 0), Body: body, Headers: amqp.Table{
			"tenant": header, "at": time.Unix(hts, 0), "mqctl-first-failed-at": time.Unix(hts, 0), "mqctl-origin-queue": "email",
		}}
		r, err := FromDelivery("email.dlq", d)
		if err != nil {
			t.Fatal(err)
		}
		line, err := json.Marshal(r) // as Archive.Write does
		if err != nil {
			t.Fatalf("export cannot write the record: %v", err)
		}
		var back []Record
		if err := readRecords(bytes.NewReader(line), "x.jsonl", len(line)+1, func(_ int, r Record) error { back = append(back, r); return nil }); err != nil || len(back) != 1 {
			t.Fatalf("exported line does not read back: %v\n%s", err, line)
		}
		msg, err := back[0].Publishing()
		if err != nil {
			t.Fatalf("exported record does not publish: %v", err)
		}
		if back[0].ID != r.ID || !bytes.Equal(msg.Body, body) || msg.MessageId != id || (ts != 0 && msg.Timestamp.Unix() != ts) ||
			msg.Headers["tenant"] != header || msg.Headers["at"].(time.Time).Unix() != hts {
			t.Fatalf("message changed through export:\n%#v\n%#v", d, msg)
		}
	})
}

package dlq

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
)

func TestSelectionFromFileCountsCopies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sel.jsonl")
	os.WriteFile(path, []byte(`{"id":"a"}`+"\n\n"+`{"id":"b"}`+"\n"+`{"id":"a"}`+"\n"), 0o600)
	s, err := ReadSelection(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Size() != 3 {
		t.Errorf("size %d", s.Size())
	}
	got := []bool{s.Take("a"), s.Take("a"), s.Take("a"), s.Take("c"), s.Take("b")}
	if !reflect.DeepEqual(got, []bool{true, true, false, false, true}) {
		t.Errorf("takes %v", got)
	}
	if u := s.Untaken(nil); len(u) != 0 {
		t.Errorf("untaken %v", u)
	}
}

func TestSelectionIDsAndUntaken(t *testing.T) {
	s := SelectIDs([]string{"x", "y"})
	if !s.Take("x") || !s.Take("x") || s.Take("z") {
		t.Error("--id selects every copy of its id and nothing else")
	}
	if u := s.Untaken(map[string]bool{"x": true}); !reflect.DeepEqual(u, []string{"y"}) {
		t.Errorf("untaken %v", u)
	}
	if !SelectAll().Take("anything") || SelectAll().Size() != -1 {
		t.Error("all")
	}
}

func TestReadSelectionNamesBadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(path, []byte(`{"id":"a"}`+"\n"+`{"id": oops}`+"\n"), 0o600)
	_, err := ReadSelection(path)
	if k, _ := fail.KindOf(err); k != fail.Usage || !strings.Contains(err.Error(), "bad.jsonl:2:") {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(path, []byte(`{"queue":"q"}`+"\n"), 0o600)
	if _, err := ReadSelection(path); err == nil || !strings.Contains(err.Error(), `:1: record has no "id"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestTopicMatch(t *testing.T) {
	cases := []struct {
		pat, key string
		want     bool
	}{
		{"user.registered.#", "user.registered", true},
		{"user.registered.#", "user.registered.vip", true},
		{"user.*", "user.registered.vip", false},
		{"#", "", true},
		{"*.b", "a.b", true},
		{"a.#.c", "a.x.y.c", true},
	}
	for _, c := range cases {
		if got := routes("topic", c.pat, c.key); got != c.want {
			t.Errorf("%s ~ %s = %v", c.pat, c.key, got)
		}
	}
	if !routes("fanout", "x", "y") || routes("direct", "x", "y") {
		t.Error("fanout/direct")
	}
}

func TestJournalCarriesUnsettled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j", "q.jsonl")
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	j.published("b")
	j.published("b")
	// killed: no Close
	j2, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(j2.Unsettled, map[string]int{"b": 2}) {
		t.Fatalf("unsettled %v", j2.Unsettled)
	}
	if !j2.redo("b") || !j2.redo("b") || j2.redo("b") {
		t.Error("redo count")
	}
	j2.Close(false)
	j3, _ := OpenJournal(path)
	if len(j3.Unsettled) != 0 {
		t.Errorf("after redo: %v", j3.Unsettled)
	}
	j3.published("d")
	j3.Close(true)
	j4, _ := OpenJournal(path)
	if len(j4.Unsettled) != 0 {
		t.Errorf("after a finished run: %v", j4.Unsettled)
	}
}

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

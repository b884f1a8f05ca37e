package dlq

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/pattern"
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
	// Take counts: x twice, both times selected.
	if got := []bool{s.Take("x"), s.Take("x"), s.Take("z")}; !reflect.DeepEqual(got, []bool{true, true, false}) {
		t.Errorf("takes %v: --id selects every copy of its id and nothing else", got)
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

// A filter narrows any selection; a message it leaves out does not use up
// its id's count, so a later copy that matches is still taken.
func TestSelectionWithFilter(t *testing.T) {
	f, err := NewFilter(`headers.keep == true`, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keep := amqp.Delivery{Headers: amqp.Table{"keep": true}}
	drop := amqp.Delivery{Headers: amqp.Table{"keep": false}}
	s := &Selection{want: map[string]int{"a": 1}, Filter: f}
	if got := []bool{s.take(drop, "a"), s.take(keep, "a"), s.take(keep, "a"), s.take(keep, "b")}; !reflect.DeepEqual(got, []bool{false, true, false, false}) {
		t.Errorf("takes %v", got)
	}
	all := &Selection{All: true, Filter: f}
	if all.take(drop, "x") || !all.take(keep, "y") || all.Size() != -1 {
		t.Error("--where alone")
	}
	byClass, err := NewFilter(`error_class == "SmtpReject"`, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	classed := amqp.Delivery{Headers: amqp.Table{pattern.HeaderOriginQueue: "email", pattern.HeaderFailureReason: "550",
		pattern.HeaderErrorClass: "SmtpReject"}}
	if sel := (&Selection{All: true, Filter: byClass}); !sel.take(classed, "c") || sel.take(keep, "k") {
		t.Error("--where error_class")
	}
	if (&Selection{want: map[string]int{"a": 2}, Filter: f}).Size() != -1 {
		t.Error("a filtered file selection has no known size")
	}
}

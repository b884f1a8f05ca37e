package dlq

import (
	"path/filepath"
	"reflect"
	"testing"
)

// A run killed after it found a duplicate cannot report it: the next run
// that finishes must, once, and a finished run clears the journal.
func TestJournalReportsTheDuplicatesAKilledRunFound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.jsonl")
	j1, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	j1.published("x")
	j1.published("y")
	// killed: no Close
	j2, _ := OpenJournal(path)
	if len(j2.earlier()) != 0 || !j2.redo("x") {
		t.Fatalf("second run: earlier %v, redo x should report it", j2.earlier())
	}
	j2.published("x")
	// killed too, before its report
	j3, _ := OpenJournal(path)
	if got := j3.earlier(); !reflect.DeepEqual(got, []string{"x"}) {
		t.Errorf("third run reports %v from the killed runs, want [x]", got)
	}
	if j3.redo("x") {
		t.Error("x met again is reported a second time")
	}
	j3.published("x")
	if err := j3.Close(true); err != nil {
		t.Fatal(err)
	}
	j4, _ := OpenJournal(path)
	if len(j4.earlier()) != 0 || len(j4.Unsettled) != 0 {
		t.Errorf("after a finished run: earlier %v, unsettled %v", j4.earlier(), j4.Unsettled)
	}
	j4.Close(true)
}

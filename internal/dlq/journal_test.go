package dlq

import (
	"path/filepath"
	"reflect"
	"testing"
)

func openJournal(t *testing.T, path string) *Journal {
	t.Helper()
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// A run killed after it found a duplicate cannot report it: the next run
// that finishes must, once, and a finished run clears the journal.
func TestJournalReportsTheDuplicatesAKilledRunFound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.jsonl")
	j1 := openJournal(t, path)
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

func TestJournalCarriesUnsettled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j", "q.jsonl")
	j := openJournal(t, path)
	j.published("b")
	j.published("b")
	// killed: no Close
	j2 := openJournal(t, path)
	if !reflect.DeepEqual(j2.Unsettled, map[string]int{"b": 2}) {
		t.Fatalf("unsettled %v", j2.Unsettled)
	}
	// redo counts: two unsettled publishes of b, so a third is not a redo.
	if got := []bool{j2.redo("b"), j2.redo("b"), j2.redo("b")}; !reflect.DeepEqual(got, []bool{true, true, false}) {
		t.Errorf("redo count %v", got)
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

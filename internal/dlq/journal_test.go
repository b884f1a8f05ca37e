package dlq

import (
	"encoding/json"
	"os"
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

// A journal an earlier version left (every line through encoding/json,
// the "a" lines of older versions, escaped ids, a torn last line) is read
// as it was meant: what this version carries forward is what that one
// recorded.
func TestJournalReadsTheLinesOfEarlierVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.jsonl")
	old := `{"p":"m-1"}
{"p":"m-2"}
{"p":"m-2"}
{"p":"sha256:7f3a9c00112233445566778899aabbcc"}
{"p":"with \"quote\" and \\ and \u003ctag\u003e"}
{"p":"née\n"}
{"a":"m-2"}
{"p":"m-3"}
{"d":"m-3"}
{"p":"m-4"}
{"p":"m-`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	j := openJournal(t, path)
	want := map[string]int{"m-1": 1, "m-2": 1, "sha256:7f3a9c00112233445566778899aabbcc": 1,
		`with "quote" and \ and <tag>`: 1, "née\n": 1, "m-4": 1}
	if !reflect.DeepEqual(j.Unsettled, want) {
		t.Errorf("unsettled %v, want %v", j.Unsettled, want)
	}
	if got := j.earlier(); !reflect.DeepEqual(got, []string{"m-3"}) {
		t.Errorf("earlier %v, want [m-3]", got)
	}
	if err := j.Close(false); err != nil {
		t.Fatal(err)
	}
	// Carried forward by this version and read again: the same.
	j2 := openJournal(t, path)
	defer j2.Close(true)
	if !reflect.DeepEqual(j2.Unsettled, want) || !reflect.DeepEqual(j2.earlier(), []string{"m-3"}) {
		t.Errorf("carried forward: unsettled %v, earlier %v", j2.Unsettled, j2.earlier())
	}
}

// The lines written by hand are the ones encoding/json writes, so a
// journal stays readable by earlier versions too, whatever the id.
func TestJournalLinesAreEncodingJSONs(t *testing.T) {
	ids := []string{"m-1", "sha256:7f3a9c", `a"b`, `a\b`, "<&>", "née", "tab\there", "\xff", " ", "{}"}
	for _, id := range ids {
		for _, l := range []journalLine{{P: id}, {D: id}, {End: true}} {
			want, _ := json.Marshal(l)
			got := appendLine(nil, l)
			if string(got) != string(want)+"\n" {
				t.Errorf("%+v: wrote %q, encoding/json %q", l, got, want)
			}
			back, ok := parseLine(got[:len(got)-1])
			var viaJSON journalLine
			_ = json.Unmarshal(want, &viaJSON)
			if !ok || back != viaJSON {
				t.Errorf("%+v: read back %+v (%v), encoding/json reads %+v", l, back, ok, viaJSON)
			}
		}
	}
}

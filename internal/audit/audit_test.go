package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendAndReadKeepEveryLineWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "mqctl", "audit.jsonl")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := Entry{Command: "dlq replay", Vhost: "v", Queue: "email.dlq", Outcome: OK,
				Items: []Item{{ID: strings.Repeat("x", 1000*i), Status: "replayed"}}}
			if err := Append(path, e); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 {
		t.Fatalf("read %d entries, want 20", len(got))
	}
	for _, e := range got {
		if e.Time.IsZero() || e.Time.Location() != time.UTC {
			t.Errorf("entry time %v, want a UTC time", e.Time)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("trail mode %v, want 0600", st.Mode().Perm())
	}
}

// A last line without its newline (a run streaming it, or killed midway)
// is left out; the next entry starts a line of its own, and the torn
// line, now whole, is named.
func TestReadMissingIsEmptyAndTornLineIsNamed(t *testing.T) {
	dir := t.TempDir()
	if got, err := Read(filepath.Join(dir, "none.jsonl")); err != nil || got != nil {
		t.Fatalf("missing trail: %v %v", got, err)
	}
	path := filepath.Join(dir, "a.jsonl")
	if err := Append(path, Entry{Command: "dlq purge", Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026`)
	f.Close()
	got, err := Read(path)
	if err != nil || len(got) != 1 {
		t.Fatalf("line being written: %d entries, err %v; want the one whole entry", len(got), err)
	}
	if err := Append(path, Entry{Command: "dlq replay", Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	got, err = Read(path)
	if err == nil || !strings.Contains(err.Error(), "a.jsonl:2") || len(got) != 1 {
		t.Fatalf("torn line: %d entries, err %v", len(got), err)
	}
	b, _ := os.ReadFile(path)
	if lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[2], `{"time"`) {
		t.Errorf("trail after a torn line:\n%s\nwant the new entry on line 3", b)
	}
}

func TestPath(t *testing.T) {
	if p := Path("/s"); p != "/s/mqctl/audit.jsonl" {
		t.Errorf("Path(/s) = %s", p)
	}
}

func TestBodyHashIsHexSHA256(t *testing.T) {
	if got := BodyHash([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("BodyHash(abc) = %s", got)
	}
}

// Items streamed by MoreItems land in the line after Items, in the same
// one-line format, and concurrent runs still never interleave: each
// line is written under the lock. A stream that fails midway leaves a
// whole line that says its items are incomplete, and the lines after it
// are read as before.
func TestAppendStreamsItemsIntoOneLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	stream := func(run, n int) func(func(Item) error) error {
		return func(yield func(Item) error) error {
			for i := range n {
				if err := yield(Item{ID: fmt.Sprintf("run%d-%d", run, i), Status: "replayed", BodySHA256: strings.Repeat("a", 64)}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	var wg sync.WaitGroup
	for run := range 4 {
		wg.Go(func() {
			e := Entry{Command: "dlq replay", Queue: "email.dlq", Outcome: OK, Items: []Item{{ID: "first", Status: "skipped"}},
				Counts: map[string]int{"replayed": 20000}, MoreItems: stream(run, 20000)}
			if err := Append(path, e); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	broken := errors.New("spool unreadable")
	err := Append(path, Entry{Command: "dlq purge", Outcome: OK, MoreItems: func(yield func(Item) error) error {
		if err := yield(Item{ID: "kept", Status: "purged"}); err != nil {
			return err
		}
		return broken
	}})
	if !errors.Is(err, broken) {
		t.Errorf("a failed item stream returned %v", err)
	}
	if err := Append(path, Entry{Command: "publish", Outcome: OK}); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil || len(got) != 6 {
		t.Fatalf("read %d entries: %v", len(got), err)
	}
	for _, e := range got[:4] {
		if len(e.Items) != 20001 || e.Items[0].ID != "first" || e.Counts["replayed"] != 20000 || e.Outcome != OK {
			t.Errorf("entry with %d items, first %+v, counts %v", len(e.Items), e.Items[0], e.Counts)
		}
		run := strings.SplitN(e.Items[1].ID, "-", 2)[0]
		for i, it := range e.Items[1:] {
			if it.ID != fmt.Sprintf("%s-%d", run, i) {
				t.Fatalf("item %d is %s: lines interleaved", i, it.ID)
			}
		}
	}
	if e := got[4]; len(e.Items) != 1 || e.Outcome != Partial || !strings.Contains(e.Error, "audit items incomplete after 1: spool unreadable") {
		t.Errorf("entry of the failed stream: %+v", e)
	}
	if got[5].Command != "publish" || got[5].Items == nil {
		t.Errorf("entry after it: %+v", got[5])
	}
}

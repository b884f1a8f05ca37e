package audit

import (
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
	if err == nil || !strings.Contains(err.Error(), "a.jsonl:2") || len(got) != 1 {
		t.Fatalf("torn line: %d entries, err %v", len(got), err)
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

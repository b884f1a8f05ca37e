package dlq

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func archiveRecord(i, size int) Record {
	return Record{ID: fmt.Sprintf("evt-%d", i), Queue: "email.dlq", Body: bytes.Repeat([]byte{'x'}, size), BodySize: size}
}

func readArchive(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	if err := ReadRecords(f, path, func(_ int, r Record) error { ids = append(ids, r.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

// Between two Syncs only whole records reach the file, so a purge killed
// there leaves whole lines behind.
func TestArchiveWritesOnlyWholeRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	a, err := OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i := range 4 {
		if err := a.Write(archiveRecord(i, 300<<10)); err != nil { // 400 KiB of base64: the buffer holds two
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Fatalf("after record %d the file ends in the middle of a record", i)
		}
	}
}

// A torn last line (a kill in the middle of a write) is cut off when the
// archive is opened again, so the next record starts a line of its own.
func TestOpenArchiveCutsATornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	a, _ := OpenArchive(path)
	_ = a.Write(archiveRecord(1, 10))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.WriteString(`{"id":"evt-2","queue":"email.dl`)
	f.Close()
	a, err := OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Write(archiveRecord(2, 10))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readArchive(t, path); len(got) != 2 || got[0] != "evt-1" || got[1] != "evt-2" {
		t.Errorf("archive holds %v, want [evt-1 evt-2]", got)
	}
}

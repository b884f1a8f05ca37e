package migrate

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestJournalPathIsOneElementPerName(t *testing.T) {
	for _, c := range []struct{ vhost, queue string }{
		{"/", "orders"}, {"..", ".."}, {".", "a/b"}, {"v h", "../../etc/passwd"}, {"prod", ".hidden"},
	} {
		p := JournalPath("/state", c.vhost, c.queue)
		rel, err := filepath.Rel("/state/mqctl/migrate", p)
		if err != nil || strings.HasPrefix(rel, "..") || len(strings.Split(rel, string(filepath.Separator))) != 2 {
			t.Errorf("JournalPath(%q, %q) = %s: not vhost/queue.json under the state directory", c.vhost, c.queue, p)
		}
	}
	if JournalPath("/s", "a", "b") == JournalPath("/s", "a", "b.json") || JournalPath("/s", "a/b", "c") == JournalPath("/s", "a", "b/c") {
		t.Error("different names share a journal")
	}
}

func TestJournalSaveLoadAndPending(t *testing.T) {
	dir := t.TempDir()
	if q, err := Pending(dir, "v"); err != nil || len(q) != 0 {
		t.Fatalf("Pending on an empty state directory = %v, %v", q, err)
	}
	for _, name := range []string{"orders", "a/b"} {
		j := &journal{Version: journalVersion, Vhost: "v", Queue: name, Phase: PhaseOld, path: JournalPath(dir, "v", name)}
		if !j.addBinding(Binding{Source: "x", RoutingKey: "k", Arguments: map[string]any{"b": 1, "a": "z"}}) ||
			j.addBinding(Binding{Source: "x", RoutingKey: "k", Arguments: map[string]any{"a": "z", "b": 1}}) ||
			!j.addBinding(Binding{Source: "x", RoutingKey: "other"}) {
			t.Fatal("addBinding does not tell bindings apart as RabbitMQ does")
		}
		if err := j.save(true); err != nil {
			t.Fatal(err)
		}
	}
	other := &journal{Version: journalVersion, Vhost: "w", Queue: "orders", path: JournalPath(dir, "w", "orders")}
	if err := other.save(false); err != nil {
		t.Fatal(err)
	}
	q, err := Pending(dir, "v")
	if err != nil || !slices.Equal(q, []string{"a/b", "orders"}) {
		t.Fatalf("Pending = %v, %v; want [a/b orders]", q, err)
	}
	j, err := loadJournal(JournalPath(dir, "v", "orders"))
	if err != nil || j == nil || len(j.Bindings) != 2 || j.Phase != PhaseOld {
		t.Fatalf("loaded %+v, %v", j, err)
	}
	if err := j.remove(); err != nil {
		t.Fatal(err)
	}
	if q, _ := Pending(dir, "v"); !slices.Equal(q, []string{"a/b"}) {
		t.Errorf("Pending after remove = %v", q)
	}
	// No temporary file is left behind by the renames.
	entries, _ := os.ReadDir(filepath.Dir(JournalPath(dir, "v", "x")))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if err := os.WriteFile(JournalPath(dir, "v", "bad"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Pending(dir, "v"); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("a damaged journal: %v", err)
	}
}

func TestLockKeepsASecondRunOut(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock(2): the lock is a no-op")
	}
	path := JournalPath(t.TempDir(), "v", "orders")
	unlock, err := lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock(path); err == nil || !strings.Contains(err.Error(), "another mqctl is migrating") {
		t.Errorf("second lock: %v", err)
	}
	unlock()
	unlock2, err := lock(path)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/iostreams"
)

// TestManPagesAreCurrent fails when man/ is stale: run `make man` after
// changing commands, flags or help text. Packages install these pages.
func TestManPagesAreCurrent(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	root := NewCmdRoot(NewFactory(ios, func(string) (string, bool) { return "", false }))
	dir := t.TempDir()
	if err := WriteManPages(root, dir); err != nil {
		t.Fatal(err)
	}
	want := pages(t, dir)
	committed := filepath.Join("..", "..", "man")
	have := pages(t, committed)
	if !slices.Equal(names(want), names(have)) {
		t.Fatalf("man/ has pages %v, the command tree %v: run `make man` and commit the result", names(have), names(want))
	}
	for name, body := range want {
		if !bytes.Equal(have[name], body) {
			t.Errorf("man/%s is stale: run `make man` and commit the result", name)
		}
	}
	// The pages are real: the root page lists the commands and a
	// subcommand page carries its flags.
	if !bytes.Contains(want["mqctl.1"], []byte("mqctl-topology(1)")) {
		t.Errorf("mqctl.1 does not refer to mqctl-topology(1)")
	}
	if !bytes.Contains(want["mqctl-dlq-replay.1"], []byte(`\fB--dry-run\fP`)) {
		t.Errorf("mqctl-dlq-replay.1 lacks --dry-run:\n%s", want["mqctl-dlq-replay.1"])
	}
}

func pages(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("%v (run `make man`)", err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".1") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func names(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

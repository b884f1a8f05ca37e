package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/iostreams"
)

func TestDLQExportFlags(t *testing.T) {
	o := mustParse(t, "dlq export", NewCmdDLQExport, "email.dlq", "--out", "x.jsonl")
	if o.Queue != "email.dlq" || o.Out != "x.jsonl" {
		t.Errorf("%+v", o)
	}
	refusesFlags(t, "dlq export", NewCmdDLQExport, []string{"email.dlq"}, []string{"--out", "x.jsonl"})
}

func TestDLQExportBrokerDownWritesNoFile(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	out := filepath.Join(t.TempDir(), "x.jsonl")
	err := dlqExportRun(context.Background(), &DLQExportOptions{IO: ios, Dial: brokerDown, Queue: "email.dlq", Out: out})
	if ExitCode(context.Background(), err, true) != ExitError {
		t.Errorf("err = %v, want an operational error", err)
	}
	for _, p := range []string{out, out + ".partial"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s written", p)
		}
	}
}

// An --out whose directory does not exist is exit 2 naming the
// directory; the .partial a killed export left does not block the rerun.
func TestDLQExportOutPathMistakes(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	brokertest.DLQFixture(t, env, 5, 10)
	r := runCLI(t, env.Environ(), "dlq", "export", "email.dlq", "--out", "/nonexistent/dir/x.jsonl")
	if r.Code != ExitUsage || !strings.Contains(r.Stderr, "directory /nonexistent/dir does not exist") || strings.Contains(r.Stderr, "remove it") {
		t.Errorf("export into a missing directory: exit %d\n%s", r.Code, r.Stderr)
	}
	out := filepath.Join(t.TempDir(), "x.jsonl")
	if err := os.WriteFile(out+".partial", []byte(`{"id":"half`), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, env.Environ(), "dlq", "export", "email.dlq", "--out", out); r.Code != 0 {
		t.Fatalf("export over a killed run's .partial: exit %d\n%s", r.Code, r.Stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil || strings.Count(string(data), "\n") != 5 {
		t.Errorf("export wrote %q (%v), want 5 records", data, err)
	}
	if _, err := os.Stat(out + ".partial"); err == nil {
		t.Error("the .partial is still there")
	}
	if r := runCLI(t, env.Environ(), "dlq", "export", "email.dlq", "--out", out); r.Code != ExitUsage || !strings.Contains(r.Stderr, "exists") {
		t.Errorf("export over a complete file: exit %d\n%s", r.Code, r.Stderr)
	}
	if brokertest.Depth(t, env, "email.dlq") != 5 {
		t.Error("export changed the DLQ")
	}
}

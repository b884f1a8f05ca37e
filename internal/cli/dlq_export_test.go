package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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

package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/buildinfo"
	"github.com/mqctl/mqctl/internal/output"
)

func TestVersion(t *testing.T) {
	old := buildinfo.Version
	buildinfo.Version = "v1.2.3"
	defer func() { buildinfo.Version = old }()
	r := runCLI(t, nil, "version")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "mqctl v1.2.3 (commit ") {
		t.Fatalf("version = %q (exit %d)", r.Stdout, r.Code)
	}
	r = runCLI(t, nil, "version", "-o", "json")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || v["version"] != "v1.2.3" || v["go_version"] == "" {
		t.Fatalf("version json = %s (%v)", r.Stdout, err)
	}
}

func TestVersionFlags(t *testing.T) {
	f := noBrokerFactory(t)
	var got *VersionOptions
	cmd := NewCmdVersion(f, func(o *VersionOptions) error { got = o; return nil })
	if err := execReplacing(t, f, "", cmd, "version", "-o", "yaml"); err != nil {
		t.Fatal(err)
	}
	if got.Format != output.YAML || got.IO != f.IO {
		t.Errorf("options = %+v", got)
	}
	cmd = NewCmdVersion(f, func(*VersionOptions) error { t.Error("runF called"); return nil })
	if err := execReplacing(t, f, "", cmd, "version", "-o", "mermaid"); !isUsage(err) {
		t.Errorf("version -o mermaid: %v, want a usage error", err)
	}
}

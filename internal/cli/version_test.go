package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/buildinfo"
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

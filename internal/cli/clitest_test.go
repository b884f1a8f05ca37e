package cli

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mqctl/mqctl/internal/iostreams"
)

// cliResult is what one in-process run of mqctl printed and returned.
type cliResult struct {
	Stdout, Stderr string
	Code           int
}

// runCLI runs mqctl in-process with fake streams and only the given
// environment (never the test process's own MQCTL_* variables).
func runCLI(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	return runCLIWith(t, nil, env, args...)
}

// runCLIWith is runCLI with a hook to adjust the streams (TTY, stdin).
func runCLIWith(t *testing.T, setup func(*iostreams.IOStreams), env map[string]string, args ...string) cliResult {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	if setup != nil {
		setup(ios)
	}
	// A private state directory: the audit trail, replay journals and
	// the record of published files never land in the tester's home.
	full := map[string]string{"MQCTL_CONFIG": filepath.Join(t.TempDir(), "none.yaml"), "XDG_STATE_HOME": t.TempDir()}
	for k, v := range env {
		full[k] = v
	}
	f := NewFactory(ios, func(k string) (string, bool) { v, ok := full[k]; return v, ok })
	code := Run(context.Background(), f, args)
	return cliResult{Stdout: out.String(), Stderr: errOut.String(), Code: code}
}

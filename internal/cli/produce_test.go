package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestProduceFlags(t *testing.T) {
	var got *ProduceOptions
	build := func(f *Factory) *cobra.Command {
		return NewCmdProduce(f, func(o *ProduceOptions) error { got = o; return nil })
	}
	if err := runWithF(t, "produce", build, "produce", "--count", "50", "--rate", "20", "--vip-ratio", "0.5", "--window", "8", "--blocked-timeout", "30s", "-v", "-o", "json"); err != nil {
		t.Fatal(err)
	}
	if got.Count != 50 || got.Rate != 20 || got.VIPRatio != 0.5 || got.Window != 8 || got.BlockedTimeout != 30*time.Second || !got.Verbose || got.Format != "json" {
		t.Errorf("options = %+v", got)
	}
	if err := runWithF(t, "produce", build, "produce", "--count", "1"); err != nil {
		t.Fatal(err)
	}
	if got.Rate != 0 || got.VIPRatio != 0.1 || got.Window != 256 || got.BlockedTimeout != defaultBlockedTimeout || got.Verbose || got.Format != "table" {
		t.Errorf("defaults = %+v", got)
	}
	for _, args := range [][]string{
		{"produce"},
		{"produce", "--count", "5", "--rate", "-1"},
		{"produce", "--count", "5", "--window", "0"},
		{"produce", "--count", "5", "--blocked-timeout", "0s"},
	} {
		got = nil
		if err := runWithF(t, "produce", build, args...); err == nil || got != nil {
			t.Errorf("%v: error %v, runF called %v; want a usage error before any work", args, err, got != nil)
		}
	}
}

// produce against nodes that do not answer: no line per attempt, one
// error after --timeout naming every node tried, exit 1.
func TestProduceAgainstDeadNodesSaysSoOnce(t *testing.T) {
	t.Parallel()
	r := runCLI(t, map[string]string{"MQCTL_URL": "amqp://guest:guest@127.0.0.1:1/,amqp://guest:guest@127.0.0.1:2/", "MQCTL_TIMEOUT": "1s"}, "produce", "--count", "1")
	if r.Code != ExitError || strings.Contains(r.Stderr, "reconnecting") ||
		!strings.Contains(r.Stderr, "no connection within 1s to amqp://127.0.0.1:1, amqp://127.0.0.1:2") || strings.Count(r.Stderr, "Error:") != 1 {
		t.Errorf("exit %d\n%s", r.Code, r.Stderr)
	}
}

package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// The flags a worker runs with, the verbose switch included, and its
// dependencies, which nothing calls before the work starts.
func TestConsumeFlags(t *testing.T) {
	var got *ConsumeOptions
	err := runWithF(t, "consume", func(f *Factory) *cobra.Command {
		return NewCmdConsume(f, func(o *ConsumeOptions) error { got = o; return nil })
	}, "consume", "coupon", "--prefetch", "3", "--latency", "40ms", "--fail-rate", "0.25", "--down", "--db", "fx.db", "-v", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if got.Effect != "coupon" || got.Queue != "coupon" || got.Prefetch != 3 || got.Latency != 40*time.Millisecond ||
		got.FailRate != 0.25 || !got.Down || got.DB != "fx.db" || !got.Verbose || got.Format != "json" {
		t.Errorf("options = %+v", got)
	}
	if got.IO == nil || got.Settings == nil || got.Dialer == nil {
		t.Error("options lack IO, Settings or Dialer")
	}
}

func TestConsumeRetryPolicyFromFlags(t *testing.T) {
	file := writeFile(t, "topology.yaml", `apiVersion: mqctl/v1
queues:
  - name: email
    retry:
      max_attempts: 3
      backoff: [1s, 7s]
    dead_letter: graveyard
  - name: plain
`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "email"}, "{email 4 [5s 30s 2m0s] email.dlq}"},
		{[]string{"consume", "coupon", "--queue", "vip-coupons", "--max-attempts", "2", "--backoff", "1s"}, "{vip-coupons 2 [1s] vip-coupons.dlq}"},
		{[]string{"consume", "points", "--backoff", "100ms,1s", "--dlq", "graveyard"}, "{points 4 [100ms 1s] graveyard}"},
		// --topology: the file's policy, not the flags' defaults.
		{[]string{"consume", "email", "--topology", file}, "{email 3 [1s 7s] graveyard}"},
		{[]string{"consume", "points", "--queue", "plain", "--topology", file}, "{plain 1 [] }"},
		{[]string{"consume", "coupon", "--topology", exampleTopology}, "{coupon 4 [5s 30s 2m0s] coupon.dlq}"},
	} {
		var got string
		err := runWithF(t, "consume", func(f *Factory) *cobra.Command {
			return NewCmdConsume(f, func(o *ConsumeOptions) error {
				r := o.Retry
				got = fmt.Sprint(struct {
					Q string
					N int
					B []time.Duration
					D string
				}{r.Queue, r.MaxAttempts, r.Backoff, r.DLQ})
				return nil
			})
		}, tc.args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got != tc.want {
			t.Errorf("%v: policy %s, want %s", tc.args, got, tc.want)
		}
	}
}

func TestConsumeTopologyErrorsExit2(t *testing.T) {
	bad := writeFile(t, "bad.yaml", `apiVersion: mqctl/v1
queues:
  - name: email
    retry:
      max_attempts: 3
      backof: [1s]
    dead_letter: true
`)
	example := exampleTopology
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "email", "--topology", bad}, bad + ":6:7"},
		{[]string{"consume", "email", "--topology", filepath.Join(t.TempDir(), "missing.yaml")}, "missing.yaml"},
		{[]string{"consume", "email", "--queue", "nope", "--topology", example}, `declares no queue "nope"`},
		{[]string{"consume", "email", "--topology", example, "--backoff", "1s"}, "--backoff and --topology"},
		{[]string{"consume", "email", "--topology", example, "--max-attempts", "2"}, "--max-attempts and --topology"},
		{[]string{"consume", "email", "--topology", example, "--dlq", "x"}, "--dlq and --topology"},
	} {
		// The broker is never reached: these fail before connecting.
		r := runCLI(t, map[string]string{"MQCTL_URL": "amqp://127.0.0.1:1/"}, tc.args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, r.Code, r.Stderr, tc.want)
		}
	}
}

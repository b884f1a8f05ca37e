package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/bench"
	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

func parseBench(t *testing.T, args ...string) *BenchOptions {
	t.Helper()
	ios, _, _, _ := iostreams.Test()
	f := NewFactory(ios, func(string) (string, bool) { return "", false })
	var got *BenchOptions
	cmd := NewCmdBench(f, func(o *BenchOptions) error { got = o; return nil })
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return got
}

// PerfTest's command line for the cq-confirm scenario means the same here.
func TestBenchFlagsArePerfTests(t *testing.T) {
	o := parseBench(t, strings.Fields("-x 2 -y 3 -s 1000 -c 1000 -q 1000 -A 100 -r 500 -f persistent --queue-type quorum -z 30 -C 7 -D 9")...)
	want := bench.Config{
		Producers: 2, Consumers: 3, Size: 1000, ConfirmWindow: 1000, Prefetch: 1000, MultiAckEvery: 100, Rate: 500,
		Persistent: true, QueueType: bench.QueueQuorum, Duration: 30 * time.Second, ProducerCount: 7, ConsumerCount: 9,
		Warmup: 5 * time.Second,
	}
	if o.Config != want {
		t.Errorf("config = %+v\nwant     %+v", o.Config, want)
	}
	o = parseBench(t, "-u", "orders", "-f", "persistent,mandatory")
	if o.Config.Queue != "orders" || !o.Config.Persistent || !o.Config.Mandatory {
		t.Errorf("-u/-f: %+v", o.Config)
	}
}

func TestBenchScenario(t *testing.T) {
	o := parseBench(t, "--scenario", "qq-confirm", "-z", "5", "-x", "2")
	want := bench.Scenarios["qq-confirm"]
	want.Duration, want.Producers, want.Warmup = 5*time.Second, 2, 5*time.Second
	if o.Config != want {
		t.Errorf("config = %+v\nwant     %+v", o.Config, want)
	}
}

func TestBenchRegisterFlags(t *testing.T) {
	var got *BenchRegisterOptions
	build := func(f *Factory) *cobra.Command {
		return NewCmdBenchRegister(f, func(o *BenchRegisterOptions) error { got = o; return nil })
	}
	if err := runWithF(t, "bench register", build, "bench", "register"); err != nil {
		t.Fatal(err)
	}
	want := bench.RegisterConfig{Requests: 500, DownRequests: 200, Rate: 50, Concurrency: 100, EmailLatency: 2 * time.Second,
		OtherLatency: 20 * time.Millisecond, ProviderTimeout: 3 * time.Second, QueueType: bench.QueueQuorum}
	if got.Config != want {
		t.Errorf("defaults = %+v\nwant       %+v", got.Config, want)
	}
	if got.IO == nil || got.Settings == nil || got.Dialer == nil {
		t.Error("options lack IO, Settings or Dialer")
	}
	if err := runWithF(t, "bench register", build, strings.Fields("bench register --requests 10 --down-requests 0 --rate 5 --concurrency 2 --provider-latency 1s --other-latency 5ms --provider-timeout 2s --queue-type classic -o json")...); err != nil {
		t.Fatal(err)
	}
	want = bench.RegisterConfig{Requests: 10, DownRequests: 0, Rate: 5, Concurrency: 2, EmailLatency: time.Second,
		OtherLatency: 5 * time.Millisecond, ProviderTimeout: 2 * time.Second, QueueType: bench.QueueClassic}
	if got.Config != want || got.Format != output.JSON {
		t.Errorf("config = %+v, format %s\nwant     %+v, json", got.Config, got.Format, want)
	}
}

func TestBenchRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"bench", "-q", "10", "-A", "20"},
		{"bench", "-s", "4"},
		{"bench", "-f", "fast"},
		{"bench", "-z", "-1"},
		{"bench", "-x", "0", "-y", "0"},
		{"bench", "-u", "orders", "--queue-type", "quorum"},
		{"bench", "--queue-type", "stream"},
		{"bench", "--scenario", "fastest"},
		{"bench", "register", "--rate", "0"},
		{"bench", "register", "--concurrency", "0"},
	} {
		r := runCLI(t, nil, args...)
		if r.Code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, r.Code, ExitUsage, r.Stderr)
		}
	}
}

func TestBenchRunJSON(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	r := runCLI(t, env.Environ(), "bench", "-x", "1", "-y", "1", "-s", "500", "-C", "400", "-c", "40", "-q", "80", "-A", "20", "-f", "persistent", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	var got struct {
		Queue  string `json:"queue"`
		Totals struct {
			Sent, Confirmed, Received int64
		} `json:"totals"`
		Whole struct {
			Received float64 `json:"received_per_sec"`
		} `json:"whole_run"`
		ConsumerLatency struct {
			Count  int64 `json:"count"`
			Median int64 `json:"median_us"`
		} `json:"consumer_latency"`
		Config struct {
			Size int `json:"size"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("%v in %s", err, r.Stdout)
	}
	if got.Totals.Sent != 400 || got.Totals.Confirmed != 400 || got.Totals.Received != 400 {
		t.Errorf("totals %+v, want 400 sent, confirmed, received", got.Totals)
	}
	if got.Whole.Received <= 0 || got.ConsumerLatency.Count != 400 || got.ConsumerLatency.Median <= 0 || got.Config.Size != 500 {
		t.Errorf("figures: %+v", got)
	}
	if r.Stderr != "" {
		t.Errorf("progress printed without a terminal: %q", r.Stderr)
	}
}

func TestBenchRunTable(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	r := runCLI(t, env.Environ(), "bench", "-C", "100", "-c", "10", "--progress")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	for _, want := range []string{"MESSAGES", "received", "100", "consumer (end to end)", "publisher confirm", "P99.9"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.Stdout)
		}
	}
}

func TestBenchRegisterTable(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	r := runCLI(t, env.Environ(), "bench", "register", "--requests", "30", "--down-requests", "10", "--rate", "300",
		"--concurrency", "10", "--provider-latency", "20ms", "--other-latency", "1ms", "--provider-timeout", "1s", "--queue-type", "classic")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	for _, want := range []string{"providers up", "e-mail down", "sync", "async", "100.0%", "events waiting in queue", ": 40 (no workers ran)", "p99 sync / async"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
}
